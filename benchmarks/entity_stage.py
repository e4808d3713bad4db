"""What the entity term costs a build: entity_matrix + pair_entities over a related-stage-sized candidate table.

Usage: python benchmarks/entity_stage.py [--articles 100000] [--candidates 122] [--vocabulary 20000] [--repeats 3]

The related stage recomputes every (article, candidate) pair's entity cosine at each build (nothing is kept in
the incremental state), so this is a cost of every nightly rebuild, full or incremental. Synthetic tags: 0-5 per
article drawn from a Zipf(1.3) distribution over ``--vocabulary`` names (a few names are in everything, most are
rare; ~17% of articles have none), candidates uniform over the catalogue (``--candidates`` per row: 122 is the
mean candidate count of the 100k benchmark build, 12.2M pairs). Prints and writes
benchmarks/out/entity_stage.json (median of ``--repeats``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from recommender.build.relatedness import entity_matrix, pair_entities

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    """Time the entity matrix fit and the pair scores; print and write JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=122)
    parser.add_argument("--vocabulary", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "entity_stage.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    names = [f"entity-{i}" for i in range(args.vocabulary)]
    tags = [[names[j] for j in rng.zipf(1.3, size=rng.integers(0, 6)) % args.vocabulary]
            for _ in range(args.articles)]
    candidates = rng.integers(0, args.articles, size=(args.articles, args.candidates)).astype(np.int32)
    fit, pairs = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        matrix = entity_matrix(tags)
        fit.append(time.perf_counter() - started)
        started = time.perf_counter()
        pair_entities(matrix, candidates)
        pairs.append(time.perf_counter() - started)
    result = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "articles": args.articles,
              "pairs": int(candidates.size), "tagged_articles": int((np.diff(matrix.indptr) > 0).sum()),
              "tag_nnz": int(matrix.nnz), "entity_matrix_seconds": round(statistics.median(fit), 2),
              "pair_entities_seconds": round(statistics.median(pairs), 2)}
    result["total_seconds"] = round(result["entity_matrix_seconds"] + result["pair_entities_seconds"], 2)
    print(json.dumps(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
