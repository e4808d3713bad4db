"""Token buckets per client address for the public click route, shared where that is cheap: in the view
counters' store (SQLite for the workers of one node, Redis for every replica), else in the worker's memory.

Each key holds ``burst`` tokens, refilled at ``per_minute / 60`` a second; ``take`` spends one or says how long
until one is due. Buckets unused for an hour are forgotten (a forgotten address starts with a full bucket).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Protocol

from ..sqlitedb import connect_wal

IDLE_SECONDS = 3600.0


class RateLimiter(Protocol):
    """Spends tokens of per-key buckets."""

    def take(self, key: str) -> float:
        """Take one token for ``key``; 0.0 when allowed, else the seconds until a token is due."""
        ...


def _refill(tokens: float, last: float, now: float, rate: float, burst: float) -> tuple[float, float]:
    """(tokens after spending one or not, seconds to wait) of a bucket at ``now``."""
    tokens = min(burst, tokens + max(now - last, 0.0) * rate)
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, (1.0 - tokens) / rate


class MemoryRateLimiter:
    """Buckets in this worker's memory, at most ``max_keys`` (least recently seen first out)."""

    def __init__(self, per_minute: float, burst: int, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0 or burst < 1 or max_keys < 1:
            raise ValueError(f"per_minute must be > 0, burst >= 1 and max_keys >= 1, got {per_minute}, {burst}, "
                             f"{max_keys}")
        self.rate, self.burst, self.max_keys, self.clock = per_minute / 60.0, float(burst), max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:  # noqa: D102 - documented on RateLimiter
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens, wait = _refill(tokens, last, now, self.rate, self.burst)
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait


class SQLiteRateLimiter:
    """Buckets in a SQLite table (the node's ``views.sqlite``): every worker of the node spends the same ones."""

    def __init__(self, path: str | Path, per_minute: float, burst: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.rate, self.burst, self.clock = per_minute / 60.0, float(burst), clock
        self._lock = threading.Lock()
        self._db = connect_wal(Path(path), 30, check_same_thread=False, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS click_buckets (key TEXT PRIMARY KEY, tokens REAL NOT NULL, "
                         "updated REAL NOT NULL)")
        self._last_expiry = 0.0

    def take(self, key: str) -> float:  # noqa: D102
        now = self.clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT tokens, updated FROM click_buckets WHERE key = ?", (key,)).fetchone()
                stored, updated = row if row else (self.burst, now)
                tokens, wait = _refill(stored, updated, now, self.rate, self.burst)
                self._db.execute("INSERT INTO click_buckets VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                                 "tokens = excluded.tokens, updated = excluded.updated", (key, tokens, now))
                if now - self._last_expiry > 60:
                    self._db.execute("DELETE FROM click_buckets WHERE updated < ?", (now - IDLE_SECONDS,))
                    self._last_expiry = now
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return wait

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


# KEYS[1] the bucket; ARGV: now (s), rate (tokens/s), burst, idle expiry (s). Returns the wait in ms.
_REDIS_TAKE = """
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(now - last, 0) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return math.ceil(wait * 1000)
"""


class RedisRateLimiter:
    """Buckets in Redis (the shared view counters' server): every replica spends the same ones; one atomic
    script per click."""

    def __init__(self, client: Any, per_minute: float, burst: int, prefix: str = "recommender:click-bucket",
                 clock: Callable[[], float] = time.time) -> None:
        self.client, self.rate, self.burst, self.prefix, self.clock = client, per_minute / 60.0, burst, prefix, clock
        self._script = client.register_script(_REDIS_TAKE)

    def take(self, key: str) -> float:  # noqa: D102
        waited = self._script(keys=[f"{self.prefix}:{key}"],
                              args=[self.clock(), self.rate, self.burst, int(IDLE_SECONDS)])
        return int(waited) / 1000.0


def shared_rate_limiter(counter: object, per_minute: float, burst: int) -> RateLimiter:
    """The limiter that shares buckets the way ``counter`` (the service's view counters) shares counts."""
    client = getattr(counter, "client", None)
    if client is not None and hasattr(client, "register_script"):
        return RedisRateLimiter(client, per_minute, burst)
    path = getattr(counter, "path", None)
    if path is not None:
        try:
            return SQLiteRateLimiter(path, per_minute, burst)
        except sqlite3.Error:
            pass
    return MemoryRateLimiter(per_minute, burst)
