"""The HTTP service through TestClient: every route, status code and error, auth, CORS, limits, metrics."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from recommender.service.app import create_app

from .service_helpers import AUTH, ORIGIN, hidden_from_collector, make_settings

# The real packaged model builds the demo index these tests serve.
pytestmark = pytest.mark.slow


def ids_of(response) -> list[str]:
    """Article ids of a list response."""
    assert response.status_code == 200, response.text
    return [item["article_id"] for item in response.json()["items"]]


def test_health_and_ready(client, demo_engine):
    """/healthz is alive; /readyz names the loaded build, its size and model."""
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] is True and ready["articles"] == len(demo_engine)
    assert ready["model"] == demo_engine.manifest.model.name
    assert ready["refused_build"] is None and ready["delta_articles"] == 0


def test_related_lists_the_story_without_the_article(client, demo_engine):
    """Related: k items, never the article itself, the same story first, components only with explain."""
    plain = client.get("/v1/articles/demo-001/related", params={"k": 5})
    ids = ids_of(plain)
    assert len(ids) == 5 and "demo-001" not in ids
    assert "components" not in plain.json()["items"][0]
    explained = client.get("/v1/articles/demo-001/related", params={"k": 5, "explain": "true"}).json()["items"]
    assert set(explained[0]["components"]) == {"relatedness", "trending", "freshness", "same_story"}
    assert explained[0]["reasons"] and isinstance(explained[0]["duplicates"], list)
    stories = {a: s for a, s in zip(demo_engine.articles["id"], _stories())}
    assert stories[ids[0]] == stories["demo-001"]


def _stories() -> list[str]:
    from recommender.catalogue.demo import demo_files

    return [json.loads(line)["story"] for line in demo_files()[0].read_text().splitlines() if line.strip()]


def test_related_filters(client):
    """section and max_age_hours filter the list."""
    items = client.get("/v1/articles/demo-001/related", params={"k": 5, "section": "sport"}).json()["items"]
    assert items and {i["section"] for i in items} == {"sport"}


@pytest.mark.parametrize("params", [{"k": 0}, {"k": 101}, {"k": "ten"}, {"max_age_hours": -1},
                                    {"max_age_hours": "inf"}])
def test_related_bad_parameters_are_422(client, params):
    """Out-of-range or malformed parameters: 422 naming the parameter."""
    response = client.get("/v1/articles/demo-001/related", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert list(params)[0] in response.json()["error"]["message"]


def test_unknown_article_is_404_naming_it(client):
    """An unknown id: 404 with the id in the JSON error."""
    response = client.get("/v1/articles/no-such-article/related")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "unknown_article", "article_id": "no-such-article",
        "message": "unknown article id 'no-such-article': it is not in the loaded index or the live delta (or it "
                   "was taken down)"}


def test_unknown_route_is_a_json_404(client):
    """Routes that do not exist answer with the same error envelope."""
    response = client.get("/v2/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_more_like_this_by_ids_and_text(client):
    """More like this: examples never returned; free text works alone; negatives steer away."""
    ids = ids_of(client.post("/v1/more-like-this", json={"ids": ["demo-001", "demo-003"], "k": 8}))
    assert len(ids) == 8 and not {"demo-001", "demo-003"} & set(ids)
    by_text = ids_of(client.post("/v1/more-like-this", json={"text": "ceasefire talks in Geneva", "k": 3}))
    assert len(by_text) == 3
    excluded = ids_of(client.post("/v1/more-like-this", json={"text": "ceasefire talks in Geneva", "k": 3,
                                                              "exclude_ids": by_text[:1]}))
    assert by_text[0] not in excluded


@pytest.mark.parametrize("body,status,code", [
    ({}, 422, "invalid_query"),
    ({"text": "   "}, 422, "invalid_query"),
    ({"ids": ["nope"]}, 404, "unknown_article"),
    ({"ids": ["demo-001"], "negative_ids": ["nope"]}, 404, "unknown_article"),
    ({"ids": ["demo-001"], "k": 500}, 422, "invalid_request"),
    ({"ids": ["demo-001"], "colour": "red"}, 422, "invalid_request"),
    ({"text": "x" * 6000}, 413, "payload_too_large"),
])
def test_more_like_this_errors(client, body, status, code):
    """Bad more-like-this bodies map to 404 / 413 / 422 with a named reason."""
    response = client.post("/v1/more-like-this", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_malformed_json_is_422(client):
    """A body that is not JSON: 422, not a crash."""
    response = client.post("/v1/more-like-this", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422


def test_popular_and_window(client):
    """Popular lists viewed articles, most-viewed first; a non-positive window is 422."""
    items = client.get("/v1/popular", params={"k": 5, "explain": "true"}).json()["items"]
    assert len(items) == 5
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    assert client.get("/v1/popular", params={"window_hours": 0}).status_code == 422
    sport = client.get("/v1/popular", params={"k": 3, "section": "sport"}).json()["items"]
    assert {i["section"] for i in sport} == {"sport"}


@pytest.mark.parametrize("method,path,body", [
    ("post", "/v1/articles", {"articles": [{"id": "x", "title": "t"}]}),
    ("delete", "/v1/articles/demo-001", None),
    ("post", "/v1/events", {"events": [{"article_id": "demo-001"}]}),
])
def test_writes_need_the_bearer_token(client, method, path, body):
    """Missing or wrong token: 401 with a Bearer challenge, and nothing changes."""
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        response = client.request(method.upper(), path, json=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/readyz").json()["delta_articles"] == 0
    assert ids_of(client.get("/v1/articles/demo-001/related", params={"k": 1}))


def test_writes_are_disabled_without_a_configured_token(root, embedder):
    """No write token configured: every write is 401 and says how to enable writes."""
    with TestClient(create_app(make_settings(root, write_token=None), embedder=embedder)) as c:
        response = c.post("/v1/events", json={"events": [{"article_id": "demo-001"}]}, headers=AUTH)
        assert response.status_code == 401 and "RECOMMENDER_WRITE_TOKEN" in response.json()["error"]["message"]


def test_upsert_is_searchable_at_once(client):
    """A new article is embedded and listed by more-like-this and has its own related list immediately."""
    article = {"id": "live-001", "title": "Glacier collapse in the Harrow range floods three alpine villages",
               "body": "Rescue teams evacuated hundreds after a glacier collapse sent meltwater through villages.",
               "section": "world", "published_at": "2026-11-26T22:00:00Z"}
    response = client.post("/v1/articles", json={"articles": [article]}, headers=AUTH)
    assert response.status_code == 200 and response.json() == {"upserted": ["live-001"], "delta_size": 1}
    found = ids_of(client.post("/v1/more-like-this", json={"text": article["title"], "k": 3}))
    assert found[0] == "live-001"
    assert len(ids_of(client.get("/v1/articles/live-001/related", params={"k": 4}))) == 4
    assert "live-001" not in ids_of(client.get("/v1/articles/live-001/related", params={"k": 4}))


def test_an_edit_replaces_the_indexed_version(client):
    """Upserting an indexed id replaces it: its new text drives its related list, no duplicate listing."""
    edited = {"id": "demo-001", "title": "Kestrel Bay reach the Harker Cup final after penalty shoot-out",
              "section": "sport"}
    assert client.post("/v1/articles", json={"articles": [edited]}, headers=AUTH).status_code == 200
    items = client.get("/v1/articles/demo-001/related", params={"k": 3}).json()["items"]
    assert {i["section"] for i in items} == {"sport"}
    listed = ids_of(client.post("/v1/more-like-this", json={"text": edited["title"], "k": 20}))
    assert listed.count("demo-001") == 1


@pytest.mark.parametrize("articles,status,needle", [
    ([{"id": "a", "title": ""}], 422, "title"),
    ([{"id": "a", "title": "t", "published_at": "yesterday"}], 422, "published_at"),
    ([{"id": "a", "title": "t"}, {"id": "a", "title": "u"}], 422, "more than once"),
    ([{"id": f"a{i}", "title": "t"} for i in range(101)], 413, "limit is 100"),
    ([], 422, "articles"),
])
def test_bad_upserts_store_nothing(client, articles, status, needle):
    """Invalid articles are refused whole with the field named; nothing reaches the delta."""
    response = client.post("/v1/articles", json={"articles": articles}, headers=AUTH)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]
    assert client.get("/readyz").json()["delta_articles"] == 0


def test_takedown_removes_an_article_from_every_list(client):
    """DELETE hides an article at once: its own lookups 404, and no list shows it."""
    popular_before = ids_of(client.get("/v1/popular", params={"k": 20}))
    victim = popular_before[0]
    neighbours = ids_of(client.get(f"/v1/articles/{victim}/related", params={"k": 5}))
    response = client.delete(f"/v1/articles/{victim}", headers=AUTH)
    assert response.status_code == 200 and response.json()["deleted"] == victim
    assert client.get(f"/v1/articles/{victim}/related").status_code == 404
    assert victim not in ids_of(client.get("/v1/popular", params={"k": 100}))
    for other in neighbours:
        assert victim not in ids_of(client.get(f"/v1/articles/{other}/related", params={"k": 20}))
    assert client.post("/v1/more-like-this", json={"ids": [victim]}).status_code == 404
    assert client.delete(f"/v1/articles/{victim}", headers=AUTH).status_code == 404
    assert client.get("/readyz").json()["taken_down"] == 1


def test_events_move_popular_and_the_blend(client):
    """Page views posted now lift an article to the top of popular and raise its trending in related lists."""
    before = ids_of(client.get("/v1/popular", params={"k": 100}))

    def trending_in(anchor: str) -> dict[str, float]:
        items = client.get(f"/v1/articles/{anchor}/related", params={"k": 30, "explain": "true"}).json()["items"]
        return {i["article_id"]: i["components"]["trending"] for i in items}

    # A little-read article that shows up in the related list of its own top neighbour.
    quiet, anchor = next((a, b) for a in (f"demo-{n:03d}" for n in range(1, 166)) if a not in before[:20]
                         for b in ids_of(client.get(f"/v1/articles/{a}/related", params={"k": 1}))
                         if a in trending_in(b))
    assert trending_in(anchor)[quiet] < 1.0
    response = client.post("/v1/events", json={"events": [{"article_id": quiet, "count": 1_000_000},
                                                           {"article_id": quiet, "type": "click", "count": 5},
                                                           {"article_id": "not-indexed"}]}, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"accepted": 3, "unknown_ids": ["not-indexed"]}
    assert ids_of(client.get("/v1/popular", params={"k": 1})) == [quiet]
    assert trending_in(anchor)[quiet] == pytest.approx(1.0)


@pytest.mark.parametrize("events,status", [
    ([{"article_id": "demo-001"}, {"article_id": "demo-002", "timestamp": "2099-01-01T00:00:00Z"}], 422),
    ([{"article_id": "demo-001"}, {"article_id": "demo-002", "timestamp": "2001-01-01T00:00:00Z"}], 422),
    ([{"article_id": "demo-001"}, {"article_id": "demo-002", "count": 0}], 422),
    ([{"article_id": "demo-001"}, {"article_id": ""}], 422),
    ([{"article_id": "demo-001"}, {"article_id": "demo-002", "type": "scroll"}], 422),
    ([], 422),
    ([{"article_id": "demo-001"}] * 1001, 413),
])
def test_malformed_event_batches_are_rejected_whole(client, events, status):
    """One bad event refuses the whole batch with its position; nothing is counted."""
    counter = client.app.state.service.counter
    response = client.post("/v1/events", json={"events": events}, headers=AUTH)
    assert response.status_code == status, response.text
    assert counter.totals() == {}


def test_body_size_limit_is_413(root, embedder):
    """A body over max_body_bytes is refused before parsing, with or without Content-Length."""
    with TestClient(create_app(make_settings(root, max_body_bytes=2_000), embedder=embedder)) as c:
        big = {"events": [{"article_id": f"demo-{i:03d}"} for i in range(1, 120)]}
        response = c.post("/v1/events", json=big, headers=AUTH)
        assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"

        def chunks():
            yield json.dumps(big).encode()

        streamed = c.post("/v1/events", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
        assert streamed.status_code == 413


def test_cors_allows_only_configured_origins(client):
    """The widget's origin gets CORS headers; another origin does not."""
    allowed = client.options("/v1/popular", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert allowed.headers.get("access-control-allow-origin") == ORIGIN
    other = client.get("/v1/popular", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_metrics_report_routes_index_delta_and_events(client):
    """/metrics: per-route counts and latency histograms, index version and age, delta size, events."""
    client.get("/v1/articles/demo-001/related")
    client.get("/v1/articles/nope/related")
    client.post("/v1/events", json={"events": [{"article_id": "demo-001", "count": 2}]}, headers=AUTH)
    client.post("/v1/articles", json={"articles": [{"id": "live-9", "title": "A new headline"}]}, headers=AUTH)
    text = client.get("/metrics").text
    build_id = client.get("/readyz").json()["build_id"]
    assert 'recommender_requests_total{method="GET",route="/v1/articles/{article_id}/related",status="200"} 1.0' \
        in text
    assert 'route="/v1/articles/{article_id}/related",status="404"} 1.0' in text
    assert 'recommender_request_seconds_bucket{le="0.005",method="GET",route="/v1/articles/{article_id}/related"}' \
        in text
    assert f'recommender_index_info{{build_id="{build_id}"' in text
    assert "recommender_index_age_seconds " in text
    assert "recommender_live_delta_articles 1.0" in text
    assert 'recommender_events_ingested_total{type="view"} 1.0' in text


def test_implausible_publication_dates_are_422(client):
    """A date pandas cannot hold (found by the fuzz test: year 2263 crashed the upsert) is a 422, not a 500."""
    response = client.post("/v1/articles", json={"articles": [{"id": "far", "title": "x",
                                                               "published_at": "2263-01-01T00:00:00Z"}]},
                           headers=AUTH)
    assert response.status_code == 422 and "published_at" in response.json()["error"]["message"]


def test_response_cache_serves_repeats_and_dies_with_a_takedown(root, embedder):
    """With list_cache_seconds on, a repeated related GET is answered from the rendered bytes (no ranking), is
    still counted under its route, never leaks one origin's CORS headers to another, and a takedown empties it."""
    with TestClient(create_app(make_settings(root, list_cache_seconds=60), embedder=embedder)) as client:
        live = client.app.state.service.served.recommender
        calls = []
        original = live.related
        live.related = lambda *args, **kwargs: calls.append(args) or original(*args, **kwargs)
        first = client.get("/v1/articles/demo-001/related", params={"k": 5}, headers={"Origin": ORIGIN})
        again = client.get("/v1/articles/demo-001/related", params={"k": 5}, headers={"Origin": ORIGIN})
        assert again.content == first.content and len(calls) == 1
        assert again.headers["access-control-allow-origin"] == ORIGIN
        other = client.get("/v1/articles/demo-001/related", params={"k": 5}, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers and len(calls) == 2
        client.get("/v1/articles/demo-001/related", params={"k": 6})
        assert len(calls) == 3  # another query string is another entry
        assert client.get("/v1/articles/nope/related").status_code == 404
        assert client.get("/v1/articles/nope/related").status_code == 404
        assert len(calls) == 5  # errors are never cached
        victim = ids_of(first)[0]
        assert client.delete(f"/v1/articles/{victim}", headers=AUTH).status_code == 200
        after = client.get("/v1/articles/demo-001/related", params={"k": 5}, headers={"Origin": ORIGIN})
        assert victim not in ids_of(after) and len(calls) == 6
        text = client.get("/metrics").text
        assert ('recommender_requests_total{method="GET",route="/v1/articles/{article_id}/related",status="200"} 5.0'
                in text)
        cache = client.app.middleware_stack  # the front door: the response cache
        del after  # the test client's response holds the very bytes sent (a server's socket does not)
        assert len(cache.entries) == 1 and hidden_from_collector(cache.entries)  # since the takedown; never collected


def test_a_stopping_worker_waits_for_its_background_round_before_closing_the_stores(root, embedder, caplog):
    """The background loops run in threads; a worker that stops during a round (here a popularity refresh whose
    views read is slow) lets it finish before the stores close. It once closed them under the round, which then
    read a closed store and logged the views unreachable at every stop."""
    import threading
    import time

    reading, finished = threading.Event(), []
    with caplog.at_level("WARNING", logger="recommender.service"):
        with TestClient(create_app(make_settings(root, popularity_refresh_seconds=0.05), embedder=embedder)) as http:
            counter = http.app.state.service.counter
            read = counter.decayed_views

            def slow_read(*args, **kwargs):
                reading.set()
                time.sleep(0.5)
                found = read(*args, **kwargs)
                finished.append(True)
                return found

            counter.decayed_views = slow_read
            assert reading.wait(10)
        assert finished == [True]  # the stop waited for the round
    assert "unreachable" not in caplog.text


@pytest.mark.parametrize("opentelemetry", [False, True])
def test_fastapis_opentelemetry_is_consulted_per_request_only_when_turned_on(root, embedder, monkeypatch,
                                                                             opentelemetry):
    """FastAPI's native OpenTelemetry looks for configured providers on every request, cache hits included; the
    service turns it off unless ``RECOMMENDER_OPENTELEMETRY`` asks for it (then a site's providers get it)."""
    from opentelemetry import trace

    looked_up = []
    provider = trace.get_tracer_provider

    def counted():
        looked_up.append(1)
        return provider()

    monkeypatch.setattr(trace, "get_tracer_provider", counted)
    with TestClient(create_app(make_settings(root, list_cache_seconds=60, opentelemetry=opentelemetry),
                               embedder=embedder)) as http:
        looked_up.clear()
        for _ in range(3):
            assert http.get("/v1/articles/demo-001/related").status_code == 200
    assert len(looked_up) == (3 if opentelemetry else 0)
