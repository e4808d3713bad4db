"""The live delta: articles upserted between nightly builds, shared by every worker via SQLite.

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

from ..query.overlay import Overlay
from ..query.table import ArticleTable, object_array
from ..sqlitedb import connect_wal

LIVE, DELETED, DROPPED = "live", "deleted", "dropped"


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
    """The delta's durable copy: ``live-delta.sqlite`` in the indexes root (WAL; many readers, one writer)."""

    def __init__(self, path: str | Path, dims: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dims = dims
        self._lock = threading.Lock()
        self._db = connect_wal(self.path, 30, check_same_thread=False, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS delta (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
                         "state TEXT NOT NULL, article TEXT, vector BLOB)")
        self._db.execute("CREATE INDEX IF NOT EXISTS delta_seq ON delta (seq)")
        self._records: dict[str, tuple[dict, np.ndarray]] = {}
        self.legacy_deleted: set[str] = set()  # takedowns written into the delta by older versions
        self._seq = 0
        self.overlay = Overlay.empty(dims)
        self.sync()  # before the first request: a worker never serves without the delta others wrote

    def _write(self, rows: Iterable[tuple[str, str, str | None, bytes | None]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM delta").fetchone()[0]
                for n, (article_id, state, article, vector) in enumerate(rows, start=seq + 1):
                    self._db.execute("INSERT INTO delta VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                                     "seq = excluded.seq, state = excluded.state, article = excluded.article, "
                                     "vector = excluded.vector", (article_id, n, state, article, vector))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.sync()

    def upsert(self, articles: Sequence[dict], vectors: np.ndarray) -> None:
        """Store articles (``id``, ``title``, ``section``, ``url``, ``published_hours``) with their vectors."""
        if len(articles) != len(vectors) or (len(vectors) and vectors.shape[1] != self.dims):
            raise ValueError(f"{len(articles)} articles need {len(articles)} vectors of {self.dims} dims, "
                             f"got shape {np.shape(vectors)}")
        self._write((a["id"], LIVE, json.dumps(a), np.asarray(v, dtype=np.float32).tobytes())
                    for a, v in zip(articles, vectors))

    def drop(self, article_ids: Iterable[str]) -> None:
        """Forget delta entries (a newer build holds these articles)."""
        self._write([(a, DROPPED, None, None) for a in article_ids])

    def sync(self) -> bool:
        """Apply changes made since the last sync (by any process); True when the snapshot changed."""
        with self._lock:
            rows = self._db.execute("SELECT id, seq, state, article, vector FROM delta WHERE seq > ? ORDER BY seq",
                                    (self._seq,)).fetchall()
            if not rows:
                return False
            for article_id, seq, state, article, vector in rows:
                self._records.pop(article_id, None)
                self.legacy_deleted.discard(article_id)
                if state == LIVE:
                    self._records[article_id] = (json.loads(article), np.frombuffer(vector, dtype=np.float32))
                elif state == DELETED:
                    self.legacy_deleted.add(article_id)
                self._seq = max(self._seq, seq)
            records = list(self._records.values())
            self.overlay = Overlay(_table(records, self.dims), frozenset(),
                                   {r["id"]: i for i, (r, _) in enumerate(records)}, self._seq)
            return True

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
