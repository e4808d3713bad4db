"""Where the catalogue-sized stages run: in-process (local) or on Ray (ray): the embedding stage as a Ray Data job
over Parquet, the neighbour and related stages by query shard on actors that hold their state (``ray_stages``)."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from ..config import EmbedderConfig
from ..embedding.base import Embedder
from .shards import LocalShards, ShardRunner


class EmbedExecutor(Protocol):
    """Embeds the texts a rebuild could not reuse, and runs the query shards of the neighbour and related stages."""

    name: str

    def embed(self, texts: Sequence[str], embedder: Embedder, progress: bool = False) -> np.ndarray:
        """Embed ``texts``; ``embedder`` is the local model (its config tells remote workers what to load).

        Returns:
            (n, dims) float32 unit vectors in input order.
        """
        ...

    def shard_runner(self, shard_rows: int) -> ShardRunner:
        """The runner of the neighbour and related stages' query shards of ``shard_rows`` rows."""
        ...


class LocalExecutor:
    """The default: the process's own model, batch by batch."""

    name = "local"

    def embed(self, texts: Sequence[str], embedder: Embedder, progress: bool = False) -> np.ndarray:
        """Embed ``texts`` with ``embedder`` in this process."""
        return embedder.encode(list(texts), progress=progress)

    def shard_runner(self, shard_rows: int) -> ShardRunner:
        """Shards run in this process, one after another."""
        return LocalShards(shard_rows)


@dataclass(frozen=True)
class RayConfig:
    """How the Ray embedding job runs.

    Attributes:
        address: Ray cluster address ("auto", "ray://head:10001"); None starts a local Ray instance.
        num_actors: actors in the pool, each holding one model.
        batch_size: texts per ``map_batches`` call.
        num_cpus_per_actor / num_gpus_per_actor: resources each actor reserves (GPUs when the cluster has them).
        work_dir: where the input/output Parquet goes; on a cluster it must be storage every node sees
            (a shared mount or ``s3://...``). None uses a local temporary directory.
        num_cpus: CPUs of a local instance (ignored with ``address``).

    The neighbour and related stages use ``num_actors`` actors of ``num_cpus_per_actor`` CPUs (no GPU) too.
    """

    address: str | None = None
    num_actors: int = 1
    batch_size: int = 64
    num_cpus_per_actor: float = 1.0
    num_gpus_per_actor: float = 0.0
    work_dir: str | None = None
    num_cpus: int | None = None


class _EmbedActor:
    """A Ray actor class: loads the model once, then embeds batches of ``text``."""

    def __init__(self, embedder_config: dict[str, Any], device: str | None) -> None:
        from ..embedding.factory import make_embedder

        config = EmbedderConfig(**{**embedder_config, "device": device})
        self.embedder = make_embedder(config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray | list[np.ndarray]]:
        vectors = self.embedder.encode([str(t) for t in batch["text"]])
        return {"position": batch["position"], "vector": list(vectors)}


class RayExecutor:
    """The embedding stage as a Ray Data job: Parquet in, ``map_batches`` over an actor pool, Parquet out."""

    name = "ray"

    def __init__(self, config: RayConfig | None = None) -> None:
        self.config = config or RayConfig()

    def _init(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise ImportError('ray is not available: pip install "ray[data]" (the "ray" extra)') from exc
        if not ray.is_initialized():
            if self.config.address:
                ray.init(address=self.config.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.config.num_cpus, include_dashboard=False, log_to_driver=False)
        return ray

    def shard_runner(self, shard_rows: int) -> ShardRunner:
        """Shards run on ``num_actors`` Ray actors holding the stage's state (``ray_stages.RayShards``)."""
        from .ray_stages import RayShards

        self._init()
        return RayShards(shard_rows, self.config.num_actors, self.config.num_cpus_per_actor)

    def embed(self, texts: Sequence[str], embedder: Embedder, progress: bool = False) -> np.ndarray:
        """Embed ``texts`` on the Ray cluster; the vectors come back in input order."""
        import pandas as pd

        dims = embedder.identity.dims
        if len(texts) == 0:
            return np.zeros((0, dims), dtype=np.float32)
        ray = self._init()
        embedder_config = getattr(embedder, "config", None)
        if not isinstance(embedder_config, EmbedderConfig):
            raise TypeError("the Ray executor needs an embedder with an EmbedderConfig (its config is sent to the "
                            "actors)")
        config = self.config
        work = Path(config.work_dir) if config.work_dir else Path(tempfile.mkdtemp(prefix="recommender-ray-"))
        work.mkdir(parents=True, exist_ok=True)
        source, target = work / "texts", work / "vectors"
        try:
            source.mkdir(exist_ok=True)
            pd.DataFrame({"position": np.arange(len(texts), dtype=np.int64), "text": list(texts)}).to_parquet(
                source / "part-0.parquet", index=False)
            device = "cuda" if config.num_gpus_per_actor > 0 else None
            # Ray Data lists columns on the driver, so keep the config a plain dict (picklable everywhere).
            kwargs = {"embedder_config": {**dataclasses.asdict(embedder_config), "device": None}, "device": device}
            dataset = ray.data.read_parquet(str(source))
            dataset = dataset.map_batches(_EmbedActor, fn_constructor_kwargs=kwargs, batch_size=config.batch_size,
                                          concurrency=config.num_actors, num_cpus=config.num_cpus_per_actor,
                                          num_gpus=config.num_gpus_per_actor, batch_format="numpy")
            dataset.write_parquet(str(target))
            frame = pd.read_parquet(target).sort_values("position")
            if len(frame) != len(texts):
                raise RuntimeError(f"the Ray job returned {len(frame)} vectors for {len(texts)} texts")
            return np.ascontiguousarray(np.stack(frame["vector"].to_numpy()), dtype=np.float32)
        finally:
            if config.work_dir is None:
                shutil.rmtree(work, ignore_errors=True)
            else:
                shutil.rmtree(source, ignore_errors=True)
                shutil.rmtree(target, ignore_errors=True)


def make_executor(name: str, ray_config: RayConfig | None = None) -> EmbedExecutor:
    """``local`` or ``ray``; anything else is a ``ValueError`` naming the choices."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(ray_config)
    raise ValueError(f"unknown executor {name!r}; choose local or ray")
