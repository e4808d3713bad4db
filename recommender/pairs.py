"""Products of row pairs of a dense or sparse matrix: the pair scores of relatedness and stories.

Scipy has no product of given row pairs: its way (gather ``matrix[a]`` and ``matrix[b]``, multiply them
elementwise, sum each row) copies both rows of every pair and merges their indices. ``pair_dots`` instead scatters
row ``a`` once into a dense scratch row and reads each ``b`` of the pairs with that ``a`` against it: no copies,
one read of each ``b`` row, no branch in the inner loop. The loop is compiled with numba on first use (cached next
to this module), so nothing that never scores pairs (the service) imports numba; ``nogil`` lets threads score
shards side by side.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

_compiled: dict[str, Callable[..., None]] = {}
MIN_PAIRS_PER_THREAD = 200_000  # fewer pairs than this a core: one thread (starting threads costs more)


def pair_cosines(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, batch_size: int = 1 << 16) -> np.ndarray:
    """Cosine of each pair (a[i], b[i]) of unit vectors, float32."""
    out = np.empty(len(a), dtype=np.float32)
    for start in range(0, len(a), batch_size):
        stop = start + batch_size
        out[start:stop] = np.einsum("ij,ij->i", vectors[a[start:stop]], vectors[b[start:stop]])
    return out


def pair_dots(matrix: sp.csr_matrix | sp.csr_array, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot product of each pair of sparse rows (matrix[a[i]], matrix[b[i]]), float32 (summed in float64).

    Pairs are scored in order of ``a`` (sorted here when they are not): each row ``a`` is scattered into a dense
    row once and every ``b`` read against it (module doc), on every core: at 100k articles 4.8-6.5x faster than
    gathering both rows of every pair and multiplying them elementwise with scipy (3-4.4x on one core;
    benchmarks/RESULTS.md, "Pair scores").
    """
    a = np.ascontiguousarray(a, dtype=np.int64)
    b = np.ascontiguousarray(b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"pair_dots needs two 1-d arrays of row numbers of one length, got shapes {a.shape} and "
                         f"{b.shape}")
    if not len(a):
        return np.zeros(0, dtype=np.float32)
    rows = matrix.shape[0]
    if min(int(a.min()), int(b.min())) < 0 or max(int(a.max()), int(b.max())) >= rows:
        raise IndexError(f"pair_dots: a row number is outside the matrix's {rows} rows")
    csr = sp.csr_matrix(matrix)
    order = None if bool(np.all(a[1:] >= a[:-1])) else np.argsort(a, kind="stable")
    scored = _scored(csr, a if order is None else a[order], b if order is None else b[order])
    if order is None:
        return scored.astype(np.float32)
    out = np.empty(len(a), dtype=np.float32)
    out[order] = scored
    return out


def pair_matrix(matrix: sp.csr_matrix, candidates: np.ndarray) -> np.ndarray:
    """Dot product of each row's sparse vector with each of its candidates', (n, c) float32 (0 at -1 padding)."""
    rows, cols = np.nonzero(candidates >= 0)
    out = np.zeros(candidates.shape, dtype=np.float32)
    out[rows, cols] = pair_dots(matrix, rows, candidates[rows, cols].astype(np.int64))
    return out


def _scored(csr: sp.csr_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The float64 dot of each pair, the pairs cut into contiguous slices scored on the machine's cores (the loop
    releases the GIL; each slice scatters its first row itself, so any cut gives the same sums)."""
    scattered_dots = _kernel()
    scored = np.empty(len(a), dtype=np.float64)
    cuts = np.linspace(0, len(a), min(os.cpu_count() or 1, len(a) // MIN_PAIRS_PER_THREAD + 1) + 1).astype(int)

    def score(start: int, stop: int) -> None:
        scattered_dots(csr.indptr, csr.indices, csr.data, csr.shape[1], a[start:stop], b[start:stop],
                       scored[start:stop])

    if len(cuts) == 2:
        score(0, len(a))
    else:
        with ThreadPoolExecutor(len(cuts) - 1) as pool:
            list(pool.map(score, cuts[:-1].tolist(), cuts[1:].tolist()))
    return scored


def _scattered_dots(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, columns: int, a: np.ndarray,
                    b: np.ndarray, out: np.ndarray) -> None:
    """``out[p] = matrix[a[p]] . matrix[b[p]]`` for a CSR matrix given as its arrays (``columns`` wide), summed in
    float64; row ``a[p]`` is scattered once per run of equal ``a``. Run compiled (``_kernel``)."""
    scratch = np.zeros(columns, dtype=np.float64)
    current = -1
    for p in range(len(a)):
        i = a[p]
        if i != current:
            if current >= 0:
                for x in range(indptr[current], indptr[current + 1]):
                    scratch[indices[x]] = 0.0
            for x in range(indptr[i], indptr[i + 1]):
                scratch[indices[x]] += data[x]
            current = i
        j = b[p]
        total = 0.0
        for y in range(indptr[j], indptr[j + 1]):
            total += data[y] * scratch[indices[y]]
        out[p] = total


def _kernel() -> Callable[..., None]:
    """``_scattered_dots`` compiled (once per process; the machine code is cached on disk by numba)."""
    if "dots" not in _compiled:
        from numba import njit

        compiled: Any = njit(cache=True, nogil=True)(_scattered_dots)
        _compiled["dots"] = compiled
    return _compiled["dots"]
