"""Experiment lists off the request path (issue 18): impressions counted in the worker and written in batches, no
row per impression, a click credited by any worker from its id alone, a store that is down costs no impression,
and each arm's ranked list kept for the list cache's lifetime, dropped when the build or live state moves."""

from __future__ import annotations

import collections
import contextlib
import gc
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from fastapi.testclient import TestClient

from recommender.experiments.definition import Experiment
from recommender.experiments.impression_token import NONCES, experiment_tag
from recommender.experiments.interleaving import impression_rng, team_draft
from recommender.query import Recommender
from recommender.service.app import create_app
from recommender.service.experiment_counts import RedisExperimentCounts, SQLiteExperimentCounts
from recommender.service.experiment_store import ExperimentStore
from recommender.service.experiments import Experiments
from recommender.service.impression_batch import count_keys
from recommender.service.impression_buffer import BufferedCounts
from recommender.service.kept_lists import KeptLists
from recommender.service.rendering import rendered

from .service_helpers import AUTH, free_port, hidden_from_collector, make_settings

ANCHOR = "demo-001"
FRESH = {"name": "fresh", "settings": {"ranking": {"weight_freshness": 1.0, "weight_trending": 0.5}}}


HOUR = 490_000
KEYS = count_keys("test", "control", "related", HOUR, ("control",) * 3)


def kept_list(experiments, reader, now, key):
    """The response cache's fast path: the list of ``reader`` assembled from kept arm lists, or None."""
    return experiments.serve_kept(experiments.covering("related", reader, now), "related", reader, now, key)


def test_impressions_reach_the_store_only_when_flushed_and_all_at_once(tmp_path):
    worker = BufferedCounts(SQLiteExperimentCounts(tmp_path / "views.sqlite"))
    reader = SQLiteExperimentCounts(tmp_path / "views.sqlite")  # another process reading the same file
    for _ in range(50):
        worker.served(KEYS)
    assert reader.fields("test") == {} and worker.pending == 50
    assert worker.flush() == 50 and worker.pending == 0
    fields = reader.fields("test")
    assert fields[f"imp|control|related|{HOUR}"] == 50
    assert [fields[f"pimp|control|{p}"] for p in range(3)] == [50, 50, 50]
    assert worker.flush() == 0  # nothing twice
    worker.served(KEYS)
    assert worker.fields("test")[f"imp|control|related|{HOUR}"] == 51  # its own pending ones are written first
    worker.close()
    reader.close()


def test_a_flush_is_one_statement_and_stores_nothing_per_impression(tmp_path):
    """sqlite3 hands the GIL over around every statement step, and a busy event loop makes each hand-over wait its
    switch interval, so a flush is one statement however many impressions it counts; and since an impression id
    carries what its list showed, no row is stored per impression: the file does not grow with them."""
    store = SQLiteExperimentCounts(tmp_path / "views.sqlite")
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    sizes = []
    for n in (5, 20_000, 20_000):
        statements.clear()
        store.served(KEYS, n)
        assert len(statements) == 3, statements  # BEGIN, the counts, COMMIT
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes.append((tmp_path / "views.sqlite").stat().st_size)
    assert sizes[2] == sizes[1]  # 20,000 more impressions, not a byte more
    assert store.fields("test")["pimp|control|2"] == 40_005
    rows = store._db.execute("SELECT count(*) FROM experiment_counts").fetchone()[0]
    assert rows == 4  # one impression count and three positions
    store.close()


def test_a_click_is_credited_by_any_worker_at_once_and_a_repeat_counts_once(tmp_path):
    """A click can reach another worker or replica than the one that served its list, before that worker has
    flushed a thing: its id alone credits it, to the arm (A/B) or the team (interleaving) that showed the item;
    a repeated click on one item of one impression counts once, as does a forged one."""
    store = ExperimentStore(tmp_path / "experiments.sqlite")
    ab = store.create(Experiment.from_dict({"name": "test", "kind": "ab", "arms": [{"name": "control"}, FRESH]}),
                      "test", "").experiment
    mixed = store.create(Experiment.from_dict({"name": "mixed", "kind": "interleave",
                                               "arms": [{"name": "control"}, FRESH]}), "test", "").experiment
    serving = Experiments(store, BufferedCounts(SQLiteExperimentCounts(tmp_path / "views.sqlite")), _no_arms)
    other = Experiments(ExperimentStore(tmp_path / "experiments.sqlite"),
                        BufferedCounts(SQLiteExperimentCounts(tmp_path / "views.sqlite")), _no_arms)
    now = datetime.fromtimestamp(HOUR * 3600 + 60, UTC)
    signer = serving.shown.signer
    ab_id = signer.issue(signer.header(ab, "related", HOUR, ("fresh",) * 3, ("x", "y", "z")), NONCES.take())
    assert other.clicked(ab_id, "y", now) == "test"
    assert other.clicked(ab_id, "y", now) is None  # a repeat
    assert other.clicked(ab_id, "not-shown", now) is None
    assert serving.clicked(ab_id, "y", now) is None  # a repeat reaching yet another worker
    assert other.clicked(ab_id[:-1] + ("A" if ab_id[-1] != "A" else "B"), "z", now) is None  # forged
    fields = other.counts.fields("test")
    assert fields[f"clk|fresh|related|{HOUR}"] == 1 and fields["pclk|fresh|1"] == 1
    teams = ("control", "fresh", "fresh")
    for clicks in (("x",), ("y", "z"), ("x", "y")):  # a win for control, a win for fresh, a tie
        mixed_id = signer.issue(signer.header(mixed, "popular", HOUR, teams, ("x", "y", "z")), NONCES.take())
        for article_id in clicks:
            assert other.clicked(mixed_id, article_id, now) == "mixed"
    fields = other.counts.fields("mixed")
    assert (fields[f"out|a|{HOUR}"], fields[f"out|b|{HOUR}"], fields[f"out|tie|{HOUR}"]) == (1, 1, 1)
    assert fields[f"clk|control|popular|{HOUR}"] == 2 and fields[f"clk|fresh|popular|{HOUR}"] == 3
    late = datetime.fromtimestamp((HOUR + 25) * 3600 + 60, UTC)
    late_id = signer.issue(signer.header(ab, "related", HOUR, ("control",) * 3, ("x", "y", "z")), NONCES.take())
    assert other.clicked(late_id, "x", late) is None  # a list served over a day ago
    for experiments in (serving, other):
        experiments.counts.close()
        experiments.store.close()


def _no_arms(arm):
    raise AssertionError("no list is ranked here")


def test_a_counter_store_that_is_down_keeps_every_impression_pending_in_bounded_memory(tmp_path):
    """A failed flush loses nothing: the counts wait for the next one, taking memory per tuple of count keys (not
    per impression), and are written in full once the store is back."""
    down = RedisExperimentCounts(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    worker = BufferedCounts(down)
    for _ in range(3):
        worker.served(KEYS)
    with pytest.raises(redis.exceptions.ConnectionError):
        worker.flush()
    assert worker.pending == 3
    worker.served(KEYS, 100_000)
    with pytest.raises(redis.exceptions.ConnectionError):
        worker.flush()
    assert worker.pending == 100_003 and len(worker._pending.served) == 1  # one tally, however many
    worker.store = SQLiteExperimentCounts(tmp_path / "views.sqlite")  # the store is back
    assert worker.flush() == 100_003
    assert worker.fields("test")[f"imp|control|related|{HOUR}"] == 100_003
    worker.close()
    down.close()


def test_each_arms_list_is_kept_once_its_request_is_ranked_twice_then_ranked_no_more(tmp_path, demo_engine):
    store = ExperimentStore(tmp_path / "experiments.sqlite")
    definition = Experiment.from_dict({"name": "test", "kind": "interleave", "arms": [{"name": "control"}, FRESH]})
    store.create(definition, "test", "")
    generation = [0]
    arms = {arm.name: arm for arm in definition.arms}
    experiments = Experiments(store, BufferedCounts(SQLiteExperimentCounts(tmp_path / "views.sqlite")),
                              lambda arm: Recommender(demo_engine.stored, arm.build_config(demo_engine.config)),
                              list_cache_seconds=60, list_cache_entries=100, generation=lambda: generation[0])
    rankings: list[str] = []

    def compute(engine, article_id=ANCHOR):
        rankings.append(article_id)
        return rendered(engine.related(article_id, k=5, now=now), explain=False)

    now = demo_engine.clock()
    first, served = experiments.serve("related", "reader-1", now, demo_engine, compute, 5, (ANCHOR, 5))
    assert len(rankings) == 2 and kept_list(experiments, "reader-3", now, (ANCHOR, 5)) is None  # asked once: not kept
    assert not experiments.shown._merges  # nor their merge: no later request can show that pair of lists
    again, served_again = experiments.serve("related", "reader-2", now, demo_engine, compute, 5, (ANCHOR, 5))
    assert len(rankings) == 4  # asked again within a lifetime: ranked, and both arms' lists kept
    assert len(experiments.shown._merges) == 1  # and the merge of those two
    assert served is not None and served_again is not None and served.impression_id != served_again.impression_id
    own = {name: [r.article_id for r in Recommender(demo_engine.stored, arm.build_config(demo_engine.config))
                  .related(ANCHOR, k=5, now=now)] for name, arm in arms.items()}
    for results, record in ((first, served), (again, served_again)):  # each the team-draft of the arms' own lists
        merged, _ = team_draft(own["control"], own["fresh"], 5, impression_rng(record.impression_id))
        assert list(results.ids) == merged
    kept = kept_list(experiments, "reader-3", now, (ANCHOR, 5))  # the response cache's fast path
    assert kept is not None and kept[1].impression_id not in (served.impression_id, served_again.impression_id)
    merged, _ = team_draft(own["control"], own["fresh"], 5, impression_rng(kept[1].impression_id))
    assert list(kept[0].ids) == merged and len(rankings) == 4  # assembled from the kept lists, nothing ranked
    assert kept_list(experiments, "reader-3", now, ("demo-002", 5)) is None  # not kept: the app ranks
    for _ in range(3):  # kept merges are exact tuples of untracked things: collections stop walking them (each
        gc.collect()  # pass may untrack one level of nested tuples: a merge nests three)
    assert experiments.shown._merges and not any(gc.is_tracked(merge) for merge in experiments.shown._merges.values())
    merges = len(experiments.shown._merges)
    experiments.serve("related", "reader-1", now, demo_engine, lambda e: compute(e, "demo-002"), 5, ("demo-002", 5))
    assert len(rankings) == 6 and len(experiments.shown._merges) == merges  # another request: ranked, not kept
    generation[0] += 1  # a takedown, an upsert, a rule change or a new build: kept lists and sightings dropped
    for reader in ("reader-1", "reader-2"):
        experiments.serve("related", reader, now, demo_engine, compute, 5, (ANCHOR, 5))
    assert len(rankings) == 10 and kept_list(experiments, "reader-3", now, (ANCHOR, 5)) is not None
    assert experiments.counts.fields("test")["imp|*|related|" + str(int(now.timestamp() // 3600))] == 7
    experiments.counts.close()
    store.close()


def test_a_shown_lists_impressions_are_prepared_once_and_kept_with_the_list(tmp_path, demo_engine):
    """Every impression of one kept list in one hour shares its count keys and its id's signed header, kept on the
    list itself (so they leave with the list: nothing else holds the list or them); each has its own id."""
    store = ExperimentStore(tmp_path / "experiments.sqlite")
    store.create(Experiment.from_dict({"name": "test", "kind": "ab", "arms": [{"name": "control"}, FRESH]}),
                 "test", "")
    experiments = Experiments(store, BufferedCounts(SQLiteExperimentCounts(tmp_path / "views.sqlite")),
                              lambda arm: Recommender(demo_engine.stored, arm.build_config(demo_engine.config)),
                              list_cache_seconds=60, list_cache_entries=100)
    now = demo_engine.clock()

    def compute(engine):
        return rendered(engine.related(ANCHOR, k=5, now=now), explain=False)

    lists, ids, ranked = {}, set(), collections.Counter()
    for n in range(30):
        results, served = experiments.serve("related", f"reader-{n}", now, demo_engine, compute, 5, (ANCHOR, 5))
        ids.add(served.impression_id)
        ranked[served.arm] += 1
        if ranked[served.arm] == 1:
            continue  # an arm's first list is not kept (its request asked once); its second is
        lists.setdefault(served.arm, results)
        assert results is lists[served.arm]  # the arm's kept list itself
    assert set(lists) == {"control", "fresh"}
    for arm, results in lists.items():
        (key, prepared), = results.derived.items()
        assert key == ("test", "related", int(now.timestamp() // 3600))
        assert prepared[0][0] == ("test", f"imp|{arm}|related|{key[2]}")
    assert experiments.counts.pending == 30 and len(ids) == 30  # each impression its own id
    shown = {experiments.shown.signer.read(i, {experiment_tag("test"): store.get("test").experiment}).arms for i in ids}
    assert shown == {(arm,) * 5 for arm in ("control", "fresh")}
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
        assert through_app == ["related"] * 2  # the first two; the four others were assembled by the response cache
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
        assert through_app == ["related"] * 3  # other parameters: the app ranks them
        report = http.get("/v1/experiments/test", headers=AUTH).json()["report"]
        assert {r["arm"]: r["impressions"] for r in report["rows"]} == {"control": 7, "fresh": 7}
        templates = http.app.middleware_stack.templates  # the header templates: related with and without Origin
        assert len(templates) == 2 and hidden_from_collector(templates)  # full collections skip them


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
    experiments = Experiments(store, BufferedCounts(SQLiteExperimentCounts(tmp_path / "views.sqlite")),
                              lambda arm: Recommender(demo_engine.stored, arm.build_config(demo_engine.config)))
    clock = Clock()
    experiments.kept = KeptLists(60, 100, lambda: 0, timer=clock)
    rankings: list[float] = []
    now = demo_engine.clock()

    def compute(engine):
        rankings.append(clock.now)
        return rendered(engine.related(ANCHOR, k=5, now=now), explain=False)

    for _ in range(2):  # asked twice: kept
        first, served = experiments.serve("related", "reader-1", now, demo_engine, compute, 5, (ANCHOR, 5))
    assert served is not None and len(rankings) == 2
    clock.now += 44  # younger than 75% of the lifetime (the earliest a list is due): served as kept
    listed, _, due = kept_list(experiments, "reader-1", now, (ANCHOR, 5))
    assert listed.ids == first.ids and due == () and len(rankings) == 2
    clock.now += 14  # past 95% (the latest a list is due): still served as kept, and due once (not twice)
    listed, _, due = kept_list(experiments, "reader-1", now, (ANCHOR, 5))
    assert listed.ids == first.ids and due == (("test", served.arm, (ANCHOR, 5)),) and len(rankings) == 2
    assert kept_list(experiments, "reader-1", now, (ANCHOR, 5))[2] == ()
    experiments.refresh(due)  # what the response cache runs once the response is sent
    assert rankings == [1000.0, 1000.0, 1058.0]
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
        assert through_app == ["related"] * 2 and made_at() == {1000.0}  # both arms ranked twice, then assembled
        clock.now += 58
        assert http.get(f"/v1/articles/{ANCHOR}/related", params={"k": 5, "reader": "reader-004"}).status_code == 200
        deadline = time.monotonic() + 5
        while made_at() != {1058.0} and time.monotonic() < deadline:
            time.sleep(0.01)  # ranked on the event loop after the response
        assert made_at() == {1058.0} and through_app == ["related"] * 2  # ranked again, no request went to the app


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


def test_kept_lists_are_bounded_oldest_out_first_and_never_served_past_their_lifetime():
    clock = Clock()
    kept = KeptLists(60, 3, lambda: 0, timer=clock)
    listed = rendered([], explain=False)

    def put(key):
        kept.put(key, (listed, 5), kept.get(key)[1], lambda: (listed, 5))

    for key in "abcd":
        put(key)  # the first ranking leaves a sighting; the second keeps the list
        put(key)
        clock.now += 1
    assert [k for k in "abcd" if kept.lookup(k)[0] is not None] == ["b", "c", "d"]  # "a", the oldest, left
    put("b")  # kept again: the newest now
    put("e")
    put("e")
    assert [k for k in "abcde" if kept.lookup(k)[0] is not None] == ["b", "d", "e"]
    clock.now += 59.5  # "d" was kept 60.5 s ago, "b" and "e" 59.5 s ago
    assert [k for k in "bde" if kept.lookup(k)[0] is not None] == ["b", "e"]
    clock.now += 1
    assert all(kept.lookup(k)[0] is None for k in "bde") and kept._cache == {}


def test_a_list_is_kept_only_when_its_request_is_ranked_again_within_a_lifetime():
    """The long tail of pages asked for once fills nothing but sightings (ints, which the collector does not track):
    a list is kept on its request's second ranking within ``list_cache_seconds``, sightings are bounded and run out,
    and a new generation forgets them."""
    clock = Clock()
    generation = [0]
    kept = KeptLists(60, 3, lambda: generation[0], timer=clock)
    listed = rendered([], explain=False)

    def put(key):
        kept.put(key, (listed, 5), kept.get(key)[1], lambda: (listed, 5))
        return kept.lookup(key)[0] is not None

    assert not put("a") and kept._cache == {} and not gc.is_tracked(kept._asked)
    clock.now += 59
    assert put("a")  # again within the lifetime: kept
    assert not put("b")
    clock.now += 61
    assert not put("b")  # its sighting ran out: a sighting again, not kept
    for key in "cde":
        assert not put(key)
    assert len(kept._asked) == 3 and not put("b")  # "b", the oldest sighting, left for "e"
    assert put("e")
    generation[0] += 1
    assert not put("d")  # the sightings went with the generation
