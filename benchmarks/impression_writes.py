"""Writing experiment impressions to the SQLite counter store: random vs time-ordered impression ids, and what
preparing an impression (on the request) costs against writing it (in the background flush).

Usage: python benchmarks/impression_writes.py [--stored 300000] [--batches 60] [--batch 500] [--out PATH]

Each run opens a fresh counter file, stores ``--stored`` impressions first (a day of a small site's experiment
lists, which the store keeps for 24 h), then times ``--batches`` flushes of ``--batch`` impressions each through
``SQLiteExperimentCounts.write``, as the service's background loop writes them, each batch prepared first
(``Batch.of``: counts summed, records serialised; the service does that as it serves). Both id kinds run in one
process, alternating, so the machine's load hits both alike. Prints and saves JSON (default out/impression_writes.json).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
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


def main() -> None:
    """Run both id kinds and save the JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--stored", type=int, default=300_000)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=500)
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
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
