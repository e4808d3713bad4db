"""The `recommender` command line (typer). Thin: parse options, build config, call one function, print."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Related-articles recommendations for news sites: build indexes and query them.")

INDEXES = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root (uses its `current`) or a build dir.")
NOW = typer.Option(None, "--now", help="Reference time, ISO 8601 (default: the clock).")
AS_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def demo_files() -> tuple[Path, Path]:
    """The built-in demo corpus (articles, views)."""
    from .demo import demo_files as files

    return files()


def _run(action: Callable[[], Any]) -> Any:
    """Run a command body; a user error becomes one line on stderr and exit code 2, never a traceback."""
    from .errors import RecommenderError

    try:
        return action()
    except (RecommenderError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _parse_now(now: Optional[str]) -> Optional[datetime]:
    if now is None:
        return None
    import pandas as pd

    try:
        stamp = pd.Timestamp(now)
    except ValueError:
        raise typer.BadParameter(f"--now {now!r} is not an ISO 8601 time") from None
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()


def _config(config_file: Optional[Path], **overrides: Any) -> Any:
    from .config import BuildConfig, load_build_config

    config = load_build_config(config_file) if config_file else BuildConfig()
    return config.with_overrides(**{k: v for k, v in overrides.items() if v is not None})


def _column_map(columns: List[str]) -> dict[str, str]:
    mapping = {}
    for item in columns:
        if "=" not in item:
            raise typer.BadParameter(f"--column {item!r} must be SOURCE=FIELD, e.g. text=body")
        source, target = item.split("=", 1)
        mapping[source.strip()] = target.strip()
    return mapping


def _print_results(results: list, as_json: bool, header: str) -> None:
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
        return
    typer.echo(header)
    if not results:
        typer.echo("  (no results)")
    for n, r in enumerate(results, start=1):
        date = (r.published_at or "")[:10]
        typer.echo(f"{n:>3}. {r.score:6.3f}  {r.article_id:<14} {r.section:<12} {date}  {r.title}")
        parts = f"similarity {r.similarity:.3f}, trending {r.trending:.3f}, freshness {r.freshness:.3f}"
        extra = f"; collapsed {', '.join(r.duplicates)}" if r.duplicates else ""
        typer.echo(f"       {parts}{extra}")


@app.command()
def build(
    catalogue: Path = typer.Argument(..., help="Articles: .csv, .jsonl, .parquet or MIND news.tsv."),
    views: Optional[Path] = typer.Option(None, "--views", help="Page views (article_id,timestamp,count)."),
    indexes: Path = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root."),
    column: List[str] = typer.Option([], "--column", help="Map a source column: SOURCE=FIELD (repeatable)."),
    max_reject_ratio: Optional[float] = typer.Option(None, help="Fail when more than this share is rejected."),
    model: Optional[str] = typer.Option(None, help="sentence-transformers model name or local path."),
    factory: Optional[str] = typer.Option(None, help="FAISS factory string (default: by size)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="Build settings (TOML or JSON)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Embedding cache (default INDEXES/...sqlite)."),
) -> None:
    """Build a new index version from a catalogue and publish it as `current`."""
    def action() -> None:
        from .pipeline import build as run_build

        config = _config(config_file, column_map=_column_map(column) or None, max_reject_ratio=max_reject_ratio,
                         model=model, factory=factory)
        report = run_build(catalogue, indexes, views_source=views, config=config, progress=sys.stderr.isatty(),
                           cache_path=cache, on_stage=lambda s, t: typer.echo(f"  {s}: {t:.2f}s", err=True))
        typer.echo(report.catalogue_summary)
        if report.rejected:
            typer.echo(f"rejected rows with reasons: {report.rejects_path}")
        typer.echo(report.summary())
    _run(action)


@app.command()
def related(
    article_id: str = typer.Argument(..., help="The article being read."),
    indexes: Path = INDEXES,
    k: int = typer.Option(10, "--k", "-k", help="List length (1-100)."),
    section: Optional[str] = typer.Option(None, help="Only this section."),
    max_age_hours: Optional[float] = typer.Option(None, help="Only articles at most this old."),
    exclude: List[str] = typer.Option([], "--exclude", help="Article ids never to show (repeatable)."),
    now: Optional[str] = NOW,
    as_json: bool = AS_JSON,
) -> None:
    """Articles related to one article, with score components."""
    def action() -> None:
        from .engine import Recommender

        engine = Recommender.load(indexes)
        results = engine.related(article_id, k=k, section=section, max_age_hours=max_age_hours,
                                  exclude_ids=exclude, now=_parse_now(now))
        _print_results(results, as_json, f"related to {article_id}: {engine.article(article_id)['title']}")
    _run(action)


@app.command("more-like-this")
def more_like_this(
    article_id: List[str] = typer.Option([], "--id", help="A positive example article (repeatable)."),
    text: Optional[str] = typer.Option(None, "--text", help="Free text to match."),
    negative: List[str] = typer.Option([], "--not", help="An article to steer away from (repeatable)."),
    exclude: List[str] = typer.Option([], "--exclude", help="Article ids never to show (repeatable)."),
    indexes: Path = INDEXES,
    k: int = typer.Option(10, "--k", "-k", help="List length (1-100)."),
    section: Optional[str] = typer.Option(None, help="Only this section."),
    max_age_hours: Optional[float] = typer.Option(None, help="Only articles at most this old."),
    now: Optional[str] = NOW,
    as_json: bool = AS_JSON,
) -> None:
    """Articles like several examples and/or free text, unlike the --not examples."""
    def action() -> None:
        from .engine import Recommender

        engine = Recommender.load(indexes)
        results = engine.more_like_this(ids=article_id, text=text, negative_ids=negative, exclude_ids=exclude,
                                        k=k, section=section, max_age_hours=max_age_hours, now=_parse_now(now))
        _print_results(results, as_json, "more like this")
    _run(action)


@app.command()
def popular(
    indexes: Path = INDEXES,
    k: int = typer.Option(10, "--k", "-k", help="List length (1-100)."),
    section: Optional[str] = typer.Option(None, help="Only this section."),
    window_hours: Optional[float] = typer.Option(None, help="Views in this window count (default: config)."),
    now: Optional[str] = NOW,
    as_json: bool = AS_JSON,
) -> None:
    """What readers read now: decayed page views."""
    def action() -> None:
        from .engine import Recommender

        engine = Recommender.load(indexes)
        results = engine.popular(k=k, section=section, window_hours=window_hours, now=_parse_now(now))
        _print_results(results, as_json, "popular")
    _run(action)


@app.command()
def info(indexes: Path = INDEXES, verify: bool = typer.Option(False, "--verify", help="Check every sha256.")) -> None:
    """Print the manifest of a build (`current` by default)."""
    def action() -> None:
        from .manifest import read_manifest
        from .store import resolve_build_dir

        manifest = read_manifest(resolve_build_dir(indexes), verify_files=verify)
        typer.echo(json.dumps(manifest.to_dict(), indent=2, sort_keys=True))
    _run(action)


@app.command()
def demo(
    indexes: Path = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root to build into."),
    article_id: str = typer.Option("demo-001", "--article", help="Article to show related lists for."),
    now: Optional[str] = typer.Option(None, "--now", help="Play the corpus as of this time (default: the clock; "
                                      "2026-11-27T00:00:00Z leaves its dates as written)."),
) -> None:
    """Build the built-in demo corpus and print related, more-like-this and popular lists.

    The corpus's dates and page views are shifted by whole hours so the demo is always "today" (popular and
    freshness need recent views); pass --now to pin the moment.
    """
    def action() -> None:
        from datetime import timezone

        from .demo import demo_catalogue
        from .engine import Recommender
        from .pipeline import build as run_build

        when = _parse_now(now) or datetime.now(timezone.utc)
        articles, views = demo_catalogue(when)
        report = run_build(articles, indexes, views_source=views, progress=sys.stderr.isatty())
        typer.echo(report.catalogue_summary)
        typer.echo(report.summary())
        engine = Recommender.load(indexes)
        _print_results(engine.related(article_id, k=5, now=when), False,
                       f"\nrelated to {article_id}: {engine.article(article_id)['title']}")
        _print_results(engine.more_like_this(text="train drivers strike over pay", k=5, now=when), False,
                       "\nmore like this: 'train drivers strike over pay'")
        _print_results(engine.popular(k=5, now=when), False, "\npopular now")
    _run(action)


def _source(value: Optional[str]) -> Any:
    return value if value is None or "://" in value else Path(value)


@app.command()
def rebuild(
    articles: str = typer.Option(..., "--articles", help="Catalogue: .csv/.jsonl/.parquet/MIND .tsv, or "
                                 "postgresql://user@host/db#table (or #SELECT ...)."),
    views: Optional[str] = typer.Option(None, "--views", help="Page views (article_id,timestamp,count): a file "
                                        "or a database URL like --articles."),
    indexes: Path = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="Build settings incl. a gates section (TOML/JSON)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Run every stage and gate, publish nothing."),
    executor: str = typer.Option("local", "--executor", help="Embedding stage: local or ray."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster (default: local Ray)."),
    ray_actors: int = typer.Option(1, "--ray-actors", help="Ray actors, one model each."),
    ray_gpus: float = typer.Option(0.0, "--ray-gpus-per-actor", help="GPUs per Ray actor."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Embedding cache (default INDEXES/...sqlite)."),
    metric_gate: Optional[str] = typer.Option(None, "--metric-gate", help="semeval: gate on SemEval-2022 Pearson "
                                              "(reads RECOMMENDER_DATA)."),
) -> None:
    """Nightly rebuild: incremental, gated, published atomically. Exit codes: 0 published (or dry run passed),
    1 other failure (nothing published), 2 input invalid, 3 a quality gate failed (nothing published),
    4 another rebuild is running."""
    import os

    from .errors import GateFailedError, InvalidCatalogueError, RebuildLockedError, RecommenderError
    from .runlog import EXIT_FAILED, EXIT_GATE_FAILED, EXIT_INVALID_INPUT, EXIT_LOCKED, RunLog, pause_at

    log = RunLog()
    if log.as_json:  # keep stderr pure JSON lines: no model-loading progress bars
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if "transformers" in sys.modules:  # already imported (reads the variable at import): switch it off
            sys.modules["transformers"].utils.logging.disable_progress_bar()
    try:
        from .executors import RayConfig, make_executor
        from .pipeline import rebuild as run_rebuild

        config = _config(config_file)
        chosen = make_executor(executor, RayConfig(address=ray_address, num_actors=ray_actors,
                                                   num_gpus_per_actor=ray_gpus))
        metric = None
        if metric_gate == "semeval":
            from .evaluation.gate import semeval_gate

            metric = semeval_gate(os.environ.get("RECOMMENDER_DATA", "../shared/data"), cache_path=cache)
        elif metric_gate is not None:
            raise ValueError(f"--metric-gate {metric_gate!r} is unknown; use semeval")
        report = run_rebuild(_source(articles), indexes, views_source=_source(views), config=config, cache_path=cache,
                             progress=not log.as_json, publish=not dry_run, on_stage=log.stage, executor=chosen,
                             metric=metric, metric_name=metric_gate or "metric",
                             checkpoint=pause_at(os.environ.get("RECOMMENDER_PAUSE_AT"), log))
    except RebuildLockedError as exc:
        log.event("error", f"error: {exc}", kind="locked", message=str(exc))
        raise typer.Exit(EXIT_LOCKED) from None
    except GateFailedError as exc:
        if exc.report is not None:
            log.report(exc.report)
            typer.echo(exc.report.summary())
        log.event("error", f"error: {exc}", kind="gate_failed", message=str(exc))
        raise typer.Exit(EXIT_GATE_FAILED) from None
    except (InvalidCatalogueError, FileNotFoundError, ValueError) as exc:
        log.event("error", f"error: {exc}", kind="invalid_input", message=str(exc))
        raise typer.Exit(EXIT_INVALID_INPUT) from None
    except RecommenderError as exc:
        log.event("error", f"error: {exc}", kind="failed", message=str(exc))
        raise typer.Exit(EXIT_FAILED) from None
    log.report(report)
    typer.echo(report.summary())


@app.command()
def versions(indexes: Path = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root."),
             as_json: bool = AS_JSON) -> None:
    """List the builds kept under the indexes root (* marks current), with counts and dates."""
    def action() -> None:
        from .store import IndexStore

        store = IndexStore(indexes)
        current, rows = store.current(), []
        for path, manifest in store.versions():
            diff = manifest.source.get("diff", {}) if manifest else {}
            rows.append({"build_id": path.name, "current": path == current,
                         "created_at": manifest.created_at if manifest else None,
                         "articles": manifest.count if manifest else None, **diff,
                         "model": manifest.embedder.get("name") if manifest else None,
                         "factory": manifest.index.get("factory") if manifest else None,
                         "complete": manifest is not None})
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            typer.echo(f"no builds in {store.builds}")
        for r in rows:
            change = (f"+{r.get('new', 0)} ~{r.get('changed', 0)} -{r.get('deleted', 0)}" if "new" in r else "")
            typer.echo(f"{'*' if r['current'] else ' '} {r['build_id']:<26} {r['created_at'] or 'INCOMPLETE':<20} "
                       f"{r['articles'] if r['articles'] is not None else '-':>9} articles  {change:<18} "
                       f"{r['factory'] or ''}")
    _run(action)


@app.command()
def rollback(version: Optional[str] = typer.Argument(None, help="Build id (default: the one before current)."),
             indexes: Path = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root.")) -> None:
    """Point `current` at an earlier build (verified first; one atomic rename; takes the rebuild lock)."""
    def action() -> None:
        from .lock import RebuildLock
        from .store import IndexStore

        store = IndexStore(indexes)
        before = store.current()
        with RebuildLock(indexes):  # a running rebuild would publish over the rollback
            target = store.rollback(version)
        typer.echo(f"current -> {target.name} (was {before.name if before else 'nothing'})")
    _run(action)


@app.command()
def gc(indexes: Path = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root."),
       keep: int = typer.Option(5, "--keep", help="Complete builds to keep (current is always kept).")) -> None:
    """Delete old builds and what killed rebuilds left behind (takes the rebuild lock)."""
    def action() -> None:
        from .lock import RebuildLock
        from .store import IndexStore

        if keep < 1:
            raise ValueError(f"--keep must be at least 1, got {keep}")
        store = IndexStore(indexes)
        with RebuildLock(indexes):
            stale = store.clean_stale()
            removed = store.gc(keep)
        typer.echo(f"removed {len(removed)} old build(s) and {len(stale)} stale staging item(s); "
                   f"{len(store.versions())} kept")
    _run(action)


@app.command()
def evaluate(
    data: Path = typer.Option(Path("../shared/data"), "--data", envvar="RECOMMENDER_DATA",
                              help="Shared datasets folder (env RECOMMENDER_DATA)."),
    task: List[str] = typer.Option([], "--task", help="semeval, bbc, reuters, ag_news, mind (repeatable; default all)."),
    method: List[str] = typer.Option([], "--method", help="random, most_popular, lexical, embeddings, full_blend "
                                                          "(repeatable; default all)."),
    k: int = typer.Option(10, "--k", "-k", help="List length."),
    limit: Optional[int] = typer.Option(None, help="Seeded sample of this many catalogue rows / pairs per dataset."),
    queries: Optional[int] = typer.Option(1000, help="Query articles per corpus task (seeded sample)."),
    lang: List[str] = typer.Option([], "--lang", help="SemEval language pair, e.g. en-en (repeatable; default all)."),
    with_translations: bool = typer.Option(False, help="Keep SemEval's machine-translated augmentation rows."),
    build: List[str] = typer.Option([], "--build", help="TASK=PATH: load this published build instead of building."),
    work_dir: Path = typer.Option(Path("evaluation-work"), help="Where evaluation indexes are built."),
    cache: Optional[Path] = typer.Option(None, help="Embedding cache file (default: one per index root)."),
    out: Path = typer.Option(Path("evaluation-results"), "--out", help="Folder for results.json / results.csv."),
    sweep: bool = typer.Option(False, "--sweep", help="Also sweep ranking settings and plot them (PNG)."),
    seed: int = typer.Option(0, help="Seed of the samples and the random baseline."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="Build/ranking settings (TOML or JSON)."),
) -> None:
    """Score every task x method on the public datasets; print the table, write JSON/CSV (and sweep plots)."""
    def action() -> None:
        from .evaluation.runner import TASKS, EvaluationConfig, evaluate as run_evaluation, format_table
        from .evaluation.baselines import METHODS

        builds = {}
        for item in build:
            if "=" not in item:
                raise typer.BadParameter(f"--build {item!r} must be TASK=PATH, e.g. bbc=indexes/bbc")
            name, path = item.split("=", 1)
            builds[name.strip()] = Path(path.strip())
        config = EvaluationConfig(
            data_dir=data, tasks=tuple(task) or TASKS, methods=tuple(method) or METHODS, k=k, limit=limit,
            queries=queries, semeval_lang_pairs=tuple(lang) or None, semeval_original_only=not with_translations,
            seed=seed, work_dir=work_dir, cache_path=cache, builds=builds, build_config=_config(config_file))
        result = run_evaluation(config)
        typer.echo(format_table(result.table, k))
        for name, note in result.notes.items():
            typer.echo(f"  {name}: {note}")
        csv_path, json_path = result.write(out)
        typer.echo(f"wrote {json_path} and {csv_path}")
        if sweep:
            from .evaluation.sweeps import run_sweeps

            choices, how = run_sweeps(config, out)
            typer.echo(format_table(choices, k))
            for line in how:
                typer.echo(f"  {line}")
            typer.echo(f"wrote {out / 'sweeps.csv'}, {out / 'sweep_choices.csv'} and {out}/sweep-*.png")
    _run(action)


@app.command()
def serve(
    index: Path = typer.Option(Path("indexes/current"), "--index", help="The `current` pointer (watched for "
                               "new versions), an indexes root, or one build directory."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (each loads the index)."),
    views: str = typer.Option("sqlite", "--views", help="View counters: sqlite (next to the index), "
                              "sqlite:///path or redis://host:6379/0 (shared by replicas)."),
    cors_origin: List[str] = typer.Option([], "--cors-origin", help="Origin allowed to call the API (repeatable)."),
    reload_poll_seconds: float = typer.Option(2.0, help="How often `current` is checked for a new version."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve the HTTP API (related, more-like-this, popular, live upserts and events). Writes need
    RECOMMENDER_WRITE_TOKEN in the environment."""
    import os

    def action() -> None:
        import uvicorn

        from .store import resolve_build_dir

        resolve_build_dir(index)  # fail here, with the fix, rather than in every worker
        # Workers are separate processes that build their settings from the environment (pydantic-settings).
        os.environ.update({"RECOMMENDER_INDEX": str(index), "RECOMMENDER_VIEWS": views,
                           "RECOMMENDER_CORS_ORIGINS": json.dumps(cors_origin),
                           "RECOMMENDER_RELOAD_POLL_SECONDS": str(reload_poll_seconds)})
        uvicorn.run("recommender.service.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, access_log=False)
    _run(action)


def main() -> None:
    """Entry point."""
    app()


if __name__ == "__main__":
    main()
