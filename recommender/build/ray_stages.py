"""The neighbour and related stages' query shards on Ray (``--executor ray``).

Each ``map`` puts the stage's read-only state in the object store once (``ray.put``; the same array is put once
per runner however many maps read it), starts ``num_actors`` actors that receive it at construction (the FAISS
index travels serialized and is rebuilt once per actor), then hands them the shards through an ``ActorPool``,
whose ``map`` gives the results back in shard order. The driver only merges them (``shards.stack_rows``). The
shard functions are the local executor's, over the same shards, so the two builds are byte-equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import IndexConfig
from ..storage.index import FaissIndex
from .shards import ShardFn, State, split_rows


@dataclass(frozen=True)
class _IndexBlob:
    """A FAISS index as bytes (``faiss.serialize_index``): what the object store holds for a ``FaissIndex``."""

    data: np.ndarray
    factory: str
    config: IndexConfig
    positions: np.ndarray | None  # an incrementally updated index's row -> article position (tombstones -1)


def _pack(value: Any) -> Any:
    """``value`` as the object store keeps it: a ``FaissIndex`` serialized, anything else as it is."""
    if isinstance(value, FaissIndex):
        import faiss

        return _IndexBlob(faiss.serialize_index(value.index), value.factory, value.config, value.positions)
    return value


def _unpack(value: Any) -> Any:
    """The inverse of ``_pack``, on the actor."""
    if isinstance(value, _IndexBlob):
        import faiss

        # the object store hands out read-only buffers; FAISS copies what it reads into its own structures
        index = faiss.deserialize_index(np.array(value.data, copy=True))
        return FaissIndex(index, value.factory, value.config, value.positions)
    return value


class ShardActor:
    """A Ray actor class: holds one stage's state (the index, vectors, matrices) and runs its shards."""

    def __init__(self, **state: Any) -> None:
        self.state = {name: _unpack(value) for name, value in state.items()}

    def run(self, fn: ShardFn, rows: np.ndarray) -> Any:
        """``fn(state, rows)``: one shard."""
        return fn(self.state, rows)


class RayShards:
    """Runs query shards on Ray actors; needs ``ray.init`` done (``executors.RayExecutor`` does it).

    Args:
        shard_rows: query rows per shard (``BuildConfig.query_shard_rows``).
        num_actors: actors per stage, each holding the stage's state.
        num_cpus_per_actor: CPUs each reserves (Ray sets its OpenMP threads to match: FAISS's HNSW search uses
            them).
    """

    name = "ray"

    def __init__(self, shard_rows: int, num_actors: int = 1, num_cpus_per_actor: float = 1.0) -> None:
        if shard_rows < 1 or num_actors < 1:
            raise ValueError(f"query_shard_rows and num_actors must be >= 1, got {shard_rows}, {num_actors}")
        self.shard_rows = shard_rows
        self.num_actors = num_actors
        self.num_cpus_per_actor = num_cpus_per_actor
        self._refs: dict[int, tuple[Any, Any]] = {}  # id(value) -> (value, its ObjectRef); value kept so ids stay

    def _ref(self, value: Any) -> Any:
        """The ObjectRef of ``value``, put once."""
        import ray

        key = id(value)
        if key not in self._refs:
            self._refs[key] = (value, ray.put(_pack(value)))
        return self._refs[key][1]

    def map(self, fn: ShardFn, state: State, rows: np.ndarray) -> list[Any]:
        """Run ``fn`` on each shard of ``rows`` on the actors; results in shard order."""
        import ray
        from ray.util import ActorPool

        parts = split_rows(rows, self.shard_rows)
        if not parts:
            return []
        refs = {name: self._ref(value) for name, value in state.items()}
        actor_class: Any = ray.remote(num_cpus=self.num_cpus_per_actor)(ShardActor)  # Any: ray types .remote loosely
        # ObjectRefs passed as top-level arguments reach the actor as their values (numpy arrays zero-copy)
        actors = [actor_class.remote(**refs) for _ in range(min(self.num_actors, len(parts)))]
        try:
            pool = ActorPool(actors)
            return list(pool.map(lambda actor, part: actor.run.remote(fn, part), parts))
        finally:
            for actor in actors:
                ray.kill(actor)

    def release(self) -> None:
        """Drop the object store copies of the states put so far."""
        self._refs.clear()
