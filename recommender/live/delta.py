"""The live delta: articles upserted between nightly builds, shared by every worker (SQLite) and every replica
(PostgreSQL).

Each change gets a sequence number; a worker applies the rows whose ``seq`` is above the last one it saw, so
an upsert made by one worker is searchable in the others after their next poll. A row is ``live`` (an upserted
article with its vector) or ``dropped`` (a newer build contains it, so the delta no longer needs it).
Takedowns are not part of the delta (``takedowns.py``): rows of state ``deleted``, written by older versions,
are read as ``legacy_deleted`` and moved to the takedown store by ``state.LiveState``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import sqlalchemy as sa

from ..query.overlay import Overlay
from ..query.table import ArticleTable, object_array
from .sql import create_tables, make_engine, read, written

LIVE, DELETED, DROPPED = "live", "deleted", "dropped"

_META = sa.MetaData()
# The table name and columns of the SQLite delta that earlier versions wrote: their files open unchanged.
DELTA = sa.Table(
    "delta", _META,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False, index=True),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("article", sa.Text),
    sa.Column("vector", sa.LargeBinary),
)
# One row every writer updates first: the highest sequence number handed out.
LOCK = sa.Table("delta_lock", _META, sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("seq", sa.BigInteger, nullable=False))


def _seed_lock(connection: sa.Connection) -> None:
    """The lock row, starting at the highest sequence number stored (a delta file of an earlier version)."""
    if connection.execute(sa.select(sa.func.count()).select_from(LOCK)).scalar_one() == 0:
        top = connection.execute(sa.select(sa.func.coalesce(sa.func.max(DELTA.c.seq), 0))).scalar_one()
        connection.execute(sa.insert(LOCK).values(id=1, seq=top))


def _table(records: Sequence[tuple[dict, np.ndarray]], dims: int) -> ArticleTable:
    def column(name: str) -> np.ndarray:
        return np.array([r[name] or "" for r, _ in records], dtype=object)

    vectors = np.stack([v for _, v in records]).astype(np.float32) if records else np.zeros((0, dims), np.float32)
    hours = np.array([np.nan if r["published_hours"] is None else r["published_hours"] for r, _ in records],
                     dtype=np.float64)
    tags = object_array([tuple(r.get("tags") or ()) for r, _ in records])
    languages = np.array([r.get("language") or "" for r, _ in records], dtype=object)
    authors = np.array([r.get("author") or "" for r, _ in records], dtype=object)
    embargo = np.array([np.nan if r.get("embargo_hours") is None else r["embargo_hours"] for r, _ in records],
                       dtype=np.float64)
    # Copy groups and stories are assigned by the recommender, which knows the build.
    return ArticleTable(ids=column("id"), titles=column("title"), sections=column("section"), urls=column("url"),
                        published_hours=hours, vectors=vectors, copy_groups=np.full(len(records), -1, np.int64),
                        story_ids=np.full(len(records), "", dtype=object), tags=tags, languages=languages,
                        authors=authors, embargo_hours=embargo)


class DeltaStore:
    """The delta's durable copy, shared by every worker (and replica) that opens the same location.

    Args:
        location: a SQLite file (default ``live-delta.sqlite`` in the indexes root; WAL, many readers, one writer)
            or a ``postgresql://`` URL (several replicas on several machines).
        dims: the vectors' dimension (the served model's).
    """

    def __init__(self, location: str | Path, dims: int) -> None:
        self.location = str(location)
        self.dims = dims
        self.engine = make_engine(location)
        self._lock = threading.Lock()
        self._records: dict[str, tuple[dict, np.ndarray]] = {}
        self.legacy_deleted: set[str] = set()  # takedowns written into the delta by older versions
        self._seq = 0
        self.overlay = Overlay.empty(dims)
        create_tables(self.engine, _META, f"the live delta {self.location}", _seed_lock)
        self.sync()  # before the first request: a worker never serves without the delta others wrote

    def _write(self, rows: Sequence[tuple[str, str, str | None, bytes | None]]) -> None:
        if not rows:
            return
        with written(self.engine, f"the live delta {self.location}") as connection:
            # The lock row serialises writers and hands out their sequence numbers: numbers commit in order, so a
            # reader that has seen ``seq`` has seen everything below it.
            top = connection.execute(sa.update(LOCK).values(seq=LOCK.c.seq + len(rows)).returning(LOCK.c.seq)
                                     ).scalar_one()
            ids = [article_id for article_id, *_ in rows]
            connection.execute(sa.delete(DELTA).where(DELTA.c.id.in_(ids)))
            connection.execute(sa.insert(DELTA), [
                {"id": article_id, "seq": seq, "state": state, "article": article, "vector": vector}
                for seq, (article_id, state, article, vector) in enumerate(rows, start=top - len(rows) + 1)])
        self.sync()

    def upsert(self, articles: Sequence[dict], vectors: np.ndarray) -> None:
        """Store articles (``id``, ``title``, ``section``, ``url``, ``published_hours``) with their vectors."""
        if len(articles) != len(vectors) or (len(vectors) and vectors.shape[1] != self.dims):
            raise ValueError(f"{len(articles)} articles need {len(articles)} vectors of {self.dims} dims, "
                             f"got shape {np.shape(vectors)}")
        latest = {a["id"]: (a, v) for a, v in zip(articles, vectors)}  # one row per id: the last one given wins
        self._write([(a["id"], LIVE, json.dumps(a), np.asarray(v, dtype=np.float32).tobytes())
                     for a, v in latest.values()])

    def drop(self, article_ids: Iterable[str]) -> None:
        """Forget delta entries (a newer build holds these articles)."""
        self._write([(a, DROPPED, None, None) for a in dict.fromkeys(article_ids)])

    def sync(self) -> bool:
        """Apply changes made since the last sync (by any process); True when the snapshot changed."""
        with self._lock:
            with read(self.engine, f"the live delta {self.location}") as connection:
                rows = connection.execute(sa.select(DELTA.c.id, DELTA.c.seq, DELTA.c.state, DELTA.c.article,
                                                    DELTA.c.vector)
                                          .where(DELTA.c.seq > self._seq).order_by(DELTA.c.seq)).all()
            if not rows:
                return False
            for article_id, seq, state, article, vector in rows:
                self._records.pop(article_id, None)
                self.legacy_deleted.discard(article_id)
                if state == LIVE:
                    self._records[article_id] = (json.loads(article), np.frombuffer(vector, dtype=np.float32))
                elif state == DELETED:
                    self.legacy_deleted.add(article_id)
                self._seq = max(self._seq, int(seq))
            records = list(self._records.values())
            self.overlay = Overlay(_table(records, self.dims), frozenset(),
                                   {r["id"]: i for i, (r, _) in enumerate(records)}, self._seq)
            return True

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()
