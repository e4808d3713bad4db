"""Impressions and clicks of online experiments, in the view counters' store (SQLite on one node, Redis across
replicas): counts per arm, widget, hour and position, and one row per clicked impression (its clicks so far, kept
a day) so a repeated click counts once. An impression itself stores nothing: its id says what it showed
(``experiments.impression_token``), so a click is credited to the arm (A/B) or the team (interleaving) that
showed the item from the id alone. The service writes impression counts in batches (``write``, from
``impression_buffer.py``), never one per request.

Count fields, one integer each per experiment (the same names in both stores):
``imp|ARM|WIDGET|HOUR`` and ``clk|ARM|WIDGET|HOUR`` (interleaving: ``imp|*|...`` for interleaved impressions and
``clk|ARM|...`` for clicks on that arm's team), ``pimp|ARM|POS`` and ``pclk|ARM|POS`` (0-based positions as
served), and for interleaving ``out|a|HOUR`` / ``out|b|HOUR`` / ``out|tie|HOUR``: impressions whose clicks favour
team a, team b, or neither, kept current as clicks arrive. A repeated click on one item of one impression counts
once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Protocol

from ..experiments.impression_token import ShownList
from ..sqlitedb import connect_wal, fetch_rows, json_rows, rows_select
from .impression_batch import Batch, CountKeys

log = logging.getLogger("recommender.service")
# A clicked impression's row outlives the day its id is credited for (``impression_token.CLICK_HOURS``), so a repeat
# within that day always finds it.
CLICKED_TTL_SECONDS = 26 * 3600
PURGE_EVERY_SECONDS = 60.0


def _outcome(tally: dict[str, int]) -> str | None:
    a, b = tally.get("a", 0), tally.get("b", 0)
    if not a and not b:
        return None
    return "a" if a > b else "b" if b > a else "tie"


def click_fields(shown: ShownList, clicked: dict, position: int) -> tuple[dict[str, int], dict]:
    """The count changes of a click on ``position`` of the list ``shown``, and its clicks so far updated
    (``clicked``: ``{"positions": [...], "tally": {"a": n, "b": n}}``, empty before the first; no changes: a
    repeat)."""
    if position in clicked.get("positions", []):
        return {}, clicked
    arm = shown.arms[position]
    changes = {f"clk|{arm}|{shown.widget}|{shown.hour}": 1, f"pclk|{arm}|{position}": 1}
    clicked = {**clicked, "positions": [*clicked.get("positions", []), position]}
    if shown.kind == "interleave":
        team = "a" if arm == shown.team_arms[0] else "b"
        tally = dict(clicked.get("tally", {}))
        before = _outcome(tally)
        tally[team] = tally.get(team, 0) + 1
        after = _outcome(tally)
        if before != after:
            if before is not None:
                changes[f"out|{before}|{shown.hour}"] = -1
            changes[f"out|{after}|{shown.hour}"] = changes.get(f"out|{after}|{shown.hour}", 0) + 1
        clicked["tally"] = tally
    return changes, clicked


class ExperimentCounts(Protocol):
    """Where experiment impressions and clicks are counted."""

    def write(self, batch: Batch) -> None:
        """Count a batch of impressions (one transaction or round trip)."""
        ...

    def served(self, keys: CountKeys, n: int = 1) -> None:
        """Count ``n`` impressions of lists with these count keys (``impression_batch.count_keys``)."""
        ...

    def clicked(self, shown: ShownList, position: int) -> bool:
        """Credit a click on ``position`` of the list ``shown`` to the arm or team that showed it; False when it
        was clicked there already."""
        ...

    def fields(self, experiment: str) -> dict[str, int]:
        """Every count field of an experiment."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class _WrittenAtOnce:
    """Impressions counted straight into the store (outside the service's buffer: tools and tests)."""

    def write(self, batch: Batch) -> None:
        raise NotImplementedError

    def served(self, keys: CountKeys, n: int = 1) -> None:  # noqa: D102 - on ExperimentCounts
        batch = Batch()
        batch.add(keys, n)
        self.write(batch)


class SQLiteExperimentCounts(_WrittenAtOnce):
    """Counts in the node's SQLite counter file (WAL; the workers of one node share it)."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._db = connect_wal(Path(path), 30, check_same_thread=False, isolation_level=None)
        # WAL with synchronous=NORMAL commits without an fsync each (as the view counters do); a power loss may
        # lose the last moments of counts, never corrupt them.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._purged_at = 0.0
        self._db.execute("CREATE TABLE IF NOT EXISTS experiment_counts (experiment TEXT NOT NULL, field TEXT NOT "
                         "NULL, count INTEGER NOT NULL, PRIMARY KEY (experiment, field))")
        self._db.execute("CREATE TABLE IF NOT EXISTS experiment_clicked (id TEXT PRIMARY KEY, at REAL NOT NULL, "
                         "clicked TEXT NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS experiment_clicked_at ON experiment_clicked (at)")
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'experiment_impressions'").fetchone():
            # Earlier versions stored every impression for a day; their ids are not credited any more.
            self._db.execute("DROP TABLE IF EXISTS experiment_impressions")
            log.warning("experiment counts: dropped %s's table of stored impressions (impression ids now carry "
                        "what they showed; clicks on lists served before the upgrade are not credited)", path)

    def _upsert(self, counts: str) -> None:
        """Add ``json_rows`` of (experiment, field, increment) to the counts (one statement step: ``sqlitedb``)."""
        self._db.execute(f"INSERT INTO experiment_counts {rows_select(3)} WHERE true ON CONFLICT (experiment, field) "
                         "DO UPDATE SET count = count + excluded.count", (counts,))

    def write(self, batch: Batch) -> None:  # noqa: D102
        counts = json_rows(batch.rows())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._upsert(counts)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def clicked(self, shown: ShownList, position: int) -> bool:  # noqa: D102
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT clicked FROM experiment_clicked WHERE id = ?", (shown.key,)).fetchone()
                changes, clicked = click_fields(shown, json.loads(row[0]) if row else {}, position)
                if changes:
                    self._upsert(json_rows((shown.experiment, f, n) for f, n in changes.items()))
                    self._db.execute("INSERT INTO experiment_clicked VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                                     "clicked = excluded.clicked", (shown.key, now, json.dumps(clicked)))
                if now - self._purged_at > PURGE_EVERY_SECONDS:  # expired rows leave once a minute
                    self._db.execute("DELETE FROM experiment_clicked WHERE at < ?", (now - CLICKED_TTL_SECONDS,))
                    self._purged_at = now
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return bool(changes)

    def fields(self, experiment: str) -> dict[str, int]:  # noqa: D102
        with self._lock:
            rows = fetch_rows(self._db, "field, count", "FROM experiment_counts WHERE experiment = ?", (experiment,))
        return {field: int(count) for field, count in rows}

    def close(self) -> None:  # noqa: D102
        self._db.close()


class RedisExperimentCounts(_WrittenAtOnce):
    """Counts in Redis (every replica counts into the same hash): ``HINCRBY`` on ``PREFIX:counts:NAME``, each
    clicked impression's clicks a key with a day's expiry, a click applied with ``WATCH``/``MULTI`` (retried on
    a race)."""

    def __init__(self, url: str, prefix: str = "recommender:experiments") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)
        self.prefix = prefix

    def write(self, batch: Batch) -> None:  # noqa: D102
        pipe = self.client.pipeline(transaction=True)
        for experiment, name, count in batch.rows():
            pipe.hincrby(f"{self.prefix}:counts:{experiment}", name, count)
        pipe.execute()

    def clicked(self, shown: ShownList, position: int) -> bool:  # noqa: D102
        import redis

        key = f"{self.prefix}:clicked:{shown.key}"
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    changes, clicked = click_fields(shown, json.loads(raw) if raw else {}, position)
                    if not changes:
                        return False
                    pipe.multi()
                    pipe.set(key, json.dumps(clicked), ex=CLICKED_TTL_SECONDS)
                    for field, count in changes.items():
                        pipe.hincrby(f"{self.prefix}:counts:{shown.experiment}", field, count)
                    pipe.execute()
                    return True
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
