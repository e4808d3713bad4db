"""What a list may contain: the list length, exclusions, section, age and language of its candidates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidQueryError
from .table import ListedArticles

MAX_K = 100


def check_k(k: int) -> int:
    """Refuse a list length outside 1..100."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidQueryError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return int(k)


@dataclass(frozen=True)
class Filters:
    """What a list may contain.

    Attributes:
        exclude_rows: rows never shown (the article itself, its examples, already-read, explicit excludes).
        section: only this section (None = all).
        max_age_hours: only articles published at most this long before ``now`` (unknown dates fail it).
        language: only articles in this language (articles of unknown language pass).
    """

    exclude_rows: frozenset[int] = field(default_factory=frozenset)
    section: str | None = None
    max_age_hours: float | None = None
    language: str | None = None


def language_mask(languages: np.ndarray, language: str) -> np.ndarray:
    """Rows in ``language`` or of unknown language ("")."""
    return (languages == language) | (languages == "")


def list_language(requested: str | None, anchor_language: str, policy: str) -> str | None:
    """The language a list is restricted to: the one asked for, else the anchor article's under the "same"
    policy (``RankingConfig.related_languages``), else none."""
    if requested:
        return requested
    return anchor_language or None if policy == "same" else None


def candidate_mask(listed: ListedArticles, rows: np.ndarray, filters: Filters, now_hours: float,
                   languages: frozenset[str] = frozenset()) -> np.ndarray:
    """Which candidate rows (global, -1 ignored) pass the filters and are listed at all.

    ``languages``: the languages present in ``listed``, when known; a list whose language covers them all (the
    common one-language site) skips the language comparison.
    """
    keep = rows >= 0
    safe = np.where(keep, rows, 0)
    keep &= ~listed.hidden[safe]
    if len(filters.exclude_rows) <= 4:  # the anchor, a few read articles: a comparison each beats a set test
        for row in filters.exclude_rows:
            keep &= rows != row
    else:
        keep &= ~np.isin(rows, np.fromiter(filters.exclude_rows, dtype=np.int64))
    if filters.section is not None:
        keep &= listed.take("sections", safe) == filters.section
    if filters.max_age_hours is not None:
        age = now_hours - listed.take("published_hours", safe)
        keep &= ~np.isnan(age) & (age <= filters.max_age_hours)
    if filters.language and not (languages and languages <= {filters.language, ""}):
        keep &= language_mask(listed.take("languages", safe), filters.language)
    return keep
