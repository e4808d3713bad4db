"""Several replicas: live writes shared through PostgreSQL and Redis, one shared build path, one /metrics scrape
for every worker. Real `recommender serve` processes (uvicorn workers), real PostgreSQL and Redis."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from recommender.storage.versions import IndexStore

from .service_helpers import AUTH, free_port, publish_copy, serve, service_root, wait_ready

ANCHOR = "demo-001"
REDIS = "redis://127.0.0.1:6379/14"
# A request goes to whichever worker accepts it: this many answers in a row must agree before "every worker" has
# applied a write (a worker that had not would answer one of them with probability 1 - 2**-20 or more).
UNANIMOUS = 20


@contextmanager
def replicas(roots: list[Path], workers: int, *options: str, **env: str) -> Iterator[list[httpx.Client]]:
    """One `recommender serve` per root, ready, with an HTTP client each (``env``: RECOMMENDER_* settings)."""
    ports = [free_port() for _ in roots]
    processes = [serve(root, port, workers, *options, **env) for root, port in zip(roots, ports)]
    # A hang guard, not a speed check: four workers starting on two cores answer their first requests slowly.
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) for port in ports]
    try:
        for client, process, root in zip(clients, processes, roots):
            wait_ready(str(client.base_url), process, root.parent / "server.log")
        yield clients
    finally:
        for client in clients:
            client.close()
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def related_ids(client: httpx.Client, article_id: str = ANCHOR, k: int = 10) -> list[str]:
    response = client.get(f"/v1/articles/{article_id}/related", params={"k": k})
    return [item["article_id"] for item in response.json()["items"]] if response.status_code == 200 else []


def seconds_until_every_worker(check: Callable[[], bool], limit_seconds: float = 10.0) -> float:
    """Seconds from now until ``check`` holds on ``UNANIMOUS`` answers in a row (fails after the limit)."""
    started = time.monotonic()
    agreeing = 0
    while agreeing < UNANIMOUS:
        assert time.monotonic() - started < limit_seconds, "the write never reached every worker"
        agreeing = agreeing + 1 if check() else 0
        if not agreeing:
            time.sleep(0.01)
    return time.monotonic() - started


def test_replicas_with_separate_folders_share_upserts_takedowns_and_rules(demo_root, tmp_path, pg_url):
    """Replicas share only PostgreSQL (--live) and Redis (--views); a write on one is applied by every worker of
    the other, and nothing of the live state is written into either replica's folder."""
    roots = [service_root(demo_root, tmp_path / name) for name in ("a", "b")]
    before = [sorted(p.name for p in root.iterdir()) for root in roots]
    # The model loaded before a worker is ready (the shipped default), so the first upsert does not load it inside
    # the request (CI of 2026-12-02 timed out on a request of this test with a 10 s client timeout).
    with replicas(roots, 2, "--live", pg_url, "--views", REDIS, RECOMMENDER_WARM_MODEL="true") as (a, b):
        article = {"id": f"live-{uuid.uuid4().hex[:6]}", "title": "Glacier collapse floods three alpine villages",
                   "body": "Rescue teams evacuated hundreds after meltwater ran through the valley.",
                   "section": "world", "published_at": "2026-11-26T22:00:00Z"}
        assert a.post("/v1/articles", json={"articles": [article]}, headers=AUTH).status_code == 200
        upsert_seen = seconds_until_every_worker(lambda: len(related_ids(b, article["id"], 3)) == 3)

        shown = related_ids(b)[0]
        assert a.delete(f"/v1/articles/{shown}", headers=AUTH).status_code == 200
        takedown_seen = seconds_until_every_worker(lambda: shown not in related_ids(b))

        pin = {"kind": "pin", "article_id": "demo-124", "beside": ANCHOR, "position": 1, "id": "p1",
               "author": "desk", "reason": "replica test"}
        assert b.post("/v1/rules", json=pin, headers=AUTH).status_code == 201
        rule_seen = seconds_until_every_worker(lambda: related_ids(a)[:1] == ["demo-124"])

        assert b.delete(f"/v1/takedowns/{shown}", params={"reason": "lifted"}, headers=AUTH).status_code == 200
        seconds_until_every_worker(lambda: shown in related_ids(a, k=20))
        assert b.get("/readyz").json()["delta_articles"] == a.get("/readyz").json()["delta_articles"] == 1
    after = [sorted(p.name for p in root.iterdir()) for root in roots]
    assert after == before, "a replica wrote live state into its own folder"
    print(f"seen by every worker of the other replica after: upsert {upsert_seen:.3f} s, takedown "
          f"{takedown_seen:.3f} s, rule {rule_seen:.3f} s")


def test_replicas_serving_one_shared_build_path_reload_the_same_version(demo_root, tmp_path, pg_url):
    """Two replicas load builds from one shared indexes root (as from a network file system); publishing a new
    version there is picked up by both."""
    shared = service_root(demo_root, tmp_path / "shared")
    first = IndexStore(shared).current().name
    with replicas([shared, shared], 2, "--live", pg_url, "--views", REDIS) as clients:
        assert {c.get("/readyz").json()["build_id"] for c in clients} == {first}
        newer = publish_copy(shared, IndexStore(shared).current()).name
        for client in clients:
            seconds_until_every_worker(lambda c=client: c.get("/readyz").json()["build_id"] == newer)
        assert {c.get("/readyz").json()["build_id"] for c in clients} == {newer} != {first}


def metric(text: str, name: str, **labels: str) -> list[float]:
    """Every sample of ``name`` whose labels include ``labels``."""
    values = []
    for line in text.splitlines():
        match = re.match(rf"{name}(?:{{(.*)}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            values.append(float(match.group(2)))
    return values


def worker_pids(text: str) -> set[str]:
    """The workers whose loaded-build gauge a scrape shows (value 1)."""
    return set(re.findall(r'recommender_index_info\{[^}]*pid="(\d+)"[^}]*\} 1\.0', text))


def test_one_scrape_of_metrics_counts_the_requests_of_every_worker(demo_root, tmp_path):
    """Prometheus multiprocess mode: with 2 workers, any scrape sums the counters of both and shows each live
    worker's gauges (one pid series each)."""
    root = service_root(demo_root, tmp_path)
    requests = 60
    with replicas([root], 2) as (client,):
        started = time.monotonic()  # /readyz answered from one worker; the other may still be loading its build
        while len(worker_pids(client.get("/metrics").text)) < 2:
            assert time.monotonic() - started < 60, "the second worker never published its gauges"
            time.sleep(0.2)
        pids = set()
        for _ in range(requests):
            response = client.get(f"/v1/articles/{ANCHOR}/related", params={"k": 3})
            assert response.status_code == 200
        for _ in range(10):  # scrapes land on either worker: every one of them sees the same total
            text = client.get("/metrics").text
            counted = metric(text, "recommender_requests_total", route="/v1/articles/{article_id}/related",
                             status="200")
            assert sum(counted) == requests
            pids |= worker_pids(text)
        assert len(pids) == 2, pids
