"""The index stage: the current build's HNSW index updated with this build's changes, or a new index.

A nightly rebuild where 1% of the archive changed need not rebuild the HNSW graph (11 s at 100k, ~300 s at 1M on
two cores). FAISS HNSW cannot delete, so the update keeps every row of the current index: the rows of articles
that were removed or whose vector changed become tombstones, which ``FaissIndex.search`` filters inside FAISS
(``IDSelectorBitmap``); the new and changed vectors are appended; ``index_positions.npy`` maps each row to the
article position it holds. Once more than ``IndexConfig.max_dead_fraction`` of the rows are tombstones the index
is compacted (built again in full). ``benchmarks/scale.py`` measured recall@10 against exact search over 30
nights of 1% churn (docs/scale.md).

Reuse is verified: the current index and its positions must match their sha256 in the manifest and the current
build must have been made with the same factory and model; otherwise (a damaged file, another factory, an
exact or IVF index) the index is built in full, and a damaged file says so in a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..config import IndexConfig
from ..embedding.base import ModelIdentity
from ..errors import IndexFormatError
from ..storage import layout
from ..storage.index import FaissIndex, choose_factory
from .current import Current, verified
from .index_calibration import Calibration, calibrated

log = logging.getLogger("recommender.build")
_COMPARE_BATCH = 65_536


@dataclass(frozen=True)
class IndexUpdate:
    """The index stage's output.

    Attributes:
        index: the index over this build's vectors (search returns this build's positions).
        mode: "full" (built from scratch) or "incremental" (the current index with tombstones and appends).
        reason: why a full build was chosen (empty for incremental).
        appended: vectors added to the current index (incremental) or indexed (full).
        tombstoned: rows that became tombstones this build.
        calibration: the efSearch the index searches with, and the recall that chose it.
    """

    index: FaissIndex
    mode: str
    reason: str
    appended: int
    tombstoned: int
    calibration: Calibration | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the manifest's ``source.index``)."""
        return {"mode": self.mode, "reason": self.reason, "appended": self.appended, "tombstoned": self.tombstoned,
                "rows_total": self.index.rows_total, "dead_rows": self.index.dead_rows,
                "calibration": self.calibration.to_dict() if self.calibration else None}

    def calibrated(self, vectors: np.ndarray, config: IndexConfig) -> IndexUpdate:
        """This update with its index searching at the calibrated efSearch (``index_calibration``)."""
        index, calibration = calibrated(self.index, vectors, config)
        return replace(self, index=index, calibration=calibration)


def index_articles(vectors: np.ndarray, ids: list[str], keys: list[str], current: Current | None,
                   identity: ModelIdentity, config: IndexConfig) -> IndexUpdate:
    """This build's index: the current build's HNSW updated where it may be, else a new one.

    Args:
        vectors: (n, d) float32 unit vectors in article-position order.
        ids / keys: each position's article id and sha256 of its embedded text.
        current: the published build (None: the first build).
        identity: the model that embedded ``vectors``.
        config: the index settings (``incremental``, ``max_dead_fraction``).
    """
    factory = choose_factory(len(vectors), config)
    reason = _why_not_incremental(factory, current, identity, config)
    if reason:
        return _full(vectors, config, reason)
    assert current is not None  # _why_not_incremental refuses None
    try:
        old_positions = _verified_positions(current)
        old = FaissIndex(_read(current), factory, config, old_positions)
    except (IndexFormatError, OSError, ValueError, RuntimeError) as exc:
        log.warning("not reusing the index of current build %s (%s): building the index from scratch",
                    current.path, exc)
        current.refused.append(f"{layout.INDEX}: {exc}")
        return _full(vectors, config, f"current index unusable: {exc}")
    reused_rows, reused_positions = _reusable(vectors, ids, keys, current, old_positions)
    tombstoned = old.count - len(reused_positions)
    index = updated(old, vectors, reused_rows, reused_positions, config)
    if index is None:
        return _full(vectors, config, f"compaction: more than {config.max_dead_fraction:.0%} of the rows would be "
                                      f"tombstones")
    return IndexUpdate(index, "incremental", "", len(vectors) - len(reused_positions), tombstoned)


def updated(old: FaissIndex, vectors: np.ndarray, reused_rows: np.ndarray, reused_positions: np.ndarray,
            config: IndexConfig) -> FaissIndex | None:
    """``old`` with the changes applied: rows not reused become tombstones, the other vectors are appended.

    Args:
        old: the previous index, read into memory; its FAISS index is extended in place (read a fresh copy).
        vectors: (n, d) this build's vectors in article-position order.
        reused_rows / reused_positions: the rows of ``old`` that hold this build's vector of the article at the
            same place of ``reused_positions``.
        config: the index settings.

    Returns:
        The updated index (search returns this build's positions), or None when more than
        ``config.max_dead_fraction`` of its rows would be tombstones (compaction due: build it in full).
    """
    rows_before = old.rows_total
    fresh = np.ones(len(vectors), dtype=bool)
    fresh[reused_positions] = False
    fresh_positions = np.flatnonzero(fresh)
    rows_total = rows_before + len(fresh_positions)
    if rows_total and (rows_total - len(vectors)) / rows_total > config.max_dead_fraction:
        return None
    positions = np.full(rows_total, -1, dtype=np.int64)
    positions[reused_rows] = reused_positions
    positions[rows_before:] = fresh_positions
    index = old.index
    if hasattr(index, "hnsw"):
        index.hnsw.efConstruction = config.ef_construction
    if len(fresh_positions):
        index.add(np.ascontiguousarray(vectors[fresh_positions], dtype=np.float32))
    return FaissIndex(index, old.factory, config, positions)


def _full(vectors: np.ndarray, config: IndexConfig, reason: str) -> IndexUpdate:
    index = FaissIndex.build(vectors, config)
    return IndexUpdate(index, "full", reason, len(vectors), 0)


def _why_not_incremental(factory: str, current: Current | None, identity: ModelIdentity,
                         config: IndexConfig) -> str:
    """Empty when the current index may be updated; else why not."""
    if not config.incremental:
        return "index.incremental is off"
    if not factory.startswith("HNSW"):
        return f"{factory} is built in full (only HNSW indexes are updated)"
    if current is None:
        return "no current build"
    if current.vectors is None:
        return "current vectors unusable"
    if current.identity != identity:
        return "the model differs from current's"
    if current.factory != factory:
        return f"current index is {current.factory}, this build's is {factory}"
    return ""


def _verified_positions(current: Current) -> np.ndarray:
    """The current index's row -> position array, after checking the index file and it against the manifest."""
    verified(current.path, layout.INDEX, current.manifest_files)
    if layout.INDEX_POSITIONS not in current.manifest_files:
        return np.arange(current.count, dtype=np.int64)  # a fresh (never updated) index: row = position
    verified(current.path, layout.INDEX_POSITIONS, current.manifest_files)
    positions = np.load(current.path / layout.INDEX_POSITIONS)
    alive = positions[positions >= 0]
    if positions.ndim != 1 or len(alive) != current.count or len(np.unique(alive)) != current.count:
        raise IndexFormatError(f"{layout.INDEX_POSITIONS} does not map every article of the build exactly once")
    return positions.astype(np.int64)


def _reusable(vectors: np.ndarray, ids: list[str], keys: list[str], current: Current,
              old_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(old index rows, new positions) of the articles whose vector is the one the current index holds."""
    assert current.vectors is not None
    row_of_old = np.full(current.count, -1, dtype=np.int64)
    alive = np.flatnonzero(old_positions >= 0)
    row_of_old[old_positions[alive]] = alive
    new_positions, old = [], []
    for i, (article_id, key) in enumerate(zip(ids, keys)):
        if current.keys.get(article_id) == key:
            new_positions.append(i)
            old.append(current.rows[article_id])
    new_array, old_array = np.asarray(new_positions, dtype=np.int64), np.asarray(old, dtype=np.int64)
    # Same text, same model, but the vector may still differ (a damaged vector re-embedded): compare the bytes.
    same = np.zeros(len(new_array), dtype=bool)
    for start in range(0, len(new_array), _COMPARE_BATCH):
        part = slice(start, start + _COMPARE_BATCH)
        same[part] = (np.asarray(current.vectors[old_array[part]]) == vectors[new_array[part]]).all(axis=1)
    return row_of_old[old_array[same]], new_array[same]


def _read(current: Current) -> Any:
    import faiss

    # Read into memory (not memory-mapped): the appends change it. read_index returns the concrete class
    # (IndexHNSWFlat); a downcast_index of that temporary would outlive the object that owns the memory.
    return faiss.read_index(str(current.path / layout.INDEX))
