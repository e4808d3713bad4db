"""Editorial rules through HTTP and the command line (issue 16): the routes and their token, conflicts as 422s, the
audit log, expiry and embargoes without a restart (the response cache included), rules surviving reloads and
restarts, and two service processes sharing PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from recommender.service.app import create_app
from recommender.storage.versions import IndexStore

from .conftest import DEMO_EPOCH, DEMO_SHIFT
from .service_helpers import AUTH, free_port, make_settings, publish_copy, serve, service_root, wait_ready

pytestmark = pytest.mark.slow
RECOMMENDER = str(Path(sys.executable).parent / "recommender")
ANCHOR = "demo-001"


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(DEMO_EPOCH + DEMO_SHIFT)


def app_client(root: Path, embedder, clock: Clock, **settings: object) -> TestClient:
    return TestClient(create_app(make_settings(root, **settings), embedder=embedder, clock=clock))


def related(http, article_id: str = ANCHOR, k: int = 5) -> list[dict]:
    response = http.get(f"/v1/articles/{article_id}/related", params={"k": k})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def add(http, **rule) -> httpx.Response:
    return http.post("/v1/rules", json={"author": "desk", "reason": "test", **rule}, headers=AUTH)


def test_rules_over_http_act_in_the_lists_and_are_logged(root, embedder, clock):
    with app_client(root, embedder, clock) as http:
        for method, path in (("get", "/v1/rules"), ("post", "/v1/rules"), ("delete", "/v1/rules/x"),
                             ("get", "/v1/rules/log"), ("get", f"/v1/rules/check/{ANCHOR}")):
            assert getattr(http, method)(path).status_code == 401, path
        base = [i["article_id"] for i in related(http)]
        pinned = add(http, kind="pin", article_id="demo-124", beside=ANCHOR, position=2, id="p1")
        assert pinned.status_code == 201, pinned.text
        items = related(http)
        assert [i["article_id"] for i in items] == [base[0], "demo-124", *base[1:4]]
        assert (items[1]["label"], items[1]["source"]) == ("Chosen by the editors", "pinned")
        assert add(http, kind="block", article_id=base[0], id="b1").status_code == 201
        assert base[0] not in [i["article_id"] for i in related(http)]
        assert base[0] not in [i["article_id"] for i in http.get("/v1/popular", params={"k": 100}).json()["items"]]
        listed = http.get("/v1/rules", headers=AUTH).json()
        assert {(r["id"], r["status"]) for r in listed["rules"]} == {("p1", "active"), ("b1", "active")}
        check = http.get(f"/v1/rules/check/{ANCHOR}", headers=AUTH).json()
        assert {r["id"] for r in check["rules_naming"]} == {"p1"}
        assert check["related"]["removed"][0] == {"article_id": base[0], "why": "blocked everywhere"}
        removed = http.delete("/v1/rules/b1", params={"actor": "editor", "reason": "cleared by legal"}, headers=AUTH)
        assert removed.status_code == 200 and removed.json()["removed"]["id"] == "b1"
        assert related(http)[0]["article_id"] == base[0]
        assert http.delete("/v1/rules/b1", headers=AUTH).status_code == 404
        log = http.get("/v1/rules/log", headers=AUTH).json()["log"]
        assert [(e["action"], e["rule_id"], e["actor"], e["reason"]) for e in log] == [
            ("remove", "b1", "editor", "cleared by legal"), ("add", "b1", "desk", "test"),
            ("add", "p1", "desk", "test")]
        assert log[1]["rule"]["article_id"] == base[0]


def test_a_rule_written_elsewhere_is_compiled_by_the_background_sync_not_by_the_next_list(root, embedder, clock):
    from recommender.live.rules import RuleStore
    from recommender.query.rules import Rule
    from recommender.times import epoch_hours

    with app_client(root, embedder, clock) as http:
        service = http.app.state.service
        blocked = related(http)[0]["article_id"]
        store = RuleStore(root / "rules.sqlite")  # another worker's write
        store.add_many([Rule.from_dict({"id": "elsewhere", "kind": "block", "article_id": blocked,
                                        "author": "desk", "reason": "test"})])
        store.close()
        engine = service.served.recommender
        service.live.sync()  # what the loop reads first: the rules are known, not compiled yet
        assert not engine.rules.ready(engine.listed(), float(epoch_hours(clock())))
        service.sync_live()  # one round of the background loop
        assert engine.rules.ready(engine.listed(), float(epoch_hours(clock())))
        assert blocked not in [i["article_id"] for i in related(http)]


def test_conflicts_and_bad_rules_are_422s_that_name_the_problem(root, embedder, clock):
    with app_client(root, embedder, clock) as http:
        victim = related(http)[0]["article_id"]
        assert add(http, kind="block", article_id=victim, id="b1").status_code == 201
        refused = add(http, kind="pin", article_id=victim, beside=ANCHOR, position=1)
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "invalid_rule" and refused.json()["error"]["conflicts"] == ["b1"]
        assert "b1" in refused.json()["error"]["message"]
        for bad, words in (({"kind": "pin", "article_id": "nope", "beside": ANCHOR, "position": 1}, "not a listed"),
                           ({"kind": "pin", "article_id": "demo-124", "beside": ANCHOR, "position": 0}, "position"),
                           ({"kind": "boost", "multiply": 2.0}, "needs a match"),
                           ({"kind": "teleport"}, "kind must be one of")):
            response = add(http, **bad)
            assert response.status_code == 422 and words in response.json()["error"]["message"], bad
        assert len(http.get("/v1/rules", headers=AUTH).json()["rules"]) == 1


def test_a_rule_expires_and_an_embargo_lifts_without_a_restart_or_a_stale_cached_list(root, embedder, clock):
    """The response cache is on: a kept list dies when a rule starts or expires."""
    with app_client(root, embedder, clock, list_cache_seconds=3600) as http:
        victim = related(http)[0]["article_id"]
        expires = clock.now + timedelta(minutes=10)
        assert add(http, kind="block", article_id=victim, expires_at=expires.isoformat()).status_code == 201
        assert victim not in [i["article_id"] for i in related(http)]
        clock.now = expires + timedelta(seconds=1)
        assert related(http)[0]["article_id"] == victim
        statuses = [r["status"] for r in http.get("/v1/rules", headers=AUTH).json()["rules"]]
        assert statuses == ["expired"]
        # A live article under embargo: in no list until its time, then listed.
        until = clock.now + timedelta(hours=1)
        article = {"id": "live-embargoed", "title": "Ceasefire signed in Geneva by Tarsova and Velmont",
                   "section": "world", "published_at": (clock.now - timedelta(minutes=5)).isoformat(),
                   "embargo_until": until.isoformat(), "tags": ["Tarsova", "Velmont"]}
        assert http.post("/v1/articles", json={"articles": [article]}, headers=AUTH).status_code == 200

        def shown() -> set[str]:
            body = {"text": article["title"], "k": 20}
            return ({i["article_id"] for i in http.post("/v1/more-like-this", json=body).json()["items"]}
                    | {i["article_id"] for i in related(http, k=20)})

        assert "live-embargoed" not in shown()
        clock.now = until
        assert "live-embargoed" in shown()


def test_rules_survive_a_reload_and_a_restart(root, embedder, clock):
    with app_client(root, embedder, clock) as http:
        assert add(http, kind="pin", article_id="demo-124", beside=ANCHOR, position=1).status_code == 201
        publish_copy(root, IndexStore(root).current())
        assert http.app.state.service.check_reload()
        assert related(http)[0]["article_id"] == "demo-124"
    with app_client(root, embedder, clock) as http:  # a restart
        assert related(http)[0]["article_id"] == "demo-124"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RECOMMENDER, *args], capture_output=True, text=True, timeout=600)


def test_rules_through_the_command_line(root):
    added = cli("rules", "add", "pin", "--article", "demo-124", "--beside", ANCHOR, "--position", "1", "--id",
                "p1", "--reason", "explainer", "--by", "desk", "--indexes", str(root))
    assert added.returncode == 0, added.stderr
    conflict = cli("rules", "add", "block", "--article", "demo-124", "--reason", "legal", "--indexes", str(root))
    assert conflict.returncode == 2 and "contradicts rule p1" in conflict.stderr
    shown = json.loads(cli("rules", "list", "--json", "--indexes", str(root)).stdout)
    assert [(r["id"], r["status"], r["author"]) for r in shown] == [("p1", "active", "desk")]
    listed = json.loads(cli("related", ANCHOR, "--k", "3", "--json", "--indexes", str(root)).stdout)
    assert (listed[0]["article_id"], listed[0]["label"]) == ("demo-124", "Chosen by the editors")
    check = json.loads(cli("rules", "check", ANCHOR, "--json", "--indexes", str(root)).stdout)
    assert check["related"]["added"][0]["article_id"] == "demo-124"
    assert cli("rules", "remove", "p1", "--reason", "done", "--indexes", str(root)).returncode == 0
    log = json.loads(cli("rules", "log", "--json", "--indexes", str(root)).stdout)
    assert [(e["action"], e["rule_id"]) for e in log] == [("remove", "p1"), ("add", "p1")]


def test_two_service_processes_sharing_postgresql_see_each_others_rules(demo_root, tmp_path, pg_url):
    roots = [service_root(demo_root, tmp_path / name) for name in ("a", "b")]
    ports = [free_port(), free_port()]
    processes = [serve(r, p, 1, RECOMMENDER_RULES=pg_url) for r, p in zip(roots, ports)]
    try:
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        for base, process, r in zip(bases, processes, roots):
            wait_ready(base, process, r.parent / "server.log")
        with httpx.Client(base_url=bases[0], timeout=10) as a, httpx.Client(base_url=bases[1], timeout=10) as b:
            assert add(a, kind="pin", article_id="demo-124", beside=ANCHOR, position=1, id="p1").status_code == 201
            started = time.monotonic()
            while related(b)[0]["article_id"] != "demo-124":
                assert time.monotonic() - started < 5.0, "replica b never saw the rule"
                time.sleep(0.02)
            seen = time.monotonic() - started
            # The other replica checks against the shared rules too.
            refused = add(b, kind="block", article_id="demo-124", beside=ANCHOR)
            assert refused.status_code == 422 and refused.json()["error"]["conflicts"] == ["p1"]
            assert b.delete("/v1/rules/p1", params={"reason": "done"}, headers=AUTH).status_code == 200
            started = time.monotonic()
            while related(a)[0]["article_id"] == "demo-124":
                assert time.monotonic() - started < 5.0
                time.sleep(0.02)
        print(f"replica b saw the rule after {seen:.3f} s")
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
