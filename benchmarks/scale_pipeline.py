"""The ``pipeline`` and ``table`` parts of ``scale.py`` (see its module doc)."""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def catalogue(data: str, articles: int, night: int) -> pd.DataFrame:
    """The ``build_100k`` corpus after ``night`` nights: each night 1% of the articles get a correction line
    (seeded by the night, so both paths see the same edits; an article edited twice changes twice)."""
    from build_100k import corpus

    frame = corpus(Path(data), articles)
    for j in range(1, night + 1):
        rows = np.random.default_rng(1000 + j).choice(len(frame), size=len(frame) // 100, replace=False)
        frame.loc[rows, "body"] = f"Correction (night {j}): an earlier version misstated a figure. " + \
            frame.loc[rows, "body"]
    return frame


def _one(data: str, articles: int, night: int, root: str, incremental: bool, seed_path: str) -> dict[str, Any]:
    """One build in this (child) process: its stages, wall time and peak RSS."""
    from scale_support import PerturbedEmbedder

    from recommender.build import build
    from recommender.config import BuildConfig, IndexConfig
    from recommender.storage.manifest import read_manifest

    frame = catalogue(data, articles, night)
    embedder = PerturbedEmbedder(np.load(seed_path))
    config = BuildConfig(index=IndexConfig(incremental=incremental))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    report = build(frame, root, config=config, embedder=embedder)
    wall = time.perf_counter() - started
    assert report.path is not None
    source = read_manifest(report.path, verify_files=False).source
    return {"night": night, "wall_seconds": round(wall, 1),
            "stages": {k: round(v, 2) for k, v in report.seconds.items()}, "embedded": report.embedded,
            "reused": report.reused, "index": source.get("index"), "shared_files": source.get("shared_with_previous"),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "rss_before_build_gib": round(rss_before / 2**20, 2)}


def _child(*args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_one, args)


def run_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    """Full build, then ``args.nights`` 1%-changed rebuilds on the old path and the incremental index."""
    from scale import real_seed

    from recommender.storage.versions import IndexStore

    out = Path(args.out_dir)
    seed = real_seed(args)
    seed_path = str(out / "scale-seed-vectors.npy")
    work = out / f"scale-pipeline-{args.articles}"
    shutil.rmtree(work, ignore_errors=True)
    new, old = work / "incremental", work / "old"
    full = _child(args.data, args.articles, 0, str(new), True, seed_path)
    print(f"full build: {full}", flush=True)
    shutil.copytree(new, old, symlinks=True)
    nights: list[dict[str, Any]] = []
    for night in range(1, args.nights + 1):
        row: dict[str, Any] = {"night": night}
        for name, root, incremental in (("old", old, False), ("incremental", new, True)):
            row[name] = _child(args.data, args.articles, night, str(root), incremental, seed_path)
            print(f"night {night} {name}: {row[name]}", flush=True)
        row["wall_ratio_old_over_incremental"] = round(row["old"]["wall_seconds"] /
                                                       row["incremental"]["wall_seconds"], 2)
        row["index_ratio_old_over_incremental"] = round(row["old"]["stages"]["index"] /
                                                        max(row["incremental"]["stages"]["index"], 1e-3), 1)
        nights.append(row)
    disk = {name: IndexStore(root).disk_usage() for name, root in (("old", old), ("incremental", new))}
    kept = {name: len(IndexStore(root).versions()) for name, root in (("old", old), ("incremental", new))}
    return {
        "articles": args.articles, "nights": nights, "full_build": full,
        "corpus": "build_100k.corpus: Reuters-21578 NORM (body >= 300 chars) + BBC News, sentence-rotated variants",
        "vectors": f"PerturbedEmbedder: sha256-seeded perturbations of {len(seed)} real all-MiniLM-L6-v2 "
                   f"embeddings (no semantic neighbours); the embed stage's model time is NOT included",
        "gates": "build(): quality gates off, the integrity check (self-match) on",
        "disk_kept_versions": {name: {**disk[name], "versions": kept[name]} for name in disk},
        "disk_note": "apparent = every kept build counted in full (today's layout, no sharing); unique = bytes on "
                     "disk with hard-linked unchanged files counted once",
        "median_night_wall_seconds": {name: round(float(np.median([n[name]["wall_seconds"] for n in nights])), 1)
                                      for name in ("old", "incremental")},
    }


def run_table(args: argparse.Namespace) -> dict[str, Any]:
    """A computed sizing of a 1%-changed rebuild at ``args.articles`` on N nodes (see docs/scale.md)."""
    import json

    out = Path(args.out_dir)
    pipeline = json.loads((out / "scale-pipeline-100000.json").read_text())
    index_runs = sorted(out.glob("scale-index-*.json"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    index = json.loads(index_runs[-1].read_text())
    measured_n = pipeline["articles"]
    nights = [n["incremental"]["stages"] for n in pipeline["nights"]]
    per_stage = {k: float(np.median([n[k] for n in nights])) for k in nights[0]}
    scale = args.articles / measured_n
    index_size = len(index["nights"]) and index["nights"][0]["articles"]
    per_appended = index["incremental_update_seconds_median"] / max(index_size * index["churn_per_night"], 1)
    # linear in the catalogue: every stage reads, writes or verifies all n rows today (not sharded)
    linear = {k: v * scale for k, v in per_stage.items() if k != "index"}
    index_seconds = per_appended * args.articles * 0.01
    rows = []
    for nodes in args.nodes:
        parallel = sum(linear[k] for k in ("embed", "neighbours", "related") if k in linear) / nodes
        serial = sum(v for k, v in linear.items() if k not in ("embed", "neighbours", "related"))
        rows.append({"nodes": nodes, "seconds": round(parallel + serial + index_seconds),
                     "serial_seconds": round(serial + index_seconds), "parallel_seconds": round(parallel)})
    return {"computed_not_measured": True, "articles": args.articles, "from_pipeline_articles": measured_n,
            "from_index_size": index_size, "per_stage_seconds_at_measured": per_stage,
            "index_seconds_per_appended_vector": per_appended, "rows": rows,
            "model": "embed, neighbours and related divide by the nodes (Ray); read, stories, write, verify, gates "
                     "and publish stay on one node and scale linearly with the catalogue; the index update scales "
                     "with the appended vectors (1% of the catalogue)"}


def run_block(args: argparse.Namespace) -> dict[str, Any]:
    """The candidate tables' term that grows with n x changed: every unchanged row's scores against every fresh
    row (``toptable.update``'s block, per 4096 rows: a matmul for the dense table, a sparse product of the rows'
    TF-IDF queries with the fresh rows' TF-IDF for the lexical one) and the choice of each row's fresh entries from
    them; for the dense table two ways side by side: a partition of the whole block for the best 66 (the update
    before 2026-12-06) and ``toptable.fresh_entries`` (the entries above the row's floor, today's). Vectors, TF-IDF
    and floors are a real build's (``--root``'s current: ``vectors.npy`` and ``related_state.npz``; the queries its
    25 strongest terms a row, as above 50k articles); 1% and 10% of its rows fresh; scaled to 1M rows x 10k fresh
    (linear in both)."""
    import scipy.sparse as sp

    from recommender.build.relatedness import top_terms
    from recommender.config import RelatednessConfig
    from recommender.storage.versions import IndexStore

    build = IndexStore(args.root).current() if args.root else None
    if build is None:
        raise SystemExit(f"scale.py block needs --root: an indexes root with a build (got {args.root!r}); make "
                         f"one with `python benchmarks/pair_scores.py --articles 100000`")
    vectors = np.load(build / "vectors.npy")
    with np.load(build / "related_state.npz") as state:
        floors = {"dense": state["dense_floor"], "lexical": np.maximum(state["lexical_floor"], 0.0)}
        matrix = sp.csr_matrix((state["matrix_data"], state["matrix_indices"], state["matrix_indptr"]),
                               shape=tuple(state["matrix_shape"]))
    queries = top_terms(matrix, RelatednessConfig().lexical_query_terms or 25)
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(1)
    for share in (0.01, 0.1):
        chosen = np.sort(rng.choice(len(vectors), int(len(vectors) * share), replace=False))
        scale = (1_000_000 / len(vectors)) * (10_000 / len(chosen))
        fresh_vectors, fresh_columns = vectors[chosen], matrix[chosen].T.tocsr()
        dense = _block_seconds(lambda r, f=fresh_vectors: vectors[r] @ f.T, floors["dense"], chosen, len(vectors),
                               True)
        lexical = _block_seconds(lambda r, f=fresh_columns: (queries[r] @ f).toarray(), floors["lexical"], chosen,
                                 len(vectors), False)
        rows.append({"rows": len(vectors), "fresh": len(chosen), "dense": dense, "lexical": lexical,
                     "computed_1m_rows_10k_fresh_s": {
                         "dense, partition": round((dense["block_s"] + dense["partition_s"]) * scale, 1),
                         "dense, above floor": round((dense["block_s"] + dense["above_floor_s"]) * scale, 1),
                         "lexical, above floor": round((lexical["block_s"] + lexical["above_floor_s"]) * scale, 1)}})
        print(rows[-1], flush=True)
    return {"runs": rows, "build": str(build)}


def _block_seconds(score: Any, floors: np.ndarray, fresh_rows: np.ndarray, n: int, partition: bool,
                   depth: int = 66, batch: int = 4096) -> dict[str, Any]:
    """Seconds of ``score`` (rows -> their block against the fresh rows) and of choosing the fresh entries above
    each row's floor (and, with ``partition``, of the old partition) over all ``n`` rows in ``batch``-row blocks."""
    from recommender.build.toptable import fresh_entries

    seconds = {"block": 0.0, "above_floor": 0.0, **({"partition": 0.0} if partition else {})}
    merged = 0
    for start in range(0, n, batch):
        started = time.perf_counter()
        block = np.asarray(score(np.arange(start, min(start + batch, n))), dtype=np.float32)
        seconds["block"] += time.perf_counter() - started
        if partition:
            started = time.perf_counter()
            np.argpartition(-block, depth, axis=1)
            seconds["partition"] += time.perf_counter() - started
        started = time.perf_counter()
        entries = fresh_entries(block, fresh_rows, floors[start:start + batch], depth)
        seconds["above_floor"] += time.perf_counter() - started
        merged += int(np.isfinite(entries[1]).sum())
    return {**{f"{k}_s": round(v, 2) for k, v in seconds.items()}, "fresh_entries_above_floors": merged}
