"""The live delta's store: several writers (workers, replicas) on one SQLite file or one PostgreSQL database."""

from __future__ import annotations

import json
import sqlite3
import threading

import numpy as np
import pytest
import sqlalchemy as sa

from recommender.live import DeltaStore
from recommender.live.delta import DELTA

DIMS = 4


def article(n: int, writer: str) -> dict:
    return {"id": f"a{n:03d}", "title": f"{writer} {n}", "section": "world", "url": "", "published_hours": 1.0}


def vector(n: int) -> np.ndarray:
    v = np.zeros(DIMS, np.float32)
    v[n % DIMS] = 1.0
    return v[None, :]


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "live-delta.sqlite")
    return request.getfixturevalue("pg_url")


def test_concurrent_writers_on_one_store_are_all_applied_by_every_reader(location):
    """Two stores (two processes' views) write 60 upserts each at once, over 40 shared ids: each reader ends with
    every id once, the same final version of each, and the sequence numbers handed out are unique."""
    stores = [DeltaStore(location, DIMS) for _ in range(2)]
    reader = DeltaStore(location, DIMS)

    def write(store: DeltaStore, writer: str) -> None:
        for n in range(60):
            store.upsert([article(n % 40, writer)], vector(n))

    threads = [threading.Thread(target=write, args=(s, w)) for s, w in zip(stores, "xy")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    views = []
    for store in (*stores, reader):
        store.sync()
        overlay = store.overlay
        views.append(dict(zip(overlay.live.ids, overlay.live.titles)))
    assert len(views[0]) == 40 and views[0] == views[1] == views[2]
    with stores[0].engine.connect() as connection:
        seqs = [row[0] for row in connection.execute(sa.select(DELTA.c.seq))]
    assert len(seqs) == len(set(seqs)) == 40
    reader.drop(["a000"])
    stores[1].sync()
    assert "a000" not in stores[1].overlay.live_row_of and len(stores[1].overlay.live_row_of) == 39
    for store in (*stores, reader):
        store.close()


def test_a_delta_file_of_the_earlier_sqlite_layout_opens_with_its_rows(tmp_path):
    """A ``live-delta.sqlite`` written before the store moved to SQLAlchemy: its rows are read, and new writes
    continue its sequence."""
    path = tmp_path / "live-delta.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE delta (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, state TEXT NOT NULL, article TEXT, "
               "vector BLOB)")
    db.execute("CREATE INDEX delta_seq ON delta (seq)")
    old = json.dumps({**article(1, "old"), "id": "old-1"})
    db.execute("INSERT INTO delta VALUES (?, ?, ?, ?, ?)", ("old-1", 7, "live", old, vector(1).tobytes()))
    db.execute("INSERT INTO delta VALUES (?, ?, ?, ?, ?)", ("gone-1", 8, "deleted", None, None))
    db.commit()
    db.close()
    store = DeltaStore(path, DIMS)
    assert list(store.overlay.live.ids) == ["old-1"] and store.legacy_deleted == {"gone-1"}
    store.upsert([article(2, "new")], vector(2))
    other = DeltaStore(path, DIMS)
    assert sorted(other.overlay.live.ids) == ["a002", "old-1"] and other.overlay.seq == 9
