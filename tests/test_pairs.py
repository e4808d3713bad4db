"""Pair scores (``pairs.pair_dots``, the compiled loop of the related stage) against a dense oracle."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.pairs import pair_dots, pair_matrix


def _random_matrix(rng: np.random.Generator, rows: int = 300, columns: int = 500) -> sp.csr_matrix:
    matrix = sp.random(rows, columns, density=0.04, format="csr", random_state=rng, dtype=np.float32)
    matrix.data[matrix.indptr[7]:matrix.indptr[8]] = 0  # an empty row
    matrix.eliminate_zeros()
    return matrix


def test_pair_dots_equal_the_dense_products_in_any_pair_order() -> None:
    rng = np.random.default_rng(0)
    matrix = _random_matrix(rng)
    dense = matrix.toarray().astype(np.float64)
    a = rng.integers(0, matrix.shape[0], size=5_000)
    b = rng.integers(0, matrix.shape[0], size=5_000)
    a[:40] = 7  # pairs with the empty row
    expected = np.einsum("ij,ij->i", dense[a], dense[b])
    for order in (np.arange(len(a)), np.argsort(a, kind="stable")):  # unsorted and sorted by a
        got = pair_dots(matrix, a[order], b[order])
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected[order], rtol=1e-6, atol=1e-7)
    assert not np.any(pair_dots(matrix, a[:40], b[:40]))


def test_pair_dots_of_counts_are_exact_with_unsorted_indices_and_duplicates() -> None:
    # A 0/1 membership matrix (shared-neighbour sets) built from unsorted, repeated coordinates: the counts are
    # integers and must come out exactly, as they are stored as uint16.
    rng = np.random.default_rng(1)
    rows = np.repeat(np.arange(200), 30)
    cols = rng.integers(0, 200, size=len(rows))
    members = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(200, 200))
    members.data[:] = 1.0  # duplicates summed by the constructor, then reset: a set per row
    shuffled = members.copy()
    for r in range(shuffled.shape[0]):  # indices out of order within each row (what TF-IDF output looks like)
        start, stop = shuffled.indptr[r], shuffled.indptr[r + 1]
        perm = rng.permutation(stop - start)
        shuffled.indices[start:stop] = shuffled.indices[start:stop][perm]
        shuffled.data[start:stop] = shuffled.data[start:stop][perm]
    a = np.repeat(np.arange(200), 50)
    b = rng.integers(0, 200, size=len(a))
    sets = [set(members.indices[members.indptr[r]:members.indptr[r + 1]].tolist()) for r in range(200)]
    expected = np.array([len(sets[i] & sets[j]) for i, j in zip(a.tolist(), b.tolist())], dtype=np.float32)
    np.testing.assert_array_equal(pair_dots(shuffled, a, b), expected)
    np.testing.assert_array_equal(pair_dots(members, a, b), expected)


def test_pair_matrix_and_bad_input() -> None:
    rng = np.random.default_rng(2)
    matrix = _random_matrix(rng, rows=50, columns=80)
    candidates = rng.integers(-1, 50, size=(50, 6))
    dense = matrix.toarray().astype(np.float64)
    got = pair_matrix(matrix, candidates)
    expected = np.where(candidates >= 0, np.einsum("ik,ijk->ij", dense, dense[np.maximum(candidates, 0)]), 0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert pair_dots(matrix, np.array([], dtype=np.int64), np.array([], dtype=np.int64)).shape == (0,)
    with pytest.raises(IndexError, match="outside the matrix's 50 rows"):
        pair_dots(matrix, np.array([0, 50]), np.array([1, 2]))
    with pytest.raises(IndexError, match="outside"):
        pair_dots(matrix, np.array([-1]), np.array([1]))
    with pytest.raises(ValueError, match="one length"):
        pair_dots(matrix, np.array([0, 1]), np.array([1]))


def test_pair_dots_on_several_threads_equal_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pairs cut into slices on every core: a slice starting inside a run of one row scatters that row itself.
    import recommender.pairs as pairs

    rng = np.random.default_rng(3)
    matrix = _random_matrix(rng)
    a = np.sort(rng.integers(0, matrix.shape[0], size=3_001))
    b = rng.integers(0, matrix.shape[0], size=len(a))
    one = pair_dots(matrix, a, b)
    monkeypatch.setattr(pairs, "MIN_PAIRS_PER_THREAD", 7)
    monkeypatch.setattr(pairs.os, "cpu_count", lambda: 5)
    np.testing.assert_array_equal(pair_dots(matrix, a, b), one)
    dense = matrix.toarray().astype(np.float64)
    np.testing.assert_allclose(one, np.einsum("ij,ij->i", dense[a], dense[b]), rtol=1e-6, atol=1e-7)
