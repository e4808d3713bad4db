"""What a list is made of: one recommended article, its score parts and why it was chosen."""

from __future__ import annotations

from dataclasses import dataclass

# What a list shows only when asked to explain itself (``explain=true``).
EXPLANATION_FIELDS = ("components", "duplicates", "reasons", "explanation", "shared_tags")


@dataclass(frozen=True)
class Recommendation:
    """One result and why it was chosen.

    ``score = weight_relatedness * relatedness + weight_trending * trending + weight_freshness * freshness
    + weight_same_story * same_story`` (``query.ranking.blend``).

    Attributes:
        relatedness: the build's hybrid relatedness to the article (``build/relatedness.py``) for an indexed
            article's related list; the embedding cosine for free text, several examples, live articles and lists
            widened by a search; 0 in popular lists.
        trending / freshness: decayed page views and recency, each in [0, 1].
        same_story: 1 for a piece of the article's own story.
        duplicates: the ids collapsed into this entry (copies of the same piece).
        reasons / relation / shared_tags: the explanation parts (``query.explain``; editorial rules add theirs).
        label: the public words a reader sees for an editors' choice ("Chosen by the editors"), else "".
        source: "ranked" (the ranker chose it), "pinned" (an editorial pin put it there) or "fallback" (too few
            articles passed the relatedness floor; the list was filled from the declared fallback).
    """

    article_id: str
    title: str
    score: float
    relatedness: float
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
    label: str = ""
    source: str = "ranked"

    @property
    def explanation(self) -> str:
        """The reasons as one sentence for a reader or an editor."""
        if not self.reasons:
            return ""
        sentence = "; ".join(self.reasons)
        return sentence[0].upper() + sentence[1:] + "."

    def to_dict(self, explained: bool = True) -> dict[str, object]:
        """JSON-ready, with the score components grouped (scores rounded to 6 decimals); without ``explained``,
        only what a widget shows (no ``EXPLANATION_FIELDS``)."""
        out: dict[str, object] = {
            "article_id": self.article_id, "title": self.title, "section": self.section, "url": self.url,
            "published_at": self.published_at, "score": round(self.score, 6)}
        if explained:
            out["components"] = {"relatedness": round(self.relatedness, 6), "trending": round(self.trending, 6),
                                 "freshness": round(self.freshness, 6), "same_story": self.same_story}
            out["duplicates"] = list(self.duplicates)
            out["reasons"] = list(self.reasons)
            out["explanation"] = self.explanation
        out["story_id"] = self.story_id
        out["relation"] = self.relation
        if explained:
            out["shared_tags"] = list(self.shared_tags)
        out["label"] = self.label
        out["source"] = self.source
        return out
