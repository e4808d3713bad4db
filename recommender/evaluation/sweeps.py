"""Sweeps of ranking settings: the metric against each parameter, tuned on one split and reported on another.

Each point reloads the same build with one setting changed (no re-embedding) and scores the same queries.
The candidate pool is swept with the build's precomputed neighbours bypassed, so ``candidate_count`` really is
the number of FAISS neighbours ranked (by default ``related`` reads ``neighbour_count`` precomputed ones).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..embedding.base import Embedder
from ..query.recommender import Recommender
from .datasets import CorpusDataset, query_sample
from .runner import (
    EvaluationConfig,
    build_or_load,
    list_metrics,
    load_dataset,
    reference_time,
    relevance,
    story_of,
    views_per_row,
)

# parameter -> (config section, values); mmr_lambda 1.0 is "MMR off" (pure relevance).
GRID: dict[str, tuple[str, tuple[float, ...]]] = {
    "weight_freshness": ("ranking", (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)),
    "freshness_half_life_hours": ("popularity", (6.0, 24.0, 72.0, 168.0, 720.0, 2160.0)),
    "weight_trending": ("ranking", (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)),
    "trending_half_life_hours": ("popularity", (1.0, 6.0, 24.0, 72.0, 168.0)),
    "candidate_count": ("ranking", (10, 20, 50, 100, 200, 400)),
    "mmr_lambda": ("ranking", (1.0, 0.9, 0.8, 0.7, 0.5, 0.3)),
}


def configured(recommender: Recommender, parameter: str, value: float) -> Recommender:
    """The same build reloaded with one ranking/popularity setting changed."""
    if parameter not in GRID:
        raise ValueError(f"unknown sweep parameter {parameter!r}; choose from {list(GRID)}")
    section = GRID[parameter][0]
    part = dataclasses.replace(getattr(recommender.config, section), **{parameter: value})
    config = dataclasses.replace(recommender.config, **{section: part})
    return Recommender(recommender.stored, config, use_related_table=parameter != "candidate_count")


def sweep(recommender: Recommender, parameter: str, values: Sequence[float], splits: Mapping[str, Sequence[str]],
          relevant: Mapping[str, set[str]], k: int, views: np.ndarray, stories: Mapping[str, int],
          now: datetime | None) -> pd.DataFrame:
    """Metrics of ``related`` lists for each value of one parameter, per query split.

    Returns:
        One row per (value, split) with ``parameter``, ``value``, ``split`` and the ``list_metrics`` columns.
    """
    rows: list[dict[str, Any]] = []
    for value in values:
        engine = configured(recommender, parameter, value)
        for split, queries in splits.items():
            lists = [[r.article_id for r in engine.related(q, k=k, now=now)] for q in queries]
            rows.append({"parameter": parameter, "value": value, "split": split,
                         **list_metrics(lists, queries, relevant, k, engine, views, stories, now)})
    return pd.DataFrame(rows)


def choose(curves: pd.DataFrame, metric: str, tune: str, report: str, defaults: Mapping[str, float]) -> pd.DataFrame:
    """Per parameter: the value best on the ``tune`` split, and its and the default's score on ``report``.

    Ties go to the value nearest the default (no change without evidence).
    """
    rows = []
    for parameter, group in curves.groupby("parameter", sort=False):
        tuned = group[group["split"] == tune].copy()
        default = defaults[parameter]
        tuned["distance"] = (tuned["value"] - default).abs()
        best = tuned.sort_values([metric, "distance"], ascending=[False, True]).iloc[0]
        reported = group[group["split"] == report].set_index("value")[metric]
        rows.append({"parameter": parameter, "default": default, "chosen": best["value"],
                     f"{metric} tune@chosen": best[metric],
                     f"{metric} report@default": reported.get(default, float("nan")),
                     f"{metric} report@chosen": reported.get(best["value"], float("nan"))})
    return pd.DataFrame(rows)


def defaults_of(recommender: Recommender, parameters: Sequence[str]) -> dict[str, float]:
    """The build's current value of each swept parameter (MMR off shown as 1.0)."""
    found = {}
    for parameter in parameters:
        value = getattr(getattr(recommender.config, GRID[parameter][0]), parameter)
        found[parameter] = 1.0 if value is None else value
    return found


def plot(curves: pd.DataFrame, metric: str, title: str = "") -> Any:
    """A matplotlib Figure: ``metric`` (solid) and intra-list diversity (dashed) against each parameter, per split."""
    from matplotlib.figure import Figure

    parameters = list(dict.fromkeys(curves["parameter"]))
    figure = Figure(figsize=(4.2 * len(parameters), 3.4), layout="constrained")
    axes = figure.subplots(1, len(parameters), squeeze=False)[0]
    for axis, parameter in zip(axes, parameters):
        group = curves[curves["parameter"] == parameter]
        other = axis.twinx()
        for n, (split, part) in enumerate(group.groupby("split", sort=False)):
            part = part.sort_values("value")
            colour = f"C{n}"
            axis.plot(part["value"], part[metric], marker="o", color=colour, label=f"{metric} ({split})")
            other.plot(part["value"], part["diversity"], linestyle="--", color=colour, alpha=0.6,
                       label=f"diversity ({split})")
        axis.set_xlabel(parameter)
        axis.set_ylabel(metric)
        other.set_ylabel("intra-list diversity (dashed)")
        if parameter in ("freshness_half_life_hours", "trending_half_life_hours", "candidate_count"):
            axis.set_xscale("log")
        axis.legend(fontsize=7, loc="lower left")
    if title:
        figure.suptitle(title)
    return figure


def split_queries(dataset: CorpusDataset, candidates: Sequence[str], per_split: int | None,
                  seed: int = 0) -> tuple[dict[str, list[str]], str]:
    """Tune and report query sets: the dataset's own split (Reuters: TRAIN / TEST) or seeded random halves."""
    if len(dataset.split):
        tune = [a for a in candidates if dataset.split.get(a) == "TRAIN"]
        report = [a for a in candidates if dataset.split.get(a) == "TEST"]
        how = "tuned on lewissplit TRAIN query articles, reported on TEST query articles"
    else:
        shuffled = np.random.default_rng(seed).permutation(len(candidates))
        half = len(candidates) // 2
        tune = [candidates[i] for i in sorted(shuffled[:half])]
        report = [candidates[i] for i in sorted(shuffled[half:])]
        how = "tuned on a seeded random half of the query articles, reported on the other half"
    return {"tune": query_sample(tune, per_split, seed), "report": query_sample(report, per_split, seed)}, how


def sweep_dataset(dataset: CorpusDataset, recommender: Recommender, parameters: Sequence[str], k: int = 10,
                  per_split: int | None = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Sweep ``parameters`` over ``GRID`` on one dataset's build.

    Returns:
        (curves: one row per parameter x value x split, choice: per parameter the tuned value and its report
        score beside the default's, a sentence saying which split tuned and which reported).
    """
    task, relevant = relevance(dataset)
    metric = "recall@k" if len(dataset.co_reading) else "ndcg@k"
    splits, how = split_queries(dataset, sorted(relevant, key=recommender.row_of.__getitem__), per_split, seed)
    now = reference_time(dataset)
    views = views_per_row(recommender, dataset.views)
    stories = story_of(recommender)
    curves = pd.concat([sweep(recommender, p, GRID[p][1], splits, relevant, k, views, stories, now)
                        for p in parameters], ignore_index=True)
    curves.insert(0, "task", task)
    choice = choose(curves, metric, "tune", "report", defaults_of(recommender, parameters))
    choice.insert(0, "task", task)
    return curves, choice, f"{task}: {metric}, {how} ({len(splits['tune'])} / {len(splits['report'])} queries)"


# What each dataset can tell: Reuters has dates (freshness), MIND has views (trending); all have pool and MMR.
SWEEPS = {
    "reuters": ("weight_freshness", "freshness_half_life_hours", "candidate_count", "mmr_lambda"),
    "mind": ("weight_trending", "trending_half_life_hours", "candidate_count", "mmr_lambda"),
    "bbc": ("candidate_count", "mmr_lambda"),
    "ag_news": ("candidate_count", "mmr_lambda"),
}


def run_sweeps(config: EvaluationConfig, out_dir: str | Path, embedder: Embedder | None = None,
               per_split: int | None = 300) -> tuple[pd.DataFrame, list[str]]:
    """Sweep every configured corpus task (see ``SWEEPS``); write curves, choices and one PNG per task.

    Returns:
        (the choice table of every task, one sentence per task saying what tuned and what reported).
    """
    from ..embedding.factory import make_embedder

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    embedder = embedder or make_embedder(config.build_config.embedder)
    curves, choices, notes = [], [], []
    for task in (t for t in config.tasks if t in SWEEPS):
        dataset = load_dataset(task, config)
        if not isinstance(dataset, CorpusDataset):
            raise ValueError(f"task {task!r} has no article lists to sweep")
        recommender = build_or_load(dataset, config, embedder)
        curve, choice, how = sweep_dataset(dataset, recommender, SWEEPS[task], config.k, per_split, config.seed)
        metric = "recall@k" if len(dataset.co_reading) else "ndcg@k"
        plot(curve, metric, how).savefig(out / f"sweep-{task}.png", dpi=90)
        curves.append(curve)
        choices.append(choice)
        notes.append(how)
    if not curves:
        raise ValueError(f"no sweepable task in {list(config.tasks)}; sweeps run on {list(SWEEPS)}")
    pd.concat(curves, ignore_index=True).to_csv(out / "sweeps.csv", index=False)
    choice_table = pd.concat(choices, ignore_index=True)
    choice_table.to_csv(out / "sweep_choices.csv", index=False)
    return choice_table, notes
