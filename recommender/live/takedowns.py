"""Takedowns: article ids that no list may show until someone lifts them, kept apart from any build.

A takedown is durable state, not part of the live delta a build absorbs: it applies to every build loaded now or
later (a rollback included), in every worker of every replica that shares the store, from its first request.
Each change is written to an audit log (who, when, what, why). Stored in SQLite next to the indexes by default,
or in PostgreSQL when replicas share it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from .sql import create_tables, make_engine, read, rows_if_changed, utc_stamp, written

_META = sa.MetaData()
TAKEDOWNS = sa.Table(
    "takedowns", _META,
    sa.Column("article_id", sa.String, primary_key=True),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("taken_at", sa.String, nullable=False),
)
LOG = sa.Table(
    "takedown_log", _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),  # "take_down" | "lift"
    sa.Column("article_id", sa.String, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("reason", sa.String, nullable=False),
)


@dataclass(frozen=True)
class Takedown:
    """One active takedown."""

    article_id: str
    actor: str
    reason: str
    taken_at: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready."""
        return {"article_id": self.article_id, "actor": self.actor, "reason": self.reason,
                "taken_at": self.taken_at}


class TakedownStore:
    """The takedowns of one site: ``take_down``, ``lift``, the active set and the audit log.

    Args:
        location: a SQLite file path or a ``postgresql://`` URL.
    """

    def __init__(self, location: str | Path) -> None:
        self.location = str(location)
        self.engine = make_engine(location)
        self._lock = threading.Lock()
        self._active: dict[str, Takedown] = {}
        self._token: tuple[int, int] = (-1, -1)
        create_tables(self.engine, _META, f"the takedown store {self.location}")
        self.sync()

    @property
    def ids(self) -> frozenset[str]:
        """The ids taken down (as last synced)."""
        return frozenset(self._active)

    @property
    def token(self) -> tuple[int, int]:
        """Changes with every change of the store (as last synced)."""
        return self._token

    def active(self) -> list[Takedown]:
        """Every active takedown, by id."""
        return [self._active[a] for a in sorted(self._active)]

    def take_down(self, article_id: str, actor: str, reason: str) -> Takedown:
        """Take ``article_id`` down (again: the newest actor and reason are kept), and log it."""
        when = utc_stamp()
        record = Takedown(article_id, actor, reason, when)
        with written(self.engine, f"the takedown store {self.location}") as connection:
            connection.execute(sa.delete(TAKEDOWNS).where(TAKEDOWNS.c.article_id == article_id))
            connection.execute(sa.insert(TAKEDOWNS).values(**record.to_dict()))
            connection.execute(sa.insert(LOG).values(at=when, action="take_down", article_id=article_id,
                                                     actor=actor, reason=reason))
        self.sync()
        return record

    def lift(self, article_id: str, actor: str, reason: str) -> bool:
        """Lift a takedown (the article may be listed again), and log it; False when it was not taken down."""
        with written(self.engine, f"the takedown store {self.location}") as connection:
            removed = connection.execute(sa.delete(TAKEDOWNS).where(TAKEDOWNS.c.article_id == article_id)).rowcount
            if removed:
                connection.execute(sa.insert(LOG).values(at=utc_stamp(), action="lift", article_id=article_id,
                                                         actor=actor, reason=reason))
        self.sync()
        return bool(removed)

    def history(self, limit: int = 1000) -> list[dict[str, object]]:
        """The newest ``limit`` entries of the audit log, newest first."""
        with read(self.engine, f"the takedown store {self.location}") as connection:
            rows = connection.execute(sa.select(LOG).order_by(LOG.c.id.desc()).limit(limit)).mappings().all()
        return [dict(row) for row in rows]

    def sync(self) -> bool:
        """Re-read the active takedowns when the store changed (in any process); True when they did."""
        changed = rows_if_changed(self.engine, LOG, TAKEDOWNS, self._token, f"the takedown store {self.location}")
        if changed is None:
            return False
        token, rows = changed
        with self._lock:
            self._active = {row["article_id"]: Takedown(**row) for row in rows}
            self._token = token
        return True

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

