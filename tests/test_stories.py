"""Copy groups and stories (issue 8): grouping against the demo corpus's ground truth, labels, timelines, live."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recommender.catalogue.demo import demo_files
from recommender.config import RankingConfig, StoryConfig
from recommender.live.delta import DeltaStore
from recommender.query import Recommender
from recommender.stories import StoryTable, assign, copy_groups, stories
from recommender.times import epoch_hours

from .conftest import DEMO_NOW

pytestmark = pytest.mark.slow
NOW = pd.Timestamp(DEMO_NOW).to_pydatetime()


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    """The demo corpus's ground truth: story and duplicate_of per id."""
    articles, _ = demo_files()
    rows = [json.loads(line) for line in articles.read_text().splitlines()]
    return pd.DataFrame(rows).set_index("id")[["story", "duplicate_of", "published_at"]]


@pytest.fixture
def store(demo_engine, tmp_path):
    """An empty delta store."""
    store = DeltaStore(tmp_path / "delta.sqlite", demo_engine.manifest.index["dims"])
    yield store
    store.close()


@pytest.fixture
def live(demo_engine, store):
    """The demo build with the (empty) delta over it."""
    return Recommender(demo_engine.stored, overlay=store)


def test_stories_match_the_demo_ground_truth(demo_engine, truth):
    """Same-story pairs: precision >= 0.99 and recall >= 0.9 against the corpus's own story labels.

    Measured with the defaults (story_similarity 0.55, window 168 h): precision 1.000, recall 0.926.
    """
    found = demo_engine.table.story_ids
    labels = truth["story"].reindex(demo_engine.table.ids).to_numpy()
    upper = np.triu_indices(len(labels), 1)
    predicted = (found[:, None] == found[None, :])[upper]
    actual = (labels[:, None] == labels[None, :])[upper]
    precision = (predicted & actual).sum() / predicted.sum()
    recall = (predicted & actual).sum() / actual.sum()
    assert precision >= 0.99 and recall >= 0.9, (precision, recall)


def test_every_wire_copy_shares_its_originals_copy_group(demo_engine, truth):
    """The 6 declared wire copies are in their original's copy group, and copy groups never span stories."""
    copies = truth["duplicate_of"].dropna()
    assert len(copies) == 6
    group = dict(zip(demo_engine.table.ids, demo_engine.table.copy_groups))
    story = dict(zip(demo_engine.table.ids, demo_engine.table.story_ids))
    for copy_id, original in copies.items():
        assert group[copy_id] == group[original] and story[copy_id] == story[original]
    for members in pd.Series(list(demo_engine.table.ids)).groupby(demo_engine.table.copy_groups):
        assert truth.loc[list(members[1]), "story"].nunique() == 1


def test_related_lists_label_the_story_timeline(live, demo_engine, truth):
    """Results in the article's story are labelled earlier/later by publication time; the rest are background;
    no list shows two copies of one piece, and no list shows a copy of the article itself."""
    group = dict(zip(demo_engine.table.ids, demo_engine.table.copy_groups))
    published = pd.to_datetime(truth["published_at"], utc=True)
    for article_id in demo_engine.table.ids:
        results = live.related(article_id, k=8, now=NOW)
        groups = [group[r.article_id] for r in results]
        assert len(set(groups)) == len(groups) and group[article_id] not in groups
        anchor_story = demo_engine.table.story_ids[demo_engine.row_of[article_id]]
        for r in results:
            if r.story_id == anchor_story:
                later = published[r.article_id] > published[article_id]
                assert r.relation == ("same story, later" if later else "same story, earlier")
                assert r.reasons[0].startswith("same story, ") and r.same_story == 1.0
            else:
                assert r.relation == "background" and r.same_story == 0.0


def test_explanations_name_shared_entities(live):
    """Tags shared with the article are named in words ("also about ...")."""
    results = live.related("demo-001", k=3, now=NOW)
    assert any(r.shared_tags for r in results)
    r = next(r for r in results if r.shared_tags)
    assert "also about " + r.shared_tags[0] in r.explanation
    assert r.to_dict()["explanation"] == r.explanation and r.explanation.endswith(".")


def test_story_timeline_is_the_story_in_time_order(live, demo_engine, truth):
    """/story: every piece of the article's story once (copies collapsed into the earliest), oldest first,
    the article itself marked "this article"."""
    article_id = "demo-001"
    timeline = live.story(article_id, k=100, now=NOW)
    story = truth.loc[article_id, "story"]
    members = set(truth.index[truth["story"] == story])
    shown = [r.article_id for r in timeline]
    collapsed = {d for r in timeline for d in r.duplicates}
    assert set(shown) | collapsed == members & set(demo_engine.table.ids) and not set(shown) & collapsed
    times = [r.published_at for r in timeline]
    assert times == sorted(times)
    assert [r.relation for r in timeline if r.article_id == article_id] == ["this article"]
    assert len(live.story(article_id, k=2, now=NOW)) == 2


def test_a_live_article_joins_its_story_and_a_live_copy_collapses(live, store, demo_engine):
    """Upserted between rebuilds: a follow-up joins the story of its indexed neighbours; a wire copy of an
    indexed article joins its copy group and is collapsed, never listed beside it."""
    row = demo_engine.row_of["demo-001"]
    vector = np.asarray(demo_engine.table.vectors[row])
    hours = float(epoch_hours(NOW)) - 1.0
    copy = {"id": "live-copy", "title": str(demo_engine.table.titles[row]), "section": "world", "url": "",
            "published_hours": hours, "tags": []}
    store.upsert([copy], vector[None])
    placed = live.listed().live
    position = store.overlay.live_row_of["live-copy"]
    assert placed.copy_groups[position] == demo_engine.table.copy_groups[row]
    assert placed.story_ids[position] == demo_engine.table.story_ids[row]
    # Its own copy is never listed beside demo-001 (collapsed or not); beside a neighbour, the two are one entry.
    own = live.related("demo-001", k=10, now=NOW)
    assert "live-copy" not in [r.article_id for r in own] + [d for r in own for d in r.duplicates]
    neighbour = str(demo_engine.table.ids[demo_engine.related_rows[row][0]])
    results = live.related(neighbour, k=10, now=NOW)
    entries = [{r.article_id, *r.duplicates} for r in results]
    holding = [e for e in entries if e & {"live-copy", "demo-001"}]
    assert len(holding) == 1 and holding[0] >= {"live-copy", "demo-001"}  # one entry, the other collapsed into it
    timeline = live.story("live-copy", k=100, now=NOW)
    assert "demo-001" in [r.article_id for r in timeline] + [d for r in timeline for d in r.duplicates]


def test_assign_and_grouping_rules():
    """Copies are transitive; a story needs an earlier, similar-enough piece inside the window."""
    ranking, config = RankingConfig(), StoryConfig(story_similarity=0.6, story_window_hours=48)
    titles = ["Storm hits coast", "Storm hits the coast", "Clean-up after storm", "Election result", "Storm again"]
    neighbours = np.array([[1, 2], [0, 2], [0, 1], [0, 1], [2, 0]])
    scores = np.array([[0.95, 0.7], [0.95, 0.7], [0.7, 0.7], [0.1, 0.1], [0.8, 0.7]], dtype=np.float32)
    hours = np.array([0.0, 1.0, 20.0, 5.0, 200.0])
    groups = copy_groups(neighbours, scores, titles, ranking)
    assert groups[0] == groups[1] and len(set(groups)) == 4
    story = stories(["a", "b", "c", "d", "e"], neighbours, scores, hours, groups, config)
    assert list(story) == ["a", "a", "a", "d", "e"]  # "e" is similar but 180 h after its story's last piece
    table = StoryTable(groups, story)
    assert assign(np.array([2, 3]), np.array([0.75, 0.2]), "Rebuilding begins", 30.0, np.array(titles), hours,
                  table, ranking, config, 99, "new") == (99, "a")
    assert assign(np.array([3]), np.array([0.99]), "Election result", 6.0, np.array(titles), hours, table,
                  ranking, config, 99, "new") == (int(groups[3]), "d")
    assert assign(np.array([2]), np.array([0.75]), "Much later", 500.0, np.array(titles), hours, table, ranking,
                  config, 99, "new") == (99, "new")
