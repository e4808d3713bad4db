"""The dense neighbour table: each article's nearest other articles by embedding cosine, searched in batches."""

from __future__ import annotations

import numpy as np

from ..storage.index import FaissIndex


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
