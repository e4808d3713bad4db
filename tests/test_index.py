"""FAISS index: exact equals the numpy oracle; approximate recall@10 against exact; save/load."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.config import IndexConfig
from recommender.errors import IndexFormatError, InvalidQueryError
from recommender.storage.index import FaissIndex, choose_factory, exact_search, recall_at_k


def clustered(n: int, d: int = 64, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors around random centres, like topics in a news archive."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    vectors = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, d))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_exact_index_matches_numpy_oracle():
    """Flat inner-product search returns the brute-force neighbours and scores."""
    vectors = clustered(2000)
    index = FaissIndex.build(vectors, IndexConfig())
    assert index.exact and index.factory == "Flat"
    rows, scores = index.search(vectors[:50], 10)
    oracle_rows, oracle_scores = exact_search(vectors, vectors[:50], 10)
    np.testing.assert_allclose(scores, oracle_scores, atol=1e-5)
    assert recall_at_k(rows, oracle_rows) == pytest.approx(1.0)


def test_approximate_index_is_chosen_above_the_threshold_and_recalls_the_oracle():
    """Above exact_max_count an HNSW index is built; its recall@10 against exact stays high."""
    vectors = clustered(20_000, seed=1)
    config = IndexConfig(exact_max_count=10_000)
    assert choose_factory(len(vectors), config) == "HNSW32,Flat"
    index = FaissIndex.build(vectors, config)
    queries = vectors[::200]
    rows, _ = index.search(queries, 10)
    recall = recall_at_k(rows, exact_search(vectors, queries, 10)[0])
    print(f"HNSW32 efSearch=128 recall@10 vs exact on 20k clustered vectors: {recall:.3f}")
    assert recall >= 0.95


def test_ivf_factory_string_trains_and_searches():
    """A configured IVF factory string is trained and honours nprobe."""
    vectors = clustered(5000, seed=2)
    index = FaissIndex.build(vectors, IndexConfig(factory="IVF64,Flat", nprobe=64))
    rows, _ = index.search(vectors[:20], 10)
    assert recall_at_k(rows, exact_search(vectors, vectors[:20], 10)[0]) == pytest.approx(1.0)


def test_save_load_round_trip(tmp_path):
    """A saved index loads (memory-mapped) and answers identically."""
    vectors = clustered(500)
    index = FaissIndex.build(vectors)
    index.save(tmp_path / "vectors.faiss")
    loaded = FaissIndex.load(tmp_path / "vectors.faiss", index.factory)
    np.testing.assert_array_equal(loaded.search(vectors[:5], 5)[0], index.search(vectors[:5], 5)[0])
    with pytest.raises(IndexFormatError, match="missing"):
        FaissIndex.load(tmp_path / "nope" / "vectors.faiss", "Flat")


def test_batch_equals_single_and_bad_queries_are_refused():
    """Batch search equals one-at-a-time search; wrong dims and k < 1 are refused."""
    vectors = clustered(300)
    index = FaissIndex.build(vectors)
    batch = index.search(vectors[:4], 7)[0]
    single = np.vstack([index.search(v, 7)[0] for v in vectors[:4]])
    np.testing.assert_array_equal(batch, single)
    with pytest.raises(InvalidQueryError, match="dims"):
        index.search(np.zeros((1, 3), dtype=np.float32), 5)
    with pytest.raises(InvalidQueryError, match="k must be at least 1"):
        index.search(vectors[:1], 0)
