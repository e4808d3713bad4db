"""View counters: time-bucketed page-view and click counts in SQLite (WAL, one node) or Redis (many replicas).

Both stores keep one count per (bucket, kind, article id), where a bucket is ``bucket_seconds`` of wall time.
Decay is applied at read time from each bucket's middle, so a bucket behaves like its views all happened then;
buckets older than ``retention_hours`` are deleted (SQLite) or expire by themselves (Redis ``EXPIRE``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Mapping, Protocol, Sequence

from ..sqlitedb import connect_wal, fetch_rows, json_rows, rows_select

KINDS = ("view", "click")


@dataclass(frozen=True)
class CountedEvent:
    """One validated event: ``count`` page views (or widget clicks) of an article at ``timestamp`` (aware UTC)."""

    article_id: str
    timestamp: datetime
    count: int = 1
    kind: str = "view"


class ViewCounter(Protocol):
    """Where live events are counted; implements the engine's ``ViewSource``."""

    def add(self, events: Sequence[CountedEvent]) -> int:
        """Count a validated batch atomically (all or nothing); returns the number of events counted."""
        ...

    def decayed_views(self, now: datetime, half_life_hours: float, window_hours: float,
                      kind: str = "view") -> dict[str, float]:
        """Counts per article id in the window, each bucket weighted ``0.5 ** (hours_ago / half_life_hours)``."""
        ...

    def totals(self, kind: str = "view") -> dict[str, int]:
        """Undecayed counts per article id over the retained buckets."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _bucket_weights(buckets: Iterable[int], bucket_seconds: int, now: datetime, half_life_hours: float,
                    window_hours: float) -> dict[int, float]:
    now_s = now.timestamp()
    weights = {}
    for bucket in buckets:
        middle = (bucket + 0.5) * bucket_seconds
        age_hours = max(now_s - middle, 0.0) / 3600.0
        if age_hours <= window_hours:
            weights[bucket] = 0.5 ** (age_hours / half_life_hours)
    return weights


class SQLiteViewCounter:
    """Counters in one SQLite file in WAL mode (several worker processes may share it)."""

    def __init__(self, path: str | Path, bucket_seconds: int = 600, retention_hours: float = 72.0) -> None:
        if bucket_seconds < 1 or retention_hours <= 0:
            raise ValueError(f"bucket_seconds must be >= 1 and retention_hours > 0, got {bucket_seconds}, "
                             f"{retention_hours}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.bucket_seconds = bucket_seconds
        self.retention_hours = retention_hours
        self._lock = threading.Lock()
        self._db = connect_wal(self.path, 30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS counts (bucket INTEGER NOT NULL, kind TEXT NOT NULL, "
                         "article_id TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (bucket, kind, article_id))")
        self._last_expiry = 0.0

    def add(self, events: Sequence[CountedEvent]) -> int:  # noqa: D102 - documented on ViewCounter
        rows = [(int(e.timestamp.timestamp()) // self.bucket_seconds, e.kind, e.article_id, e.count) for e in events]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(f"INSERT INTO counts {rows_select(4)} WHERE true ON CONFLICT (bucket, kind, "
                                 "article_id) DO UPDATE SET count = count + excluded.count", (json_rows(rows),))
                if time.monotonic() - self._last_expiry > 60:
                    oldest = int(time.time() - self.retention_hours * 3600) // self.bucket_seconds
                    self._db.execute("DELETE FROM counts WHERE bucket < ?", (oldest,))
                    self._last_expiry = time.monotonic()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows)

    def decayed_views(self, now: datetime, half_life_hours: float, window_hours: float,  # noqa: D102
                      kind: str = "view") -> dict[str, float]:
        window_hours = min(window_hours, self.retention_hours)
        oldest = int(now.timestamp() - window_hours * 3600) // self.bucket_seconds
        with self._lock:
            rows = fetch_rows(self._db, "bucket, article_id, count", "FROM counts WHERE kind = ? AND bucket >= ?",
                              (kind, oldest))
        weights = _bucket_weights({r[0] for r in rows}, self.bucket_seconds, now, half_life_hours, window_hours)
        totals: dict[str, float] = {}
        for bucket, article_id, count in rows:
            weight = weights.get(bucket)
            if weight is not None:
                totals[article_id] = totals.get(article_id, 0.0) + count * weight
        return totals

    def totals(self, kind: str = "view") -> dict[str, int]:  # noqa: D102
        with self._lock:
            oldest = int(time.time() - self.retention_hours * 3600) // self.bucket_seconds
            rows = fetch_rows(self._db, "article_id, total", "FROM (SELECT article_id, SUM(count) AS total FROM "
                              "counts WHERE kind = ? AND bucket >= ? GROUP BY article_id)", (kind, oldest))
        return {a: int(c) for a, c in rows}

    def close(self) -> None:  # noqa: D102
        with self._lock:
            self._db.close()


# KEYS: the bucket hashes; ARGV: n, n expiry times, then (key position, article id, count) triples.
_REDIS_ADD = """
for i = 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= 'hash' and kind ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ', not counts: nothing counted')
  end
end
local n = tonumber(ARGV[1])
for i = n + 2, #ARGV, 3 do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i + 1], tonumber(ARGV[i + 2]))
end
for i = 1, n do
  redis.call('EXPIREAT', KEYS[i], tonumber(ARGV[i + 1]))
end
return #KEYS
"""


class RedisViewCounter:
    """Counters in Redis: one hash per (kind, bucket), ``HINCRBY`` per event, each key expiring after retention.

    Every replica behind a load balancer reads the same keys, so all of them see the same trending list.
    """

    def __init__(self, url: str, bucket_seconds: int = 600, retention_hours: float = 72.0,
                 prefix: str = "recommender:views") -> None:
        if bucket_seconds < 1 or retention_hours <= 0:
            raise ValueError(f"bucket_seconds must be >= 1 and retention_hours > 0, got {bucket_seconds}, "
                             f"{retention_hours}")
        try:
            import redis
        except ImportError as exc:
            raise ImportError("the Redis view counter needs the redis package: pip install redis") from exc
        self.client = redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)
        self._add_script = self.client.register_script(_REDIS_ADD)
        self.bucket_seconds = bucket_seconds
        self.retention_hours = retention_hours
        self.prefix = prefix

    def _key(self, kind: str, bucket: int) -> str:
        return f"{self.prefix}:{kind}:{bucket}"

    def add(self, events: Sequence[CountedEvent]) -> int:  # noqa: D102 - documented on ViewCounter
        retention = int(self.retention_hours * 3600)
        keys: dict[str, int] = {}  # key -> its position in KEYS
        expiry: list[int] = []
        increments: list[int | str] = []
        for event in events:
            bucket = int(event.timestamp.timestamp()) // self.bucket_seconds
            key = self._key(event.kind, bucket)
            if key not in keys:
                keys[key] = len(keys) + 1
                # A bucket lives until its end plus the retention (a bucket already past that is deleted at once).
                expiry.append((bucket + 1) * self.bucket_seconds + retention)
            increments += [keys[key], event.article_id, int(event.count)]
        # One script: Redis runs it atomically, and it checks every key before writing any, so a batch lands whole
        # or not at all (MULTI/EXEC applies the commands before a failing one).
        self._add_script(keys=list(keys), args=[len(keys), *expiry, *increments])
        return len(events)

    def _buckets(self, now: datetime, window_hours: float) -> list[int]:
        newest = int(now.timestamp()) // self.bucket_seconds
        oldest = int(now.timestamp() - min(window_hours, self.retention_hours) * 3600) // self.bucket_seconds
        return list(range(oldest, newest + 1))

    def _read(self, kind: str, buckets: Sequence[int]) -> list[tuple[int, Mapping[str, str]]]:
        pipe = self.client.pipeline(transaction=False)
        for bucket in buckets:
            pipe.hgetall(self._key(kind, bucket))
        return [(b, h) for b, h in zip(buckets, pipe.execute()) if h]

    def decayed_views(self, now: datetime, half_life_hours: float, window_hours: float,  # noqa: D102
                      kind: str = "view") -> dict[str, float]:
        found = self._read(kind, self._buckets(now, window_hours))
        weights = _bucket_weights([b for b, _ in found], self.bucket_seconds, now, half_life_hours,
                                  min(window_hours, self.retention_hours))
        totals: dict[str, float] = {}
        for bucket, counts in found:
            weight = weights.get(bucket)
            if weight is None:
                continue
            for article_id, count in counts.items():
                totals[article_id] = totals.get(article_id, 0.0) + int(count) * weight
        return totals

    def totals(self, kind: str = "view") -> dict[str, int]:  # noqa: D102
        keys = sorted(self.client.scan_iter(match=f"{self.prefix}:{kind}:*", count=1000))
        totals: dict[str, int] = {}
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        for counts in pipe.execute() if keys else []:
            for article_id, count in counts.items():
                totals[article_id] = totals.get(article_id, 0) + int(count)
        return totals

    def close(self) -> None:  # noqa: D102
        self.client.close()


def open_counter(spec: str, default_dir: Path, bucket_seconds: int = 600,
                 retention_hours: float = 72.0) -> ViewCounter:
    """Open the counter store a ``--views`` setting names.

    Args:
        spec: ``sqlite`` (``views.sqlite`` in ``default_dir``), ``sqlite:///path/file.sqlite`` or
            ``redis://host:port/db``.
        default_dir: where the embedded SQLite file goes (the indexes root, next to the index).
    """
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisViewCounter(spec, bucket_seconds, retention_hours)
    if spec == "sqlite":
        return SQLiteViewCounter(default_dir / "views.sqlite", bucket_seconds, retention_hours)
    if spec.startswith("sqlite:///"):
        return SQLiteViewCounter(Path(spec.removeprefix("sqlite:///")), bucket_seconds, retention_hours)
    raise ValueError(f"views store {spec!r} is not understood: use 'sqlite', 'sqlite:///path/views.sqlite' or "
                     f"'redis://host:6379/0'")
