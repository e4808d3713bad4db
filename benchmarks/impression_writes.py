"""Writing experiment impressions to the SQLite counter store: random vs time-ordered impression ids, what
preparing an impression (on the request) costs against writing it (in the background flush), and the write as
shipped (each table's rows in one statement step) against one step per row while another thread keeps the GIL
busy, as a service worker's event loop does under load.

Usage: python benchmarks/impression_writes.py [--stored 300000] [--batches 60] [--batch 500] [--out PATH]

Each run opens a fresh counter file, stores ``--stored`` impressions first (a day of a small site's experiment
lists, which the store keeps for 24 h), then times ``--batches`` flushes of ``--batch`` impressions each through
``SQLiteExperimentCounts.write``, as the service's background loop writes them, each batch prepared first
(``Batch.of``: counts summed, records serialised; the service does that as it serves). Both id kinds run in one
process, one after the other. Then, with a thread spinning in Python beside the flush (the GIL is only handed
over at the 5 ms switch interval), ``--busy-batches`` flushes of ``--batch`` time-ordered impressions alternate
between the shipped write and ``executemany`` (one statement step per row, the former write; sqlite3 hands the GIL
back and forth around every step). Prints and saves JSON (default out/impression_writes.json).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

from recommender.experiments.interleaving import new_impression_id
from recommender.service.experiment_counts import SQLiteExperimentCounts
from recommender.service.impression_batch import Batch, Impression

ITEMS = tuple(f"syn-{i:06d}" for i in range(10))


def random_id() -> str:
    """The former id: 96 random bits, no time prefix."""
    return secrets.token_urlsafe(12)


def impressions(make_id, n: int) -> list[Impression]:
    """``n`` ten-item A/B impressions."""
    return [Impression(make_id(), "bench", "ab", "related", "control", ITEMS, ("control",) * 10, 490_000)
            for _ in range(n)]


def run(make_id, args: argparse.Namespace) -> tuple[float, float]:
    """Microseconds per impression preparing and writing the timed flushes."""
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteExperimentCounts(Path(folder) / "views.sqlite")
        for start in range(0, args.stored, 5000):
            store.served_many(impressions(make_id, min(5000, args.stored - start)))
        preparing = writing = 0.0
        for _ in range(args.batches):
            served = impressions(make_id, args.batch)
            started = time.perf_counter()
            batch = Batch.of(served)
            prepared = time.perf_counter()
            store.write(batch)
            preparing += prepared - started
            writing += time.perf_counter() - prepared
        store.close()
    per = 1e6 / (args.batches * args.batch)
    return preparing * per, writing * per


class RowPerStepCounts(SQLiteExperimentCounts):
    """The former write: one ``executemany`` per table, so one statement step (and one GIL hand-over) per row."""

    def write(self, batch: Batch) -> None:  # noqa: D102
        counts, records = batch.rows()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO experiment_counts VALUES (?, ?, ?) ON CONFLICT (experiment, field) DO "
                                 "UPDATE SET count = count + excluded.count", counts)
            self._db.executemany("INSERT INTO experiment_impressions VALUES (?, ?, ?)", records)
            self._db.execute("COMMIT")


def busy(args: argparse.Namespace) -> dict[str, float]:
    """Wall and thread-CPU microseconds per impression of each write kind while another thread spins."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(100))

    totals = {kind: [0.0, 0.0] for kind in ("shipped", "row_per_step")}
    with tempfile.TemporaryDirectory() as folder:
        stores = {"shipped": SQLiteExperimentCounts(Path(folder) / "a.sqlite"),
                  "row_per_step": RowPerStepCounts(Path(folder) / "b.sqlite")}
        spinner = threading.Thread(target=spin, daemon=True)
        spinner.start()
        try:
            for _ in range(args.busy_batches):
                for kind, store in stores.items():
                    batch = Batch.of(impressions(new_impression_id, args.batch))
                    started, cpu = time.perf_counter(), time.thread_time()
                    store.write(batch)
                    totals[kind][0] += time.perf_counter() - started
                    totals[kind][1] += time.thread_time() - cpu
        finally:
            stop.set()
            spinner.join()
            for store in stores.values():
                store.close()
    per = 1e6 / (args.busy_batches * args.batch)
    return {f"busy_{kind}_{what}_us_per_impression": round(value * per, 2)
            for kind, (wall, cpu) in totals.items() for what, value in (("wall", wall), ("cpu", cpu))}


def main() -> None:
    """Run both id kinds and save the JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--stored", type=int, default=300_000)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--busy-batches", type=int, default=10)
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "impression_writes.json"))
    args = parser.parse_args()
    (random_prepare, random_write), (ordered_prepare, ordered_write) = run(random_id, args), run(new_impression_id,
                                                                                                 args)
    result = {"stored_first": args.stored, "batches": args.batches, "batch": args.batch,
              "random_id_us_per_impression": round(random_prepare + random_write, 2),
              "time_ordered_id_us_per_impression": round(ordered_prepare + ordered_write, 2),
              "time_ordered_prepare_us": round(ordered_prepare, 2), "time_ordered_write_us": round(ordered_write, 2),
              "load_average_at_end": round(os.getloadavg()[0], 1), "date_utc": time.strftime("%Y-%m-%d %H:%M",
                                                                                           time.gmtime())}
    result["ratio"] = round(result["random_id_us_per_impression"] / result["time_ordered_id_us_per_impression"], 2)
    result.update(busy(args))
    result["busy_wall_ratio"] = round(result["busy_row_per_step_wall_us_per_impression"]
                                      / result["busy_shipped_wall_us_per_impression"], 1)
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
