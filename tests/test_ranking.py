"""The ranking core on planted vectors: filters, blend, same-story collapse, MMR, explanations."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from recommender import stories
from recommender.config import RankingConfig
from recommender.query.filters import Filters
from recommender.query.popularity import Popularity
from recommender.query.ranking import Candidates, RowFields, rank
from recommender.query.results import EXPLANATION_FIELDS
from recommender.query.table import Anchor, ArticleTable, ListedArticles, object_array


def unit(*values: float) -> np.ndarray:
    """A unit vector."""
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def table(config: RankingConfig) -> ArticleTable:
    """Six articles: a query (0), its wire copy (1), two pieces (2, 3), a near copy of 2 (4), other (5); copy
    groups by the build's rules over every pair."""
    vectors = np.stack([
        unit(1, 0, 0, 0), unit(1, 0.01, 0, 0), unit(1, 0.5, 0, 0), unit(1, 0, 0.6, 0),
        unit(1, 0.52, 0, 0), unit(0, 0, 0, 1),
    ])
    titles = ["Bridge strike begins", "Bridge strike begins today", "Talks stall in bridge dispute",
              "Union rejects offer", "Talks stall in bridge dispute again", "Cup final tonight"]
    ids = ["q", "wire", "s1", "s2", "s1copy", "other"]
    hours = np.array([100.0, 100.1, 90.0, 50.0, 90.2, np.nan])
    everyone = np.array([[j for j in range(6) if j != i] for i in range(6)])
    cosines = np.take_along_axis(vectors @ vectors.T, everyone, axis=1)
    groups = stories.copy_groups(everyone, cosines, titles, config)
    return ArticleTable(
        ids=np.array(ids, dtype=object), titles=np.array(titles, dtype=object),
        sections=np.array(["local", "local", "local", "business", "local", "sport"], dtype=object),
        urls=np.array([""] * 6, dtype=object), published_hours=hours, vectors=vectors,
        copy_groups=groups, story_ids=np.array(ids, dtype=object),  # every article its own story
        tags=object_array([()] * 6), languages=np.array([""] * 6, dtype=object),
        authors=np.array([""] * 6, dtype=object), embargo_hours=np.full(6, np.nan))


def run(filters: Filters, config: RankingConfig | None = None, k: int = 5, trending=None) -> list:
    """Rank every row as a candidate of article 0."""
    config = config or RankingConfig()
    t = table(config)
    listed = ListedArticles(t, ArticleTable.empty(4), np.zeros(6, dtype=bool))
    anchor = Anchor(0, t.story(0), 100.0, (), int(t.copy_groups[0]), "", vector=t.vectors[0])
    trending = np.zeros(6) if trending is None else np.asarray(trending, dtype=np.float64)
    popularity = Popularity(datetime(1970, 1, 5, 5, tzinfo=UTC), 101.0, trending, np.zeros(6),
                            np.zeros(6), 0)
    candidates = Candidates.of(listed, np.arange(6), t.vectors @ t.vectors[0], [anchor])
    return rank(listed, candidates, k, config, filters, popularity, anchor, RowFields())


def test_self_and_wire_copy_of_self_are_left_out_and_copies_collapse():
    """The article, its wire copy and a near-copy of a result never appear; the copy is listed as collapsed."""
    results = run(Filters(exclude_rows=frozenset([0])))
    ids = [r.article_id for r in results]
    assert ids == ["s1", "s2", "other"]
    assert results[0].duplicates == ("s1copy",)
    assert results[0].relatedness > results[1].relatedness > results[2].relatedness


def test_filters_section_age_and_exclusions():
    """Section, maximum age (unknown dates fail it) and explicit exclusions all apply."""
    assert [r.article_id for r in run(Filters(frozenset([0]), section="business"))] == ["s2"]
    assert [r.article_id for r in run(Filters(frozenset([0]), max_age_hours=20))] == ["s1"]
    assert [r.article_id for r in run(Filters(frozenset([0, 2, 4])))] == ["s2", "other"]
    # More than a few exclusions take the set test instead of one comparison each: the same rows go.
    assert [r.article_id for r in run(Filters(frozenset([0, 1, 2, 4, 5])))] == ["s2"]


def test_an_unexplained_item_is_the_explained_one_without_its_explanation():
    """``to_dict(explained=False)`` (what a widget gets) is ``to_dict()`` less the explanation fields, in order."""
    for result in run(Filters(frozenset([0]))):
        full = result.to_dict()
        assert set(EXPLANATION_FIELDS) <= set(full)
        assert list(result.to_dict(explained=False).items()) == [
            (name, value) for name, value in full.items() if name not in EXPLANATION_FIELDS]


def test_trending_weight_reorders_and_components_explain_the_score():
    """A heavy trending weight lifts a popular result; score == weighted sum of its parts."""
    config = RankingConfig(weight_trending=1.0)
    results = run(Filters(frozenset([0])), config, trending=np.array([0, 0, 0, 1.0, 0, 0]))
    assert results[0].article_id == "s2"
    for r in results:
        assert abs(r.score - (r.relatedness + 1.0 * r.trending + 0.05 * r.freshness)) < 1e-9
    assert "popular now" in results[0].reasons


def test_mmr_trades_relevance_for_diversity():
    """With a low MMR lambda the unrelated article moves up the list."""
    plain = [r.article_id for r in run(Filters(frozenset([0])), k=2)]
    diverse = [r.article_id for r in run(Filters(frozenset([0])), RankingConfig(mmr_lambda=0.3), k=2)]
    assert plain == ["s1", "s2"] and diverse == ["s1", "other"]
