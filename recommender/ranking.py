"""Candidates -> filters -> blend -> same-story collapse -> optional MMR; each result keeps its score parts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .config import RankingConfig

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an and as at by for from in into is it of on or over the to with after says new".split())


@dataclass(frozen=True)
class Recommendation:
    """One result and why it was chosen.

    ``score = weight_similarity * similarity + weight_trending * trending + weight_freshness * freshness``
    (each part in [0, 1] except similarity, a cosine); ``duplicates`` are the ids collapsed into this entry.
    """

    article_id: str
    title: str
    score: float
    similarity: float
    trending: float
    freshness: float
    section: str = ""
    url: str = ""
    published_at: str | None = None
    duplicates: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, with the score components grouped."""
        return {
            "article_id": self.article_id, "title": self.title, "section": self.section, "url": self.url,
            "published_at": self.published_at, "score": round(self.score, 6),
            "components": {"similarity": round(self.similarity, 6), "trending": round(self.trending, 6),
                           "freshness": round(self.freshness, 6)},
            "duplicates": list(self.duplicates), "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Filters:
    """What a list may contain.

    Attributes:
        exclude_rows: rows never shown (the article itself, already-read, explicit excludes).
        section: only this section (None = all).
        max_age_hours: only articles published at most this long before ``now`` (unknown dates fail it).
    """

    exclude_rows: frozenset[int] = field(default_factory=frozenset)
    section: str | None = None
    max_age_hours: float | None = None


@dataclass(frozen=True)
class ArticleTable:
    """Per-row article data the ranker needs, aligned with the index rows."""

    ids: np.ndarray            # (n,) object: article ids
    titles: np.ndarray         # (n,) object
    sections: np.ndarray       # (n,) object
    urls: np.ndarray           # (n,) object
    published_hours: np.ndarray  # (n,) float64 hours since the epoch, NaN when unknown
    vectors: np.ndarray        # (n, d) float32 unit vectors

    def published_iso(self, row: int) -> str | None:
        """ISO 8601 UTC of a row's publication time."""
        hours = self.published_hours[row]
        if np.isnan(hours):
            return None
        return np.datetime64(int(round(hours * 3600)), "s").astype(str) + "Z"


def title_words(title: str) -> frozenset[str]:
    """Lower-cased content words of a headline, for near-duplicate headline checks."""
    return frozenset(w for w in _WORD.findall(title.lower()) if w not in _STOP)


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def candidate_mask(table: ArticleTable, rows: np.ndarray, filters: Filters, now_hours: float) -> np.ndarray:
    """Which candidate rows pass the filters."""
    keep = rows >= 0
    if filters.exclude_rows:
        keep &= ~np.isin(rows, np.fromiter(filters.exclude_rows, dtype=np.int64))
    safe = np.where(rows >= 0, rows, 0)
    if filters.section is not None:
        keep &= table.sections[safe] == filters.section
    if filters.max_age_hours is not None:
        age = now_hours - table.published_hours[safe]
        keep &= ~np.isnan(age) & (age <= filters.max_age_hours)
    return keep


def rank(table: ArticleTable, rows: np.ndarray, similarities: np.ndarray, k: int, config: RankingConfig,
         filters: Filters, now_hours: float, trending: np.ndarray, freshness: np.ndarray,
         anchor_rows: Sequence[int] = ()) -> list[Recommendation]:
    """Turn nearest-neighbour candidates into at most ``k`` explained recommendations.

    Args:
        table: article data by row.
        rows / similarities: candidates from the index (any order; -1 rows are ignored).
        k: list length.
        config: blend weights, duplicate thresholds, MMR.
        filters: exclusions, section and age.
        now_hours: the reference time in hours since the epoch.
        trending / freshness: per-row scores in [0, 1] (whole table).
        anchor_rows: the articles the list is for; their wire copies are left out like the articles themselves.

    Returns:
        Recommendations, best first, never two of the same story.
    """
    rows = np.asarray(rows, dtype=np.int64)
    similarities = np.asarray(similarities, dtype=np.float64)
    keep = candidate_mask(table, rows, filters, now_hours)
    rows, similarities = rows[keep], similarities[keep]
    rows, first = np.unique(rows, return_index=True)
    similarities = similarities[first]
    if len(rows) == 0:
        return []
    trend, fresh = trending[rows], freshness[rows]
    scores = (config.weight_similarity * similarities + config.weight_trending * trend
              + config.weight_freshness * fresh)
    vectors = table.vectors[rows]
    words = [title_words(str(t)) for t in table.titles[rows]]
    anchors = [(table.vectors[a], title_words(str(table.titles[a]))) for a in anchor_rows]

    def duplicate_of(i: int, chosen: list[int]) -> int | None:
        for j in chosen:
            if (float(vectors[i] @ vectors[j]) >= config.duplicate_similarity
                    or _jaccard(words[i], words[j]) >= config.duplicate_title_jaccard):
                return j
        return None

    remaining = list(np.argsort(-scores, kind="stable"))
    chosen: list[int] = []
    collapsed: dict[int, list[int]] = {}
    use_mmr = config.mmr_lambda is not None and config.mmr_lambda < 1.0
    while remaining and len(chosen) < k:
        if use_mmr and chosen:
            redundancy = (vectors[remaining] @ vectors[chosen].T).max(axis=1)
            mmr = config.mmr_lambda * scores[remaining] - (1 - config.mmr_lambda) * redundancy
            i = remaining.pop(int(np.argmax(mmr)))
        else:
            i = remaining.pop(0)
        if any(float(vectors[i] @ v) >= config.duplicate_similarity
               or _jaccard(words[i], w) >= config.duplicate_title_jaccard for v, w in anchors):
            continue
        j = duplicate_of(i, chosen)
        if j is not None:
            collapsed.setdefault(j, []).append(i)
            continue
        chosen.append(i)
    # Duplicates of a chosen entry found further down the candidate list collapse into it too.
    for i in remaining:
        j = duplicate_of(i, chosen)
        if j is not None:
            collapsed.setdefault(j, []).append(i)
    results = []
    for i in chosen:
        row = int(rows[i])
        reasons = []
        if similarities[i] >= 0.5:
            reasons.append(f"similar content (cosine {similarities[i]:.2f})")
        if trend[i] >= 0.5:
            reasons.append("popular now")
        if fresh[i] >= 0.5:
            reasons.append("recent")
        results.append(Recommendation(
            article_id=str(table.ids[row]), title=str(table.titles[row]), score=float(scores[i]),
            similarity=float(similarities[i]), trending=float(trend[i]), freshness=float(fresh[i]),
            section=str(table.sections[row]), url=str(table.urls[row]), published_at=table.published_iso(row),
            duplicates=tuple(str(table.ids[rows[d]]) for d in collapsed.get(i, [])), reasons=tuple(reasons),
        ))
    return results
