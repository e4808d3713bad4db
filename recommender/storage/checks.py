"""Integrity checks of a build that every reader of it runs (the build before publishing, the service before
swapping a build in), and the verdict type the rebuild's quality gates share."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..config import GateConfig


@dataclass(frozen=True)
class GateResult:
    """One check's verdict with the measured value and its threshold."""

    name: str
    passed: bool
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def self_match(index: Any, vectors: np.ndarray, config: GateConfig, seed: int = 0) -> GateResult:
    """Each sampled article must find itself (or an identical vector: a wire copy) as its nearest neighbour, at
    rank 1 (being its own second neighbour means the index is broken)."""
    n = len(vectors)
    if n == 0:
        return GateResult("self_match", True, 1.0, config.min_self_match_share, "no articles")
    sample = np.sort(np.random.default_rng(seed).choice(n, size=min(config.self_check_sample, n), replace=False))
    queries = np.asarray(vectors[sample], dtype=np.float32)
    rows, _ = index.search(queries, 2)
    hits = 0
    for row, query, found in zip(sample, queries, rows):
        # An exact duplicate (a wire copy) may tie with the article itself; either is "itself".
        hits += int(found[0] == row or (found[0] >= 0 and np.allclose(vectors[found[0]], query, atol=1e-6)))
    share = hits / len(sample)
    passed = share >= config.min_self_match_share
    return GateResult("self_match", passed, share, config.min_self_match_share,
                      f"{'ok' if passed else 'FAILED'}: {hits} of {len(sample)} sampled articles are their own "
                      f"nearest neighbour ({share:.1%}; minimum {config.min_self_match_share:.0%})"
                      + ("" if passed else ": the index is broken"))
