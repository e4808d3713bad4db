"""Per-shard cost of the neighbour and related stages, in-process vs on Ray actors, and a computed 10M table.

Usage:
    python benchmarks/ray_stages.py [--articles 20000 50000 100000] [--actors 2] [--shard-rows 8192]
        [--factory HNSW32,Flat] [--out-dir benchmarks/out]

For each catalogue size: the corpus of build_100k.py (real Reuters-21578 + BBC News text, sentence-rotated
variants), vectors made from that text without the model (a fixed random projection of each article's TF-IDF row
to 384 dims plus Gaussian noise, unit length: text-shaped neighbourhoods, no embedding run), a FAISS index of
``--factory`` (HNSW, what a catalogue above 50k gets; TF-IDF queries pruned to 25 terms at every size, as above
50k), then the neighbour stage (``neighbours.neighbour_search``)
and the related stage (``related_tables.related_tables``, a full build) twice: with ``LocalShards`` (this
process, shard after shard) and with ``RayShards`` (``--actors`` actors of one CPU on a local Ray instance).
Every shard function is wrapped to time itself where it runs, so the JSON holds, per stage and phase, each
shard's seconds, the wall time of the phase and the driver's own seconds (TF-IDF fit, query pruning, transposes,
entity matrix, merges, object-store puts, actor start). The two runs' outputs are checked byte-equal.

The 10M table is computed, not run: per-row seconds of each phase on the Ray actors (one core each) at the
largest size, scaled to 10M by the
per-row growth measured between the two largest sizes (a power law; the TF-IDF search's postings grow with the
catalogue, HNSW's hops with its log), times the rows, divided by the worker count, plus the driver's seconds
scaled linearly. A worker is one actor on one core as fast as one core here. The same table from the in-process
run's costs comes with it. Writes ray_stages.json; ``--project FILE`` recomputes the tables of a saved one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from build_100k import OUT, corpus

from recommender.build.neighbours import neighbour_search
from recommender.build.ray_stages import RayShards
from recommender.build.related_tables import dense_table, related_tables
from recommender.build.relatedness import LexicalModel
from recommender.build.shards import LocalShards
from recommender.catalogue import lexical_texts, read_catalogue
from recommender.config import BuildConfig, IndexConfig, RelatednessConfig
from recommender.storage.index import FaissIndex

TARGET = 10_000_000
WORKERS = (1, 8, 32, 128, 512)


def timed_fn(fn: Callable) -> Callable:
    """``fn`` returning (its result, the seconds it took where it ran)."""
    def run(state, rows):
        started = time.perf_counter()
        result = fn(state, rows)
        return result, time.perf_counter() - started
    run.__name__ = fn.__name__
    return run


class TimedShards:
    """A runner that records each shard's own seconds and each phase's wall time."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.shard_rows = inner, inner.name, inner.shard_rows
        self.phases: list[dict[str, Any]] = []

    def map(self, fn, state, rows):
        started = time.perf_counter()
        out = self.inner.map(timed_fn(fn), state, rows)
        self.phases.append({"phase": fn.__name__, "rows": len(rows), "shards": len(out),
                            "wall_seconds": time.perf_counter() - started, "shard_seconds": [s for _, s in out]})
        return [r for r, _ in out]


def vectors_of(texts: list[str], dims: int = 384, seed: int = 0) -> np.ndarray:
    """Unit vectors shaped by the text: a fixed random projection of the TF-IDF rows, plus noise."""
    _, matrix = LexicalModel.fit(texts)
    rng = np.random.default_rng(seed)
    projected = np.asarray(matrix @ rng.normal(size=(matrix.shape[1], dims)).astype(np.float32))
    projected /= np.linalg.norm(projected, axis=1, keepdims=True) + 1e-9
    noisy = projected + 0.05 * rng.normal(size=projected.shape).astype(np.float32)
    return np.ascontiguousarray(noisy / np.linalg.norm(noisy, axis=1, keepdims=True), dtype=np.float32)


def run_stages(runner, index: FaissIndex, vectors: np.ndarray, texts: list[str], tags, config: BuildConfig
               ) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Both stages through ``runner``; (timings, output arrays)."""
    depth = config.neighbour_count + config.neighbour_margin
    timed = TimedShards(runner)
    started = time.perf_counter()
    dense, _ = dense_table(neighbour_search(timed, index, vectors, depth), vectors, depth, config.neighbour_count,
                           None)
    neighbours_seconds = time.perf_counter() - started
    started = time.perf_counter()
    tables = related_tables(vectors, texts, dense, config.neighbour_count, config, {}, None,
                            now=datetime(2026, 12, 1, tzinfo=UTC), tags=tags, shards=timed)
    related_seconds = time.perf_counter() - started
    if isinstance(runner, RayShards):
        runner.release()
    stages = {"neighbours": [p for p in timed.phases if p["phase"] == "neighbour_shard"],
              "related": [p for p in timed.phases if p["phase"] != "neighbour_shard"]}
    walls = {stage: sum(p["wall_seconds"] for p in phases) for stage, phases in stages.items()}
    result = {"neighbours_seconds": neighbours_seconds, "related_seconds": related_seconds, "phases": timed.phases,
              "driver_seconds": {"neighbours": neighbours_seconds - walls["neighbours"],
                                 "related": related_seconds - walls["related"]}}
    state = tables.state
    arrays = [dense.rows, dense.scores, tables.related[0], tables.related[1], state.candidates, state.cosines,
              state.lexical_scores, state.shared, state.lexical.rows, state.lexical.scores]
    return result, arrays


def summary(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per phase: shards, mean and max shard seconds, per-row seconds, wall seconds."""
    out = {}
    for p in phases:
        s = p["shard_seconds"]
        out[p["phase"]] = {"shards": p["shards"], "shard_seconds_mean": round(float(np.mean(s)), 4),
                           "shard_seconds_max": round(float(np.max(s)), 4), "shard_seconds_sum": round(sum(s), 2),
                           "row_seconds": sum(s) / p["rows"], "wall_seconds": round(p["wall_seconds"], 2)}
    return out


def projection(sizes: dict[int, dict[str, Any]], shard_rows: int, basis: str = "ray") -> dict[str, Any]:
    """The 10M-on-N-workers table from the per-row costs of the ``basis`` runs ("ray": one-CPU actors; "local":
    this process, where HNSW searches on every core) (module doc)."""
    sizes = {int(n): v for n, v in sizes.items()}
    ns = sorted(sizes)
    big, small = ns[-1], ns[-2] if len(ns) > 1 else None
    phases: dict[str, Any] = {}
    for phase, measured in sizes[big][basis]["summary"].items():
        row = measured["row_seconds"]
        growth = 0.0
        if small is not None:
            before = sizes[small][basis]["summary"][phase]["row_seconds"]
            growth = max(math.log(row / before) / math.log(big / small), 0.0)  # noise never makes rows cheaper
        row_at_target = row * (TARGET / big) ** growth
        phases[phase] = {"row_seconds_measured": row, "growth_exponent": round(growth, 3),
                         "row_seconds_at_10m": row_at_target, "shard_seconds_at_10m": row_at_target * shard_rows,
                         "core_seconds_at_10m": row_at_target * TARGET}
    driver = sum(sizes[big][basis]["driver_seconds"].values()) * TARGET / big
    shards = math.ceil(TARGET / shard_rows)
    table = {str(w): {"shard_seconds": round(sum(p["core_seconds_at_10m"] for p in phases.values()) / w, 1),
                      "driver_seconds": round(driver, 1),
                      "total_hours": round((sum(p["core_seconds_at_10m"] for p in phases.values()) / w + driver)
                                           / 3600, 2)} for w in WORKERS}
    return {"basis": basis, "target_articles": TARGET, "shards": shards, "from_sizes": [small, big], "phases": phases,
            "driver_seconds_scaled_linearly": round(driver, 1), "workers": table}


def main() -> None:
    """Run every size local and on Ray; print and save JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    parser.add_argument("--articles", type=int, nargs="+", default=[20_000, 50_000, 100_000])
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--shard-rows", type=int, default=8_192)
    parser.add_argument("--factory", default="HNSW32,Flat")
    parser.add_argument("--out-dir", default=str(OUT))
    parser.add_argument("--project", default=None, help="only recompute the 10M tables of this ray_stages.json")
    args = parser.parse_args()
    if args.project:
        report = json.loads(Path(args.project).read_text())
        report["projection"] = {b: projection(report["sizes"], report["shard_rows"], b) for b in ("ray", "local")}
        print(json.dumps(report["projection"], indent=1))
        Path(args.project).write_text(json.dumps(report, indent=1))
        return
    import ray

    ray.init(num_cpus=args.actors, include_dashboard=False, log_to_driver=False)
    # Pruned TF-IDF queries at every size, as every catalogue above 50k (and a 10M one) runs them.
    config = BuildConfig(index=IndexConfig(factory=args.factory), query_shard_rows=args.shard_rows,
                         relatedness=RelatednessConfig(exact_lexical_max_count=min(args.articles) - 1))
    sizes: dict[int, dict[str, Any]] = {}
    for n in args.articles:
        articles = read_catalogue(corpus(Path(args.data), n)).articles
        texts = lexical_texts(articles)
        tags = articles["tags"].tolist()
        vectors = vectors_of(texts)
        started = time.perf_counter()
        index = FaissIndex.build(vectors, config.index)
        result: dict[str, Any] = {"index_seconds": round(time.perf_counter() - started, 2),
                                  "load_average_1m_before": round(os.getloadavg()[0], 2)}
        outputs = {}
        for name, runner in (("local", LocalShards(args.shard_rows)),
                             ("ray", RayShards(args.shard_rows, args.actors, 1.0))):
            timings, outputs[name] = run_stages(runner, index, vectors, texts, tags, config)
            timings["summary"] = summary(timings.pop("phases"))
            result[name] = timings
            print(n, name, json.dumps({k: v for k, v in timings.items() if k != "summary"}), flush=True)
            for phase, values in timings["summary"].items():
                print(f"  {phase}: {values}", flush=True)
        result["load_average_1m_after"] = round(os.getloadavg()[0], 2)
        result["byte_equal"] = all(a.tobytes() == b.tobytes() for a, b in zip(outputs["local"], outputs["ray"]))
        print(n, "byte_equal", result["byte_equal"], flush=True)
        sizes[n] = result
    report = {"machine": f"{os.cpu_count()} cores (shared), local Ray with {args.actors} one-CPU actors",
              "factory": args.factory, "shard_rows": args.shard_rows, "sizes": sizes}
    if len(sizes) > 1:
        report["projection"] = {b: projection(sizes, args.shard_rows, b) for b in ("ray", "local")}
        print(json.dumps(report["projection"], indent=1))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ray_stages.json").write_text(json.dumps(report, indent=1))
    ray.shutdown()


if __name__ == "__main__":
    main()
