"""The dense neighbour table: each article's nearest other articles by embedding cosine, searched in batches."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..storage.index import FaissIndex
from .shards import ShardRunner, State


def compute_neighbours(index: FaissIndex, vectors: np.ndarray, k: int, rows: np.ndarray | None = None,
                       batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of each of ``rows`` (default: every row; self removed), in batches.

    Returns:
        rows (q, k) int32 (-1 padding) and cosine scores (q, k) float32.
    """
    queries = np.arange(len(vectors)) if rows is None else np.asarray(rows, dtype=np.int64)
    k = max(min(k, len(vectors) - 1), 0)
    found_rows = np.full((len(queries), k), -1, dtype=np.int32)
    scores = np.zeros((len(queries), k), dtype=np.float32)
    if k == 0:
        return found_rows, scores
    for start in range(0, len(queries), batch_size):
        batch = queries[start:start + batch_size]
        found, sims = index.search(np.ascontiguousarray(vectors[batch]), k + 1)
        for offset, (r, s) in enumerate(zip(found, sims)):
            keep = (r != batch[offset]) & (r >= 0)
            r, s = r[keep][:k], s[keep][:k]
            found_rows[start + offset, : len(r)] = r
            scores[start + offset, : len(s)] = s
    return found_rows, scores


def neighbour_shard(state: State, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One query shard of ``neighbour_search`` (state: ``index``, ``vectors``, ``k``).

    FAISS's exact (Flat) search sums each score through BLAS in an order that depends on the batch size and the
    number of OpenMP threads (last-bit differences that can swap near ties), so it runs on one thread here: the
    shard, not the thread count of whichever process runs it, decides the bytes. HNSW searches each query on its
    own and keeps the process's threads.
    """
    index: FaissIndex = state["index"]
    if not index.exact:
        return compute_neighbours(index, state["vectors"], state["k"], rows)
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return compute_neighbours(index, state["vectors"], state["k"], rows)
    finally:
        faiss.omp_set_num_threads(threads)


def neighbour_search(shards: ShardRunner, index: FaissIndex, vectors: np.ndarray, k: int
                     ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A search of the ``k`` nearest other rows of given rows, by query shard on ``shards``; the results are
    ``compute_neighbours``'s, merged in shard order."""
    state = {"index": index, "vectors": vectors, "k": k}

    def search(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = shards.map(neighbour_shard, state, np.asarray(rows, dtype=np.int64))
        if not parts:
            return compute_neighbours(index, vectors, k, rows)
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    return search
