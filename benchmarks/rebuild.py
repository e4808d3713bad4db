"""Nightly rebuild benchmark: a full build by stage, an incremental one with 1% changed, neighbour precompute at scale.

Usage:
    python benchmarks/rebuild.py build [--articles 3000]        # real Reuters-21578 articles, empty cache
    python benchmarks/rebuild.py neighbours [--sizes 100000 1000000] [--sample-queries 10000]

``build`` runs ``recommender.build.rebuild`` twice in this process with an empty embedding cache: a full build, then the
same catalogue with 1% of the articles edited (a correction line prepended to the body, so the embedded text
changes). Each run creates its own embedder (a nightly cron run starts cold too).

``neighbours`` times the precompute of every article's 50 nearest neighbours with the exact index (Flat) and the
approximate one the engine picks above 50k articles (HNSW32) on synthetic vectors made from the real embeddings
of the ``build`` run (see ``synthetic_vectors``). Index builds always run in full. Where the all-pairs search
would take hours on two cores (exact above 20k, HNSW above 100k), it runs for ``--sample-queries`` queries and
is extrapolated linearly (brute force is linear in the queries); the JSON marks extrapolated numbers. Results go to
benchmarks/out/rebuild-*.json (``--out-dir`` elsewhere: the indexes, the cache, the seed vectors and the JSON). A
smoke run: ``build --articles 200 --out-dir /tmp/rb``, then ``neighbours --sizes 3000 --sample-queries 200
--exact-full-max 1000 --full-max 2000 --out-dir /tmp/rb``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402

from recommender.build import rebuild  # noqa: E402
from recommender.build.neighbours import compute_neighbours  # noqa: E402
from recommender.config import IndexConfig  # noqa: E402
from recommender.storage.index import FaissIndex, recall_at_k  # noqa: E402

OUT = Path(__file__).parent / "out"
K = 50


def reuters(data: Path, count: int) -> pd.DataFrame:
    """The first ``count`` Reuters-21578 stories with a title and a body of 300+ characters (by newid)."""
    frame = pd.read_csv(data / "reuters-21578" / "reuters21578.csv", dtype=str, keep_default_na=False)
    frame = frame[(frame["text_type"] == "NORM") & (frame["body"].str.len() >= 300) & (frame["title"] != "")]
    frame = frame.head(count)
    return pd.DataFrame({"id": "reuters-" + frame["newid"], "title": frame["title"], "body": frame["body"],
                         "published_at": frame["date_iso"], "tags": frame["topics"],
                         "section": frame["topics"].str.split(";").str[0]}).reset_index(drop=True)


def run_build(args: argparse.Namespace) -> dict:
    """Full build then a 1%-changed incremental rebuild, both from this process, stage by stage."""
    catalogue = reuters(Path(args.data), args.articles)
    out = Path(args.out_dir)
    root, cache = out / "rebuild-indexes", out / "rebuild-cache.sqlite"
    shutil.rmtree(root, ignore_errors=True)
    for leftover in out.glob("rebuild-cache.sqlite*"):
        leftover.unlink()
    started = time.perf_counter()
    full = rebuild(catalogue, root, cache_path=cache)
    full_wall = time.perf_counter() - started
    edited = catalogue.copy()
    rows = np.random.default_rng(0).choice(len(edited), size=max(len(edited) // 100, 1), replace=False)
    token = uuid.uuid4().hex[:8]
    edited.loc[rows, "body"] = [f"Correction ({token}): an earlier version misstated a figure. " + b
                                for b in edited.loc[rows, "body"]]
    started = time.perf_counter()
    incremental = rebuild(edited, root, cache_path=cache)
    incremental_wall = time.perf_counter() - started
    vectors = np.load(root / "current" / "vectors.npy")
    np.save(out / "rebuild-real-vectors.npy", vectors)  # the seed of the `neighbours` run
    result = {
        "corpus": f"Reuters-21578, first {len(catalogue)} NORM stories with 300+ character bodies",
        "full": {"wall_seconds": round(full_wall, 2), "stages": _round(full.seconds), "embedded": full.embedded},
        "incremental": {"wall_seconds": round(incremental_wall, 2), "stages": _round(incremental.seconds),
                        "embedded": incremental.embedded, "reused": incremental.reused,
                        "diff": incremental.diff.to_dict()},
        "speedup": round(full_wall / incremental_wall, 1),
    }
    embed_rate = full.embedded / full.seconds["embed"]
    other = full_wall - full.seconds["embed"]
    result["extrapolated_100k"] = {
        "note": "NOT measured: linear extrapolation of this run's embedding rate; index/neighbour costs at 100k "
                "come from the `neighbours` run",
        "embed_seconds": round(100_000 / embed_rate, 0), "embed_rate_per_second": round(embed_rate, 1),
        "incremental_embed_seconds_1pct": round(1_000 / embed_rate, 0),
        "non_embed_seconds_at_this_size": round(other, 2)}
    print(f"full build of {full.articles} articles: {full_wall:.1f}s ({_stages(full.seconds)})")
    print(f"incremental, {incremental.diff.changed} changed: {incremental_wall:.1f}s "
          f"({_stages(incremental.seconds)}); {result['speedup']}x faster, {incremental.embedded} embedded")
    return result


def synthetic_vectors(seed_vectors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` unit vectors near real ones: normalise(a + 0.5 b + noise), a and b random real article vectors.

    Mixing two real articles and adding Gaussian noise (sigma 0.02 per dimension, about 0.4 in norm) keeps the
    real embedding space's anisotropy while making every vector distinct.
    """
    out = np.empty((count, seed_vectors.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        a = seed_vectors[rng.integers(len(seed_vectors), size=n)]
        b = seed_vectors[rng.integers(len(seed_vectors), size=n)]
        block = a + 0.5 * b + rng.normal(0.0, 0.02, size=a.shape).astype(np.float32)
        out[start:start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def run_neighbours(args: argparse.Namespace) -> dict:
    """Exact vs approximate precompute of 50 neighbours per vector at each size."""
    seed = np.load(Path(args.out_dir) / "rebuild-real-vectors.npy")
    rng = np.random.default_rng(0)
    results: dict = {"seed_vectors": f"{len(seed)} real Reuters embeddings (all-MiniLM-L6-v2)", "k": K, "sizes": {}}
    for size in args.sizes:
        vectors = synthetic_vectors(seed, size, rng)
        queries = np.sort(rng.choice(size, size=min(args.sample_queries, size), replace=False))
        row: dict = {}
        exact, exact_rows = _time_precompute(vectors, "Flat", IndexConfig(), queries, full=size <= args.exact_full_max)
        row["exact_Flat"] = exact
        config = IndexConfig(hnsw_m=32, ef_construction=80, ef_search=128)  # the engine's choice when measured
        measured, rows = _time_precompute(vectors, "HNSW32,Flat", config, queries, full=size <= args.full_max)
        measured["recall_at_10_vs_exact"] = round(recall_at_k(rows[:, :10], exact_rows[:, :10]), 4)
        measured["recall_at_50_vs_exact"] = round(recall_at_k(rows, exact_rows), 4)
        row["HNSW32,Flat"] = measured
        results["sizes"][str(size)] = row
        print(f"{size:,} vectors: " + "; ".join(f"{name} {r.get('precompute_seconds', 'n/a')}s"
                                               f"{' (extrapolated)' if r.get('extrapolated') else ''}"
                                               f" recall@10 {r.get('recall_at_10_vs_exact', 1.0)}"
                                               for name, r in row.items()))
    return results


def _time_precompute(vectors: np.ndarray, factory: str, config: IndexConfig, queries: np.ndarray,
                     full: bool) -> tuple[dict, np.ndarray]:
    """Build the index (always in full) and compute neighbours for all rows, or for ``queries`` and extrapolate."""
    import faiss

    rss = psutil.Process().memory_info().rss
    started = time.perf_counter()
    index = FaissIndex.build(vectors, IndexConfig(**{**config.__dict__, "factory": factory}))
    build_seconds = time.perf_counter() - started
    index_bytes = int(faiss.serialize_index(index.index).nbytes)
    started = time.perf_counter()
    if full:
        rows, _ = compute_neighbours(index, vectors, K)
        sample_rows = rows[queries]
    else:
        found, _ = index.search(vectors[queries], K + 1)
        sample_rows = np.stack([r[r != q][:K] for q, r in zip(queries, found)])
    search_seconds = time.perf_counter() - started
    if not full:
        search_seconds *= len(vectors) / len(queries)
    result = {"index_build_seconds": round(build_seconds, 2), "neighbour_search_seconds": round(search_seconds, 2),
              "precompute_seconds": round(build_seconds + search_seconds, 2), "index_bytes": index_bytes,
              "neighbour_table_bytes": len(vectors) * K * 8,
              "rss_growth_bytes": psutil.Process().memory_info().rss - rss, "extrapolated": not full,
              "queries_measured": len(vectors) if full else len(queries)}
    del index
    return result, sample_rows


def _round(seconds: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in seconds.items()}


def _stages(seconds: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}s" for k, v in seconds.items())


def main() -> None:
    """Run one part and save its JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=["build", "neighbours"])
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--sample-queries", type=int, default=10_000)
    parser.add_argument("--full-max", type=int, default=100_000,
                        help="Above this size the approximate search runs on a query sample (extrapolated).")
    parser.add_argument("--exact-full-max", type=int, default=20_000,
                        help="Above this size the exact search runs on a query sample (extrapolated).")
    parser.add_argument("--out-dir", default=str(OUT), help="where the indexes, caches and JSON go (default "
                        "benchmarks/out); `neighbours` reads the seed vectors `build` saved there")
    args = parser.parse_args()
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    result = run_build(args) if args.part == "build" else run_neighbours(args)
    result["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} "
                         f"GiB RAM, Python {platform.python_version()}")
    (Path(args.out_dir) / f"rebuild-{args.part}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
