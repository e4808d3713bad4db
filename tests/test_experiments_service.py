"""Online experiments in the service (issue 18): A/B assignment and interleaved merges served through the one query
path (checked against each arm's own recommender), clicks credited back through their impression id, the report
against a hand computation, the automatic stop, the CLI, and counts across two workers sharing Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from recommender.experiments.assignment import assign
from recommender.experiments.definition import Experiment
from recommender.experiments.interleaving import impression_rng, team_draft
from recommender.experiments.statistics import wilson_interval
from recommender.query import Recommender
from recommender.service.app import create_app

from .service_helpers import AUTH, ORIGIN, free_port, make_settings, serve, wait_ready

pytestmark = pytest.mark.slow
RECOMMENDER = str(Path(sys.executable).parent / "recommender")
ANCHOR = "demo-001"
CLICK_HEADERS = {"Sec-Fetch-Site": "same-origin", "Origin": ORIGIN}
FRESH = {"name": "fresh", "settings": {"ranking": {"weight_freshness": 1.0, "weight_trending": 0.5}}}


def experiment(kind: str, name: str = "test", **extra) -> dict:
    return {"name": name, "kind": kind, "arms": [{"name": "control"}, FRESH], **extra}


def readers(n: int) -> list[str]:
    return [f"reader-{i:05d}" for i in range(n)]


def related(http, reader: str | None, k: int = 5) -> dict:
    params = {"k": k, **({"reader": reader} if reader else {})}
    response = http.get(f"/v1/articles/{ANCHOR}/related", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def click(http, article_id: str, impression_id: str) -> None:
    response = http.post("/v1/events/click", json={"article_id": article_id, "widget": "related",
                                                   "impression_id": impression_id}, headers=CLICK_HEADERS)
    assert response.status_code == 204, response.text


def arm_engine(demo_engine, arm: dict) -> Recommender:
    """The arm's ranking as the Python API gives it: the oracle of what the service serves."""
    definition = Experiment.from_dict(experiment("ab")).arm(arm["name"])
    return Recommender(demo_engine.stored, definition.build_config(demo_engine.config), demo_engine.embedder)


@pytest.fixture
def http(root, embedder):
    # The response cache on (as shipped): an experiment's lists must bypass it.
    settings = make_settings(root, list_cache_seconds=60, click_burst=100_000)
    with TestClient(create_app(settings, embedder=embedder)) as client:
        yield client


def test_ab_readers_keep_their_arm_and_get_its_ranking(http, demo_engine):
    assert http.post("/v1/experiments", json=experiment("ab"), headers=AUTH).status_code == 201
    definition = Experiment.from_dict(experiment("ab"))
    engines = {"control": arm_engine(demo_engine, {"name": "control"}), "fresh": arm_engine(demo_engine, FRESH)}
    now = http.app.state.service.served.recommender.clock()
    seen: dict[str, int] = {}
    for reader in readers(20):
        first, again = related(http, reader), related(http, reader)
        arm = assign(definition, reader)
        assert first["arm"] == again["arm"] == arm and first["impression_id"] != again["impression_id"]
        want = [r.article_id for r in engines[arm].related(ANCHOR, k=5, now=now)]
        assert [i["article_id"] for i in first["items"]] == want, reader
        seen[arm] = seen.get(arm, 0) + 2
    assert set(seen) == {"control", "fresh"}
    assert engines["control"].related(ANCHOR, k=5, now=now) != engines["fresh"].related(ANCHOR, k=5, now=now)
    plain = related(http, None)
    assert "impression_id" not in plain  # no reader: the served build's list, outside the experiment
    # Clicks on some impressions, one repeated: the report matches the hand count.
    clicked: dict[str, int] = {}
    for reader in readers(6):
        served = related(http, reader)
        seen[served["arm"]] += 1
        click(http, served["items"][0]["article_id"], served["impression_id"])
        click(http, served["items"][0]["article_id"], served["impression_id"])  # a repeat counts once
        clicked[served["arm"]] = clicked.get(served["arm"], 0) + 1
    report = http.get("/v1/experiments/test", headers=AUTH).json()
    rows = {r["arm"]: r for r in report["report"]["rows"]}
    for arm, impressions in seen.items():
        assert rows[arm]["impressions"] == impressions and rows[arm]["clicks"] == clicked.get(arm, 0)
        low, high = wilson_interval(clicked.get(arm, 0), impressions)
        assert (rows[arm]["ctr_low"], rows[arm]["ctr_high"]) == pytest.approx((low, high))
        assert rows[arm]["position_ctr"][0] == pytest.approx(clicked.get(arm, 0) / impressions)
    assert report["verdict"].startswith(("not enough data yet", "arm "))


def test_a_rotated_key_keeps_outstanding_ids_credited_until_a_revoke(http, root):
    """Key rotation through the API: lists served after it carry ids signed with the new key only (also those the
    response cache assembles from kept lists), a click on an id served before it is still credited, and after a
    revoke only ids signed since are."""
    import sqlalchemy as sa

    from recommender.experiments.impression_token import ImpressionSigner, TokenError, experiment_tag

    assert http.post("/v1/experiments", json=experiment("ab"), headers=AUTH).status_code == 201
    reader, site = "reader-00001", {experiment_tag("test"): Experiment.from_dict(experiment("ab"))}

    def credited() -> int:
        return sum(r["clicks"] for r in http.get("/v1/experiments/test", headers=AUTH).json()["report"]["rows"])

    def clicked(served: dict) -> int:
        click(http, served["items"][0]["article_id"], served["impression_id"])
        return credited()

    before = [related(http, reader) for _ in range(3)]  # the third assembled from the kept arm list
    rotated = http.post("/v1/impression-keys", params={"reason": "yearly"}, headers=AUTH)
    assert rotated.status_code == 201 and rotated.json()["key"]["id"] == 2
    after = [related(http, reader) for _ in range(3)]
    engine = sa.create_engine(f"sqlite:///{root / 'experiments.sqlite'}")
    with engine.connect() as connection:
        keys = dict(connection.execute(sa.text("SELECT id, value FROM impression_keys")).all())
    engine.dispose()
    for served in after:
        assert ImpressionSigner(keys[2]).read(served["impression_id"], site).arms[0] == served["arm"]
        with pytest.raises(TokenError):
            ImpressionSigner(keys[1]).read(served["impression_id"], site)
    listed = http.get("/v1/impression-keys", headers=AUTH).json()["keys"]
    assert [(k["id"], k["signs"], k["verifies_until"] is None) for k in listed] == [(2, True, True), (1, False, False)]
    assert "value" not in listed[0]  # never the key itself
    assert clicked(before[0]) == 1 and clicked(after[0]) == 2  # the overlap: both keys verify
    assert http.post("/v1/impression-keys", params={"revoke": "true", "reason": "leaked"},
                     headers=AUTH).status_code == 201
    latest = related(http, reader)
    assert clicked(before[1]) == 2 and clicked(after[1]) == 2  # revoked: no longer credited
    assert clicked(latest) == 3
    log = http.get("/v1/experiments/test", headers=AUTH).json()["log"]
    assert log[0]["action"] == "create"  # an experiment's log holds its own entries, not the site's key changes
    # The command line, another process: the service signs with its key after the next poll.
    out = subprocess.run([RECOMMENDER, "experiment", "rotate-key", "--reason", "cli", "--indexes", str(root)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "impression key 4 made; key 3 verifies until" in out.stdout, out.stderr
    http.app.state.service.sync_live()
    served = related(http, reader)
    assert http.app.state.service.experiments.store.key_id == 4 and clicked(served) == 4


def test_metrics_show_each_workers_impression_backlog_and_its_flushes(root, embedder):
    """Impressions served inside an experiment wait in the worker's buffer, counted by a ``/metrics`` gauge that the
    background sync keeps current, until the flush writes them; each flush with impressions to write is timed."""
    from prometheus_client.parser import text_string_to_metric_families

    settings = make_settings(root, list_cache_seconds=60, experiment_flush_seconds=60, delta_poll_seconds=0.05)
    with TestClient(create_app(settings, embedder=embedder)) as http:
        def samples() -> dict[str, float]:
            text = http.get("/metrics").text
            return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
                    if s.name.startswith("recommender_experiment_")}

        def once(check) -> dict[str, float]:
            deadline = time.monotonic() + 10
            while not check(found := samples()) and time.monotonic() < deadline:
                time.sleep(0.05)
            return found

        assert http.post("/v1/experiments", json=experiment("ab"), headers=AUTH).status_code == 201
        for reader in readers(30):
            related(http, reader)
        waiting = once(lambda m: m.get("recommender_experiment_impressions_pending") == 30)
        assert waiting["recommender_experiment_impressions_pending"] == 30  # the flush is a minute away
        assert waiting.get("recommender_experiment_flush_seconds_count", 0) == 0
        service = http.app.state.service
        assert service.flush_impressions() == 30  # what the background loop calls
        assert service.flush_impressions() == 0  # nothing left: not timed as a flush
        written = samples()
        assert written["recommender_experiment_flush_seconds_count"] == 1
        assert written["recommender_experiment_flush_seconds_sum"] > 0
        assert written["recommender_experiment_impressions_pending"] == 0
        stored = service.impressions.store.fields("test")  # the store itself (the report would wait 1.5 flushes)
        assert sum(n for field, n in stored.items() if field.startswith("imp|")) == 30


def test_interleaved_lists_are_the_team_draft_of_the_two_arms_and_clicks_credit_the_team(http, demo_engine):
    assert http.post("/v1/experiments", json=experiment("interleave"), headers=AUTH).status_code == 201
    engines = {"control": arm_engine(demo_engine, {"name": "control"}), "fresh": arm_engine(demo_engine, FRESH)}
    now = http.app.state.service.served.recommender.clock()
    lists = {name: [r.article_id for r in engine.related(ANCHOR, k=5, now=now)] for name, engine in engines.items()}
    wins = {"control": 0, "fresh": 0}
    for reader in readers(12):
        served = related(http, reader)
        merged, teams = team_draft(lists["control"], lists["fresh"], 5, impression_rng(served["impression_id"]))
        assert [i["article_id"] for i in served["items"]] == merged and served["arm"] is None
        # Click the first item that only one arm listed (a position its team alone earned).
        position = next(p for p, a in enumerate(merged) if (a in lists["control"]) != (a in lists["fresh"]))
        click(http, merged[position], served["impression_id"])
        wins["control" if teams[position] == "a" else "fresh"] += 1
    report = http.get("/v1/experiments/test", headers=AUTH).json()["report"]
    rows = {r["arm"]: r for r in report["rows"]}
    assert {arm: rows[arm]["wins"] for arm in rows} == wins
    assert rows["control"]["impressions"] == rows["fresh"]["impressions"] == 12
    assert sum(r["clicks"] for r in rows.values()) == 12


def test_an_arm_clearly_worse_than_control_is_stopped_and_logged(http):
    guard = {"min_impressions": 30, "margin": 0.2, "confidence": 0.95}
    assert http.post("/v1/experiments", json=experiment("ab", guardrail=guard), headers=AUTH).status_code == 201
    definition = Experiment.from_dict(experiment("ab", guardrail=guard))
    service = http.app.state.service
    for reader in readers(200):
        served = related(http, reader)
        if served["arm"] == "control":  # control's readers click; the other arm's never do
            click(http, served["items"][1]["article_id"], served["impression_id"])
    stops = service.experiments.check_guardrails(service.served.recommender.clock())
    assert [(s.arm, s.experiment) for s in stops] == [("fresh", "test")]
    log = http.get("/v1/experiments/test", headers=AUTH).json()["log"]
    assert log[0]["action"] == "stop_arm" and log[0]["arm"] == "fresh" and log[0]["actor"] == "guardrail"
    fresh_reader = next(r for r in readers(200) if assign(definition, r) == "fresh")
    assert related(http, fresh_reader)["arm"] == "control"  # its readers see control now
    assert service.experiments.check_guardrails(service.served.recommender.clock()) == []  # once


def test_bad_definitions_are_422s_and_the_command_line_reports(http, root, tmp_path):
    for bad, words in (({"name": "x", "kind": "ab", "arms": [{"name": "a"}]}, "at least 2 arms"),
                       ({**experiment("ab"), "kind": "bandit"}, "kind must be one of"),
                       ({"name": "x", "kind": "ab", "arms": [{"name": "a"}, {"name": "b", "build_id": "nope"}]},
                        "not a published build"),
                       ({"name": "x", "kind": "ab", "arms": [{"name": "a"}, {"name": "b", "settings": {
                           "ranking": {"mmr_lambda": 7}}}]}, "mmr_lambda")):
        response = http.post("/v1/experiments", json=bad, headers=AUTH)
        assert response.status_code == 422 and words in response.json()["error"]["message"], bad
    assert http.post("/v1/experiments", json=experiment("ab"), headers=AUTH).status_code == 201
    assert http.post("/v1/experiments", json=experiment("ab"), headers=AUTH).status_code == 422  # names are once
    for reader in readers(4):
        served = related(http, reader)
        click(http, served["items"][0]["article_id"], served["impression_id"])
    out = subprocess.run([RECOMMENDER, "experiment", "report", "test", "--indexes", str(root)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "control" in out.stdout and "fresh" in out.stdout and "not enough data yet" in out.stdout
    stopped = subprocess.run([RECOMMENDER, "experiment", "stop", "test", "--reason", "done", "--indexes", str(root)],
                             capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 0, stopped.stderr
    http.app.state.service.experiments.store.sync()
    assert "impression_id" not in related(http, "reader-00001")  # ended: everyone sees the served build


def test_two_workers_count_into_one_redis_store(demo_root, tmp_path):
    from .service_helpers import service_root

    root = service_root(demo_root, tmp_path)
    name = f"redis-{uuid.uuid4().hex[:8]}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = serve(root, port, 2, "--views", "redis://127.0.0.1:6379/0", RECOMMENDER_CLICK_BURST="100000")
    try:
        wait_ready(base, process, tmp_path / "server.log")
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.post("/v1/experiments", json=experiment("ab", name=name), headers=AUTH).status_code == 201
            impressions: dict[str, int] = {}
            clicks: dict[str, int] = {}
            for i, reader in enumerate(readers(80)):
                # A new connection per list: the two workers accept them in turn.
                response = httpx.get(f"{base}/v1/articles/{ANCHOR}/related", params={"k": 5, "reader": reader})
                body = response.json()
                if "impression_id" not in body:  # a worker that has not polled the new experiment yet
                    continue
                impressions[body["arm"]] = impressions.get(body["arm"], 0) + 1
                if i % 3 == 0:
                    click(http, body["items"][0]["article_id"], body["impression_id"])
                    clicks[body["arm"]] = clicks.get(body["arm"], 0) + 1
            rows = {r["arm"]: r for r in http.get(f"/v1/experiments/{name}", headers=AUTH).json()["report"]["rows"]}
            assert {a: rows[a]["impressions"] for a in impressions} == impressions
            assert {a: rows[a]["clicks"] for a in clicks} == clicks
            assert sum(impressions.values()) >= 70
    finally:
        process.terminate()
        process.wait(timeout=30)
        import redis

        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        for key in client.scan_iter(match=f"recommender:experiments:counts:{name}"):
            client.delete(key)
    log = json.dumps(open(tmp_path / "server.log").read()[-2000:])
    assert "Traceback" not in log


def test_the_notebook_plots_the_running_result(http, root, monkeypatch):
    """notebooks/experiment.ipynb (committed without outputs) runs on a root with an experiment's counts: the
    verdict, the per-arm table and a plot."""
    import nbformat
    from nbclient import NotebookClient

    from .conftest import REPO

    path = REPO / "notebooks" / "experiment.ipynb"
    notebook = nbformat.read(path, as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in notebook.cells if c.cell_type == "code")
    assert http.post("/v1/experiments", json=experiment("ab"), headers=AUTH).status_code == 201
    for reader in readers(30):
        served = related(http, reader)
        if reader.endswith(("0", "3", "7")):
            click(http, served["items"][0]["article_id"], served["impression_id"])
    monkeypatch.setenv("EXPERIMENT_INDEXES", str(root))
    monkeypatch.setenv("EXPERIMENT_NAME", "test")
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "control" in text and ("not enough data yet" in text or "wins" in text)
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not any(o.output_type == "error" for o in outputs)
