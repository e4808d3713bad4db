"""The embed stage: each article's vector from the current build (same text, same model), then the embedding
cache, and only the rest from the model (through the executor)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..embedding.base import Embedder
from ..embedding.cache import EmbeddingCache
from ..errors import IndexFormatError
from .current import Current
from .executors import EmbedExecutor


@dataclass(frozen=True)
class Embedded:
    """The embed stage's output.

    Attributes:
        vectors: (n, d) float32, row order.
        reused: vectors taken from the current build.
        cached: vectors read from the embedding cache.
        embedded: distinct texts embedded now.
        not_embedded: positions whose vectors were not embedded now (the model-identity gate probes some).
        repaired: reused or cached vectors that were not finite unit vectors and were embedded again.
    """

    vectors: np.ndarray
    reused: int
    cached: int
    embedded: int
    not_embedded: list[int]
    repaired: int = 0


def embed_articles(texts: list[str], keys: list[str], ids: list[str], current: Current | None, embedder: Embedder,
                   executor: EmbedExecutor, cache: EmbeddingCache | None, progress: bool) -> Embedded:
    """Vectors for ``texts`` (sha256 ``keys``, article ``ids``): current's where the text is unchanged, then the
    cache's, then the executor's for the distinct texts left."""
    identity = embedder.identity
    vectors = np.zeros((len(texts), identity.dims), dtype=np.float32)
    done = np.zeros(len(texts), dtype=bool)
    if current is not None and current.identity == identity and current.vectors is not None:
        for i, (article_id, key) in enumerate(zip(ids, keys)):
            if current.keys.get(article_id) == key:
                vectors[i] = current.vectors[current.rows[article_id]]
                done[i] = True
    reused = int(done.sum())
    if cache is not None:
        found = cache.get(identity.cache_tag, [keys[i] for i in np.flatnonzero(~done)], identity.dims)
        for i in np.flatnonzero(~done).tolist():
            if keys[i] in found:
                vectors[i] = found[keys[i]]
                done[i] = True
    cached = int(done.sum()) - reused
    first: dict[str, int] = {}
    for i in np.flatnonzero(~done).tolist():
        first.setdefault(keys[i], int(i))
    unique = list(first.values())
    if unique:
        fresh = executor.embed([texts[i] for i in unique], embedder, progress=progress)
        if cache is not None:
            cache.put(identity.cache_tag, [keys[i] for i in unique], fresh)
        by_key = {keys[i]: v for i, v in zip(unique, fresh)}
        for i in np.flatnonzero(~done).tolist():
            vectors[i] = by_key[keys[i]]
    bad = np.flatnonzero(~unit_rows(vectors))
    redone = 0
    if len(bad):
        # A reused or cached vector that is not a finite unit vector (a damaged file or cache entry) is embedded
        # again; a freshly embedded one means the model itself is broken.
        stale = [int(i) for i in bad if done[i]]
        if len(stale) < len(bad):
            row = next(int(i) for i in bad if not done[i])
            raise IndexFormatError(f"the model embedded article {ids[row]!r} (row {row}) to a vector that is not "
                                   f"a finite unit vector; check the model files and backend")
        vectors[stale] = executor.embed([texts[i] for i in stale], embedder, progress=progress)
        if cache is not None:
            cache.put(identity.cache_tag, [keys[i] for i in stale], vectors[stale])
        redone = len(stale)
        if not unit_rows(vectors[stale]).all():
            raise IndexFormatError("re-embedding damaged vectors gave vectors that are not finite unit vectors")
        done[stale] = False
    return Embedded(vectors, reused, cached, len(unique) + redone, [int(i) for i in np.flatnonzero(done)], redone)


def unit_rows(vectors: np.ndarray, tolerance: float = 1e-3) -> np.ndarray:
    """(n,) bool: rows that are finite with a norm within ``tolerance`` of 1."""
    vectors = np.asarray(vectors, dtype=np.float32)
    finite = np.isfinite(vectors).all(axis=1)
    norms = np.linalg.norm(np.where(finite[:, None], vectors, 0.0), axis=1)
    return finite & (np.abs(norms - 1.0) <= tolerance)
