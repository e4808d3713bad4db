"""Related lists from precomputed neighbours: per-article candidate tables cached, then a cheap re-blend per request.

For an indexed article the candidates are fixed by the build (``neighbours.npy``), and so is which of them are
copies of each other or of the article (the build's copy groups, ``stories.py``) and which are in the article's
story. A request only blends scores, sorts and walks the list, skipping any candidate whose copy group is
already shown. The result is the same list ``ranking.rank`` gives for the same candidates
(``tests/test_live.py`` checks that).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

import numpy as np

from .config import RankingConfig
from .ranking import ArticleTable, Recommendation, anchor_of, explain, language_mask


@dataclass(frozen=True)
class CandidateEntry:
    """What is fixed about one article's related list: its candidates sorted by row, their groups and stories."""

    rows: np.ndarray          # (m,) int64 main rows, ascending (as ``np.unique`` orders them in ``rank``)
    similarities: np.ndarray  # (m,) float64 the build's relatedness to the article (the related table's scores)
    same_story: np.ndarray    # (m,) float64 1.0 where the candidate is in the article's story
    min_similarity: float
    # Python tuples: the per-request walk indexes them ~100 times, and a numpy scalar index costs ~10x.
    groups: tuple[int, ...] = ()        # copy group of each candidate
    anchor_flags: tuple[bool, ...] = ()  # a copy of the article itself


class NeighbourRanker:
    """Related lists of indexed articles from their precomputed neighbours (one build)."""

    def __init__(self, table: ArticleTable, neighbours: np.ndarray, neighbour_scores: np.ndarray,
                 config: RankingConfig, cache_size: int = 20_000) -> None:
        self.table = table
        self.neighbours = neighbours
        self.neighbour_scores = neighbour_scores
        self.config = config
        self.cache_size = cache_size
        self._entries: OrderedDict[int, CandidateEntry] = OrderedDict()
        self._fields: dict[int, tuple[str, str, str, str, str | None]] = {}
        self._lock = Lock()
        # A one-language catalogue (the common case) never needs the language mask.
        self._languages = set(table.languages.tolist()) if table.languages is not None else set()
        if table.copy_groups is None or table.story_ids is None:
            raise ValueError("NeighbourRanker needs the build's copy groups and stories (ArticleTable.copy_groups, "
                             "story_ids)")

    def _row_fields(self, row: int) -> tuple[str, str, str, str, str | None]:
        fields = self._fields.get(row)
        if fields is None:
            table = self.table
            fields = self._fields[row] = (str(table.ids[row]), str(table.titles[row]), str(table.sections[row]),
                                          str(table.urls[row]), table.published_iso(row))
        return fields

    def entry(self, row: int) -> CandidateEntry:
        """The cached candidate entry of a row (computed on first use)."""
        with self._lock:
            found = self._entries.get(row)
            if found is not None:
                self._entries.move_to_end(row)
                return found
        found = self._compute(row)
        with self._lock:
            self._entries[row] = found
            if len(self._entries) > self.cache_size:
                self._entries.popitem(last=False)
        return found

    def _compute(self, row: int) -> CandidateEntry:
        rows = np.asarray(self.neighbours[row], dtype=np.int64)
        sims = np.asarray(self.neighbour_scores[row], dtype=np.float64)
        keep = (rows >= 0) & (rows != row)
        rows, first = np.unique(rows[keep], return_index=True)
        sims = sims[keep][first]
        table = self.table
        groups = table.copy_groups[rows]
        same_story = (table.story_ids[rows] == table.story_ids[row]).astype(np.float64)
        return CandidateEntry(rows, sims, same_story, float(sims.min()) if len(sims) else 1.0,
                              tuple(groups.tolist()), tuple((groups == table.copy_groups[row]).tolist()))

    def related(self, row: int, k: int, trending: np.ndarray, freshness: np.ndarray, now_hours: float,
                hidden: np.ndarray | None = None, section: str | None = None,
                max_age_hours: float | None = None, language: str | None = None) -> list[Recommendation] | None:
        """The related list of ``row``, or None when the neighbours cannot fill ``k`` (the caller widens).

        Args:
            row: the article's main row.
            k: list length.
            trending / freshness: per-row scores in [0, 1].
            now_hours: reference time (hours since the epoch) for ``max_age_hours``.
            hidden: (n,) bool of rows never shown (taken down, or replaced by a live edit).
        """
        config = self.config
        entry = self.entry(row)
        rows = entry.rows
        keep = np.ones(len(rows), dtype=bool) if hidden is None else ~hidden[rows]
        if section is not None:
            keep &= self.table.sections[rows] == section
        if max_age_hours is not None:
            age = now_hours - self.table.published_hours[rows]
            keep &= ~np.isnan(age) & (age <= max_age_hours)
        if language and self.table.languages is not None and not self._languages <= {language, ""}:
            keep &= language_mask(self.table.languages[rows], language)
        index = np.flatnonzero(keep)
        kept = rows[index]
        scores = (config.weight_similarity * entry.similarities[index] + config.weight_trending * trending[kept]
                  + config.weight_freshness * freshness[kept])
        scores = scores + config.weight_same_story * entry.same_story[index]
        order = index[np.argsort(-scores, kind="stable")]
        score_of = dict(zip(index.tolist(), scores.tolist()))
        groups, anchor_flags = entry.groups, entry.anchor_flags
        chosen: list[int] = []
        collapsed: dict[int, list[int]] = {}
        shown: dict[int, int] = {}  # copy group -> the chosen candidate showing it
        order_list = order.tolist()
        visited = 0
        for i in order_list:
            if len(chosen) >= k:
                break
            visited += 1
            if anchor_flags[i]:
                continue
            holder = shown.get(groups[i])
            if holder is not None:
                collapsed.setdefault(holder, []).append(i)
                continue
            chosen.append(i)
            shown[groups[i]] = i
        if len(chosen) < k:
            return None
        for i in order_list[visited:]:
            holder = shown.get(groups[i])
            if holder is not None:
                collapsed.setdefault(holder, []).append(i)
        table = self.table
        anchor = anchor_of(table, row)
        results = []
        row_list = rows.tolist()
        similarities = entry.similarities
        for i in chosen:
            r = row_list[i]
            similarity, trend, fresh = float(similarities[i]), float(trending[r]), float(freshness[r])
            story = str(table.story_ids[r])
            relation, reasons, shared = explain(similarity, trend, fresh, story, float(table.published_hours[r]),
                                                anchor, table.row_tags(r))
            article_id, title, section_name, url, published = self._row_fields(r)
            results.append(Recommendation(
                article_id=article_id, title=title, score=score_of[i], similarity=similarity, trending=trend,
                freshness=fresh, section=section_name, url=url, published_at=published,
                duplicates=tuple(self._row_fields(row_list[d])[0] for d in collapsed.get(i, ())),
                reasons=reasons, story_id=story, relation=relation, shared_tags=shared,
                same_story=float(entry.same_story[i])))
        return results
