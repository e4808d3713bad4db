"""Related lists from precomputed neighbours: per-article candidate tables cached, then a cheap re-blend per request.

``ranking.rank`` recomputes headline word sets and pairwise similarities of every candidate on every call. For
an indexed article the candidates are fixed by the build (``neighbours.npy``), so everything that does not
depend on popularity or filters (which candidates are wire copies of each other or of the article itself) is
computed once per article and kept in an LRU cache; a request only blends scores, sorts and walks the list.
The result is the same list ``rank`` gives for the same candidates (``tests/test_fastpath.py`` checks that).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

import numpy as np

from .config import RankingConfig
from .ranking import ArticleTable, Recommendation, title_words


@dataclass(frozen=True)
class CandidateEntry:
    """What is fixed about one article's related list: candidates sorted by row, and who duplicates whom."""

    rows: np.ndarray         # (m,) int64 main rows, ascending (as ``np.unique`` orders them in ``rank``)
    similarities: np.ndarray  # (m,) float64 cosine to the article
    duplicate: np.ndarray    # (m, m) bool: same story (cosine or headline Jaccard over the thresholds)
    anchor_duplicate: np.ndarray  # (m,) bool: a wire copy of the article itself
    min_similarity: float
    # The same two relations as Python sets/tuples: the per-request walk indexes them ~100 times, and a numpy
    # scalar index costs ~10x a set lookup.
    duplicate_sets: tuple[frozenset[int], ...] = ()
    anchor_flags: tuple[bool, ...] = ()


def _jaccard_matrix(token_ids: list[np.ndarray]) -> np.ndarray:
    """Pairwise Jaccard similarity of token-id sets, via a 0/1 incidence matrix (no Python pair loop)."""
    lengths = np.array([len(t) for t in token_ids])
    flat = np.concatenate(token_ids) if len(token_ids) else np.zeros(0, dtype=np.int64)
    _, columns = np.unique(flat, return_inverse=True)
    hits = np.zeros((len(token_ids), max(int(columns.max(initial=-1)) + 1, 1)), dtype=np.float64)
    hits[np.repeat(np.arange(len(token_ids)), lengths), columns] = 1.0
    inter = hits @ hits.T
    sizes = lengths.astype(np.float64)
    union = sizes[:, None] + sizes[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1.0), 0.0)


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
        self._tokens: dict[int, np.ndarray] = {}
        self._vocabulary: dict[str, int] = {}
        self._fields: dict[int, tuple[str, str, str, str, str | None]] = {}
        self._lock = Lock()

    def _title_tokens(self, row: int) -> np.ndarray:
        tokens = self._tokens.get(row)
        if tokens is None:
            vocabulary = self._vocabulary
            words = title_words(str(self.table.titles[row]))
            tokens = self._tokens[row] = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in words],
                                                  dtype=np.int64)
        return tokens

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
        config = self.config
        rows = np.asarray(self.neighbours[row], dtype=np.int64)
        sims = np.asarray(self.neighbour_scores[row], dtype=np.float64)
        keep = (rows >= 0) & (rows != row)
        rows, first = np.unique(rows[keep], return_index=True)
        sims = sims[keep][first]
        vectors = np.asarray(self.table.vectors[np.concatenate([rows, [row]])], dtype=np.float32)
        cosine = vectors @ vectors.T
        jaccard = _jaccard_matrix([self._title_tokens(r) for r in rows.tolist()] + [self._title_tokens(row)])
        same = (cosine >= config.duplicate_similarity) | (jaccard >= config.duplicate_title_jaccard)
        duplicate, anchor = same[:-1, :-1], same[:-1, -1]
        sets: list[set[int]] = [set() for _ in range(len(rows))]
        for i, j in zip(*(axis.tolist() for axis in np.nonzero(duplicate))):
            sets[i].add(j)
        return CandidateEntry(rows, sims, duplicate, anchor, float(sims.min()) if len(sims) else 1.0,
                              tuple(frozenset(d) for d in sets), tuple(anchor.tolist()))

    def related(self, row: int, k: int, trending: np.ndarray, freshness: np.ndarray, now_hours: float,
                hidden: np.ndarray | None = None, section: str | None = None,
                max_age_hours: float | None = None) -> list[Recommendation] | None:
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
        index = np.flatnonzero(keep)
        kept = rows[index]
        scores = (config.weight_similarity * entry.similarities[index] + config.weight_trending * trending[kept]
                  + config.weight_freshness * freshness[kept])
        order = index[np.argsort(-scores, kind="stable")]
        score_of = dict(zip(index.tolist(), scores.tolist()))
        duplicates, anchor_flags = entry.duplicate_sets, entry.anchor_flags
        chosen: list[int] = []
        collapsed: dict[int, list[int]] = {}
        blocked: set[int] = set()
        order_list = order.tolist()
        visited = 0
        for i in order_list:
            if len(chosen) >= k:
                break
            visited += 1
            if anchor_flags[i]:
                continue
            if i in blocked:
                collapsed.setdefault(next(j for j in chosen if j in duplicates[i]), []).append(i)
                continue
            chosen.append(i)
            blocked |= duplicates[i]
        if len(chosen) < k:
            return None
        for i in order_list[visited:]:
            if i in blocked:
                collapsed.setdefault(next(j for j in chosen if j in duplicates[i]), []).append(i)
        results = []
        row_list = rows.tolist()
        similarities = entry.similarities
        for i in chosen:
            r = row_list[i]
            similarity, trend, fresh = float(similarities[i]), float(trending[r]), float(freshness[r])
            reasons = []
            if similarity >= 0.5:
                reasons.append(f"similar content (cosine {similarity:.2f})")
            if trend >= 0.5:
                reasons.append("popular now")
            if fresh >= 0.5:
                reasons.append("recent")
            article_id, title, section_name, url, published = self._row_fields(r)
            results.append(Recommendation(
                article_id=article_id, title=title, score=score_of[i], similarity=similarity, trending=trend,
                freshness=fresh, section=section_name, url=url, published_at=published,
                duplicates=tuple(self._row_fields(row_list[d])[0] for d in collapsed.get(i, ())),
                reasons=tuple(reasons)))
        return results
