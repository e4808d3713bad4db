"""Pair scores of the related stage: ``pairs.pair_dots`` (a compiled scatter-gather loop) against scipy's way
(gather both rows of every pair, multiply them elementwise, sum each row), side by side on one build's pairs.

The pairs are a real build's (the root's ``current``): every (article, candidate) pair of its
``related_state.npz`` (150 candidates per article), scored on the two sparse matrices the related stage scores
them on: the shared-neighbour sets (``relatedness.member_matrix``, 100 members a row, 0/1) and the TF-IDF matrix.
With no build under ``--root``, one is made there first: ``scale.py pipeline``'s corpus (Reuters + BBC in
sentence-rotated variants) at ``--articles``, its vectors perturbations of real MiniLM embeddings
(``scale_pipeline._one``, night 0).

Usage: python benchmarks/pair_scores.py [--articles 20000] [--root benchmarks/out/pair-scores-20000] [--reps 3]

Prints and saves benchmarks/out/pair_scores.json: seconds per method and matrix (best of ``--reps``, the methods
alternating): scipy (one core), ``pair_dots`` (on every core) and ``pair_dots`` held to one core; the ratios; and
the largest difference between them (the counts must agree exactly; TF-IDF scores differ by float32 rounding, as
``pair_dots`` sums in float64).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
OUT = REPO / "benchmarks" / "out"


def scipy_pair_dots(matrix: sp.csr_matrix, a: np.ndarray, b: np.ndarray, batch_size: int = 1 << 16) -> np.ndarray:
    """The way ``pair_dots`` computed them before (scipy only), in batches of ``batch_size`` pairs."""
    out = np.empty(len(a), dtype=np.float32)
    for start in range(0, len(a), batch_size):
        stop = start + batch_size
        out[start:stop] = np.asarray(matrix[a[start:stop]].multiply(matrix[b[start:stop]]).sum(axis=1)).ravel()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--root", default=None, help="an indexes root with a build (default out/pair-scores-N)")
    parser.add_argument("--data", default=os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(OUT / "pair_scores.json"))
    args = parser.parse_args()

    import recommender.pairs as pairs
    from recommender.build.relatedness import member_matrix
    from recommender.config import RelatednessConfig
    from recommender.pairs import pair_dots
    from recommender.storage.versions import IndexStore

    root = Path(args.root or OUT / f"pair-scores-{args.articles}")
    if IndexStore(root).current() is None:
        import scale
        import scale_pipeline

        scale.real_seed(argparse.Namespace(data=args.data, seed_texts=3000, out_dir=str(OUT)))
        print(f"building {args.articles} articles under {root} ...", flush=True)
        scale_pipeline._one(args.data, args.articles, 0, str(root), True, str(OUT / "scale-seed-vectors.npy"))
    build = IndexStore(root).current()
    assert build is not None
    with np.load(build / "related_state.npz") as state:
        candidates = state["candidates"]
        members = member_matrix(candidates, state["cosines"], state["lexical_scores"],
                                RelatednessConfig().snn_size)
        tfidf = sp.csr_matrix((state["matrix_data"], state["matrix_indices"], state["matrix_indptr"]),
                              shape=tuple(state["matrix_shape"]))
    rows, cols = np.nonzero(candidates >= 0)
    a, b = rows.astype(np.int64), candidates[rows, cols].astype(np.int64)
    def one_core(matrix: sp.csr_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        saved, pairs.MIN_PAIRS_PER_THREAD = pairs.MIN_PAIRS_PER_THREAD, len(a) + 1
        try:
            return pair_dots(matrix, a, b)
        finally:
            pairs.MIN_PAIRS_PER_THREAD = saved

    pair_dots(members, a[:10], b[:10])  # compile (or load the cached machine code) outside the timing
    results: dict[str, object] = {"build": str(build), "articles": len(candidates), "pairs": len(a),
                                  "machine": f"{platform.processor() or platform.machine()}, {platform.node()}",
                                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for name, matrix in (("shared-neighbour sets", members), ("TF-IDF", tfidf)):
        seconds: dict[str, list[float]] = {"scipy": [], "pair_dots": [], "one core": []}
        outputs: dict[str, np.ndarray] = {}
        for _ in range(args.reps):
            for method, run in (("scipy", scipy_pair_dots), ("pair_dots", pair_dots), ("one core", one_core)):
                started = time.perf_counter()
                outputs[method] = run(matrix, a, b)
                seconds[method].append(time.perf_counter() - started)
        best = {m: min(s) for m, s in seconds.items()}
        row = {"scipy_s": round(best["scipy"], 3), "pair_dots_s": round(best["pair_dots"], 3),
               "ratio": round(best["scipy"] / best["pair_dots"], 2),
               "pair_dots_one_core_s": round(best["one core"], 3),
               "ratio_one_core": round(best["scipy"] / best["one core"], 2),
               "nnz_per_row": round(matrix.nnz / matrix.shape[0], 1),
               "max_abs_difference": float(np.abs(outputs["scipy"].astype(np.float64) - outputs["pair_dots"]).max())}
        results[name] = row
        print(f"{name:22s} {len(a):,} pairs: scipy {row['scipy_s']} s, pair_dots {row['pair_dots_s']} s "
              f"({row['ratio']}x), on one core {row['pair_dots_one_core_s']} s ({row['ratio_one_core']}x), "
              f"largest difference {row['max_abs_difference']:.3g}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
