"""Experiment lists off the request path (issue 18): impressions kept in the worker and written in batches, a click
served by another worker credited once that worker flushes, a store that is down costs no impression until the
bound, and each arm's ranked list kept for the list cache's lifetime, dropped when the build or live state moves."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from recommender.experiments.definition import Experiment
from recommender.experiments.interleaving import impression_rng, new_impression_id, team_draft
from recommender.query import Recommender
from recommender.service.app import create_app
from recommender.service.experiment_counts import RedisExperimentCounts, SQLiteExperimentCounts
from recommender.service.experiment_store import ExperimentStore
from recommender.service.experiments import Experiments
from recommender.service.impression_batch import Batch, Impression, Prepared, count_keys
from recommender.service.impression_buffer import BufferedCounts
from recommender.service.kept_lists import KeptLists
from recommender.service.rendering import rendered

from .service_helpers import AUTH, free_port, make_settings

ANCHOR = "demo-001"
FRESH = {"name": "fresh", "settings": {"ranking": {"weight_freshness": 1.0, "weight_trending": 0.5}}}


def impression(n: int, experiment: str = "test") -> Impression:
    return Impression(f"impression-{n:04d}", experiment, "ab", "related", "control", ("a", "b", "c"),
                      ("control",) * 3, 490_000)


def kept_list(experiments, reader, now, key):
    """The response cache's fast path: the list of ``reader`` assembled from kept arm lists, or None."""
    return experiments.serve_kept(experiments.covering("related", reader, now), "related", reader, now, key)


def test_impressions_reach_the_store_only_when_flushed_and_all_at_once(tmp_path):
    worker = BufferedCounts(SQLiteExperimentCounts(tmp_path / "views.sqlite"), flush_seconds=0.2)
    reader = SQLiteExperimentCounts(tmp_path / "views.sqlite")  # another process reading the same file
    worker.served_many([impression(n) for n in range(50)])
    assert reader.fields("test") == {} and worker.pending == 50
    assert worker.flush() == 50 and worker.pending == 0
    fields = reader.fields("test")
    assert fields["imp|control|related|490000"] == 50
    assert [fields[f"pimp|control|{p}"] for p in range(3)] == [50, 50, 50]
    assert worker.flush() == 0  # nothing twice
    worker.served_many([impression(50)])
    assert worker.fields("test")["imp|control|related|490000"] == 51  # its own pending ones are written first
    worker.close()
    reader.close()


def test_a_prepared_impression_is_stored_as_the_impression_itself():
    """A hot list's impressions share their record but for the id (``Prepared``): what is stored is byte for byte
    the record of the impression served, for both kinds, and counts the same keys."""
    for served in (Impression(new_impression_id(), "test", "ab", "related", "control", ('say "hi"', "é"),
                              ("control",) * 2, 490_000),
                   Impression(new_impression_id(), "test", "interleave", "popular", "*", ("a", "b", "c"),
                              ("fresh", "control", "fresh"), 490_001, ("control", "fresh"))):
        prepared = Prepared.of(served)
        assert prepared.record(served.id, 12.5) == (served.id, 12.5, orjson.dumps(served).decode(),
                                                    count_keys(served))
        batch = Batch()
        batch.add_prepared(served.id, prepared, 12.5)
        assert batch.changes() == Batch.of([served]).changes()


def test_a_flush_is_one_statement_step_per_table_however_many_impressions_it_holds(tmp_path):
    """sqlite3 hands the GIL over around every statement step, and a busy event loop makes each hand-over wait its
    switch interval: one step per impression put a 3,000-impression flush at seconds (benchmarks/RESULTS.md). The
    statements SQLite runs for one flush are counted: the same few for 5 impressions as for 2,000. Ids of any
    characters are written and credited as served."""
    store = SQLiteExperimentCounts(tmp_path / "views.sqlite")
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    for n in (5, 2000):
        statements.clear()
        store.served_many([Impression(f"imp-{n}-{i:05d}", "test", "ab", "related", "control",
                                      ('say "hi"', "back\\slash", "café-日本"), ("control",) * 3, 490_000)
                           for i in range(n)])
        assert len(statements) <= 5, statements[:8]  # BEGIN, the counts, the impressions, (the purge), COMMIT
    fields = store.fields("test")
    assert fields["imp|control|related|490000"] == 2005 and fields["pimp|control|2"] == 2005
    credit = store.clicked("imp-2000-01999", "café-日本")
    assert credit.known and credit.experiment == "test"
    assert store.fields("test")["pclk|control|2"] == 1
    assert store.clicked("imp-2000-01999", 'say "hi"').experiment == "test"
    assert store.fields("test")["pclk|control|0"] == 1
    store.close()


def test_a_click_that_reaches_another_worker_before_the_flush_is_credited(tmp_path):
    serving = BufferedCounts(SQLiteExperimentCounts(tmp_path / "views.sqlite"), flush_seconds=0.4)
    clicked = BufferedCounts(SQLiteExperimentCounts(tmp_path / "views.sqlite"), flush_seconds=0.4)
    serving.served_many([impression(1)])
    flusher = threading.Timer(0.2, serving.flush)  # the serving worker's background loop, a moment later
    flusher.start()
    credit = clicked.clicked("impression-0001", "b")
    flusher.join()
    assert credit.known and credit.experiment == "test"
    assert clicked.fields("test")["clk|control|related|490000"] == 1
    assert clicked.fields("test")["pclk|control|1"] == 1
    unknown = clicked.clicked("impression-9999", "b")  # never served anywhere: looked up twice, then not credited
    assert not unknown.known and unknown.experiment is None
    serving.close()
    clicked.close()


def test_a_counter_store_that_is_down_keeps_impressions_pending_up_to_the_bound():
    down = RedisExperimentCounts(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    worker = BufferedCounts(down, flush_seconds=0.1, max_pending=5)
    worker.served_many([impression(n) for n in range(3)])
    with pytest.raises(redis.exceptions.ConnectionError):
        worker.flush()
    assert worker.pending == 3 and worker.given_up == 0  # kept for the next round
    worker.served_many([impression(n) for n in range(3, 7)])
    with pytest.raises(redis.exceptions.ConnectionError):
        worker.flush()
    assert worker.pending == 5 and worker.given_up == 2  # the two oldest are given up, and counted
    assert [r[0] for r in worker._pending.records] == [f"impression-{n:04d}" for n in range(2, 7)]
    assert worker._pending.changes()[("test", "imp|control|related|490000")] == 5  # their counts left with them
    assert worker._pending.changes()[("test", "pimp|control|2")] == 5


def test_each_arms_list_is_ranked_once_while_it_is_kept(tmp_path, demo_engine):
    store = ExperimentStore(tmp_path / "experiments.sqlite")
    definition = Experiment.from_dict({"name": "test", "kind": "interleave", "arms": [{"name": "control"}, FRESH]})
    store.create(definition, "test", "")
    generation = [0]
    arms = {arm.name: arm for arm in definition.arms}
    experiments = Experiments(store, BufferedCounts(SQLiteExperimentCounts(tmp_path / "views.sqlite"), 0.2),
                              lambda arm: Recommender(demo_engine.stored, arm.build_config(demo_engine.config)),
                              list_cache_seconds=60, list_cache_entries=100, generation=lambda: generation[0])
    rankings: list[str] = []

    def compute(engine, article_id=ANCHOR):
        rankings.append(article_id)
        return rendered(engine.related(article_id, k=5, now=now), explain=False)

    now = demo_engine.clock()
    first, served = experiments.serve("related", "reader-1", now, demo_engine, compute, 5, (ANCHOR, 5))
    again, served_again = experiments.serve("related", "reader-2", now, demo_engine, compute, 5, (ANCHOR, 5))
    assert len(rankings) == 2  # one ranking per arm, then both kept
    assert served is not None and served_again is not None and served.impression_id != served_again.impression_id
    own = {name: [r.article_id for r in Recommender(demo_engine.stored, arm.build_config(demo_engine.config))
                  .related(ANCHOR, k=5, now=now)] for name, arm in arms.items()}
    for results, record in ((first, served), (again, served_again)):  # each the team-draft of the arms' own lists
        merged, _ = team_draft(own["control"], own["fresh"], 5, impression_rng(record.impression_id))
        assert list(results.ids) == merged
    kept = kept_list(experiments, "reader-3", now, (ANCHOR, 5))  # the response cache's fast path
    assert kept is not None and kept[1].impression_id not in (served.impression_id, served_again.impression_id)
    merged, _ = team_draft(own["control"], own["fresh"], 5, impression_rng(kept[1].impression_id))
    assert list(kept[0].ids) == merged and len(rankings) == 2  # assembled from the kept lists, nothing ranked
    assert kept_list(experiments, "reader-3", now, ("demo-002", 5)) is None  # not kept: the app ranks
    experiments.serve("related", "reader-1", now, demo_engine, lambda e: compute(e, "demo-002"), 5, ("demo-002", 5))
    assert len(rankings) == 4  # another request: ranked
    generation[0] += 1  # a takedown, an upsert, a rule change or a new build
    experiments.serve("related", "reader-1", now, demo_engine, compute, 5, (ANCHOR, 5))
    assert len(rankings) == 6
    assert experiments.counts.fields("test")["imp|*|related|" + str(int(now.timestamp() // 3600))] == 5
    experiments.counts.close()
    store.close()


def test_a_shown_lists_impression_record_is_prepared_once_and_kept_with_the_list(tmp_path, demo_engine):
    """Every impression of one kept list in one hour shares its prepared record, kept on the list itself (so it
    leaves with the list: nothing else holds the list or the record)."""
    store = ExperimentStore(tmp_path / "experiments.sqlite")
    store.create(Experiment.from_dict({"name": "test", "kind": "ab", "arms": [{"name": "control"}, FRESH]}),
                 "test", "")
    experiments = Experiments(store, BufferedCounts(SQLiteExperimentCounts(tmp_path / "views.sqlite"), 0.2),
                              lambda arm: Recommender(demo_engine.stored, arm.build_config(demo_engine.config)),
                              list_cache_seconds=60, list_cache_entries=100)
    now = demo_engine.clock()

    def compute(engine):
        return rendered(engine.related(ANCHOR, k=5, now=now), explain=False)

    shown = {}
    for n in range(30):
        results, served = experiments.serve("related", f"reader-{n}", now, demo_engine, compute, 5, (ANCHOR, 5))
        shown.setdefault(served.arm, results)
        assert results is shown[served.arm]  # the arm's kept list itself
    assert set(shown) == {"control", "fresh"}
    for arm, results in shown.items():
        (key, prepared), = results.derived.items()
        assert key == ("test", "related", int(now.timestamp() // 3600), (arm,) * len(results))
        assert prepared.keys[0] == ("test", f"imp|{arm}|related|{key[2]}")
    pending = experiments.counts._pending.records
    assert len(pending) == 30 and len({r[0] for r in pending}) == 30  # each impression its own id and record
    experiments.counts.close()
    store.close()


@contextlib.contextmanager
def experiment_app(root, embedder, kind: str) -> Iterator[TestClient]:
    """The app, lists kept 60 s, with experiment "test" running: control against the freshness arm."""
    with TestClient(create_app(make_settings(root, list_cache_seconds=60), embedder=embedder)) as http:
        definition = {"name": "test", "kind": kind, "arms": [{"name": "control"}, FRESH]}
        assert http.post("/v1/experiments", json=definition, headers=AUTH).status_code == 201
        yield http


def test_a_takedown_leaves_the_kept_experiment_lists_at_once(root, embedder):
    with experiment_app(root, embedder, "ab") as http:
        readers = [f"reader-{i:03d}" for i in range(8)]
        before = {r: http.get(f"/v1/articles/{ANCHOR}/related", params={"k": 5, "reader": r}).json()
                  for r in readers}
        assert all("impression_id" in body for body in before.values())
        gone = before[readers[0]]["items"][0]["article_id"]
        assert http.delete(f"/v1/articles/{gone}", headers=AUTH).status_code == 200
        for reader in readers:
            after = http.get(f"/v1/articles/{ANCHOR}/related", params={"k": 5, "reader": reader}).json()
            assert gone not in [i["article_id"] for i in after["items"]], reader
        deadline = time.monotonic() + 5
        while http.app.state.service.impressions.pending and time.monotonic() < deadline:
            time.sleep(0.05)  # the background loop writes them within one flush interval
        assert http.app.state.service.impressions.pending == 0


def test_kept_experiment_lists_are_served_by_the_response_cache_as_the_app_serves_them(root, embedder):
    """Once both arms' lists of a request are kept, the response cache assembles the interleaved list itself: the
    same body shape, the CORS headers of the app's answer, a new impression each time, and every impression
    counted; a new request (other parameters) still goes to the app."""
    from recommender.experiments.interleaving import impression_rng, team_draft

    from .service_helpers import ORIGIN

    settings = make_settings(root, list_cache_seconds=60)
    definition = {"name": "test", "kind": "interleave", "arms": [{"name": "control"}, FRESH]}
    with TestClient(create_app(settings, embedder=embedder)) as http:
        assert http.post("/v1/experiments", json=definition, headers=AUTH).status_code == 201
        service = http.app.state.service
        through_app = []
        serve = service.experiments.serve

        def counted(*args, **kwargs):  # a spy on the route's call: which requests reached the app
            through_app.append(args[0])
            return serve(*args, **kwargs)

        service.experiments.serve = counted
        bodies = []
        for n in range(6):
            response = http.get(f"/v1/articles/{ANCHOR}/related", params={"k": 5, "reader": f"reader-{n:03d}"},
                                headers={"Origin": ORIGIN})
            assert response.status_code == 200 and response.headers["access-control-allow-origin"] == ORIGIN
            assert int(response.headers["content-length"]) == len(response.content)
            bodies.append(response.json())
        assert through_app == ["related"]  # the first; the five others were assembled by the response cache
        assert len({b["impression_id"] for b in bodies}) == 6
        assert all(set(b) == {"build_id", "items", "fallback", "impression_id", "experiment", "arm"} for b in bodies)
        engine = service.served.recommender
        now = engine.clock()
        lists = {arm: [r.article_id for r in Recommender(engine.stored, Experiment.from_dict(definition).arm(arm)
                                                         .build_config(engine.config)).related(ANCHOR, k=5, now=now)]
                 for arm in ("control", "fresh")}
        for b in bodies:  # the first from the app, the others assembled by the response cache: all the same merge
            merged, _ = team_draft(lists["control"], lists["fresh"], 5, impression_rng(b["impression_id"]))
            assert [i["article_id"] for i in b["items"]] == merged
        assert bodies[1]["items"][0].keys() == bodies[0]["items"][0].keys()  # rendered alike (no explain fields)
        assert http.get(f"/v1/articles/{ANCHOR}/related", params={"k": 4, "reader": "reader-000"}).status_code == 200
        assert through_app == ["related", "related"]  # other parameters: the app ranks (and keeps) them
        report = http.get("/v1/experiments/test", headers=AUTH).json()["report"]
        assert {r["arm"]: r["impressions"] for r in report["rows"]} == {"control": 7, "fresh": 7}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_kept_list_past_its_due_age_is_ranked_again_after_the_response_never_served_past_its_lifetime(
        tmp_path, demo_engine):
    store = ExperimentStore(tmp_path / "experiments.sqlite")
    store.create(Experiment.from_dict({"name": "test", "kind": "ab", "arms": [{"name": "control"}, FRESH]}),
                 "test", "")
    experiments = Experiments(store, BufferedCounts(SQLiteExperimentCounts(tmp_path / "views.sqlite"), 0.2),
                              lambda arm: Recommender(demo_engine.stored, arm.build_config(demo_engine.config)))
    clock = Clock()
    experiments.kept = KeptLists(60, 100, lambda: 0, timer=clock)
    rankings: list[float] = []
    now = demo_engine.clock()

    def compute(engine):
        rankings.append(clock.now)
        return rendered(engine.related(ANCHOR, k=5, now=now), explain=False)

    first, served = experiments.serve("related", "reader-1", now, demo_engine, compute, 5, (ANCHOR, 5))
    assert served is not None and len(rankings) == 1
    clock.now += 44  # younger than 75% of the lifetime (the earliest a list is due): served as kept
    listed, _, due = kept_list(experiments, "reader-1", now, (ANCHOR, 5))
    assert listed.ids == first.ids and due == () and len(rankings) == 1
    clock.now += 14  # past 95% (the latest a list is due): still served as kept, and due once (not twice)
    listed, _, due = kept_list(experiments, "reader-1", now, (ANCHOR, 5))
    assert listed.ids == first.ids and due == (("test", served.arm, (ANCHOR, 5)),) and len(rankings) == 1
    assert kept_list(experiments, "reader-1", now, (ANCHOR, 5))[2] == ()
    experiments.refresh(due)  # what the response cache runs once the response is sent
    assert rankings == [1000.0, 1058.0]
    clock.now += 59  # the new list is 59 s old: kept (and due); the first would have run out 57 s ago
    assert kept_list(experiments, "reader-1", now, (ANCHOR, 5))[2] != ()
    clock.now += 2  # nobody asked in time: it ran out, the app ranks the next request
    assert kept_list(experiments, "reader-1", now, (ANCHOR, 5)) is None
    experiments.counts.close()
    store.close()


def test_the_response_cache_ranks_due_experiment_lists_after_its_response(root, embedder):
    with experiment_app(root, embedder, "interleave") as http:
        service = http.app.state.service
        clock = Clock()
        kept = service.experiments.kept = KeptLists(60, 100, service.list_generation, timer=clock)
        through_app: list[str] = []
        serve = service.experiments.serve
        service.experiments.serve = lambda *a, **kw: (through_app.append(a[0]), serve(*a, **kw))[1]

        def made_at() -> set[float]:  # when each kept list was ranked, from when it is due (45-57 s later)
            return {next(t for t in (1000.0, 1058.0) if 45 <= entry[1] - t <= 57) for entry in kept._cache.values()}

        for n in range(3):
            response = http.get(f"/v1/articles/{ANCHOR}/related", params={"k": 5, "reader": f"reader-{n:03d}"})
            assert response.status_code == 200
        assert through_app == ["related"] and made_at() == {1000.0}  # both arms ranked once, then assembled
        clock.now += 58
        assert http.get(f"/v1/articles/{ANCHOR}/related", params={"k": 5, "reader": "reader-004"}).status_code == 200
        deadline = time.monotonic() + 5
        while made_at() != {1058.0} and time.monotonic() < deadline:
            time.sleep(0.01)  # ranked on the event loop after the response
        assert made_at() == {1058.0} and through_app == ["related"]  # ranked again, no request went to the app


def test_arms_are_made_by_the_background_sync_never_by_a_request(root, embedder):
    """Making an arm's recommender takes 0.5-1 s at 100k articles; a request that did it stalled its worker."""
    with experiment_app(root, embedder, "interleave") as http:
        experiments = http.app.state.service.experiments
        deadline = time.monotonic() + 10
        while len(experiments.arms.all()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the sync loop makes them within a poll
        assert len(experiments.arms.all()) == 2
        made_by_requests: list[str] = []
        loader = experiments.arms.loader
        experiments.arms.loader = lambda arm: (made_by_requests.append(arm.name), loader(arm))[1]
        response = http.get(f"/v1/articles/{ANCHOR}/related", params={"k": 5, "reader": "reader-000"})
        assert response.status_code == 200 and "impression_id" in response.json()
        assert made_by_requests == []
