"""Choose the relatedness floors (``RankingConfig.related_floor`` / ``more_like_this_floor``) on one half of the
labelled datasets and report what they do on the other half.

For every query article of BBC News, Reuters-21578 and AG News (a seeded sample of ``--limit`` rows each), the
related and more-like-this lists (k=10, no floor) are ranked through the one query path, and each listed article
is judged relevant when it shares the query's label (section / topic). Query articles are split into two halves
by a hash of their id. On half A the floor of each list kind is the lowest relatedness at which an isotonic fit
of P(relevant | relatedness) reaches 0.5: below it, a listed article is more likely unrelated than related. On
half B the script reports, per dataset, how many listed articles fall below that floor, how often they and the
kept ones are relevant, and the precision and length of the lists before and after.

    .venv/bin/python benchmarks/floor.py --limit 2000 --cache .cache/embeddings.sqlite
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression

from recommender.embedding.factory import make_embedder
from recommender.evaluation.datasets import query_sample
from recommender.evaluation.runner import EvaluationConfig, build_or_load, load_dataset, reference_time, relevance

TASKS = ("bbc", "reuters", "ag_news")
KINDS = ("related", "more_like_this")


def half(article_id: str) -> int:
    """0 (choose) or 1 (report), by a stable hash of the id."""
    return hashlib.sha1(article_id.encode()).digest()[0] & 1


def judged(recommender, queries, relevant, now, k: int) -> dict[str, list[tuple[str, float, int]]]:
    """(query, relatedness, relevant) of every listed article, per list kind."""
    out: dict[str, list[tuple[str, float, int]]] = {kind: [] for kind in KINDS}
    for query in queries:
        lists = {"related": recommender.related(query, k=k, now=now),
                 "more_like_this": recommender.more_like_this(ids=[query], k=k, now=now)}
        for kind, results in lists.items():
            out[kind] += [(query, r.relatedness, int(r.article_id in relevant[query])) for r in results]
    return out


def choose(rows: list[tuple[str, float, int]]) -> float:
    """The lowest relatedness at which the isotonic fit of P(relevant | relatedness) reaches 0.5."""
    x = np.array([r[1] for r in rows])
    y = np.array([r[2] for r in rows], dtype=float)
    fit = IsotonicRegression(out_of_bounds="clip").fit(x, y)
    grid = np.unique(x)
    reached = grid[fit.predict(grid) >= 0.5]
    return float(reached.min()) if len(reached) else float(x.max())


def report(rows: list[tuple[str, float, int]], floor: float, k: int) -> dict[str, float]:
    """What the floor does to the lists of one half."""
    x = np.array([r[1] for r in rows])
    y = np.array([r[2] for r in rows], dtype=float)
    below = x < floor
    queries = sorted({r[0] for r in rows})
    kept_per_query = {q: 0 for q in queries}
    relevant_kept = {q: 0 for q in queries}
    for (q, _, good), low in zip(rows, below):
        if not low:
            kept_per_query[q] += 1
            relevant_kept[q] += good
    shown = [kept_per_query[q] for q in queries]
    return {"lists": len(queries), "items": int(len(rows)), "below_floor": float(below.mean()),
            "relevant_below": float(y[below].mean()) if below.any() else float("nan"),
            "relevant_kept": float(y[~below].mean()) if (~below).any() else float("nan"),
            "precision_at_k_before": float(y.sum() / (len(queries) * k)),
            "precision_of_shown_after": float(sum(relevant_kept.values()) / max(1, sum(shown))),
            "mean_length_after": float(np.mean(shown)), "lists_shortened": float(np.mean([s < k for s in shown]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=1000, help="query articles per dataset")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=Path(".cache/embeddings.sqlite"))
    parser.add_argument("--work-dir", type=Path, default=Path("evaluation-floor"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/floor.json"))
    args = parser.parse_args()
    data = Path(os.environ.get("RECOMMENDER_DATA", "../shared/data"))
    config = EvaluationConfig(data_dir=data, limit=args.limit, work_dir=args.work_dir, cache_path=args.cache)
    embedder = make_embedder()
    started = time.perf_counter()
    rows: dict[str, dict[str, list]] = {}
    for task in TASKS:
        dataset = load_dataset(task, config)
        recommender = build_or_load(dataset, config, embedder)
        _, relevant = relevance(dataset)
        queries = query_sample(sorted(a for a in relevant if relevant[a]), args.queries * 2, seed=0)
        rows[task] = judged(recommender, queries, relevant, reference_time(dataset), args.k)
        print(f"{task}: {len(queries)} query articles judged", flush=True)
    floors = {kind: choose([r for task in TASKS for r in rows[task][kind] if half(r[0]) == 0]) for kind in KINDS}
    results = {kind: {task: report([r for r in rows[task][kind] if half(r[0]) == 1], floors[kind], args.k)
                      for task in TASKS} for kind in KINDS}
    out = {"floors_chosen_on_half_a": floors, "reported_on_half_b": results, "k": args.k, "limit": args.limit,
           "model": embedder.identity.name, "seconds": round(time.perf_counter() - started, 1),
           "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {os.cpu_count()} cpus",
           "command": f"benchmarks/floor.py --limit {args.limit} --queries {args.queries}"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
