"""Run every task x method in one harness and one run; write the table as JSON and CSV."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..config import BuildConfig
from ..embedding.base import Embedder
from ..query.recommender import Recommender
from ..query.rule_book import RuleBook
from ..query.rules import RuleSet
from ..stories import neighbour_cosines
from ..times import epoch_hours
from . import metrics
from .baselines import METHODS, EngineMethod, Method, make_methods
from .datasets import LOADERS, CorpusDataset, PairDataset, label_groups, load_mind, load_semeval, partners, query_sample

log = logging.getLogger("recommender.evaluation")
TASKS = ("semeval", "bbc", "reuters", "ag_news", "mind")
COLUMNS = ["task", "method", "queries", "pearson", "spearman", "precision@k", "ndcg@k", "recall@k", "coverage",
           "diversity", "duplicates", "median_age_h", "popularity_bias", "lists_changed"]


@dataclass(frozen=True)
class EvaluationConfig:
    """One evaluation run.

    Attributes:
        data_dir: the shared datasets folder (``RECOMMENDER_DATA``).
        tasks: any of ``TASKS``.
        methods: any of ``baselines.METHODS``; all are run on the same lists of query articles.
        k: list length.
        limit: a seeded sample of this many catalogue rows per corpus dataset (None = all).
        queries: query articles per corpus task, a seeded sample (None = every labelled article).
        semeval_lang_pairs: SemEval language pairs (None = all); the table adds one row per pair.
        semeval_original_only: drop HFL's machine-translated augmentation rows.
        seed: samples and the random baseline.
        work_dir: where indexes are built.
        cache_path: embedding cache file (None: one per index root).
        builds: task -> a published build (directory or indexes root) to load instead of building.
        build_config: settings of the builds made here (ranking defaults included).
        rules: editorial rules to evaluate: each corpus task adds a "full_blend+rules" row (the full blend
            obeying them) with ``lists_changed``, the share of query lists they changed; the metric cost is its
            difference from the "full_blend" row.
    """

    data_dir: Path
    tasks: tuple[str, ...] = TASKS
    methods: tuple[str, ...] = METHODS
    k: int = 10
    limit: int | None = None
    queries: int | None = 1000
    semeval_lang_pairs: tuple[str, ...] | None = None
    semeval_original_only: bool = True
    seed: int = 0
    work_dir: Path = Path("evaluation")
    cache_path: Path | None = None
    builds: Mapping[str, Path] = field(default_factory=dict)
    build_config: BuildConfig = field(default_factory=BuildConfig)
    rules: RuleSet | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; choose from {list(TASKS)}")
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
        if not 1 <= self.k <= 100:
            raise ValueError(f"k must be from 1 to 100, got {self.k}")


@dataclass
class EvaluationResult:
    """The table (one row per task x method) and what each task measured on."""

    table: pd.DataFrame
    notes: dict[str, str]
    config: dict[str, Any]

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``results.csv`` and ``results.json`` (table, notes and the run's settings) into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = out / "results.csv", out / "results.json"
        self.table.to_csv(csv_path, index=False)
        rows = json.loads(self.table.to_json(orient="records"))
        json_path.write_text(json.dumps({"results": rows, "notes": self.notes, "config": self.config},
                                        indent=2, default=str))
        return csv_path, json_path


def format_table(table: pd.DataFrame, k: int) -> str:
    """The table as fixed-width text; NaN (not applicable) shown as '-'."""
    shown = table.rename(columns={c: c.replace("@k", f"@{k}") for c in table.columns})
    return shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.3f}")


def build_or_load(dataset: CorpusDataset | PairDataset, config: EvaluationConfig,
                  embedder: Embedder | None = None) -> Recommender:
    """The task's published build (``config.builds``) or a fresh build of the dataset under ``work_dir``."""
    from ..build.rebuild import build

    path = config.builds.get(dataset.name)
    if path is None:
        views = dataset.views if isinstance(dataset, CorpusDataset) and len(dataset.views) else None
        report = build(dataset.articles, config.work_dir / dataset.name, views_source=views,
                       config=config.build_config, embedder=embedder, cache_path=config.cache_path)
        log.info("%s: %s", dataset.name, report.summary())
        path = report.path
        if path is None:  # build() publishes what it builds: no path means nothing was published
            raise ValueError(f"the build of dataset {dataset.name} under {config.work_dir} published nothing")
    recommender = Recommender.load(path, embedder=embedder)
    missing = sorted(set(dataset.articles["id"]) - set(recommender.row_of))
    if missing:
        raise ValueError(f"build {path} lacks {len(missing)} article(s) of dataset {dataset.name} (e.g. "
                         f"{missing[:3]}): pass a build of the same dataset and --limit, or none to build one")
    return recommender


def reference_time(dataset: CorpusDataset) -> datetime | None:
    """The newest publication or view time in the dataset: "now" for recency and trending (None if neither)."""
    times = []
    if "published_at" in dataset.articles:
        times.append(pd.to_datetime(dataset.articles["published_at"], utc=True).max())
    if len(dataset.views):
        times.append(pd.to_datetime(dataset.views["timestamp"], utc=True).max())
    times = [t for t in times if not pd.isna(t)]
    return max(times).to_pydatetime() if times else None


def views_per_row(recommender: Recommender, views: pd.DataFrame) -> np.ndarray:
    """Raw view counts aligned with the build's rows (zeros without views)."""
    counts = np.zeros(len(recommender), dtype=np.float64)
    if len(views):
        for article_id, total in views.groupby("article_id")["count"].sum().items():
            if article_id in recommender.row_of:
                counts[recommender.row_of[article_id]] = total
    return counts


def story_of(recommender: Recommender) -> dict[Any, int]:
    """Article id -> story number: articles linked by cosine >= the build's same-story threshold."""
    threshold = recommender.config.ranking.duplicate_similarity
    pairs: list[tuple[int, int]] = []
    if recommender.related_rows is not None:
        rows = np.asarray(recommender.related_rows)
        # Cosines, not the table's scores: the build's related table may hold fused relatedness.
        scores = neighbour_cosines(recommender.table.vectors, rows)
        found = np.argwhere((scores >= threshold) & (rows >= 0))
        pairs = [(int(r), int(rows[r, c])) for r, c in found]
    return metrics.story_groups(list(recommender.table.ids), pairs)


def list_metrics(lists: list[list[str]], queries: Sequence[str], relevant: Mapping[str, set[str]], k: int,
                 recommender: Recommender, views: np.ndarray, stories: Mapping[str, int],
                 now: datetime | None) -> dict[str, float]:
    """Accuracy and beyond-accuracy metrics of one method's lists."""
    vectors, row_of = recommender.table.vectors, recommender.row_of
    published = dict(zip(recommender.table.ids, recommender.table.published_hours))
    pairs = list(zip(queries, lists))
    return {
        "queries": len(queries),
        "precision@k": metrics.nanmean([metrics.precision_at_k(items, relevant[q], k) for q, items in pairs]),
        "ndcg@k": metrics.nanmean([metrics.ndcg_at_k(items, relevant[q], k) for q, items in pairs]),
        "recall@k": metrics.nanmean([metrics.recall_at_k(items, relevant[q], k) for q, items in pairs]),
        "coverage": metrics.coverage(lists, len(recommender)),
        "diversity": metrics.intra_list_diversity(lists, lambda a: vectors[row_of[a]]),
        "duplicates": metrics.duplicate_rate(lists, stories, anchors=list(queries)),
        "median_age_h": (metrics.median_age_hours(lists, published, float(epoch_hours(now)))
                         if now is not None else float("nan")),
        "popularity_bias": metrics.popularity_bias(lists, dict(zip(recommender.table.ids, views))),
    }


def relevance(dataset: CorpusDataset) -> tuple[str, dict[str, set[str]]]:
    """The task name and, per query article, the relevant articles: co-read ones if any, else same label."""
    if len(dataset.co_reading):
        return f"{dataset.name} co-reading", partners(dataset.co_reading)
    groups = label_groups(dataset.labels)
    relevant = {a: groups[str(label)] - {a} for a, label in dataset.labels.items()}
    return f"{dataset.name} {'section' if dataset.name == 'bbc' else 'topic'}", relevant


def corpus_rows(dataset: CorpusDataset, methods: Sequence[Method], recommender: Recommender, views: np.ndarray,
                config: EvaluationConfig, now: datetime | None) -> list[dict[str, Any]]:
    """Section/topic rows (every dataset with labels but MIND) or co-reading rows (MIND)."""
    task, relevant = relevance(dataset)
    queries = query_sample(sorted(relevant, key=recommender.row_of.__getitem__), config.queries, config.seed)
    stories = story_of(recommender)
    rows = []
    plain: list[list[str]] | None = None
    for method in methods:
        lists = method.related_lists(queries, config.k)
        plain = lists if method.name == "full_blend" else plain
        rows.append({"task": task, "method": method.name,
                     **list_metrics(lists, queries, relevant, config.k, recommender, views, stories, now)})
    if config.rules is not None:
        ruled = copy.copy(recommender)
        ruled.rules = RuleBook(config.rules, recommender.table)
        lists = EngineMethod("full_blend+rules", ruled, now).related_lists(queries, config.k)
        plain = plain if plain is not None else EngineMethod("full_blend", recommender, now).related_lists(
            queries, config.k)
        rows.append({"task": task, "method": "full_blend+rules",
                     **list_metrics(lists, queries, relevant, config.k, recommender, views, stories, now),
                     "lists_changed": float(np.mean([a != b for a, b in zip(lists, plain)])) if lists else 0.0})
    return rows


def semeval_rows(dataset: PairDataset, methods: Sequence[Method]) -> list[dict[str, Any]]:
    """Pearson and Spearman of each method's pair score vs -Overall, over all pairs and per language pair."""
    pairs = list(zip(dataset.pairs["id1"], dataset.pairs["id2"]))
    target = -dataset.pairs["overall"].to_numpy(dtype=np.float64)
    languages = sorted(dataset.pairs["lang_pair"].unique())
    groups = ([("all", np.ones(len(pairs), dtype=bool))] if len(languages) > 1 else []) + [
        (lang, (dataset.pairs["lang_pair"] == lang).to_numpy()) for lang in languages]
    rows = []
    for method in methods:
        scores = method.pair_scores(pairs)
        for name, mask in groups:
            rows.append({"task": f"semeval {name}", "method": method.name, "queries": int(mask.sum()),
                         "pearson": metrics.pearson(scores[mask], target[mask]),
                         "spearman": metrics.spearman(scores[mask], target[mask])})
    return rows


def load_dataset(task: str, config: EvaluationConfig) -> CorpusDataset | PairDataset:
    """The dataset behind a task, read with the run's limit and seed (MIND is always read whole)."""
    if task == "semeval":
        return load_semeval(config.data_dir, config.semeval_original_only, config.semeval_lang_pairs, config.limit,
                            config.seed)
    if task == "mind":
        return load_mind(config.data_dir)
    return LOADERS[task](config.data_dir, config.limit, config.seed)


def evaluate(config: EvaluationConfig, embedder: Embedder | None = None) -> EvaluationResult:
    """Run every configured task with every configured method and return the table.

    Args:
        config: what to run.
        embedder: the query-time embedder (default: the build config's model, loaded once per build).
    """
    from ..embedding.factory import make_embedder

    embedder = embedder or make_embedder(config.build_config.embedder)
    rows: list[dict[str, Any]] = []
    notes: dict[str, str] = {}
    for task in config.tasks:
        dataset = load_dataset(task, config)
        notes[task] = dataset.note
        recommender = build_or_load(dataset, config, embedder)
        if isinstance(dataset, PairDataset):
            methods = make_methods(config.methods, recommender, dataset.articles, np.zeros(len(recommender)), None,
                                   config.seed)
            rows += semeval_rows(dataset, methods)
            continue
        now = reference_time(dataset)
        views = views_per_row(recommender, dataset.views)
        methods = make_methods(config.methods, recommender, dataset.articles, views, now, config.seed)
        rows += corpus_rows(dataset, methods, recommender, views, config, now)
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    settings = {k: v for k, v in asdict(config).items() if k not in ("build_config", "rules")}
    settings["rules"] = [r.to_dict() for r in config.rules.rules] if config.rules is not None else []
    settings["ranking"] = asdict(config.build_config.ranking)
    settings["popularity"] = asdict(config.build_config.popularity)
    return EvaluationResult(table, notes, settings)
