"""The build's hybrid relatedness stage at scale: exact vs pruned-query TF-IDF candidate search, and the fusion.

Usage:
    python benchmarks/related_stage.py [--articles 100000] [--exact-articles 20000] [--out-dir benchmarks/out]

Reads the corpus of benchmarks/build_100k.py (real Reuters-21578 + BBC News text, sentence-rotated variants) and
its vectors from that run's embedding cache (benchmarks/out/build-100k-cache.sqlite, or ``--out-dir``; run
build_100k.py first with the same ``--articles`` and ``--out-dir``). Times, on the first ``--exact-articles``
articles: the TF-IDF candidate search (``relatedness.lexical_search``) with every query term (exact, quadratic) and
with each query cut to its 25 strongest terms (``top_terms``, the default), and the pruned search's recall@50 of
the exact candidates; then on all ``--articles``: TF-IDF fit, the candidate search as the build runs it (pruned
above ``exact_lexical_max_count`` = 50,000 articles, exact below; the build's depth, lexical_candidates +
neighbour_margin), dense neighbours (HNSW) and the whole related stage as the build runs it
(``related_tables.related_tables`` over the dense table: it fits and searches again, then scores and ranks every
pair). ``fuse_seconds`` is that stage less the separately timed fit and search (pair values, shared neighbours,
entity scores, ranking). Writes related_stage.json into the same folder. A smoke run: ``build_100k.py --articles
300 --fp32-sample 32 --out-dir /tmp/b100k``, then ``related_stage.py --articles 300 --exact-articles 200 --out-dir
/tmp/b100k``.
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

from recommender.build.neighbours import compute_neighbours  # noqa: E402
from recommender.build.related_tables import related_tables  # noqa: E402
from recommender.build.relatedness import LexicalModel, lexical_queries, lexical_search, top_terms  # noqa: E402
from recommender.build.toptable import TopTable  # noqa: E402
from recommender.catalogue import embedding_texts, lexical_texts, read_catalogue  # noqa: E402
from recommender.config import BuildConfig, EmbedderConfig, RelatednessConfig  # noqa: E402
from recommender.embedding import EmbeddingCache, make_embedder, text_key  # noqa: E402
from recommender.storage.index import FaissIndex  # noqa: E402


def timed(function, *args, **kwargs):  # noqa: ANN001, ANN201 - a tiny stopwatch
    """(result, seconds)."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def candidate_search(matrix, k: int, query_terms: int | None, queries=None) -> np.ndarray:  # noqa: ANN001 - CSR
    """Each row's ``k`` best other rows by TF-IDF (-1 where fewer share a term), every query term or each query's
    ``query_terms`` strongest (or the given ``queries`` rows), as the build's candidate search."""
    if queries is None:
        queries = top_terms(matrix, query_terms) if query_terms else matrix
    n = matrix.shape[0]
    rows, _ = lexical_search(queries.tocsr(), matrix.T.tocsr(), np.arange(n), max(min(k, n - 1), 0))
    return rows


def main() -> None:
    """Exact vs pruned candidate search on a slice, then the pruned stage on everything."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--exact-articles", type=int, default=20_000)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--out-dir", default=str(OUT), help="build_100k.py's --out-dir: its embedding cache is "
                        "read there and related_stage.json written there")
    args = parser.parse_args()
    out = Path(args.out_dir)
    config = BuildConfig(embedder=EmbedderConfig(precision=args.precision))
    articles = read_catalogue(corpus(Path(args.data), args.articles), config.catalogue).articles
    identity = make_embedder(config.embedder).identity
    keys = [text_key(t) for t in embedding_texts(articles, config.embedder.max_chars)]
    cache = EmbeddingCache(out / "build-100k-cache.sqlite")
    found = cache.get(identity.cache_tag, keys, identity.dims)
    cache.close()
    missing = sum(k not in found for k in keys)
    if missing:
        raise SystemExit(f"{missing} of {len(keys)} vectors are not in the cache: run benchmarks/build_100k.py first")
    vectors = np.stack([found[k] for k in keys]).astype(np.float32)
    texts = lexical_texts(articles)
    relatedness = RelatednessConfig()
    result: dict[str, object] = {"articles": len(texts), "exact_slice": args.exact_articles}

    small = LexicalModel.fit(texts[: args.exact_articles])[1]
    exact, exact_seconds = timed(candidate_search, small, 50, None)
    pruned, pruned_seconds = timed(candidate_search, small, 50, relatedness.lexical_query_terms)
    recall = float(np.mean([len(set(p[p >= 0].tolist()) & set(e[e >= 0].tolist())) / max((e >= 0).sum(), 1)
                            for p, e in zip(pruned, exact)]))
    result["slice"] = {"exact_search_seconds": round(exact_seconds, 1),
                       "pruned_search_seconds": round(pruned_seconds, 1),
                       "speedup": round(exact_seconds / pruned_seconds, 1), "pruned_recall_at_50": round(recall, 4)}
    print(f"{args.exact_articles} articles: exact TF-IDF top-50 {exact_seconds:.1f} s, pruned (25 terms) "
          f"{pruned_seconds:.1f} s ({exact_seconds / pruned_seconds:.1f}x), recall@50 of exact {recall:.4f}",
          flush=True)

    (_, matrix), fit_seconds = timed(LexicalModel.fit, texts)
    depth = relatedness.lexical_candidates + config.neighbour_margin
    # The build's query rows: pruned to lexical_query_terms above exact_lexical_max_count articles, else exact.
    queries = lexical_queries(matrix, relatedness)
    _, search_seconds = timed(candidate_search, matrix, depth, None, queries)
    query_mode = ("exact" if len(texts) <= relatedness.exact_lexical_max_count or not relatedness.lexical_query_terms
                  else "pruned")
    index, index_seconds = timed(FaissIndex.build, vectors, config.index)
    dense_depth = config.neighbour_count + config.neighbour_margin
    (dense_rows, dense_scores), dense_seconds = timed(compute_neighbours, index, vectors, dense_depth)
    dense = TopTable.from_search(dense_rows, dense_scores, dense_depth)
    tables, stage_seconds = timed(related_tables, vectors, texts, dense, config.neighbour_count, config, {}, None,
                                  tags=articles["tags"].tolist())
    result["full"] = {"tfidf_fit_seconds": round(fit_seconds, 1), "tfidf_nnz": int(matrix.nnz),
                      "pruned_search_seconds": round(search_seconds, 1),
                      "fuse_seconds": round(max(stage_seconds - fit_seconds - search_seconds, 0.0), 1),
                      "related_stage_seconds": round(stage_seconds, 1),
                      "hnsw_index_seconds": round(index_seconds, 1),
                      "dense_neighbours_seconds": round(dense_seconds, 1),
                      "lexical_query_mode": query_mode, "lexical_search_depth": depth, "dense_depth": dense_depth,
                      "related_stats": tables.stats}
    print(json.dumps(result, indent=2))
    (out / "related_stage.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
