"""What an experiment impression costs now that its id carries what its list showed: issuing the id (on the
request), reading it back and crediting its click (SQLite counter store), the flush, and what is stored.

Usage: python benchmarks/impression_ids.py [--impressions 200000] [--clicks 5000] [--flushes 200] [--batch 500]
       [--out PATH]

In a fresh counter file and experiment store: ``--impressions`` ten-item A/B and interleaved impression ids
issued from a list's prepared header (``ImpressionSigner.header`` once per list and hour, then ``issue`` per
impression, as the service does), their counts written in ``--flushes`` flushes of ``--batch``, then
``--clicks`` of them clicked through ``Experiments.clicked`` (the id read and checked, the click credited in one
transaction), and the same ids read (MAC checked) with their key the newest and once it is replaced by a
rotation (an id signed with a replaced key costs a second check during the overlap). Reports microseconds per
operation and the counter file's size before and after the clicks (the impressions alone add no row). Prints
and saves JSON (default out/impression_ids.json).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from recommender.experiments.definition import Experiment
from recommender.experiments.impression_token import NONCES, experiment_tag
from recommender.service.experiment_counts import SQLiteExperimentCounts
from recommender.service.experiment_store import ExperimentStore
from recommender.service.experiments import Experiments
from recommender.service.impression_batch import Batch, count_keys

ITEMS = tuple(f"syn-{i:06d}" for i in range(10))
HOUR = 490_000


def no_arms(arm):
    raise AssertionError("nothing is ranked here")


def file_bytes(folder: Path, counts: SQLiteExperimentCounts) -> int:
    counts._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return (folder / "views.sqlite").stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=200_000)
    parser.add_argument("--clicks", type=int, default=5_000)
    parser.add_argument("--flushes", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "impression_ids.json"))
    args = parser.parse_args()
    result: dict[str, object] = {"impressions": args.impressions, "clicks": args.clicks}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        store = ExperimentStore(folder / "experiments.sqlite")
        arms = [{"name": "control"}, {"name": "fresh"}]
        ab = store.create(Experiment.from_dict({"name": "ab", "kind": "ab", "arms": arms}), "bench", "").experiment
        mixed = store.create(Experiment.from_dict({"name": "il", "kind": "interleave", "arms": arms}), "bench",
                             "").experiment
        counts = SQLiteExperimentCounts(folder / "views.sqlite")
        experiments = Experiments(store, counts, no_arms)
        signer = experiments.shown.signer
        lists = {"ab": (ab, ("fresh",) * 10), "interleave": (mixed, ("control", "fresh") * 5)}
        ids: dict[str, list[str]] = {}
        for kind, (experiment, shown) in lists.items():
            started = time.perf_counter()
            for _ in range(1000):
                header = signer.header(experiment, "related", HOUR, shown, ITEMS)
            result[f"{kind}_header_us"] = round((time.perf_counter() - started) * 1e3, 2)
            started = time.perf_counter()
            ids[kind] = [signer.issue(header, NONCES.take()) for _ in range(args.impressions)]
            result[f"{kind}_issue_us_per_impression"] = round((time.perf_counter() - started) * 1e6
                                                              / args.impressions, 2)
            result[f"{kind}_id_chars"] = len(ids[kind][0])
        before = file_bytes(folder, counts)
        keys = count_keys("ab", "fresh", "related", HOUR, ("fresh",) * 10)
        started = time.perf_counter()
        for _ in range(args.flushes):
            batch = Batch()
            batch.add(keys, args.batch)
            counts.write(batch)
        result["flush_ms"] = round((time.perf_counter() - started) * 1e3 / args.flushes, 3)
        result["bytes_added_by_impressions"] = file_bytes(folder, counts) - before
        now = datetime.fromtimestamp(HOUR * 3600 + 60, UTC)
        before = file_bytes(folder, counts)
        for kind in lists:
            started = time.perf_counter()
            credited = sum(experiments.clicked(i, ITEMS[3], now) is not None for i in ids[kind][:args.clicks])
            result[f"{kind}_click_us"] = round((time.perf_counter() - started) * 1e6 / args.clicks, 1)
            assert credited == args.clicks, (kind, credited)
        result["bytes_per_clicked_impression"] = round((file_bytes(folder, counts) - before) / (2 * args.clicks))
        tags, sample = {experiment_tag(e.name): e for e in (ab, mixed)}, ids["ab"][:args.clicks]

        def read_us() -> float:
            started = time.perf_counter()
            for impression_id in sample:
                store.signer.read(impression_id, tags, now.timestamp())
            return round((time.perf_counter() - started) * 1e6 / len(sample), 2)

        result["ab_read_us_newest_key"] = read_us()
        store.rotate_key("bench", "the overlap's cost")
        result["ab_read_us_replaced_key"] = read_us()  # a second MAC check: the ids' key is replaced, not revoked
        counts.close()
        store.close()
    result["load_average_at_end"] = round(os.getloadavg()[0], 1)
    result["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
