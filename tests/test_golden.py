"""A build and an embedding cache written by the code before the package was laid out by stage (commit 92327b5,
``tests/data/golden_v1``) still load, serve the same lists, and are reused: model identity, fingerprint and cache
keys are byte-identical, and the old file names (``neighbours.npy``) are read."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recommender.build import build
from recommender.catalogue.demo import DEMO_EPOCH, demo_catalogue
from recommender.query import Recommender
from recommender.service.app import create_app

from .service_helpers import make_settings, publish_copy

pytestmark = pytest.mark.slow
GOLDEN = Path(__file__).parent / "data" / "golden_v1"


def expected() -> dict:
    """The lists the old code gave, with the old field name of the score part (``similarity``)."""
    return json.loads((GOLDEN / "expected.json").read_text())


def as_written_then(item: dict) -> dict:
    """A result as the old code wrote it: its relatedness was called ``similarity``, and the fields editorial rules
    added since (``label``, ``source``) did not exist: without rules they must hold their defaults."""
    item = dict(item)
    assert (item.pop("label"), item.pop("source")) == ("", "ranked"), item["article_id"]
    components = dict(item["components"])
    components["similarity"] = components.pop("relatedness")
    return {**item, "components": components}


def without_floors(engine: Recommender) -> Recommender:
    """The same build with the relatedness floors (added since the old code) switched off."""
    ranking = replace(engine.config.ranking, related_floor=None, more_like_this_floor=None)
    return Recommender(engine.stored, replace(engine.config, ranking=ranking), engine.embedder)


def test_the_old_build_loads_with_todays_embedder_and_lists_what_it_listed(embedder):
    """Same identity (the load checks it against the query-time model) and the same related, more-like-this and
    popular lists, field by field (with the relatedness floors that came later switched off; with them, the only
    change is the items below a floor leaving, test below)."""
    engine = without_floors(Recommender.load(GOLDEN / "build", embedder=embedder))
    assert engine.manifest.model == embedder.identity
    assert not (GOLDEN / "build" / "related_rows.npy").exists() and engine.related_rows is not None
    want = expected()
    now = datetime.fromisoformat(want["now"])
    for article_id, items in want["related"].items():
        assert [as_written_then(r.to_dict()) for r in engine.related(article_id, k=5, now=now)] == items, article_id
    mlt = engine.more_like_this(ids=["demo-001", "demo-002"], negative_ids=["demo-010"], k=5, now=now)
    assert [as_written_then(r.to_dict()) for r in mlt] == want["more_like_this"]["ids"]
    text = engine.more_like_this(text="train drivers strike over pay", k=5, now=now)
    assert [as_written_then(r.to_dict()) for r in text] == want["more_like_this"]["text"]
    assert [as_written_then(r.to_dict()) for r in engine.popular(k=10, now=now)] == want["popular"]


def test_with_the_floors_only_items_below_them_leave_the_old_lists(embedder):
    """Today's defaults on the old build: each list is the old one less its items below the floor, then (when
    that left it short) most-read articles of the section marked as the fallback."""
    engine = Recommender.load(GOLDEN / "build", embedder=embedder)
    floors = engine.config.ranking.related_floor, engine.config.ranking.more_like_this_floor
    assert None not in floors
    want = expected()
    now = datetime.fromisoformat(want["now"])
    lists = [(engine.related(a, k=5, now=now), items, floors[0]) for a, items in want["related"].items()]
    lists.append((engine.more_like_this(ids=["demo-001", "demo-002"], negative_ids=["demo-010"], k=5, now=now),
                  want["more_like_this"]["ids"], floors[1]))
    lists.append((engine.more_like_this(text="train drivers strike over pay", k=5, now=now),
                  want["more_like_this"]["text"], floors[1]))
    dropped = 0
    for results, old, floor in lists:
        kept = [i for i in old if i["components"]["similarity"] >= floor]
        dropped += len(old) - len(kept)
        ranked = [r for r in results if r.source == "ranked"]
        assert [r.article_id for r in ranked] == [i["article_id"] for i in kept]
        assert all(r.reasons[0].startswith("popular in ") for r in results if r.source == "fallback")
    assert dropped >= 1  # the old more-like-this list had an item at relatedness 0.234


def test_the_old_build_serves_over_http(tmp_path, embedder):
    """The service loads the old build (checksums, model, self-match) and answers its related lists."""
    root = tmp_path / "indexes"
    publish_copy(root, GOLDEN / "build")
    want = expected()
    now = datetime.fromisoformat(want["now"])
    with TestClient(create_app(make_settings(root), embedder=embedder, clock=lambda: now)) as client:
        items = client.get("/v1/articles/demo-001/related", params={"k": 5}).json()["items"]
    assert [(i["article_id"], i["score"]) for i in items] == [(r["article_id"], r["score"])
                                                              for r in want["related"]["demo-001"]]


def test_the_old_embedding_cache_is_read_by_a_new_build(tmp_path, embedder):
    """A build of the same 40 articles into a new root, with the old cache, embeds nothing: every vector is found
    under the same (fingerprint + backend, text sha256) key."""
    cache = tmp_path / "cache.sqlite"
    shutil.copy(GOLDEN / "embedding-cache.sqlite", cache)
    articles, views = demo_catalogue(DEMO_EPOCH)
    report = build(articles.iloc[:40].reset_index(drop=True), tmp_path / "root", embedder=embedder,
                   cache_path=cache)
    assert report.published and (report.embedded, report.cached) == (0, 40)
