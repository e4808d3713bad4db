"""The live stores' database: SQLite next to the indexes (one node) or PostgreSQL (several replicas), through
SQLAlchemy Core, and the change token every worker polls to know when to re-read a store."""

from __future__ import annotations

import contextlib
import functools
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlalchemy as sa

from ..errors import RecommenderError


class StoreUnavailableError(RecommenderError):
    """A live store (SQLite file, PostgreSQL) cannot be read or written now; the service answers 503."""


def database_url(location: str | Path) -> str:
    """A SQLAlchemy URL for a store location: a ``postgresql://`` URL (psycopg 3), a ``sqlite:///`` URL, or a
    file path (SQLite)."""
    text = str(location)
    if text.startswith("postgresql://"):
        return "postgresql+psycopg://" + text[len("postgresql://"):]
    if "://" in text:
        return text
    Path(text).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{text}"


def make_engine(location: str | Path) -> sa.Engine:
    """An engine for a live store; SQLite files are opened in WAL mode with a 30 s busy timeout (several worker
    processes share them) and their connections kept: each worker polls every store's change token four times a
    second, and a new connection each time (its open and WAL switch, a dozen GIL hand-offs from the background
    thread) made that sync ~2 ms a round and the long tail's p99 ~1.3x worse (benchmarks/JOURNAL.md)."""
    url = database_url(location)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                                  poolclass=sa.pool.QueuePool, pool_size=1, max_overflow=4)

        @sa.event.listens_for(engine, "connect")
        def _wal(connection: Any, _record: Any) -> None:
            from ..sqlitedb import enable_wal

            enable_wal(connection, 30.0)

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


def change_token(connection: sa.Connection, log: sa.Table) -> tuple[int, int]:
    """(rows, highest id) of a store's change log: it changes with every committed change, including one that
    committed after a later id was seen (PostgreSQL assigns ids before commit)."""
    count, top = connection.execute(_token_query(log)).one()
    return int(count), int(top)


@functools.cache
def _token_query(log: sa.Table) -> sa.Select:
    """``change_token``'s statement, built once per log table (each poll built it anew: half a sync's CPU)."""
    return sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(log.c.id), 0))


def utc_stamp() -> str:
    """Now in UTC as the stores' logs write it (``2026-12-01T17:42:00.123456Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextlib.contextmanager
def _unavailable_as_503(open_connection: Callable[[], contextlib.AbstractContextManager[sa.Connection]],
                        failure: str) -> Iterator[sa.Connection]:
    """A connection from ``open_connection`` (called inside, so a failed connect is caught too), its database
    errors raised as ``StoreUnavailableError`` (a 503, not a 500)."""
    try:
        with open_connection() as connection:
            yield connection
    except sa.exc.SQLAlchemyError as exc:
        raise StoreUnavailableError(f"{failure}: {exc}") from exc


def read(engine: sa.Engine, what: str) -> contextlib.AbstractContextManager[sa.Connection]:
    """A connection whose database errors become ``StoreUnavailableError`` naming ``what``."""
    return _unavailable_as_503(engine.connect, f"{what} cannot be read")


def rows_if_changed(engine: sa.Engine, log: sa.Table, table: sa.Table, seen: object, what: str,
                    ) -> tuple[tuple[int, int], list[sa.RowMapping]] | None:
    """(the change token, every row of ``table``) when the store's ``log`` changed since token ``seen``, else
    None: what a store's ``sync`` reads, in one connection."""
    with read(engine, what) as connection:
        token = change_token(connection, log)
        if token == seen:
            return None
        return token, list(connection.execute(sa.select(table)).mappings().all())


def written(engine: sa.Engine, what: str) -> contextlib.AbstractContextManager[sa.Connection]:
    """A transaction whose database errors become ``StoreUnavailableError`` naming ``what``."""
    return _unavailable_as_503(engine.begin, f"{what} cannot be written now")


def create_tables(engine: sa.Engine, metadata: sa.MetaData, what: str,
                  seed: Callable[[sa.Connection], None] | None = None, attempts: int = 5) -> None:
    """Create a store's tables where missing, then ``seed`` them (e.g. insert a lock row when there is none).

    Several workers open a store at the same moment: another's ``CREATE TABLE`` (or seed row) may land between
    the check and this one's, which is retried; only a store that stays unusable raises
    ``StoreUnavailableError`` naming ``what``.
    """
    for attempt in range(attempts):
        try:
            metadata.create_all(engine, checkfirst=True)
            if seed is not None:
                with engine.begin() as connection:
                    seed(connection)
            return
        except sa.exc.SQLAlchemyError as exc:
            if attempt == attempts - 1:
                raise StoreUnavailableError(f"{what} cannot be opened: {exc}") from exc
            time.sleep(0.05 * (attempt + 1))
