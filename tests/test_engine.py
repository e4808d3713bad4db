"""The engine on the demo corpus, whose stories, wire copies and views are known."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from recommender.catalogue.demo import DEMO_EPOCH, demo_files
from recommender.errors import InvalidQueryError, UnknownArticleError
from tests.conftest import DEMO_NOW

pytestmark = pytest.mark.slow
NOW = pd.Timestamp(DEMO_NOW).to_pydatetime()  # the demo build's DEMO_EPOCH, shifted to the clock


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    """The demo corpus with its ground-truth story keys and wire-copy links."""
    articles, _ = demo_files()
    return pd.DataFrame([json.loads(line) for line in articles.read_text().splitlines()]).set_index("id")


def test_related_starts_with_the_articles_own_story(demo_engine, truth):
    """For every article of a running story, the first result is the same story and the top 3 nearly always."""
    sizes = truth["story"].value_counts()
    first, top3 = [], []
    for article_id, story in truth["story"].items():
        if sizes[story] < 4:
            continue
        results = demo_engine.related(article_id, k=3, now=NOW)
        first.append(truth.loc[results[0].article_id, "story"] == story)
        top3.append(all(truth.loc[r.article_id, "story"] == story for r in results))
    assert len(first) > 100
    assert np.mean(first) == 1.0
    assert np.mean(top3) >= 0.97


def test_wire_copies_collapse(demo_engine, truth):
    """A wire copy never appears beside its original, nor in the original's own list; it is named as collapsed."""
    copies = truth["duplicate_of"].dropna()
    assert len(copies) == 6
    for copy_id, original_id in copies.items():
        pair = {copy_id, original_id}
        own = [r.article_id for r in demo_engine.related(original_id, k=10, now=NOW)]
        assert copy_id not in own
        story = truth.index[truth["story"] == truth.loc[copy_id, "story"]]
        other = next(a for a in story if a not in pair)
        results = demo_engine.related(other, k=10, now=NOW)
        listed = {r.article_id for r in results}
        assert len(pair & listed) == 1, f"{pair} both listed for {other}"
        entry = next(r for r in results if r.article_id in pair)
        assert set(entry.duplicates) == pair - {entry.article_id}


def test_scores_are_explained(demo_engine):
    """Every result carries its components and the blend adds up with the configured weights."""
    config = demo_engine.ranking
    for r in demo_engine.related("demo-001", k=10, now=NOW):
        expected = (config.weight_relatedness * r.relatedness + config.weight_trending * r.trending
                    + config.weight_freshness * r.freshness + config.weight_same_story * r.same_story)
        assert r.score == pytest.approx(expected)
        assert 0 <= r.trending <= 1 and 0 <= r.freshness <= 1 and r.same_story in (0.0, 1.0)
        assert set(r.to_dict()["components"]) == {"relatedness", "trending", "freshness", "same_story"}


def test_filters_section_age_and_exclusions(demo_engine, truth):
    """Section, max age and exclude lists hold for every result."""
    results = demo_engine.related("demo-001", k=10, section="politics", now=NOW)
    assert results and all(r.section == "politics" for r in results)
    recent = demo_engine.related("demo-001", k=10, max_age_hours=48, now=NOW)
    published = pd.to_datetime(truth["published_at"], utc=True)
    assert recent and all((DEMO_EPOCH - published[r.article_id]).total_seconds() <= 48 * 3600 for r in recent)
    first = [r.article_id for r in demo_engine.related("demo-001", k=3, now=NOW)]
    again = [r.article_id for r in demo_engine.related("demo-001", k=3, exclude_ids=first[:2], now=NOW)]
    assert not set(first[:2]) & set(again)


def test_popular_follows_decayed_views(demo_engine):
    """popular() ranks by views decayed with the trending half-life inside the window, computed here by hand
    (on the corpus as written, whose DEMO_EPOCH the build's NOW plays)."""
    _, views_file = demo_files()
    views = pd.read_csv(views_file, parse_dates=["timestamp"])
    config = demo_engine.popularity_config
    age_hours = (pd.Timestamp(DEMO_EPOCH) - views["timestamp"]).dt.total_seconds() / 3600
    views["weight"] = views["count"] * 0.5 ** (age_hours / config.trending_half_life_hours)
    expected = views[age_hours <= 24].groupby("article_id")["weight"].sum().sort_values(ascending=False)
    results = demo_engine.popular(k=10, window_hours=24, now=NOW)
    assert [r.article_id for r in results] == list(expected.index[:10])
    sport = demo_engine.popular(k=5, section="sport", now=NOW)
    assert sport and all(r.section == "sport" for r in sport)


def test_more_like_this_from_ids_text_and_negatives(demo_engine, truth):
    """Several positives give their story; text works alone; a negative example steers away from its story."""
    bridge = list(truth.index[truth["story"] == "harbour-bridge-strike"])
    results = demo_engine.more_like_this(ids=bridge[:2], k=4, now=NOW)
    assert all(truth.loc[r.article_id, "story"] == "harbour-bridge-strike" for r in results)
    assert not set(bridge[:2]) & {r.article_id for r in results}
    text_only = demo_engine.more_like_this(text="workers strike over pay and conditions", k=10, now=NOW)
    stories = {truth.loc[r.article_id, "story"] for r in text_only}
    assert {"harbour-bridge-strike", "marrowdale-bus-strike"} & stories
    steered = demo_engine.more_like_this(text="workers strike over pay and conditions", negative_ids=bridge,
                                         k=5, now=NOW)
    assert truth.loc[steered[0].article_id, "story"] != "harbour-bridge-strike"
    assert not set(bridge) & {r.article_id for r in steered}


def test_bad_queries_are_refused(demo_engine):
    """Unknown ids name the id; k outside 1..100 and empty queries are refused."""
    with pytest.raises(UnknownArticleError, match="no-such-article"):
        demo_engine.related("no-such-article")
    with pytest.raises(UnknownArticleError, match="nope"):
        demo_engine.more_like_this(ids=["demo-001"], negative_ids=["nope"])
    for k in (0, 101, 2.5):
        with pytest.raises(InvalidQueryError, match="k must be an integer from 1 to 100"):
            demo_engine.related("demo-001", k=k)
    with pytest.raises(InvalidQueryError, match="at least one article id or a non-empty text"):
        demo_engine.more_like_this(text="  ")


def test_demo_catalogue_moves_the_corpus_to_now():
    """Shifted by whole hours, the demo keeps its order and gaps and ends just before the chosen 'now'."""
    from recommender.catalogue.demo import DEMO_EPOCH, demo_catalogue

    as_written, views_written = demo_catalogue(DEMO_EPOCH)
    later = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
    moved, views_moved = demo_catalogue(later)
    shift = pd.Timestamp(later) - pd.Timestamp(DEMO_EPOCH)
    assert (moved["published_at"] - as_written["published_at"] == shift).all()
    assert (views_moved["timestamp"] - views_written["timestamp"] == shift).all()
    assert views_moved["timestamp"].max() < pd.Timestamp(later)
    assert list(moved["id"]) == list(as_written["id"]) and len(views_moved) == len(views_written)


def test_cached_candidates_give_the_same_lists_and_the_garbage_collector_stops_walking_them(demo_engine):
    """The related-table cache (20,000 entries by default) keeps plain tuples of arrays and ints: full collections
    stop walking them after two passes (a dataclass per entry stayed tracked: 80-112 ms pauses on the long tail)."""
    import gc

    from recommender.query import Recommender

    engine = Recommender(demo_engine.stored, demo_engine.config)
    ids = [f"demo-{i:03d}" for i in range(1, 13)]
    first = {a: [(r.article_id, r.score) for r in engine.related(a, k=5, now=NOW)] for a in ids}
    assert len(engine.candidates._entries) == len(ids)
    again = {a: [(r.article_id, r.score) for r in engine.related(a, k=5, now=NOW)] for a in ids}
    assert again == first and all(first.values())
    for _ in range(2):  # one pass untracks the inner tuples of ints, the next the entry holding them
        gc.collect()
    assert not any(gc.is_tracked(entry) for entry in engine.candidates._entries.values())


def test_a_recommender_sharing_the_served_rows_lists_what_one_with_its_own_does(demo_engine):
    """An experiment arm made with ``shares=`` the served recommender uses its row table, row strings and
    related-table candidates only where the arm's settings leave them unchanged, and lists exactly what a
    recommender with its own would (the served one's caches warmed first, so a wrong share would be read)."""
    from dataclasses import replace

    from recommender.query import Recommender

    base = demo_engine.config
    arms = {  # settings -> (shares the rows, shares the candidates, shares the popularity snapshots)
        "ranking weights": (replace(base, ranking=replace(base.ranking, weight_freshness=0.3)), True, True, True),
        "relatedness weights": (replace(base, relatedness=replace(
            base.relatedness, lexical_weight=base.relatedness.lexical_weight + 0.2)), True, False, True),
        "copy-group settings": (replace(base, ranking=replace(
            base.ranking, duplicate_similarity=base.ranking.duplicate_similarity - 0.05)), False, False, False),
        "popularity settings": (replace(base, popularity=replace(
            base.popularity, freshness_half_life_hours=12.0)), True, True, False),
    }
    ids = demo_engine.articles["id"].tolist()
    for article_id in ids:
        demo_engine.related(article_id, k=5, now=NOW)
    for name, (config, rows, candidates, popularity) in arms.items():
        shared = Recommender(demo_engine.stored, config, shares=demo_engine)
        own = Recommender(demo_engine.stored, config)
        assert (shared.table is demo_engine.table) == rows, name
        assert (shared._fields is demo_engine._fields) == rows, name
        assert (shared.candidates is demo_engine.candidates) == candidates, name
        snapshot = demo_engine.popularity(NOW)
        assert (shared.popularity(NOW) is snapshot) == popularity, name  # found, not computed again
        assert np.array_equal(shared.popularity(NOW).freshness, own.popularity(NOW).freshness), name
        for article_id in ids:
            assert ([r.to_dict() for r in shared.related(article_id, k=5, now=NOW)]
                    == [r.to_dict() for r in own.related(article_id, k=5, now=NOW)]), (name, article_id)
        shared.use_views(None)  # its own view source: its own snapshots from now on
        assert shared.popularity(NOW) is not demo_engine.popularity(NOW), name
