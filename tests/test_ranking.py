"""Ranker on planted vectors: filters, blend, same-story collapse, MMR, explanations."""

from __future__ import annotations

import numpy as np

from recommender.config import RankingConfig
from recommender.ranking import ArticleTable, Filters, rank


def unit(*values: float) -> np.ndarray:
    """A unit vector."""
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def table() -> ArticleTable:
    """Six articles: a query (0), its wire copy (1), two same-story pieces (2, 3), a near copy of 2 (4), other (5)."""
    vectors = np.stack([
        unit(1, 0, 0, 0), unit(1, 0.01, 0, 0), unit(1, 0.5, 0, 0), unit(1, 0, 0.6, 0),
        unit(1, 0.52, 0, 0), unit(0, 0, 0, 1),
    ])
    return ArticleTable(
        ids=np.array(["q", "wire", "s1", "s2", "s1copy", "other"], dtype=object),
        titles=np.array(["Bridge strike begins", "Bridge strike begins today", "Talks stall in bridge dispute",
                         "Union rejects offer", "Talks stall in bridge dispute again", "Cup final tonight"],
                        dtype=object),
        sections=np.array(["local", "local", "local", "business", "local", "sport"], dtype=object),
        urls=np.array([""] * 6, dtype=object),
        published_hours=np.array([100.0, 100.1, 90.0, 50.0, 90.2, np.nan]),
        vectors=vectors,
    )


def run(filters: Filters, config: RankingConfig | None = None, k: int = 5, trending=None) -> list:
    """Rank every row as a candidate of article 0."""
    t = table()
    sims = t.vectors @ t.vectors[0]
    trending = np.zeros(6) if trending is None else trending
    return rank(t, np.arange(6), sims, k, config or RankingConfig(), filters, 101.0, trending, np.zeros(6),
                anchor_rows=[0])


def test_self_and_wire_copy_of_self_are_left_out_and_copies_collapse():
    """The article, its wire copy and a near-copy of a result never appear; the copy is listed as collapsed."""
    results = run(Filters(exclude_rows=frozenset([0])))
    ids = [r.article_id for r in results]
    assert ids == ["s1", "s2", "other"]
    assert results[0].duplicates == ("s1copy",)
    assert results[0].similarity > results[1].similarity > results[2].similarity


def test_filters_section_age_and_exclusions():
    """Section, maximum age (unknown dates fail it) and explicit exclusions all apply."""
    assert [r.article_id for r in run(Filters(frozenset([0]), section="business"))] == ["s2"]
    assert [r.article_id for r in run(Filters(frozenset([0]), max_age_hours=20))] == ["s1"]
    assert [r.article_id for r in run(Filters(frozenset([0, 2, 4])))] == ["s2", "other"]


def test_trending_weight_reorders_and_components_explain_the_score():
    """A heavy trending weight lifts a popular result; score == weighted sum of its parts."""
    config = RankingConfig(weight_trending=1.0)
    results = run(Filters(frozenset([0])), config, trending=np.array([0, 0, 0, 1.0, 0, 0]))
    assert results[0].article_id == "s2"
    for r in results:
        assert abs(r.score - (r.similarity + 1.0 * r.trending + 0.05 * r.freshness)) < 1e-9
    assert "popular now" in results[0].reasons


def test_mmr_trades_relevance_for_diversity():
    """With a low MMR lambda the unrelated article moves up the list."""
    plain = [r.article_id for r in run(Filters(frozenset([0])), k=2)]
    diverse = [r.article_id for r in run(Filters(frozenset([0])), RankingConfig(mmr_lambda=0.3), k=2)]
    assert plain == ["s1", "s2"] and diverse == ["s1", "other"]
