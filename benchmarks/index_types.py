"""FAISS index types at 100k (and optionally 1M) vectors: build time, size, p50/p99 single-query latency, recall@10.

Vectors: real all-MiniLM-L6-v2 (torch fp32) embeddings of the BBC News articles, read from the embedding cache
(embedded on a cache miss), expanded by perturbation: each synthetic vector is a real one plus Gaussian noise,
renormalised (mean cosine to its parent ~0.82), so the clusters of real news remain. Not real articles.

Usage: python benchmarks/index_types.py [--sizes 100000] [--queries 500] [--out FILE]
Writes benchmarks/out/index_types.json (or ``--out``). A smoke run: ``--sizes 5000 --queries 20 --cache
/tmp/embeddings.sqlite --out /tmp/index_types.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recommender.config import IndexConfig  # noqa: E402
from recommender.embedding import EmbeddingCache, embed_cached, make_embedder  # noqa: E402
from recommender.evaluation.fidelity import load_slice  # noqa: E402
from recommender.storage.index import FaissIndex, recall_at_k  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def factories(count: int) -> dict[str, str]:
    """The compared index types; IVF lists ~4 sqrt(n) (FAISS's guideline)."""
    lists = int(4 * np.sqrt(count))
    return {"Flat": "Flat", "HNSW32": "HNSW32,Flat", "HNSW32+SQ8": "HNSW32,SQ8",
            f"IVF{lists},Flat": f"IVF{lists},Flat", f"IVF{lists},SQ8": f"IVF{lists},SQ8"}


def expand(real: np.ndarray, count: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` perturbed unit vectors and each one's real parent.

    Each is a real vector plus Gaussian noise of scale ``noise`` per component, renormalised.
    """
    rng = np.random.default_rng(seed)
    parents = real[rng.integers(0, len(real), size=count)]
    vectors = parents + rng.normal(0, noise, size=parents.shape).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), parents


def main() -> None:
    """Build each index type at each size; compare its single-query search with the exact one."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--cache", default=str(REPO / ".cache" / "embeddings.sqlite"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "index_types.json"))
    args = parser.parse_args()
    texts, _ = load_slice(args.data, "bbc", None)
    cache = EmbeddingCache(args.cache)
    try:
        real, _ = embed_cached(make_embedder(), texts, cache)
    finally:
        cache.close()
    config = IndexConfig()
    results = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "real_vectors": len(real),
               "search_params": {"ef_search": config.ef_search, "nprobe": config.nprobe,
                                 "ef_construction": config.ef_construction}, "runs": []}
    for count in args.sizes:
        vectors, parents = expand(real, count, noise=0.035)
        queries, _ = expand(real, args.queries, noise=0.035, seed=1)
        parent_cosine = float(np.mean(np.sum(vectors * parents, axis=1)))
        del parents
        exact_rows = None
        for name, factory in factories(count).items():
            started = time.perf_counter()
            index = FaissIndex.build(vectors, IndexConfig(factory=factory))
            build_seconds = time.perf_counter() - started
            import faiss

            size_bytes = int(faiss.serialize_index(index.index).nbytes)
            latencies, rows = [], []
            for query in queries:
                started = time.perf_counter()
                found, _ = index.search(query[None, :], 10)
                latencies.append(time.perf_counter() - started)
                rows.append(found[0])
            rows_array = np.stack(rows)
            if exact_rows is None:
                exact_rows = rows_array  # Flat is first: the exact answer
            run = {"vectors": count, "index": name, "factory": factory, "build_seconds": round(build_seconds, 2),
                   "bytes": size_bytes, "bytes_per_vector": round(size_bytes / count, 1),
                   "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 3),
                   "p99_ms": round(1000 * float(np.percentile(latencies, 99)), 3),
                   "recall_at_10": round(recall_at_k(rows_array, exact_rows), 4)}
            results["runs"].append(run)
            print(f"{count:>8} {name:>16}: build {run['build_seconds']:7.2f}s, {size_bytes / 2**20:7.1f} MiB, "
                  f"p50 {run['p50_ms']:.3f} ms, p99 {run['p99_ms']:.3f} ms, recall@10 {run['recall_at_10']:.4f}",
                  flush=True)
            del index
        results.setdefault("mean_cosine_to_real_parent", {})[count] = parent_cosine
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
