"""The response cache's front door ranks the list routes' requests it has not kept itself (``microcache.py`` with
``service/lists.py``): every answer must be the route's own, byte for byte, errors included."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from recommender.service.app import create_app

from .conftest import DEMO_NOW
from .service_helpers import AUTH, ORIGIN, make_settings

pytestmark = pytest.mark.slow
NOW = datetime.fromisoformat(DEMO_NOW.replace("Z", "+00:00"))
COMPARED_HEADERS = ("content-type", "access-control-allow-origin", "vary", "x-recommender-degraded")


@contextlib.contextmanager
def apps(root, embedder) -> Iterator[tuple[TestClient, TestClient, list[str]]]:
    """The service with lists kept (its front door ranks) and without (every request routed), at one clock, and
    the paths of the requests the first one's front door passed to the app."""
    with TestClient(create_app(make_settings(root, list_cache_seconds=60), embedder=embedder,
                               clock=lambda: NOW)) as cached, \
            TestClient(create_app(make_settings(root), embedder=embedder, clock=lambda: NOW)) as routed:
        door = cached.app.middleware_stack
        inner = door.app
        through: list[str] = []

        async def counted(scope, receive, send):
            through.append(scope["path"])
            await inner(scope, receive, send)

        door.app = counted
        yield cached, routed, through


def same_answer(cached: TestClient, routed: TestClient, path: str, params: dict, headers: dict) -> int:
    """Ask both; assert the same status, body and headers; return the status."""
    mine = cached.get(path, params=params, headers=headers)
    theirs = routed.get(path, params=params, headers=headers)
    assert mine.status_code == theirs.status_code, (path, params, mine.text, theirs.text)
    assert mine.content == theirs.content, (path, params)
    for name in COMPARED_HEADERS:
        assert mine.headers.get(name) == theirs.headers.get(name), (path, params, name)
    assert int(mine.headers["content-length"]) == len(mine.content)
    return mine.status_code


def test_lists_the_front_door_ranks_are_the_routes_own_and_bad_requests_get_the_routes_errors(root, embedder):
    with apps(root, embedder) as (cached, routed, through):
        popular = routed.get("/v1/popular", params={"k": 100}).json()["items"]
        ids = [item["article_id"] for item in popular]
        section, language = popular[0]["section"], "en"
        assert len(ids) >= 20
        variants = [{}, {"k": 3}, {"k": "7", "explain": "true"}, {"section": section}, {"language": language},
                    {"max_age_hours": "48.5"}, {"k": 5, "explain": "1", "x": "junk"}, {"k": ["3", "6"]}]
        statuses = [same_answer(cached, routed, f"/v1/articles/{article}/related", variants[n % len(variants)], {})
                    for n, article in enumerate(ids[:21])]
        assert statuses == [200] * 21
        assert through == [f"/v1/articles/{ids[0]}/related"]  # the first taught it the headers; it ranked the rest
        for params in ({}, {"window_hours": 6}, {"beside": ids[1], "k": 4}, {"beside": "not-an-id"},
                       {"section": section, "explain": "yes"}):
            assert same_answer(cached, routed, "/v1/popular", params, {}) == 200
        assert through[1:] == ["/v1/popular"]
        # With an allowed Origin (other CORS headers: a template of its own) and with another one (the app decides).
        for origin, routed_too in ((ORIGIN, 1), ("https://evil.example", 2)):
            before = len(through)
            for article in ids[:2]:
                assert same_answer(cached, routed, f"/v1/articles/{article}/related", {"k": 6},
                                   {"Origin": origin}) == 200
            assert len(through) - before == routed_too
        bad = [("/v1/articles/demo-001/related", {"k": 0}), ("/v1/articles/demo-001/related", {"k": "ten"}),
               ("/v1/articles/demo-001/related", {"max_age_hours": -1}),
               ("/v1/articles/demo-001/related", {"reader": "short"}),
               ("/v1/articles/demo-001/related", {"explain": "maybe"}),
               ("/v1/articles/" + "x" * 201 + "/related", {}), ("/v1/articles/no-such-article/related", {}),
               ("/v1/popular", {"window_hours": 0}), ("/v1/popular", {"beside": ""})]
        before = len(through)
        assert [same_answer(cached, routed, path, params, {}) for path, params in bad] == [422] * 6 + [404, 422, 422]
        assert len(through) - before == len(bad)  # each error is the route's, and ranked once (no second try)


def test_the_front_door_answers_no_request_over_the_header_limit(root, embedder):
    settings = make_settings(root, list_cache_seconds=60, max_header_bytes=2048)
    with TestClient(create_app(settings, embedder=embedder, clock=lambda: NOW)) as http:
        assert http.get("/v1/articles/demo-001/related").status_code == 200
        assert http.get("/v1/articles/demo-002/related").status_code == 200  # ranked by the front door
        huge = {"X-Padding": "p" * 4096}
        for path in ("/v1/articles/demo-001/related", "/v1/articles/demo-003/related"):  # kept, and not kept
            response = http.get(path, headers=huge)
            assert response.status_code == 431 and response.json()["error"]["code"] == "headers_too_large"


def test_ab_lists_the_front_door_ranks_inside_an_experiment_are_the_routes(root, embedder):
    """Inside an A/B experiment each reader's list is their arm's, whether the front door ranked it or the app."""
    definition = {"name": "test", "kind": "ab", "arms": [
        {"name": "control"}, {"name": "fresh", "settings": {"ranking": {"weight_freshness": 1.0}}}]}
    with apps(root, embedder) as (cached, routed, through):
        assert cached.post("/v1/experiments", json=definition, headers=AUTH).status_code == 201
        for http in (cached, routed):
            http.app.state.service.sync_live()  # both workers see the experiment now (no waiting for the poll)
        ids = [item["article_id"] for item in routed.get("/v1/popular", params={"k": 12}).json()["items"]]
        arms = set()
        for n, article in enumerate(ids):
            params = {"k": 5, "reader": f"reader-{n:04d}"}
            mine = cached.get(f"/v1/articles/{article}/related", params=params).json()
            theirs = routed.get(f"/v1/articles/{article}/related", params=params).json()
            assert mine["arm"] == theirs["arm"] and mine["items"] == theirs["items"], article
            assert mine["impression_id"] != theirs["impression_id"]
            arms.add(mine["arm"])
        assert arms == {"control", "fresh"}
        assert through == ["/v1/experiments", f"/v1/articles/{ids[0]}/related"]
