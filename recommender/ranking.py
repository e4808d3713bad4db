"""Candidates -> filters -> blend -> same-story collapse -> optional MMR; each result keeps its score parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .config import RankingConfig
from .stories import is_copy, title_words


@dataclass(frozen=True)
class Recommendation:
    """One result and why it was chosen.

    ``score = weight_similarity * similarity + weight_trending * trending + weight_freshness * freshness
    + weight_same_story * same_story`` (each part in [0, 1] except similarity, a cosine; same_story is 1 for the
    article's own story); ``duplicates`` are the ids collapsed into this entry (copies of the same piece).
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
    story_id: str | None = None
    relation: str = ""
    shared_tags: tuple[str, ...] = ()
    same_story: float = 0.0

    @property
    def explanation(self) -> str:
        """The reasons as one sentence for a reader or an editor."""
        if not self.reasons:
            return ""
        sentence = "; ".join(self.reasons)
        return sentence[0].upper() + sentence[1:] + "."

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, with the score components grouped."""
        return {
            "article_id": self.article_id, "title": self.title, "section": self.section, "url": self.url,
            "published_at": self.published_at, "score": round(self.score, 6),
            "components": {"similarity": round(self.similarity, 6), "trending": round(self.trending, 6),
                           "freshness": round(self.freshness, 6), "same_story": self.same_story},
            "duplicates": list(self.duplicates), "reasons": list(self.reasons), "explanation": self.explanation,
            "story_id": self.story_id, "relation": self.relation, "shared_tags": list(self.shared_tags),
        }


@dataclass(frozen=True)
class Filters:
    """What a list may contain.

    Attributes:
        exclude_rows: rows never shown (the article itself, already-read, explicit excludes).
        section: only this section (None = all).
        max_age_hours: only articles published at most this long before ``now`` (unknown dates fail it).
        language: only articles in this language (articles of unknown language pass).
    """

    exclude_rows: frozenset[int] = field(default_factory=frozenset)
    section: str | None = None
    max_age_hours: float | None = None
    language: str | None = None


@dataclass(frozen=True)
class ArticleTable:
    """Per-row article data the ranker needs, aligned with the index rows."""

    ids: np.ndarray            # (n,) object: article ids
    titles: np.ndarray         # (n,) object
    sections: np.ndarray       # (n,) object
    urls: np.ndarray           # (n,) object
    published_hours: np.ndarray  # (n,) float64 hours since the epoch, NaN when unknown
    vectors: np.ndarray        # (n, d) float32 unit vectors
    # Same-story structure from the build (``stories.py``); None, or -1 / None for a row, where unknown (then
    # copies are recognised pairwise from cosine and headline).
    copy_groups: np.ndarray | None = None  # (n,) int64
    story_ids: np.ndarray | None = None    # (n,) object
    tags: np.ndarray | None = None         # (n,) object: tuples of tag / entity names
    languages: np.ndarray | None = None    # (n,) object: language codes, "" when unknown

    def group(self, row: int) -> int:
        """Copy group of a row, -1 when unknown."""
        return -1 if self.copy_groups is None else int(self.copy_groups[row])

    def story(self, row: int) -> str | None:
        """Story id of a row, None when unknown."""
        if self.story_ids is None:
            return None
        story = self.story_ids[row]
        return None if story is None or story == "" else str(story)

    def row_tags(self, row: int) -> tuple[str, ...]:
        """Tags / entities of a row."""
        if self.tags is None:
            return ()
        tags = self.tags[row]
        return tuple(tags) if tags is not None else ()

    def published_iso(self, row: int) -> str | None:
        """ISO 8601 UTC of a row's publication time."""
        hours = self.published_hours[row]
        if np.isnan(hours):
            return None
        return np.datetime64(int(round(hours * 3600)), "s").astype(str) + "Z"


@dataclass(frozen=True)
class Anchor:
    """What a list is for (the article being read, or a more-like-this example): its story, time and tags."""

    story: str | None = None
    hours: float = float("nan")
    tags: tuple[str, ...] = ()


def anchor_of(table: ArticleTable, row: int) -> Anchor:
    """The anchor description of a table row."""
    return Anchor(table.story(row), float(table.published_hours[row]), table.row_tags(row))


def shared_tags(anchor_tags: Sequence[str], tags: Sequence[str], limit: int = 3) -> tuple[str, ...]:
    """Tags a result shares with the anchor, in the result's order (case-insensitive match)."""
    if not anchor_tags or not tags:
        return ()
    wanted = {t.casefold() for t in anchor_tags}
    return tuple(t for t in tags if t.casefold() in wanted)[:limit]


def explain(similarity: float, trending: float, freshness: float, story: str | None, hours: float,
            anchor: Anchor | None, tags: Sequence[str]) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(relation, reasons in words, shared tags) of one result, from its score components.

    relation is "same story, earlier" / "same story, later" / "same story" (a story timeline entry),
    "background" (another story) or "" when the list has no anchor article (free text, popular).
    """
    relation = ""
    reasons = []
    shared = shared_tags(anchor.tags, tags) if anchor is not None else ()
    if anchor is not None:
        if story is not None and story == anchor.story:
            gap = anchor.hours - hours
            if np.isnan(gap):
                relation, when = "same story", ""
            elif gap >= 0:
                relation, when = "same story, earlier", f", {_duration(gap)} earlier"
            else:
                relation, when = "same story, later", f", {_duration(-gap)} later"
            reasons.append(f"same story{when}")
        else:
            relation = "background"
    if shared:
        reasons.append("also about " + _and_list(shared))
    if similarity >= 0.5 and not relation.startswith("same story"):
        # For an indexed article's related list the similarity is the build's hybrid relatedness, elsewhere the
        # embedding cosine: "relatedness" names both without claiming either.
        reasons.append(f"similar content (relatedness {similarity:.2f})")
    if trending >= 0.5:
        reasons.append("popular now")
    if freshness >= 0.5:
        reasons.append("recent")
    return relation, tuple(reasons), shared


def _duration(hours: float) -> str:
    if hours < 1:
        return f"{max(round(hours * 60), 1)} min"
    if hours < 48:
        return f"{round(hours)} h"
    return f"{round(hours / 24)} days"


def _and_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


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
    if filters.language and table.languages is not None:
        keep &= language_mask(table.languages[safe], filters.language)
    return keep


def language_mask(languages: np.ndarray, language: str) -> np.ndarray:
    """Rows in ``language`` or of unknown language ("")."""
    return (languages == language) | (languages == "")


def list_language(requested: str | None, anchor_language: str, policy: str) -> str | None:
    """The language a list is restricted to: the one asked for, else the anchor article's under the "same"
    policy (``RankingConfig.related_languages``), else none."""
    if requested:
        return requested
    return anchor_language or None if policy == "same" else None


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
        anchor_rows: the articles the list is for; their copies are left out like the articles themselves, and
            the first one's story labels results "same story" or "background".

    Returns:
        Recommendations, best first, never two copies of one piece.
    """
    rows = np.asarray(rows, dtype=np.int64)
    similarities = np.asarray(similarities, dtype=np.float64)
    keep = candidate_mask(table, rows, filters, now_hours)
    rows, similarities = rows[keep], similarities[keep]
    rows, first = np.unique(rows, return_index=True)
    similarities = similarities[first]
    if len(rows) == 0:
        return []
    anchor = anchor_of(table, anchor_rows[0]) if len(anchor_rows) else None
    trend, fresh = trending[rows], freshness[rows]
    scores = (config.weight_similarity * similarities + config.weight_trending * trend
              + config.weight_freshness * fresh)
    same_story = np.zeros(len(rows))
    if anchor is not None and anchor.story is not None:
        same_story = (table.story_ids[rows] == anchor.story).astype(np.float64)
        scores = scores + config.weight_same_story * same_story
    vectors = table.vectors[rows]
    words = [title_words(str(t)) for t in table.titles[rows]]
    groups = [table.group(int(r)) for r in rows]

    def copies(i: int, vector: np.ndarray, title: frozenset[str], group: int) -> bool:
        if groups[i] >= 0 and group >= 0:
            return groups[i] == group
        return is_copy(float(vectors[i] @ vector), words[i], title, config)

    anchors = [(table.vectors[a], title_words(str(table.titles[a])), table.group(a)) for a in anchor_rows]

    def duplicate_of(i: int, chosen: list[int]) -> int | None:
        return next((j for j in chosen if copies(i, vectors[j], words[j], groups[j])), None)

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
        if any(copies(i, v, w, g) for v, w, g in anchors):
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
        story = table.story(row)
        relation, reasons, shared = explain(float(similarities[i]), float(trend[i]), float(fresh[i]), story,
                                            float(table.published_hours[row]), anchor, table.row_tags(row))
        results.append(Recommendation(
            article_id=str(table.ids[row]), title=str(table.titles[row]), score=float(scores[i]),
            similarity=float(similarities[i]), trending=float(trend[i]), freshness=float(fresh[i]),
            section=str(table.sections[row]), url=str(table.urls[row]), published_at=table.published_iso(row),
            duplicates=tuple(str(table.ids[rows[d]]) for d in collapsed.get(i, [])), reasons=reasons,
            story_id=story, relation=relation, shared_tags=shared, same_story=float(same_story[i]),
        ))
    return results
