"""The self-match integrity check every reader runs before a build is published or swapped in."""

from __future__ import annotations

import numpy as np

from recommender.config import GateConfig
from recommender.storage.checks import self_match
from recommender.storage.index import FaissIndex


class SecondBest:
    """A broken index: each vector's own row comes back second, after another row."""

    def __init__(self, n: int) -> None:
        self.n = n

    def search(self, queries: np.ndarray, k: int):
        rows = np.array([[(r + 1) % self.n, r] for r in range(len(queries))])
        return rows, np.ones_like(rows, dtype=np.float32)


def test_an_article_must_be_its_own_first_neighbour():
    """An article found only at rank 2 fails (it once passed: the check looked at the top 2); a real index and an
    exact duplicate tying at rank 1 pass."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    config = GateConfig(self_check_sample=20)
    broken = self_match(SecondBest(20), vectors, config)
    assert not broken.passed and broken.value == 0.0 and "index is broken" in broken.message
    assert self_match(FaissIndex.build(vectors), vectors, config).passed
    copies = np.concatenate([vectors, vectors[:3]])  # three wire copies: either twin may come first
    assert self_match(FaissIndex.build(copies), copies, GateConfig(self_check_sample=23)).passed
