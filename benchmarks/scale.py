"""Scale benchmark: the incremental HNSW index over nights of churn, and the whole rebuild at 100k+ by stage.

Usage (PYTHONPATH=benchmarks, nice on a shared machine):
    python benchmarks/scale.py index [--size 1000000] [--nights 30] [--churn 0.01] [--queries 500]
    python benchmarks/scale.py pipeline [--articles 100000] [--nights 5]
    python benchmarks/scale.py table [--articles 10000000] [--nodes 1 4 16]
    python benchmarks/scale.py block --root ROOT [--articles 100000]

Vectors: ``--seed-texts`` real Reuters-21578/BBC articles embedded with the default model once
(benchmarks/out/scale-seed-vectors.npy), every other vector a perturbation of those (``scale_support``): real
anisotropy, no semantic neighbours. Stated in each JSON.

``index``: the index stage alone, as ``recommender.build.index_update`` runs it. Night 0 builds HNSW32 (the engine's
defaults: efConstruction 200, efSearch 128; ``--ef-construction`` / ``--hnsw-m`` change them) over ``--size``
vectors; each night ``--churn`` of the articles change (half edited: their vector moves, half taken down, and as
many new ones published) and the index is updated (``index_update.updated``: tombstones + appends; compaction past
``max_dead_fraction``). Each night records the update's seconds, the tombstone share, recall@10 of ``--queries``
sampled articles against exact search over the night's vectors, and how many taken-down articles were returned (must
be 0), first at the configured efSearch, then after the build's calibration (``build/index_calibration.py``: the
efSearch doubled until recall@10 of its own seeded 500-article sample reaches 0.95), measured on the night's other
sample (chosen on one sample, reported on another). A from-scratch build of the last night's vectors gives the full-
rebuild time and its recall for comparison (``--no-scratch`` skips it). Writes out/scale-index-<size>.json
(``-m<M>-efc<efC>`` added when those differ from the engine's).

``pipeline``: real text (``build_100k.corpus``: Reuters + BBC expanded into sentence-rotated variants) through the
whole ``rebuild``, perturbed vectors. A full build, then ``--nights`` rebuilds with 1% of the articles edited
(a correction line), run twice side by side from copies of the same full build: the old path (index built in
full every night, ``index.incremental = False``) and the incremental index. Each run is its own process (peak
RSS = its ``ru_maxrss``). Reports seconds by stage, peak RSS and the disk of the kept versions (hard links counted
once). Writes out/scale-pipeline-<articles>.json.

``table``: a computed (not measured) sizing of a 1%-changed rebuild at ``--articles`` on N nodes from the
per-article costs in the two JSON files above. Writes out/scale-table.json.

``block``: the terms of a nightly rebuild that grow with n x changed, not with n: the candidate tables' scores of
every unchanged row against every changed article (``toptable.update``'s block, in its 4096-row batches: a matmul
for the dense table, a sparse product of TF-IDF queries for the lexical one) and the choice of each row's fresh
entries from them: for the dense table the old way (a partition of the whole block for the best 66) beside
today's (``toptable.fresh_entries``: those above the row's floor). Over ``--root``'s current build (its vectors,
TF-IDF and floors) with 1% and 10% of the rows fresh, scaled to 1M rows x 10k fresh. Writes
out/scale-block-<articles>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from scale_support import churn, mixed, seed_vectors  # noqa: E402

from recommender.build.index_calibration import calibrated  # noqa: E402
from recommender.build.index_update import updated  # noqa: E402
from recommender.config import IndexConfig  # noqa: E402
from recommender.storage.index import FaissIndex, exact_search, recall_at_k  # noqa: E402

OUT = Path(__file__).parent / "out"
ENGINE_HNSW = IndexConfig(factory="HNSW32,Flat")  # the engine's defaults above 50k articles


def machine() -> str:
    """The hardware line every JSON carries."""
    return (f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"Python {platform.python_version()}, load average at start {os.getloadavg()[0]:.1f}")


def real_seed(args: argparse.Namespace) -> np.ndarray:
    """The real seed vectors (embedded once by the default model)."""
    from build_100k import base_corpus

    from recommender.catalogue import embedding_texts
    from recommender.config import EmbedderConfig

    path = Path(args.out_dir) / "scale-seed-vectors.npy"
    if path.exists():
        return np.load(path)
    frame = base_corpus(Path(args.data)).sample(n=args.seed_texts, random_state=0).assign(abstract="")
    return seed_vectors(path, embedding_texts(frame, EmbedderConfig().max_chars))


def recall_night(index: FaissIndex, vectors: np.ndarray, ids: np.ndarray, removed: set[int], queries: int,
                 rng: np.random.Generator) -> tuple[float, int]:
    """recall@10 of sampled articles vs exact search, and how many taken-down articles the search returned."""
    sample = np.sort(rng.choice(len(vectors), size=min(queries, len(vectors)), replace=False))
    found, _ = index.search(vectors[sample], 10)
    exact = np.concatenate([exact_search(vectors, vectors[sample[s:s + 100]], 10)[0]
                            for s in range(0, len(sample), 100)])
    returned = ids[found[found >= 0]]
    return recall_at_k(found, exact), int(np.isin(returned, np.fromiter(removed, dtype=np.int64)).sum())


def run_index(args: argparse.Namespace) -> dict:
    """Nights of churn on the index stage alone (see the module doc)."""
    seed = real_seed(args)
    rng = np.random.default_rng(0)
    vectors = mixed(seed, rng, args.size)
    ids = np.arange(args.size, dtype=np.int64)
    next_id, removed_ids = args.size, set()
    config = IndexConfig(**{**ENGINE_HNSW.__dict__, "max_dead_fraction": args.max_dead_fraction,
                            "ef_construction": args.ef_construction, "hnsw_m": args.hnsw_m,
                            "factory": f"HNSW{args.hnsw_m},Flat"})
    started = time.perf_counter()
    index = FaissIndex.build(vectors, config)
    build_seconds = time.perf_counter() - started
    recall0, _ = recall_night(index, vectors, ids, removed_ids, args.queries, rng)
    print(f"night 0: full build {build_seconds:.1f} s, recall@10 {recall0:.4f}", flush=True)
    nights = []
    for night in range(1, args.nights + 1):
        edited, removed, new = churn(len(vectors), args.churn, rng)
        keep = np.ones(len(vectors), dtype=bool)
        keep[removed] = False
        kept_old = np.flatnonzero(keep)
        removed_ids.update(ids[removed].tolist())
        fresh = np.concatenate([vectors[kept_old], mixed(seed, rng, new)])
        edited_new = np.searchsorted(kept_old, edited)
        moved = fresh[edited_new] + rng.normal(0.0, 0.05, size=(len(edited), fresh.shape[1])).astype(np.float32)
        fresh[edited_new] = moved / np.linalg.norm(moved, axis=1, keepdims=True)
        ids = np.concatenate([ids[kept_old], np.arange(next_id, next_id + new, dtype=np.int64)])
        next_id += new
        reused = np.ones(len(kept_old), dtype=bool)
        reused[edited_new] = False
        reused_positions = np.flatnonzero(reused)
        positions = index.positions if index.positions is not None else np.arange(index.rows_total)
        row_of_old = np.full(len(vectors), -1, dtype=np.int64)
        row_of_old[positions[positions >= 0]] = np.flatnonzero(positions >= 0)
        started = time.perf_counter()
        next_index = updated(index, fresh, row_of_old[kept_old[reused_positions]], reused_positions, config)
        mode = "incremental"
        if next_index is None:
            mode, next_index = "compaction (full build)", FaissIndex.build(fresh, config)
        seconds = time.perf_counter() - started
        index, vectors = next_index.searching_with(config.ef_search), fresh
        state = rng.bit_generator.state
        recall, leaked = recall_night(index, vectors, ids, removed_ids, args.queries, rng)
        rng.bit_generator.state = state  # the same held-out sample for both efSearch values
        started = time.perf_counter()
        index, calibration = calibrated(index, vectors, config)
        calibration_seconds = time.perf_counter() - started
        tuned_recall, tuned_leaked = recall_night(index, vectors, ids, removed_ids, args.queries, rng)
        nights.append({"night": night, "mode": mode, "seconds": round(seconds, 2), "articles": len(vectors),
                       "rows_total": index.rows_total, "dead_share": round(index.dead_rows / index.rows_total, 4),
                       "recall_at_10": round(recall, 4), "removed_returned": leaked + tuned_leaked,
                       "calibrated_ef_search": calibration.ef_search,
                       "calibrated_recall_at_10": round(tuned_recall, 4),
                       "calibration_seconds": round(calibration_seconds, 2),
                       "calibration": calibration.to_dict()})
        print(json.dumps(nights[-1]), flush=True)
    scratch_seconds = scratch_recall = None
    if not args.no_scratch:
        started = time.perf_counter()
        scratch = FaissIndex.build(vectors, config)
        scratch_seconds = round(time.perf_counter() - started, 1)
        scratch_recall = round(recall_night(scratch, vectors, ids, removed_ids, args.queries,
                                            np.random.default_rng(1))[0], 4)
    final_recall, _ = recall_night(index, vectors, ids, removed_ids, args.queries, np.random.default_rng(1))
    latency = _latency_by_ef(index, vectors, sorted({config.ef_search, index.config.ef_search}))
    import faiss

    started = time.perf_counter()
    index_bytes = int(faiss.serialize_index(index.index).nbytes)
    serialise_seconds = time.perf_counter() - started
    incremental = [n["seconds"] for n in nights if n["mode"] == "incremental"]
    return {
        "vectors": f"{args.size} perturbations of {len(seed)} real all-MiniLM-L6-v2 embeddings of Reuters/BBC articles",
        "index": f"HNSW{args.hnsw_m},Flat efConstruction {args.ef_construction} efSearch 128 (calibrated per night "
                 f"to recall@10 0.95)",
        "churn_per_night": args.churn,
        "max_dead_fraction": args.max_dead_fraction, "queries_per_night": args.queries,
        "night0_full_build_seconds": round(build_seconds, 1), "night0_recall_at_10": round(recall0, 4),
        "nights": nights, "incremental_update_seconds_median": round(float(np.median(incremental)), 2)
        if incremental else None,
        "min_recall_at_10": min(n["recall_at_10"] for n in nights),
        "min_calibrated_recall_at_10": min(n["calibrated_recall_at_10"] for n in nights),
        "calibrated_ef_search_by_night": [n["calibrated_ef_search"] for n in nights],
        "single_query_ms_by_ef_search": latency,
        "removed_returned_total": sum(n["removed_returned"] for n in nights),
        "last_night": {"incremental_recall_at_10_calibrated": round(final_recall, 4),
                       "from_scratch_recall_at_10": scratch_recall, "from_scratch_build_seconds": scratch_seconds},
        "index_bytes": index_bytes, "serialise_seconds": round(serialise_seconds, 2),
        "peak_rss_gib": round(_peak_rss_gib(), 2),
    }


def _latency_by_ef(index: FaissIndex, vectors: np.ndarray, values: list[int], queries: int = 2000) -> dict:
    """Median and p99 milliseconds of single-vector searches (k=10) at each efSearch, interleaved in one loop."""
    rng = np.random.default_rng(2)
    sample = vectors[rng.choice(len(vectors), size=queries, replace=False)]
    searchers = {ef: index.searching_with(ef) for ef in values}
    times: dict[int, list[float]] = {ef: [] for ef in values}
    for row in sample:
        for ef, searcher in searchers.items():
            started = time.perf_counter()
            searcher.search(row[None, :], 10)
            times[ef].append((time.perf_counter() - started) * 1000)
    return {str(ef): {"p50_ms": round(float(np.median(t)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3)}
            for ef, t in times.items()}


def _peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    """Run one part and save its JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=["index", "pipeline", "table", "block"])
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    parser.add_argument("--out-dir", default=str(OUT))
    parser.add_argument("--seed-texts", type=int, default=3000)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--max-dead-fraction", type=float, default=IndexConfig().max_dead_fraction)
    parser.add_argument("--no-scratch", action="store_true", help="skip the from-scratch build after the last night")
    parser.add_argument("--ef-construction", type=int, default=ENGINE_HNSW.ef_construction)
    parser.add_argument("--hnsw-m", type=int, default=ENGINE_HNSW.hnsw_m)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--root", default=None, help="block: an indexes root with a build (its vectors and floors)")
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.part == "index":
        suffix = "" if (args.hnsw_m, args.ef_construction) == (ENGINE_HNSW.hnsw_m, ENGINE_HNSW.ef_construction) \
            else f"-m{args.hnsw_m}-efc{args.ef_construction}"
        result, name = run_index(args), f"scale-index-{args.size}{suffix}.json"
    elif args.part == "pipeline":
        from scale_pipeline import run_pipeline

        result, name = run_pipeline(args), f"scale-pipeline-{args.articles}.json"
    elif args.part == "block":
        from scale_pipeline import run_block

        result, name = run_block(args), f"scale-block-{args.articles}.json"
    else:
        from scale_pipeline import run_table

        result, name = run_table(args), "scale-table.json"
    result["machine"] = machine()
    result["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    result["command"] = "PYTHONPATH=benchmarks python benchmarks/scale.py " + " ".join(sys.argv[1:])
    (out / name).write_text(json.dumps(result, indent=2))
    print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
