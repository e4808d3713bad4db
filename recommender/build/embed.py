"""The embed stage: each article's vector from the current build (same text, same model), then the embedding
cache, and only the rest from the model (through the executor)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..embedding.base import Embedder
from ..embedding.cache import EmbeddingCache
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
    """

    vectors: np.ndarray
    reused: int
    cached: int
    embedded: int
    not_embedded: list[int]


def embed_articles(texts: list[str], keys: list[str], ids: list[str], current: Current | None, embedder: Embedder,
                   executor: EmbedExecutor, cache: EmbeddingCache | None, progress: bool) -> Embedded:
    """Vectors for ``texts`` (sha256 ``keys``, article ``ids``): current's where the text is unchanged, then the
    cache's, then the executor's for the distinct texts left."""
    identity = embedder.identity
    vectors = np.zeros((len(texts), identity.dims), dtype=np.float32)
    done = np.zeros(len(texts), dtype=bool)
    if current is not None and current.identity == identity:
        for i, (article_id, key) in enumerate(zip(ids, keys)):
            if current.keys.get(article_id) == key:
                vectors[i] = current.vectors[current.rows[article_id]]
                done[i] = True
    reused = int(done.sum())
    if cache is not None:
        found = cache.get(identity.cache_tag, [keys[i] for i in np.flatnonzero(~done)], identity.dims)
        for i in np.flatnonzero(~done):
            if keys[i] in found:
                vectors[i] = found[keys[i]]
                done[i] = True
    cached = int(done.sum()) - reused
    first: dict[str, int] = {}
    for i in np.flatnonzero(~done):
        first.setdefault(keys[i], int(i))
    unique = list(first.values())
    if unique:
        fresh = executor.embed([texts[i] for i in unique], embedder, progress=progress)
        if cache is not None:
            cache.put(identity.cache_tag, [keys[i] for i in unique], fresh)
        by_key = {keys[i]: v for i, v in zip(unique, fresh)}
        for i in np.flatnonzero(~done):
            vectors[i] = by_key[keys[i]]
    return Embedded(vectors, reused, cached, len(unique), [int(i) for i in np.flatnonzero(done)])
