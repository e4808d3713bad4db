"""View counter stores: SQLite (WAL) and Redis run the same suite against the real thing."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from recommender.service.counters import CountedEvent, RedisViewCounter, SQLiteViewCounter, open_counter

REDIS_URL = os.environ.get("RECOMMENDER_TEST_REDIS", "redis://127.0.0.1:6379/15")
BUCKET = 600
NOW = datetime(2026, 11, 27, 12, 5, 0, tzinfo=UTC)  # 12:00-12:10 bucket, middle 12:05


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.slow)])
def counter(request, tmp_path):
    """A fresh counter store of each kind (Redis keys under a unique prefix, deleted afterwards)."""
    if request.param == "sqlite":
        store = SQLiteViewCounter(tmp_path / "views.sqlite", bucket_seconds=BUCKET, retention_hours=1e6)
    else:
        store = RedisViewCounter(REDIS_URL, bucket_seconds=BUCKET, retention_hours=1e6,
                                 prefix=f"test:{uuid.uuid4().hex}")
    yield store
    if request.param == "redis":
        for key in store.client.scan_iter(match=f"{store.prefix}:*"):
            store.client.delete(key)
    store.close()


def test_counts_add_up_per_article(counter):
    """Counts of one article in one bucket add up; other articles are separate."""
    counter.add([CountedEvent("a", NOW, 3), CountedEvent("a", NOW, 2), CountedEvent("b", NOW)])
    assert counter.totals() == {"a": 5, "b": 1}
    assert counter.decayed_views(NOW, half_life_hours=6, window_hours=72) == pytest.approx({"a": 5.0, "b": 1.0})


def test_article_ids_of_any_characters_are_counted_as_sent(counter):
    """Ids travel to SQLite as one JSON parameter and come back as one JSON value (``sqlitedb.json_rows``): quotes,
    backslashes, commas, brackets, non-ASCII and number-like ids keep their exact text."""
    ids = ['say "hi"', "back\\slash", "a,b]", "café-ü-日本", "123", " spaced ", "null", "emoji-\U0001f600"]
    counter.add([CountedEvent(article_id, NOW, n + 1) for n, article_id in enumerate(ids)])
    assert counter.totals() == {article_id: n + 1 for n, article_id in enumerate(ids)}
    assert counter.decayed_views(NOW, 6, 72) == pytest.approx({a: float(n + 1) for n, a in enumerate(ids)})


def test_decay_is_applied_from_the_bucket_middle(counter):
    """A bucket whose middle is one half-life before now counts half; beyond the window it counts nothing."""
    counter.add([CountedEvent("a", NOW - timedelta(hours=6), 8), CountedEvent("b", NOW - timedelta(hours=30), 4)])
    decayed = counter.decayed_views(NOW, half_life_hours=6, window_hours=24)
    assert decayed == pytest.approx({"a": 4.0})


def test_views_and_clicks_are_counted_apart(counter):
    """Widget clicks never inflate page views (and are readable on their own)."""
    counter.add([CountedEvent("a", NOW, 2, "view"), CountedEvent("a", NOW, 7, "click")])
    assert counter.totals("view") == {"a": 2}
    assert counter.totals("click") == {"a": 7}
    assert counter.decayed_views(NOW, 6, 72, kind="click") == pytest.approx({"a": 7.0})


def test_a_batch_failing_inside_the_store_counts_nothing(counter):
    """A batch whose write fails in the store itself, after its first events were written, is rolled back whole
    (never half-applied). The failure is made inside the database: a SQLite trigger refusing one article, a Redis
    bucket key of the batch holding a string. (This test once failed the batch on the client, before any write.)"""
    counter.add([CountedEvent("a", NOW, 1)])
    later = NOW + timedelta(seconds=BUCKET)  # another bucket, written after the first event's
    if isinstance(counter, SQLiteViewCounter):
        import sqlite3

        with sqlite3.connect(counter.path) as db:
            db.execute("CREATE TRIGGER refuse BEFORE INSERT ON counts WHEN NEW.article_id = 'poison' "
                       "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        batch = [CountedEvent("a", NOW, 5), CountedEvent("b", later, 2), CountedEvent("poison", later, 1)]
    else:
        poison = f"{counter.prefix}:view:{int(later.timestamp()) // BUCKET}"
        counter.client.set(poison, "not a hash")
        batch = [CountedEvent("a", NOW, 5), CountedEvent("b", later, 2)]
    with pytest.raises(Exception, match="refused by the test|WRONGTYPE"):
        counter.add(batch)
    if not isinstance(counter, SQLiteViewCounter):
        counter.client.delete(poison)
    assert counter.totals() == {"a": 1}


def test_two_handles_on_one_store_see_each_others_counts(counter, tmp_path):
    """Several workers (or replicas) share the counts: a second handle reads what the first wrote."""
    if isinstance(counter, SQLiteViewCounter):
        other = SQLiteViewCounter(counter.path, bucket_seconds=BUCKET, retention_hours=1e6)
    else:
        other = RedisViewCounter(REDIS_URL, bucket_seconds=BUCKET, retention_hours=1e6, prefix=counter.prefix)
    counter.add([CountedEvent("a", NOW, 4)])
    other.add([CountedEvent("a", NOW, 1)])
    assert other.totals() == counter.totals() == {"a": 5}
    other.close()


@pytest.mark.slow  # Redis
def test_buckets_past_retention_expire(tmp_path):
    """Buckets older than the retention are gone: deleted in SQLite, expired by Redis itself."""
    now = datetime.now(UTC)
    old, recent = now - timedelta(hours=5), now - timedelta(minutes=5)
    prefix = f"test:{uuid.uuid4().hex}"
    stores = [SQLiteViewCounter(tmp_path / "v.sqlite", BUCKET, retention_hours=2),
              RedisViewCounter(REDIS_URL, BUCKET, retention_hours=2, prefix=prefix)]
    for store in stores:
        store.add([CountedEvent("old", old, 3), CountedEvent("new", recent, 1)])
        assert store.totals() == {"new": 1}
    redis_store = stores[1]
    keys = list(redis_store.client.scan_iter(match=f"{prefix}:*"))
    assert len(keys) == 1 and 0 < redis_store.client.ttl(keys[0]) <= 2 * 3600 + BUCKET
    redis_store.client.delete(*keys)
    for store in stores:
        store.close()


def test_open_counter_understands_the_settings(tmp_path):
    """`--views` values map to the stores; anything else is refused with the accepted forms."""
    assert isinstance(open_counter("sqlite", tmp_path), SQLiteViewCounter)
    assert open_counter("sqlite", tmp_path).path == tmp_path / "views.sqlite"
    assert open_counter(f"sqlite:///{tmp_path}/x.sqlite", tmp_path).path == tmp_path / "x.sqlite"
    assert isinstance(open_counter(REDIS_URL, tmp_path), RedisViewCounter)
    with pytest.raises(ValueError, match="redis://"):
        open_counter("memcached://x", tmp_path)


def _open_at_once(path, barrier, results) -> None:
    barrier.wait()
    try:
        SQLiteViewCounter(path).close()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(repr(exc))


def test_workers_opening_a_new_counter_file_at_once_all_succeed(tmp_path):
    """Service workers start together on a fresh root: every one opens views.sqlite (switching a new file to WAL
    used to answer 'database is locked' to the race's losers, which killed a worker at startup)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    outcomes = []
    for trial in range(8):
        barrier, results = context.Barrier(6), context.Queue()
        processes = [context.Process(target=_open_at_once, args=(tmp_path / f"views-{trial}.sqlite", barrier,
                                                                   results)) for _ in range(6)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        outcomes += [results.get(timeout=10) for _ in processes]
    assert outcomes == ["ok"] * len(outcomes)


def test_a_sqlite_too_old_for_the_json_rows_is_refused_by_name(tmp_path, monkeypatch):
    """The counter stores pass many rows as one JSON parameter (``->>``, SQLite 3.38+): an older SQLite is refused
    at open with its version and the fix, not at the first write."""
    import sqlite3

    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(RuntimeError, match=r"SQLite 3\.31\.1 is too old.*3\.38"):
        SQLiteViewCounter(tmp_path / "views.sqlite")
