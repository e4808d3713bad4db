"""A story as a timeline: the pieces of an article's story in publication order, copies collapsed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .editorial import ListRules
from .explain import explain
from .popularity import Popularity
from .ranking import RowFields
from .results import Recommendation
from .table import Anchor, ArticleTable, ListedArticles


def story_rows(table: ArticleTable) -> dict[str, np.ndarray]:
    """Build rows of each story id."""
    return {str(story): group.to_numpy() for story, group in
            pd.Series(np.arange(len(table))).groupby(table.story_ids, sort=False)}


def story_timeline(listed: ListedArticles, anchor: Anchor, rows_of_story: dict[str, np.ndarray], k: int,
                   pop: Popularity, fields: RowFields, rules: ListRules | None = None) -> list[Recommendation]:
    """The anchor's story in time order, one entry per copy group (the article leads its own), at most ``k``
    entries: the ones nearest in time to the article when the story is longer. Pieces the editorial ``rules``
    keep from the article's lists (blocks, embargoes, guardrails) are left out."""
    if anchor.story is None:
        return []
    n = listed.n_build
    rows = [int(r) for r in rows_of_story.get(anchor.story, np.zeros(0, int)) if not listed.hidden[r]]
    rows += [n + int(i) for i in np.flatnonzero(listed.live.story_ids == anchor.story)
             if not listed.hidden[n + int(i)]]
    if rules is not None and rows:
        allowed = rules.allowed(np.asarray(rows, dtype=np.int64))
        rows = [r for r, ok in zip(rows, allowed.tolist()) if ok or r == anchor.row]

    def hours(i: int) -> float:
        value = float(listed.take("published_hours", np.array([i]))[0])
        return math.inf if np.isnan(value) else value

    groups = {i: int(listed.take("copy_groups", np.array([i]))[0]) for i in rows}
    entries: dict[int, list[int]] = {}
    for i in sorted(rows, key=lambda i: (i != anchor.row, hours(i), i)):  # the article leads its copy group
        entries.setdefault(groups[i], []).append(i)
    heads = sorted(entries, key=lambda g: hours(entries[g][0]))
    if len(heads) > k:  # the k pieces nearest in time to the article, still in time order
        nearest = sorted(heads, key=lambda g: abs(hours(entries[g][0]) - anchor.hours))[:k]
        heads = [g for g in heads if g in nearest]
    results = []
    for g in heads:
        i, *copies = entries[g]
        table, local = listed.source(i)
        similarity = float(np.asarray(table.vectors[local]) @ anchor.vector)
        trend, fresh = float(pop.trending[i]), float(pop.freshness[i])
        relation, reasons, shared = explain(similarity, trend, fresh, anchor.story,
                                            float(table.published_hours[local]), anchor, table.row_tags(local))
        if i == anchor.row:
            relation, reasons, shared = "this article", (), ()
        article_id_i, title, section, url, published = fields.get(listed, i)
        results.append(Recommendation(
            article_id=article_id_i, title=title, score=similarity, relatedness=similarity, trending=trend,
            freshness=fresh, section=section, url=url, published_at=published,
            duplicates=tuple(fields.get(listed, c)[0] for c in copies), reasons=reasons,
            story_id=anchor.story, relation=relation, shared_tags=shared, same_story=1.0))
    return results
