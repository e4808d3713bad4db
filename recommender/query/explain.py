"""Why a result was chosen, in words: its relation to the article's story and the parts of its score."""

from __future__ import annotations

import math
from typing import Sequence

from .table import Anchor


def shared_tags(wanted: frozenset[str], tags: Sequence[str], limit: int = 3) -> tuple[str, ...]:
    """Tags a result shares with the anchor (``wanted``: its tags case-folded, ``Anchor.folded_tags``), in the
    result's order."""
    if not wanted or not tags:
        return ()
    return tuple(t for t in tags if t.casefold() in wanted)[:limit]


def explain(relatedness: float, trending: float, freshness: float, story: str | None, hours: float,
            anchor: Anchor | None, tags: Sequence[str]) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(relation, reasons in words, shared tags) of one result, from its score components.

    relation is "same story, earlier" / "same story, later" / "same story" (a story timeline entry),
    "background" (another story) or "" when the list has no anchor article (free text, popular).
    """
    relation = ""
    reasons = []
    shared = shared_tags(anchor.folded_tags, tags) if anchor is not None else ()
    if anchor is not None:
        if story is not None and story == anchor.story:
            gap = anchor.hours - hours
            if math.isnan(gap):
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
    if relatedness >= 0.5 and not relation.startswith("same story"):
        # For an indexed article's related list this is the build's hybrid relatedness, elsewhere the embedding
        # cosine (``Recommendation.relatedness``).
        reasons.append(f"similar content (relatedness {relatedness:.2f})")
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
