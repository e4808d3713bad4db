"""Degrade, don't fail: when the view counters' store (Redis, SQLite) is unreachable, lists keep answering with
the last live views this worker read (flagged in a response header, /readyz and /metrics), and writes answer 503.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from datetime import datetime
from typing import Mapping

from .counters import ViewCounter
from .metrics import Metrics

log = logging.getLogger("recommender.service")
DEGRADED_HEADER = "X-Recommender-Degraded"


def store_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean "a store is unreachable or busy" (not a bug): SQLite's, Redis's, SQLAlchemy's."""
    errors: list[type[Exception]] = [sqlite3.OperationalError, sqlite3.DatabaseError, ConnectionError,
                                     TimeoutError]
    try:
        import redis

        errors.append(redis.exceptions.RedisError)
    except ImportError:
        pass
    try:
        import sqlalchemy

        errors.append(sqlalchemy.exc.OperationalError)
    except ImportError:
        pass
    return tuple(errors)


class GuardedViews:
    """The recommender's live views source over the counter store: a failed read returns the last successful one
    (stale, not absent) and marks the service degraded until a read succeeds again."""

    def __init__(self, counter: ViewCounter, metrics: Metrics) -> None:
        self.counter = counter
        self.metrics = metrics
        self.errors = store_errors()
        self._last: dict[tuple[float, float], Mapping[str, float]] = {}
        self._failing_since: float | None = None
        self._lock = threading.Lock()
        self.reason = ""

    @property
    def degraded(self) -> bool:
        """Whether the last read failed."""
        return self._failing_since is not None

    def decayed_views(self, now: datetime, half_life_hours: float, window_hours: float) -> Mapping[str, float]:
        """The counter store's decayed views, or the last ones read when the store is unreachable."""
        key = (half_life_hours, window_hours)
        try:
            found = self.counter.decayed_views(now, half_life_hours, window_hours)
        except self.errors as exc:
            with self._lock:
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning("view counters unreachable (%s): lists use the last live views read", exc)
                self.reason = f"{type(exc).__name__}: {exc}"
            self.metrics.degraded.labels("views").set(1)
            return self._last.get(key, {})
        with self._lock:
            if self._failing_since is not None:
                log.warning("view counters reachable again after %.1fs", time.monotonic() - self._failing_since)
            self._failing_since, self.reason = None, ""
            self._last[key] = found
        self.metrics.degraded.labels("views").set(0)
        return found
