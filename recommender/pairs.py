"""Products of row pairs of a dense or sparse matrix, in batches: the pair scores of relatedness and stories."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def pair_cosines(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, batch_size: int = 1 << 16) -> np.ndarray:
    """Cosine of each pair (a[i], b[i]) of unit vectors, float32."""
    out = np.empty(len(a), dtype=np.float32)
    for start in range(0, len(a), batch_size):
        stop = start + batch_size
        out[start:stop] = np.einsum("ij,ij->i", vectors[a[start:stop]], vectors[b[start:stop]])
    return out


def pair_dots(matrix: sp.csr_matrix, a: np.ndarray, b: np.ndarray, batch_size: int = 1 << 16) -> np.ndarray:
    """Dot product of each pair of sparse rows (matrix[a[i]], matrix[b[i]]), float32."""
    out = np.empty(len(a), dtype=np.float32)
    for start in range(0, len(a), batch_size):
        stop = start + batch_size
        out[start:stop] = np.asarray(matrix[a[start:stop]].multiply(matrix[b[start:stop]]).sum(axis=1)).ravel()
    return out


def pair_matrix(matrix: sp.csr_matrix, candidates: np.ndarray) -> np.ndarray:
    """Dot product of each row's sparse vector with each of its candidates', (n, c) float32 (0 at -1 padding)."""
    rows, cols = np.nonzero(candidates >= 0)
    out = np.zeros(candidates.shape, dtype=np.float32)
    out[rows, cols] = pair_dots(matrix, rows, candidates[rows, cols].astype(np.int64))
    return out
