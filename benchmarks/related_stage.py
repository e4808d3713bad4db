"""The build's hybrid relatedness stage at scale: exact vs pruned-query TF-IDF candidate search, and the fusion.

Usage:
    python benchmarks/related_stage.py [--articles 100000] [--exact-articles 20000]

Reads the corpus of benchmarks/build_100k.py (real Reuters-21578 + BBC News text, sentence-rotated variants) and
its vectors from that run's embedding cache (benchmarks/out/build-100k-cache.sqlite; run build_100k.py first).
Times, on the first ``--exact-articles`` articles: the TF-IDF candidate search with every query term (exact,
quadratic) and with each query cut to its 25 strongest terms (the default), and the pruned search's recall@50 of
the exact candidates; then on all ``--articles``: TF-IDF fit, pruned search, dense neighbours (HNSW) and the
fusion, i.e. the whole ``related`` stage. Writes benchmarks/out/related_stage.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from build_100k import OUT, corpus  # noqa: E402
from recommender.catalogue import embedding_texts, lexical_texts, read_catalogue  # noqa: E402
from recommender.build.neighbours import compute_neighbours  # noqa: E402
from recommender.config import BuildConfig, EmbedderConfig, RelatednessConfig  # noqa: E402
from recommender.embedding import EmbeddingCache, make_embedder, text_key  # noqa: E402
from recommender.storage.index import FaissIndex  # noqa: E402
from recommender.build.relatedness import fuse, lexical_matrix, lexical_neighbours  # noqa: E402


def timed(function, *args, **kwargs):  # noqa: ANN001, ANN201 - a tiny stopwatch
    """(result, seconds)."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> None:
    """Exact vs pruned candidate search on a slice, then the pruned stage on everything."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--exact-articles", type=int, default=20_000)
    parser.add_argument("--precision", default="bf16")
    args = parser.parse_args()
    config = BuildConfig(embedder=EmbedderConfig(precision=args.precision))
    articles = read_catalogue(corpus(Path(args.data), args.articles), config.catalogue).articles
    identity = make_embedder(config.embedder).identity
    keys = [text_key(t) for t in embedding_texts(articles, config.embedder.max_chars)]
    cache = EmbeddingCache(OUT / "build-100k-cache.sqlite")
    found = cache.get(identity.fingerprint + identity.backend, keys, identity.dims)
    cache.close()
    missing = sum(k not in found for k in keys)
    if missing:
        raise SystemExit(f"{missing} of {len(keys)} vectors are not in the cache: run benchmarks/build_100k.py first")
    vectors = np.stack([found[k] for k in keys]).astype(np.float32)
    texts = lexical_texts(articles)
    relatedness = RelatednessConfig()
    result: dict[str, object] = {"articles": len(texts), "exact_slice": args.exact_articles}

    small = lexical_matrix(texts[: args.exact_articles])
    exact, exact_seconds = timed(lexical_neighbours, small, 50, query_terms=None)
    pruned, pruned_seconds = timed(lexical_neighbours, small, 50, query_terms=relatedness.lexical_query_terms)
    recall = float(np.mean([len(set(p[p >= 0].tolist()) & set(e[e >= 0].tolist())) / max((e >= 0).sum(), 1)
                            for p, e in zip(pruned, exact)]))
    result["slice"] = {"exact_search_seconds": round(exact_seconds, 1), "pruned_search_seconds": round(pruned_seconds, 1),
                       "speedup": round(exact_seconds / pruned_seconds, 1), "pruned_recall_at_50": round(recall, 4)}
    print(f"{args.exact_articles} articles: exact TF-IDF top-50 {exact_seconds:.1f} s, pruned (25 terms) "
          f"{pruned_seconds:.1f} s ({exact_seconds / pruned_seconds:.1f}x), recall@50 of exact {recall:.4f}", flush=True)

    matrix, fit_seconds = timed(lexical_matrix, texts)
    lexical, search_seconds = timed(lexical_neighbours, matrix, relatedness.lexical_candidates,
                                    query_terms=relatedness.lexical_query_terms)
    index, index_seconds = timed(FaissIndex.build, vectors, config.index)
    dense, dense_seconds = timed(compute_neighbours, index, vectors, config.neighbour_count)
    _, fuse_seconds = timed(fuse, vectors, matrix, dense[0], lexical, config.neighbour_count, relatedness)
    result["full"] = {"tfidf_fit_seconds": round(fit_seconds, 1), "tfidf_nnz": int(matrix.nnz),
                      "pruned_search_seconds": round(search_seconds, 1), "fuse_seconds": round(fuse_seconds, 1),
                      "related_stage_seconds": round(fit_seconds + search_seconds + fuse_seconds, 1),
                      "hnsw_index_seconds": round(index_seconds, 1), "dense_neighbours_seconds": round(dense_seconds, 1)}
    print(json.dumps(result, indent=2))
    (OUT / "related_stage.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
