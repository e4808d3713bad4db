"""Where a list's candidates come from: the build's related table (cached per row), a FAISS search, and the live
articles over the build. How candidates become a list is ``ranking.rank``'s job."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Sequence

import numpy as np

from ..storage.index import FaissIndex
from .ranking import Candidates
from .table import Anchor, ListedArticles

# A cached entry: ``Candidates``' fields as one exact tuple of arrays and tuples of ints, which the garbage
# collector stops tracking after two passes (the inner tuples, then the entry; a dataclass instance stays
# tracked). 20,000 cached ``Candidates`` were 20,000 objects every full collection walked: on ids that hardly
# repeat (the long tail of an archive), with two experiment arms' caches, collections of 80-112 ms while serving
# (benchmarks/JOURNAL.md, 2026-12-02).
Entry = tuple[np.ndarray, np.ndarray, tuple[int, ...], np.ndarray, tuple[bool, ...]]


class CandidateSource:
    """The candidate sources of one build.

    Args:
        index: the build's FAISS index.
        related_rows / related_scores: the build's related table, or None (lists come from a search then).
        cache_size: related-table entries kept (an article read by many readers is prepared once).
    """

    def __init__(self, index: FaissIndex, related_rows: np.ndarray | None, related_scores: np.ndarray | None,
                 cache_size: int = 20_000) -> None:
        self.index = index
        self.related_rows = related_rows
        self.related_scores = related_scores
        self.cache_size = cache_size
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def related_table(self, row: int, listed: ListedArticles, anchor: Anchor) -> Candidates:
        """The build's related candidates of an indexed row and their stored relatedness (build rows only: live
        rows change between snapshots and are added per request)."""
        with self._lock:
            entry = self._entries.get(row)
            if entry is not None:
                self._entries.move_to_end(row)
                return Candidates(*entry)
        assert self.related_rows is not None and self.related_scores is not None
        rows = np.asarray(self.related_rows[row], dtype=np.int64)
        scores = np.asarray(self.related_scores[row], dtype=np.float64)
        keep = (rows >= 0) & (rows != row)
        found = Candidates.of(listed, rows[keep], scores[keep], [anchor])
        with self._lock:
            self._entries[row] = (found.rows, found.relatedness, found.groups, found.same_story, found.anchor_copy)
            if len(self._entries) > self.cache_size:
                self._entries.popitem(last=False)
        return found

    @staticmethod
    def live(listed: ListedArticles, query: np.ndarray, count: int, anchors: Sequence[Anchor]) -> Candidates:
        """The ``count`` live articles closest to ``query`` (by cosine)."""
        live = listed.live
        if not len(live):
            return Candidates.none()
        sims = np.asarray(live.vectors @ query, dtype=np.float64)
        top = np.argsort(-sims, kind="stable")[:count]
        return Candidates.of(listed, listed.n_build + top, sims[top], anchors)

    def searched(self, listed: ListedArticles, query: np.ndarray, count: int,
                 anchors: Sequence[Anchor]) -> Candidates:
        """The ``count`` listed rows closest to ``query``: a FAISS search (over-fetching the hidden ones) and the
        live articles."""
        n = listed.n_build
        hidden = int(listed.hidden[:n].sum())
        rows, sims = self.index.search(query[None, :], min(count + hidden, n))
        return Candidates.of(listed, rows[0], sims[0], anchors).extended(self.live(listed, query, count, anchors))
