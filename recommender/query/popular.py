"""The popular list: listed articles by decayed page views, ties broken by freshness (and the editors' rules)."""

from __future__ import annotations

from dataclasses import replace
from typing import AbstractSet, Sequence

import numpy as np

from .editorial import ListRules
from .filters import Filters, language_mask
from .popularity import Popularity
from .ranking import RowFields, eligible_pins, pinned_result
from .results import Recommendation
from .table import Anchor, ListedArticles


def most_read(listed: ListedArticles, views: np.ndarray, pop: Popularity, k: int, section: str | None,
              language: str | None, window_hours: float, fields: RowFields, rules: ListRules | None = None,
              exclude_rows: AbstractSet[int] = frozenset(), taken_groups: AbstractSet[int] = frozenset(),
              forbidden: AbstractSet[str] = frozenset()) -> list[Recommendation]:
    """The ``k`` listed rows with the most decayed ``views`` (per listed row) in the section and language; rows
    without views are not listed. Score: ``log1p(views) / log1p(max views listed)``.

    Args:
        rules: the list's editorial rules (blocks, embargoes, guardrails, pins).
        exclude_rows: rows never listed (the article a fallback list is beside, what its list already shows).
        taken_groups / forbidden: copy groups already shown and guardrail tags already forbidden by the list this
            one fills (a fallback).
    """
    views = views.copy()
    views[listed.hidden] = 0.0
    if rules is not None:
        views[~rules.allowed(np.arange(len(listed)))] = 0.0
    if exclude_rows:
        views[np.fromiter(exclude_rows, dtype=np.int64)] = 0.0
    if section is not None:
        views[listed.take("sections", np.arange(len(listed))) != section] = 0.0
    if language:
        views[~language_mask(listed.take("languages", np.arange(len(listed))), language)] = 0.0
    chosen = np.flatnonzero(views > 0)
    order = chosen[np.lexsort((-pop.freshness[chosen], -views[chosen]))]
    top = float(np.log1p(views[chosen].max())) if len(chosen) else 1.0
    pins = (eligible_pins(listed, rules, k, Filters(frozenset(exclude_rows), section, None, language), pop.now_hours,
                          None) if rules is not None and rules.pins else [])
    taken = set(taken_groups) | {int(listed.take("copy_groups", np.array([p.row]))[0]) for p in pins}
    blocked_tags = set(forbidden).union(*(rules.forbidden_by(p.row) for p in pins)) if rules else set(forbidden)
    groups = listed.take("copy_groups", order).tolist() if taken else [None] * len(order)
    results: list[Recommendation] = []
    for row, group in zip(order.tolist(), groups):
        if len(results) >= k - len(pins):
            break
        if group in taken or (rules is not None and rules.forbids(row, blocked_tags)):
            continue
        results.append(_entry(listed, row, views, top, pop, window_hours, fields))
        if rules is not None:
            blocked_tags |= rules.forbidden_by(row)
    for pin in pins:
        results.insert(min(pin.position - 1, len(results)),
                       pinned_result(_entry(listed, pin.row, views, top, pop, window_hours, fields), pin))
    return results[:k]


def fallback(listed: ListedArticles, pop: Popularity, k: int, section: str | None, filters: Filters,
             rules: ListRules, shown: Sequence[int], anchor: Anchor | None, window_hours: float, fields: RowFields,
             why: str) -> list[Recommendation]:
    """The most-read articles that fill a list (``source = "fallback"``) under its rules (blocks and guardrails
    against the article, and against what the list already shows; no pins), never a copy of what it shows."""
    rows = [*shown, *([anchor.row] if anchor else [])]
    taken = set(listed.take("copy_groups", np.asarray(rows, dtype=np.int64)).tolist())
    forbidden = set().union(*(rules.forbidden_by(r) for r in shown))
    filler = most_read(listed, pop.raw, pop, k, section, filters.language, window_hours, fields,
                       replace(rules, pins=()), filters.exclude_rows | set(shown), taken, forbidden)
    where = f"section {section!r}" if section else "the site"
    return [replace(r, source="fallback", reasons=(f"popular in {where}", why, *r.reasons)) for r in filler]


def _entry(listed: ListedArticles, row: int, views: np.ndarray, top: float, pop: Popularity, window_hours: float,
           fields: RowFields) -> Recommendation:
    score = float(np.log1p(views[row]) / top)
    article_id, title, section_name, url, published = fields.get(listed, row)
    return Recommendation(
        article_id=article_id, title=title, score=score, relatedness=0.0, trending=score,
        freshness=float(pop.freshness[row]), section=section_name, url=url, published_at=published,
        reasons=(f"{views[row]:.0f} decayed views in the last {window_hours:g} h",))
