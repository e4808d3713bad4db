"""Impressions and clicks of online experiments, in the view counters' store (SQLite on one node, Redis across
replicas): counts per arm, widget, hour and position, and each served impression kept for a day so a click that
comes back with its ``impression_id`` is credited to the arm (A/B) or the team (interleaving) that showed it.
The service writes impressions in batches prepared as they were served (``write``, from ``impression_buffer.py``;
``impression_batch.py``), never one per request.

Count fields, one integer each per experiment (the same names in both stores):
``imp|ARM|WIDGET|HOUR`` and ``clk|ARM|WIDGET|HOUR`` (interleaving: ``imp|*|...`` for interleaved impressions and
``clk|ARM|...`` for clicks on that arm's team), ``pimp|ARM|POS`` and ``pclk|ARM|POS`` (0-based positions as
served), and for interleaving ``out|a|HOUR`` / ``out|b|HOUR`` / ``out|tie|HOUR``: impressions whose clicks favour
team a, team b, or neither, kept current as clicks arrive. A repeated click on one item of one impression counts
once.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from ..sqlitedb import connect_wal, fetch_rows, json_rows, rows_select
from .impression_batch import Batch, Impression, Prepared

IMPRESSION_TTL_SECONDS = 24 * 3600
PURGE_EVERY_SECONDS = 60.0


def _outcome(tally: dict[str, int]) -> str | None:
    a, b = tally.get("a", 0), tally.get("b", 0)
    if not a and not b:
        return None
    return "a" if a > b else "b" if b > a else "tie"


def click_fields(record: dict, article_id: str) -> tuple[dict[str, int], dict]:
    """The count changes of a click on ``article_id`` of an impression record, and the updated record (empty
    changes: not an item of it, or clicked already)."""
    items = record["items"]
    if article_id not in items or article_id in record.get("clicked", []):
        return {}, record
    position = items.index(article_id)
    arm = record["arms"][position]
    hour = record["hour"]
    changes = {f"clk|{arm}|{record['widget']}|{hour}": 1, f"pclk|{arm}|{position}": 1}
    record = {**record, "clicked": [*record.get("clicked", []), article_id]}
    if record["kind"] == "interleave":
        team = "a" if arm == record["team_arms"][0] else "b"
        tally = dict(record.get("tally", {}))
        before = _outcome(tally)
        tally[team] = tally.get(team, 0) + 1
        after = _outcome(tally)
        if before != after:
            if before is not None:
                changes[f"out|{before}|{hour}"] = -1
            changes[f"out|{after}|{hour}"] = changes.get(f"out|{after}|{hour}", 0) + 1
        record["tally"] = tally
    return changes, record


@dataclass(frozen=True)
class Credit:
    """What a click did: whether its impression was found, and the experiment it was credited to (None: an
    unknown or expired impression, an item it did not show, or a repeat)."""

    known: bool
    experiment: str | None = None


class ExperimentCounts(Protocol):
    """Where experiment impressions and clicks are counted."""

    def write(self, batch: Batch) -> None:
        """Count a batch of impressions and keep them for attributing their clicks (one transaction or round
        trip)."""
        ...

    def served_many(self, impressions: Sequence[Impression]) -> None:
        """``write`` impressions served now."""
        ...

    def served_prepared(self, impression_id: str, prepared: Prepared) -> None:
        """``write`` one impression of a prepared list, served now."""
        ...

    def clicked(self, impression_id: str, article_id: str) -> Credit:
        """Credit a click to the arm or team that showed the item."""
        ...

    def fields(self, experiment: str) -> dict[str, int]:
        """Every count field of an experiment."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class _WrittenAtOnce:
    """Impressions served straight into the store (outside the service's buffer: tools and tests)."""

    def write(self, batch: Batch) -> None:
        raise NotImplementedError

    def served_many(self, impressions: Sequence[Impression]) -> None:  # noqa: D102 - on ExperimentCounts
        self.write(Batch.of(impressions))

    def served_prepared(self, impression_id: str, prepared: Prepared) -> None:  # noqa: D102
        batch = Batch()
        batch.add_prepared(impression_id, prepared, time.time())
        self.write(batch)


class SQLiteExperimentCounts(_WrittenAtOnce):
    """Counts in the node's SQLite counter file (WAL; the workers of one node share it)."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._db = connect_wal(Path(path), 30, check_same_thread=False, isolation_level=None)
        # One write per impression: WAL with synchronous=NORMAL commits without an fsync each (as the view
        # counters do); a power loss may lose the last moments of counts, never corrupt them.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._purged_at = 0.0
        self._db.execute("CREATE TABLE IF NOT EXISTS experiment_counts (experiment TEXT NOT NULL, field TEXT NOT "
                         "NULL, count INTEGER NOT NULL, PRIMARY KEY (experiment, field))")
        self._db.execute("CREATE TABLE IF NOT EXISTS experiment_impressions (id TEXT PRIMARY KEY, at REAL NOT NULL, "
                         "record TEXT NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS experiment_impressions_at ON experiment_impressions (at)")

    def _add(self, experiment: str, changes: dict[str, int]) -> None:
        self._upsert(json_rows((experiment, f, n) for f, n in changes.items()))

    def _upsert(self, counts: str) -> None:
        """Add ``json_rows`` of (experiment, field, increment) to the counts (one statement step: ``sqlitedb``)."""
        self._db.execute(f"INSERT INTO experiment_counts {rows_select(3)} WHERE true ON CONFLICT (experiment, field) "
                         "DO UPDATE SET count = count + excluded.count", (counts,))

    def write(self, batch: Batch) -> None:  # noqa: D102
        counts, records = (json_rows(rows) for rows in batch.rows())
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._upsert(counts)
                self._db.execute(f"INSERT INTO experiment_impressions {rows_select(3)}", (records,))
                if now - self._purged_at > PURGE_EVERY_SECONDS:  # expired impressions leave once a minute
                    self._db.execute("DELETE FROM experiment_impressions WHERE at < ?",
                                     (now - IMPRESSION_TTL_SECONDS,))
                    self._purged_at = now
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def clicked(self, impression_id: str, article_id: str) -> Credit:  # noqa: D102
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT record FROM experiment_impressions WHERE id = ?",
                                       (impression_id,)).fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return Credit(False)
                changes, record = click_fields(json.loads(row[0]), article_id)
                if changes:
                    self._add(record["experiment"], changes)
                    self._db.execute("UPDATE experiment_impressions SET record = ? WHERE id = ?",
                                     (json.dumps(record), impression_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Credit(True, record["experiment"] if changes else None)

    def fields(self, experiment: str) -> dict[str, int]:  # noqa: D102
        with self._lock:
            rows = fetch_rows(self._db, "field, count", "FROM experiment_counts WHERE experiment = ?", (experiment,))
        return {field: int(count) for field, count in rows}

    def close(self) -> None:  # noqa: D102
        self._db.close()


class RedisExperimentCounts(_WrittenAtOnce):
    """Counts in Redis (every replica counts into the same hash): ``HINCRBY`` on ``PREFIX:counts:NAME``, each
    impression a key with a day's expiry, a click applied with ``WATCH``/``MULTI`` (retried on a race)."""

    def __init__(self, url: str, prefix: str = "recommender:experiments") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)
        self.prefix = prefix

    def write(self, batch: Batch) -> None:  # noqa: D102
        counts, records = batch.rows()
        pipe = self.client.pipeline(transaction=True)
        for experiment, name, count in counts:
            pipe.hincrby(f"{self.prefix}:counts:{experiment}", name, count)
        for impression_id, _, record in records:
            pipe.set(f"{self.prefix}:impression:{impression_id}", record, ex=IMPRESSION_TTL_SECONDS)
        pipe.execute()

    def clicked(self, impression_id: str, article_id: str) -> Credit:  # noqa: D102
        import redis

        key = f"{self.prefix}:impression:{impression_id}"
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        return Credit(False)
                    changes, record = click_fields(json.loads(raw), article_id)
                    if not changes:
                        return Credit(True)
                    pipe.multi()
                    pipe.set(key, json.dumps(record), keepttl=True)
                    for field, count in changes.items():
                        pipe.hincrby(f"{self.prefix}:counts:{record['experiment']}", field, count)
                    pipe.execute()
                    return Credit(True, str(record["experiment"]))
                except redis.WatchError:
                    continue

    def fields(self, experiment: str) -> dict[str, int]:  # noqa: D102
        return {str(f): int(n) for f, n in self.client.hgetall(f"{self.prefix}:counts:{experiment}").items()}

    def close(self) -> None:  # noqa: D102
        self.client.close()


def open_experiment_counts(spec: str, default_dir: Path) -> ExperimentCounts:
    """The experiment counts in the store a ``--views`` setting names (see ``counters.open_counter``)."""
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisExperimentCounts(spec)
    if spec == "sqlite":
        return SQLiteExperimentCounts(default_dir / "views.sqlite")
    if spec.startswith("sqlite:///"):
        return SQLiteExperimentCounts(Path(spec.removeprefix("sqlite:///")))
    raise ValueError(f"views store {spec!r} is not understood: use 'sqlite', 'sqlite:///path/views.sqlite' or "
                     f"'redis://host:6379/0'")
