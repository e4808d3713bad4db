"""Opening the engine's SQLite files (view counters, live delta, embedding cache) in WAL mode, race-free."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any


def connect_wal(path: str | Path, timeout_seconds: float = 30.0, **options: Any) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode, created if missing.

    Service workers start together and open the same new file at once. Switching a new database to WAL needs an
    exclusive lock, and SQLite answers "database is locked" at once to the loser of that race (its busy handler
    is not called there, to avoid a deadlock), so the switch is retried here until ``timeout_seconds``.
    """
    db = sqlite3.connect(path, timeout=timeout_seconds, **options)
    try:
        enable_wal(db, timeout_seconds)
    except sqlite3.OperationalError:
        db.close()
        raise
    return db


def enable_wal(db: sqlite3.Connection, timeout_seconds: float = 30.0) -> None:
    """Switch an open connection to WAL mode, retrying while another process holds the switch's lock."""
    deadline = time.monotonic() + timeout_seconds
    delay = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
