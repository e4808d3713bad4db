"""The live layer: a build with an empty overlay lists what the build alone lists; the delta's upserts and
takedowns over it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.live import DeltaStore, LiveState, TakedownStore
from recommender.live.rules import RuleStore
from recommender.query import Recommender
from recommender.times import epoch_hours

from .conftest import DEMO_NOW

# The real packaged model builds the demo index these tests serve.
pytestmark = pytest.mark.slow

NOW = pd.Timestamp(DEMO_NOW).to_pydatetime()


def summary(results) -> list[tuple]:
    """What a list shows, scores rounded."""
    return [(r.article_id, round(r.score, 9), r.duplicates, r.reasons, r.published_at) for r in results]


@pytest.fixture
def state(demo_engine, tmp_path):
    """An empty live state: delta and takedowns."""
    state = LiveState(DeltaStore(tmp_path / "delta.sqlite", demo_engine.manifest.index["dims"]),
                      TakedownStore(tmp_path / "takedowns.sqlite"), RuleStore(tmp_path / "rules.sqlite"))
    yield state
    state.close()


@pytest.fixture
def store(state):
    """The live state's delta."""
    return state.delta


@pytest.fixture
def live(demo_engine, state):
    """The demo build with the (empty) live state over it."""
    return Recommender(demo_engine.stored, overlay=state)


@pytest.mark.parametrize("k,section,max_age_hours", [(3, None, None), (10, None, None), (5, "world", None),
                                                     (5, None, 72.0), (40, None, None)])
def test_an_empty_overlay_gives_the_builds_lists(live, demo_engine, k, section, max_age_hours):
    """For every demo article the build under an empty delta lists exactly what the build alone lists."""
    for article_id in demo_engine.table.ids:
        want = demo_engine.related(article_id, k=k, section=section, max_age_hours=max_age_hours, now=NOW)
        got = live.related(article_id, k=k, section=section, max_age_hours=max_age_hours, now=NOW)
        assert summary(got) == summary(want), article_id


def test_related_lists_of_indexed_articles_read_the_builds_related_table(demo_engine):
    """Each result of an indexed article's list carries the relatedness the build stored for that pair (not a
    cosine from a search), as long as the table fills the list."""
    for article_id in ("demo-001", "demo-040", "demo-120"):
        row = demo_engine.row_of[article_id]
        stored = dict(zip(np.asarray(demo_engine.related_rows[row]).tolist(),
                          np.asarray(demo_engine.related_scores[row]).tolist()))
        results = demo_engine.related(article_id, k=5, now=NOW)
        assert len(results) == 5
        for r in results:
            assert r.relatedness == pytest.approx(stored[demo_engine.row_of[r.article_id]], abs=1e-6)


def test_more_like_this_and_popular_match_the_engine(live, demo_engine):
    """With an empty delta, more-like-this and popular equal the engine's."""
    for ids, negatives in ((["demo-001"], []), (["demo-003", "demo-085"], ["demo-001"])):
        want = demo_engine.more_like_this(ids=ids, negative_ids=negatives, k=8, now=NOW)
        assert summary(live.more_like_this(ids=ids, negative_ids=negatives, k=8, now=NOW)) == summary(want)
    assert summary(live.popular(k=15, now=NOW)) == summary(demo_engine.popular(k=15, now=NOW))
    assert summary(live.popular(k=5, section="sport", window_hours=24, now=NOW)) == summary(
        demo_engine.popular(k=5, section="sport", window_hours=24, now=NOW))


def _record(article_id: str, title: str, section: str = "world") -> dict:
    return {"id": article_id, "title": title, "section": section, "url": "",
            "published_hours": float(epoch_hours(NOW)) - 1.0}


def test_a_delta_copy_of_an_article_joins_its_neighbours_lists(live, store, demo_engine):
    """A live article close to an indexed one appears in that story's related lists (no rebuild needed)."""
    row = demo_engine.row_of["demo-001"]
    neighbour = live.related("demo-001", k=1, now=NOW)[0].article_id
    vector = np.asarray(demo_engine.table.vectors[demo_engine.row_of[neighbour]])
    nudged = vector + 0.2 * np.asarray(demo_engine.table.vectors[row])
    store.upsert([_record("live-1", "Breaking: envoys meet again")], (nudged / np.linalg.norm(nudged))[None])
    found = live.related("demo-001", k=3, now=NOW)
    assert "live-1" in [r.article_id for r in found] or any("live-1" in r.duplicates for r in found)
    assert [r.article_id for r in live.related("live-1", k=3, now=NOW)]


def test_takedowns_and_edits_hide_build_rows(live, store, state, demo_engine):
    """A taken-down id leaves every list; an edited id is listed once, with its new vector."""
    first = live.related("demo-001", k=1, now=NOW)[0].article_id
    state.takedowns.take_down(first, "test", "legal")
    assert first not in [r.article_id for r in live.related("demo-001", k=20, now=NOW)]
    assert first not in [r.article_id for r in live.popular(k=100, now=NOW)]
    assert not live.contains(first)
    sport_row = demo_engine.row_of[next(a for a, s in zip(demo_engine.table.ids, demo_engine.table.sections)
                                        if s == "sport")]
    store.upsert([_record("demo-001", "Now a sports story", "sport")],
                      np.asarray(demo_engine.table.vectors[sport_row])[None])
    assert {r.section for r in live.related("demo-001", k=3, now=NOW)} == {"sport"}
    other_sport = [r.article_id for r in live.related("demo-001", k=3, now=NOW)][-1]
    results = live.more_like_this(ids=[other_sport], k=60, now=NOW)
    shown = [r.article_id for r in results] + [d for r in results for d in r.duplicates]
    assert shown.count("demo-001") == 1  # the live version only (here collapsed with its twin), never both


def test_a_second_worker_sees_the_live_state_after_sync(demo_engine, tmp_path):
    """Two processes' stores on one file: an upsert or takedown by one is applied by the other's next sync."""
    dims = demo_engine.manifest.index["dims"]

    def opened() -> LiveState:
        return LiveState(DeltaStore(tmp_path / "d.sqlite", dims), TakedownStore(tmp_path / "t.sqlite"),
                         RuleStore(tmp_path / "r.sqlite"))

    writer, reader = opened(), opened()
    vector = np.asarray(demo_engine.table.vectors[0])[None]
    writer.delta.upsert([_record("live-2", "Headline")], vector)
    assert "live-2" not in reader.overlay.live_row_of
    assert reader.sync() and "live-2" in reader.overlay.live_row_of
    writer.takedowns.take_down("demo-002", "desk", "legal")
    writer.delta.drop(["live-2"])
    reader.sync()
    assert reader.overlay.taken_down == frozenset({"demo-002"}) and len(reader.overlay.live) == 0
    with pytest.raises(ValueError, match="vectors"):
        writer.delta.upsert([_record("x", "t")], np.zeros((1, dims + 1), dtype=np.float32))
    writer.close()
    reader.close()


def test_lookups_stay_consistent_while_the_delta_changes(demo_engine, tmp_path):
    """Upserts and takedowns landing from another thread mid-lookup never break a lookup (bounded run)."""
    import threading

    state = LiveState(DeltaStore(tmp_path / "delta.sqlite", demo_engine.manifest.index["dims"]),
                      TakedownStore(tmp_path / "takedowns.sqlite"), RuleStore(tmp_path / "rules.sqlite"))
    store = state.delta
    live = Recommender(demo_engine.stored, overlay=state)
    vectors = np.asarray(demo_engine.table.vectors)
    stop, errors = threading.Event(), []

    def writer() -> None:
        for n in range(200):
            if stop.is_set():
                return
            store.upsert([_record(f"live-{n}", f"Live story {n}")], vectors[n % len(vectors)][None])
            if n % 7 == 0:
                state.takedowns.take_down(f"live-{n}", "test", "bounded run")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for n in range(150):
            try:
                live.related(f"demo-{n % 165 + 1:03d}", k=5)
                live.more_like_this(ids=[f"demo-{(n * 7) % 165 + 1:03d}"], k=5)
                live.popular(k=5)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))
    finally:
        stop.set()
        thread.join(timeout=60)
        state.close()
    assert errors == []


def test_a_live_article_joins_a_list_without_reranking_the_builds_candidates(live, store, demo_engine):
    """A live article close to demo-001 enters its list, and the indexed results keep the build's relatedness
    order and scores (the list once fell back to a cosine search of the whole index whenever a live article was
    close enough, discarding the build's hybrid ranking)."""
    before = live.related("demo-001", k=8, now=NOW)
    row = demo_engine.row_of["demo-001"]
    vector = np.asarray(demo_engine.table.vectors[row])
    noise = np.random.default_rng(5).normal(size=vector.shape).astype(np.float32)
    noise -= (noise @ vector) * vector  # orthogonal: cosine to demo-001 ~0.74, a copy of nothing
    near = vector + 0.9 * noise / np.linalg.norm(noise)
    store.upsert([_record("live-near", "Talks resume after a pause")], (near / np.linalg.norm(near))[None])
    after = live.related("demo-001", k=9, now=NOW)
    assert "live-near" in [r.article_id for r in after] + [d for r in after for d in r.duplicates]
    indexed = [(r.article_id, round(r.relatedness, 6)) for r in after if r.article_id != "live-near"]
    assert indexed[:7] == [(r.article_id, round(r.relatedness, 6)) for r in before][:7]
