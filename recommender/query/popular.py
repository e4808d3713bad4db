"""The popular list: listed articles by decayed page views, ties broken by freshness."""

from __future__ import annotations

import numpy as np

from .filters import language_mask
from .popularity import Popularity
from .ranking import RowFields
from .results import Recommendation
from .table import ListedArticles


def most_read(listed: ListedArticles, views: np.ndarray, pop: Popularity, k: int, section: str | None,
              language: str | None, window_hours: float, fields: RowFields) -> list[Recommendation]:
    """The ``k`` listed rows with the most decayed ``views`` (per listed row) in the section and language; rows
    without views are not listed. Score: ``log1p(views) / log1p(max views listed)``."""
    views = views.copy()
    views[listed.hidden] = 0.0
    if section is not None:
        views[listed.take("sections", np.arange(len(listed))) != section] = 0.0
    if language:
        views[~language_mask(listed.take("languages", np.arange(len(listed))), language)] = 0.0
    chosen = np.flatnonzero(views > 0)
    order = chosen[np.lexsort((-pop.freshness[chosen], -views[chosen]))][:k]
    top = float(np.log1p(views[chosen].max())) if len(chosen) else 1.0
    results = []
    for row in order.tolist():
        score = float(np.log1p(views[row]) / top)
        article_id, title, section_name, url, published = fields.get(listed, row)
        results.append(Recommendation(
            article_id=article_id, title=title, score=score, relatedness=0.0, trending=score,
            freshness=float(pop.freshness[row]), section=section_name, url=url, published_at=published,
            reasons=(f"{views[row]:.0f} decayed views in the last {window_hours:g} h",)))
    return results
