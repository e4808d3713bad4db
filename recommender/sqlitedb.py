"""Opening the engine's SQLite files (view counters, live delta, embedding cache) in WAL mode, race-free; and
reading and writing many rows in one statement step (``json_rows``, ``fetch_rows``)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import orjson


def connect_wal(path: str | Path, timeout_seconds: float = 30.0, **options: Any) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode, created if missing.

    Service workers start together and open the same new file at once. Switching a new database to WAL needs an
    exclusive lock, and SQLite answers "database is locked" at once to the loser of that race (its busy handler
    is not called there, to avoid a deadlock), so the switch is retried here until ``timeout_seconds``.
    """
    if sqlite3.sqlite_version_info < (3, 38):  # json_each with ->> (json_rows, fetch_rows)
        raise RuntimeError(f"SQLite {sqlite3.sqlite_version} is too old: the counter stores need 3.38 or newer "
                           f"(its JSON operators); use a Python built against a newer SQLite")
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


# Many rows in one statement step. Python's sqlite3 releases the GIL around every step of a statement (every row
# of ``executemany``, every row fetched) and takes it back after; in a background thread of a service worker whose
# event loop is busy, each take-back waits for the loop's switch interval (5 ms): a flush of 3,000 impression
# records (stored one row each until 2026-12-02) took seconds of wall time and fell behind the impressions served
# (benchmarks/JOURNAL.md). Passed as one JSON array and unpacked by SQLite's ``json_each``, the rows cost one step.
ROWS_SQL = "SELECT {columns} FROM json_each(?)"


def json_rows(rows: Iterable[Sequence[object]]) -> str:
    """``rows`` as the one parameter of ``rows_select(n)`` (a JSON array of arrays)."""
    return orjson.dumps(list(rows)).decode()


def rows_select(columns: int) -> str:
    """``SELECT`` of ``columns`` values per row from a ``json_rows`` parameter (``INSERT INTO t`` + this)."""
    return ROWS_SQL.format(columns=", ".join(f"value ->> {i}" for i in range(columns)))


def fetch_rows(db: sqlite3.Connection, columns: str, rest: str, parameters: Sequence[object] = ()) -> list[list]:
    """``SELECT columns rest`` read in one step (aggregated into one JSON array by SQLite): the rows as lists."""
    row = db.execute(f"SELECT json_group_array(json_array({columns})) {rest}", parameters).fetchone()
    return orjson.loads(row[0]) if row and row[0] else []
