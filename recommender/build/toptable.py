"""Per-row top-k neighbour tables that a rebuild updates instead of recomputing (the dense and lexical candidates).

A full build searches every row. An incremental rebuild keeps each unchanged row's list, drops the entries that
point to changed or deleted articles, scores the row against the changed articles only (one matrix block) and
merges. That is exact, not a heuristic, because every table row carries a *floor*: every article missing from the
list scores at most the floor. Entries at or above the floor are therefore the row's true best; when fewer than
``needed`` remain there (the row lost too many entries to changed or deleted articles) the row is searched again.
The table keeps ``depth`` entries, a margin beyond what the build uses, so that re-searches are rare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Search = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
ScoreBlock = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TopTable:
    """Each row's best other rows, best first.

    Attributes:
        rows: (n, depth) int32, -1 padding.
        scores: (n, depth) float32.
        floor: (n,) float32; every row not listed scores at most this (-inf: the list holds every candidate).
    """

    rows: np.ndarray
    scores: np.ndarray
    floor: np.ndarray

    @property
    def depth(self) -> int:
        """Entries kept per row."""
        return int(self.rows.shape[1])

    @classmethod
    def from_search(cls, rows: np.ndarray, scores: np.ndarray, depth: int) -> TopTable:
        """A table from a search of ``depth`` results per row (-1 padded): a full row's floor is its last score."""
        rows = np.asarray(rows, dtype=np.int32)[:, :depth]
        scores = np.asarray(scores, dtype=np.float32)[:, :depth]
        if rows.shape[1] < depth:  # a catalogue smaller than the depth: pad, so the table keeps its shape
            rows = np.pad(rows, ((0, 0), (0, depth - rows.shape[1])), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, depth - scores.shape[1])))
        full = (rows >= 0).sum(axis=1) == depth if depth else np.zeros(len(rows), dtype=bool)
        floor = np.where(full, scores[:, -1] if depth else 0.0, -np.inf).astype(np.float32)
        return cls(rows, scores, floor)

    def head(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` columns (rows, scores)."""
        return self.rows[:, :k], self.scores[:, :k]


def update(old: TopTable, new_to_old: np.ndarray, entry_map: np.ndarray, fresh: np.ndarray,
           score_block: ScoreBlock, search: Search, needed: int, positive_only: bool = False,
           batch_size: int = 4096) -> tuple[TopTable, int]:
    """The table for a changed catalogue, from the previous build's.

    Args:
        old: the previous build's table (old row numbers).
        new_to_old: (n,) old row of each new row, -1 for new articles.
        entry_map: (n_old,) new row of each old row, -1 for articles deleted *or fresh* (their old scores are
            void; fresh articles come back through ``score_block``).
        fresh: (n,) bool, rows whose vector or text changed or that are new: searched in full.
        score_block: unchanged rows (b,) -> their (b, fresh.sum()) scores against the fresh rows, in order.
        search: rows (q,) -> (q, >= depth) rows and scores, self excluded, -1 padded (a full search).
        needed: entries per row that must be exact (those the build uses); rows left with fewer are re-searched.
        positive_only: a score of 0 or less is no entry (lexical tables list only articles sharing a term).

    Returns:
        (table, rows searched in full).
    """
    n, depth = len(new_to_old), old.depth
    fresh_rows = np.flatnonzero(fresh)
    kept_rows = np.flatnonzero(~fresh)
    out = TopTable(np.full((n, depth), -1, dtype=np.int32), np.zeros((n, depth), dtype=np.float32),
                   np.full(n, -np.inf, dtype=np.float32))
    redo: list[np.ndarray] = [fresh_rows]
    for start in range(0, len(kept_rows), batch_size):
        rows = kept_rows[start:start + batch_size]
        before = new_to_old[rows]
        mapped = np.asarray(old.rows[before], dtype=np.int64)
        mapped = np.where(mapped >= 0, entry_map[np.maximum(mapped, 0)], -1)
        old_scores = np.where(mapped >= 0, old.scores[before], -np.inf)
        block = np.asarray(score_block(rows), dtype=np.float32) if len(fresh_rows) else np.zeros((len(rows), 0))
        threshold = np.maximum(old.floor[before], 0.0) if positive_only else old.floor[before]
        new_rows, new_scores, unmerged = fresh_entries(block, fresh_rows, threshold, depth)
        cand_rows = np.concatenate([mapped, new_rows], axis=1)
        cand_scores = np.concatenate([old_scores, new_scores], axis=1)
        order = np.argsort(-cand_scores, axis=1, kind="stable")
        cand_rows = np.take_along_axis(cand_rows, order, axis=1)
        cand_scores = np.take_along_axis(cand_scores, order, axis=1)
        valid = np.isfinite(cand_scores)
        # The best entry that falls off the end, or was never merged, is unknown next time: it raises the floor.
        dropped = cand_scores[:, depth] if cand_scores.shape[1] > depth else np.full(len(rows), -np.inf)
        floor = np.maximum(old.floor[before], np.maximum(dropped, unmerged))
        keep_rows, keep_scores, keep_valid = cand_rows[:, :depth], cand_scores[:, :depth], valid[:, :depth]
        out.rows[rows] = np.where(keep_valid, keep_rows, -1)
        out.scores[rows] = np.where(keep_valid, keep_scores, 0.0)
        out.floor[rows] = floor
        exact = (keep_valid & (keep_scores >= floor[:, None])).sum(axis=1)
        redo.append(rows[(floor > -np.inf) & (exact < needed)])
    again = np.unique(np.concatenate(redo)) if redo else np.zeros(0, dtype=np.int64)
    if len(again):
        found = TopTable.from_search(*search(again), depth)
        out.rows[again], out.scores[again], out.floor[again] = found.rows, found.scores, found.floor
    return out, int(len(again))


def fresh_entries(block: np.ndarray, fresh_rows: np.ndarray, threshold: np.ndarray, depth: int,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's fresh entries worth merging: those scoring above its ``threshold`` (its old floor: a fresh
    article at or below it changes neither the floor nor the exact part of the list), at most ``depth`` of them,
    best first, as (b, m) rows (-1 padded) and scores (-inf padded); and the best of those left out beyond
    ``depth`` (-inf when none), which raises the floor. One comparison and one pass over the few entries above
    the thresholds, instead of a partition of the whole block (what grows with n x changed: benchmarks/RESULTS.md,
    "the candidate tables' n x changed blocks")."""
    at_row, at_column = np.nonzero(block > threshold[:, None])
    scores = block[at_row, at_column].astype(np.float64)
    order = np.lexsort((-scores, at_row))
    at_row, at_column, scores = at_row[order], at_column[order], scores[order]
    starts = np.searchsorted(at_row, np.arange(len(block) + 1))
    rank = np.arange(len(at_row)) - starts[at_row]
    unmerged = np.full(len(block), -np.inf)
    beyond = rank == depth
    unmerged[at_row[beyond]] = scores[beyond]
    kept = rank < depth
    width = int(min(depth, np.diff(starts).max(initial=0)))
    new_rows = np.full((len(block), width), -1, dtype=np.int64)
    new_scores = np.full((len(block), width), -np.inf)
    new_rows[at_row[kept], rank[kept]] = fresh_rows[at_column[kept]]
    new_scores[at_row[kept], rank[kept]] = scores[kept]
    return new_rows, new_scores, unmerged
