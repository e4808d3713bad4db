"""Helpers of ``scale.py``: real seed vectors, an embedder that perturbs them, and the nightly churn of a catalogue.

Embedding 100k real-length articles takes ~1,650 s here (bf16, RESULTS.md "100k build") and 1M about 5 hours, so
``scale.py`` embeds a few thousand real articles with the real model once (``seed_vectors``) and its embedder
maps every other text to a perturbation of those real vectors (``PerturbedEmbedder``): the vectors keep the real
embedding space's anisotropy, but neighbours are not semantic. Stated in every JSON this feeds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from recommender.config import EmbedderConfig
from recommender.embedding.base import Embedder, ModelIdentity


def seed_vectors(path: Path, texts: Sequence[str]) -> np.ndarray:
    """Real embeddings (the default model) of ``texts``, computed once and kept at ``path``."""
    if path.exists():
        return np.load(path)
    from recommender.embedding import make_embedder

    vectors = make_embedder().encode(list(texts))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def mixed(seed: np.ndarray, rng: np.random.Generator, count: int, noise: float = 0.02) -> np.ndarray:
    """``count`` unit vectors near real ones: normalise(a + 0.5 b + noise), a and b random seed vectors (the
    recipe of ``rebuild.py``'s ``synthetic_vectors``)."""
    out = np.empty((count, seed.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        block = (seed[rng.integers(len(seed), size=n)] + 0.5 * seed[rng.integers(len(seed), size=n)]
                 + rng.normal(0.0, noise, size=(n, seed.shape[1])).astype(np.float32))
        out[start:start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


class PerturbedEmbedder(Embedder):
    """A deterministic stand-in for the model: each text's vector is ``mixed`` from real seed vectors with a
    generator seeded by the text's sha256 (same text, same vector; a new text, a new vector)."""

    def __init__(self, seed: np.ndarray) -> None:
        self.seed = np.asarray(seed, dtype=np.float32)
        self.config = EmbedderConfig()
        digest = hashlib.sha256(self.seed.tobytes()).hexdigest()
        self.identity = ModelIdentity("perturbed-real-minilm", int(self.seed.shape[1]), digest, "perturbed-fp32")

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        out = np.empty((len(texts), self.seed.shape[1]), dtype=np.float32)
        for i, text in enumerate(texts):
            rng = np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))
            out[i] = mixed(self.seed, rng, 1)[0]
        return out


def churn(count: int, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """One night of a news archive: ``share`` of ``count`` articles change, half edited (new vector, same id),
    half taken down, and as many new articles published (appended).

    Returns:
        edited positions, removed positions (both sorted) and the number of new articles.
    """
    changed = rng.choice(count, size=max(int(count * share), 2), replace=False)
    half = len(changed) // 2
    return np.sort(changed[:half]), np.sort(changed[half:]), len(changed) - half
