"""The efSearch a build serves with: raised until the HNSW index finds enough of the exact neighbours.

HNSW's recall at a fixed efSearch falls as the catalogue grows (at 1M perturbed real embeddings, efSearch 128 found
0.91 of the exact top 10, against >= 0.95 at 20k), and an index updated night after night drifts further. So each
build that has an HNSW index measures it: ``calibration_queries`` of its own articles (a seeded sample: builds stay
reproducible) are searched exactly (``faiss.knn``, blocked brute force) and through the index at ``ef_search``,
then at twice that, and so on up to ``max_ef_search``, until recall@10 reaches ``recall_target``. The chosen value
is what the build's own neighbour and related stages search with and what ``manifest.index.ef_search`` tells every
reader; each tried value and its recall are kept in the manifest (``source.index.calibration``). An exact index,
or ``recall_target = 0``, is left as configured.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import IndexConfig
from ..storage.index import FaissIndex, recall_at_k

log = logging.getLogger("recommender.build")
RECALL_K = 10
SEED = 20261201


@dataclass(frozen=True)
class Calibration:
    """What the calibration chose and saw.

    Attributes:
        ef_search: the efSearch chosen.
        recall_by_ef_search: recall@10 of the sample at each value tried, in order (empty: not calibrated).
        queries: the sample size.
        target: the recall aimed at.
        reached: whether the chosen value reaches it (False: stopped at ``max_ef_search``).
    """

    ef_search: int
    recall_by_ef_search: dict[int, float] = field(default_factory=dict)
    queries: int = 0
    target: float = 0.0
    reached: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the manifest's ``source.index.calibration``)."""
        return {"ef_search": self.ef_search, "queries": self.queries, "target": self.target, "reached": self.reached,
                "recall_at_10_by_ef_search": {str(ef): round(r, 4) for ef, r in self.recall_by_ef_search.items()}}


def calibrated(index: FaissIndex, vectors: np.ndarray, config: IndexConfig) -> tuple[FaissIndex, Calibration]:
    """``index`` searching with the smallest efSearch (doubling from ``config.ef_search``) whose recall@10 on a
    sample of ``vectors`` (the build's, in article-position order) reaches ``config.recall_target``."""
    if not index.factory.startswith("HNSW") or config.recall_target <= 0 or index.count <= RECALL_K:
        return index, Calibration(index.config.ef_search)
    import faiss

    rng = np.random.default_rng(SEED)
    sample = np.sort(rng.choice(len(vectors), size=min(config.calibration_queries, len(vectors)), replace=False))
    queries = np.ascontiguousarray(vectors[sample], dtype=np.float32)
    _, exact = faiss.knn(queries, np.ascontiguousarray(vectors, dtype=np.float32), RECALL_K,
                         metric=faiss.METRIC_INNER_PRODUCT)
    tried: dict[int, float] = {}
    ef = config.ef_search
    while True:
        index = index.searching_with(ef)
        found, _ = index.search(queries, RECALL_K)
        tried[ef] = recall_at_k(found, exact)
        if tried[ef] >= config.recall_target or ef >= config.max_ef_search:
            break
        ef = min(ef * 2, config.max_ef_search)
    reached = tried[ef] >= config.recall_target
    if not reached:
        log.warning("index: recall@10 %.3f at efSearch %d (max_ef_search) is below the target %.2f; serving with "
                    "it (raise index.max_ef_search or index.hnsw_m)", tried[ef], ef, config.recall_target)
    return index, Calibration(ef, tried, len(sample), config.recall_target, reached)
