"""Hot reload of `current`: verified, atomic, refused when broken, delta merged; and under load on real uvicorn."""

from __future__ import annotations

import shutil
import threading
import time

import httpx
import pytest

from recommender.storage.versions import IndexStore

from .service_helpers import AUTH, free_port, publish_copy, serve, wait_ready

# The real packaged model builds the demo index these tests serve.
pytestmark = pytest.mark.slow


def build_id(client) -> str:
    """The build id /readyz reports."""
    return client.get("/readyz").json()["build_id"]


def test_a_new_version_is_swapped_in(client, root):
    """A newly published build is loaded, verified and served; the metrics count the reload."""
    state = client.app.state.service
    old = build_id(client)
    new = publish_copy(root, state.served.path)
    assert state.check_reload() is True
    assert build_id(client) == new.name != old
    assert client.get("/v1/articles/demo-001/related").json()["build_id"] == new.name
    assert 'recommender_index_reloads_total{outcome="loaded"} 1.0' in client.get("/metrics").text
    assert state.check_reload() is False  # nothing new


@pytest.mark.parametrize("damage,needle", [("checksum", "sha256"), ("model", "model")])
def test_a_broken_version_is_refused_and_the_old_one_serves(client, root, damage, needle):
    """A damaged or foreign build is refused; /readyz and /metrics say so; a later good one is taken."""
    state = client.app.state.service
    old = build_id(client)
    bad = publish_copy(root, state.served.path, damage=damage)
    assert state.check_reload() is False
    ready = client.get("/readyz").json()
    assert ready["build_id"] == old and ready["refused_build"] == bad.name and needle in ready["refused_reason"]
    metrics = client.get("/metrics").text
    assert f'recommender_index_reload_refused{{build_id="{bad.name}"}} 1.0' in metrics
    assert 'recommender_index_reloads_total{outcome="refused"} 1.0' in metrics
    assert client.get("/v1/articles/demo-001/related").status_code == 200
    assert state.check_reload() is False  # the same broken version is not retried
    good = publish_copy(root, state.served.path)
    assert state.check_reload() is True
    ready = client.get("/readyz").json()
    assert ready["build_id"] == good.name and ready["refused_build"] is None
    assert "recommender_index_reload_refused{" not in client.get("/metrics").text


def test_delta_articles_in_the_new_build_leave_the_delta(client, root):
    """After a reload the delta keeps only what the new build lacks; takedowns of listed ids stay."""
    state = client.app.state.service
    articles = [{"id": "demo-010", "title": "An edit of an indexed article"},
                {"id": "live-1", "title": "A story the nightly build has not seen"}]
    assert client.post("/v1/articles", json={"articles": articles}, headers=AUTH).status_code == 200
    assert client.delete("/v1/articles/demo-020", headers=AUTH).status_code == 200
    assert client.get("/readyz").json()["delta_articles"] == 2
    publish_copy(root, state.served.path)
    assert state.check_reload() is True
    ready = client.get("/readyz").json()
    assert ready["delta_articles"] == 1 and ready["taken_down"] == 1
    assert client.get("/v1/articles/live-1/related").status_code == 200
    assert client.get("/v1/articles/demo-020/related").status_code == 404


@pytest.mark.slow
def test_reload_under_load_fails_no_request(root):
    """A real uvicorn (2 workers) keeps answering while `current` is swapped 4 times: zero failed requests."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    source = root.parent / "source-build"
    shutil.copytree(IndexStore(root).current(), source)
    process = serve(root, port, workers=2)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        wait_ready(base, process, root.parent / "server.log")
        outcomes: list[tuple[int, str]] = []
        failures: list[str] = []
        time_limit = time.monotonic() + 90

        def reader(offset: int) -> None:
            with httpx.Client(base_url=base, timeout=10) as http:
                for n in range(offset, offset + 20_000):  # bounded in count and in time
                    if stop.is_set() or time.monotonic() > time_limit:
                        return
                    try:
                        response = http.get(f"/v1/articles/demo-{n % 165 + 1:03d}/related", params={"k": 5})
                        outcomes.append((response.status_code, response.json().get("build_id", "")))
                        if response.status_code != 200:
                            failures.append(f"{response.status_code}: {response.text[:200]}")
                    except (httpx.HTTPError, ValueError) as exc:
                        failures.append(repr(exc))

        threads = [threading.Thread(target=reader, args=(i * 40,), daemon=True) for i in range(3)]
        for thread in threads:
            thread.start()
        published = []
        for _ in range(4):
            time.sleep(0.8)
            published.append(publish_copy(root, source).name)
            IndexStore(root).gc(keep=2)  # old builds are deleted while requests may still read them
        # Every worker must end up on the last version (bounded wait), still under load.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and {b for _, b in outcomes[-50:]} != {published[-1]}:
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not failures, failures[:5]
        assert len(outcomes) > 100
        assert {b for _, b in outcomes[-50:]} == {published[-1]}
        assert len({b for _, b in outcomes}) >= 2  # requests were answered by more than one version
    finally:
        stop.set()
        process.terminate()
        process.wait(timeout=30)
