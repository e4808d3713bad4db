"""Build commands: build, rebuild, info, versions, rollback, gc."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, cast

import typer

from .common import AS_JSON, INDEXES, app, build_config, column_map, run, source

if TYPE_CHECKING:
    from ..build.report import BuildReport


@app.command()
def build(
    catalogue: Path = typer.Argument(..., help="Articles: .csv, .jsonl, .parquet or MIND news.tsv."),
    views: Path | None = typer.Option(None, "--views", help="Page views (article_id,timestamp,count)."),
    indexes: Path = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root."),
    column: list[str] = typer.Option([], "--column", help="Map a source column: SOURCE=FIELD (repeatable)."),
    max_reject_ratio: float | None = typer.Option(None, help="Fail when more than this share is rejected."),
    model: str | None = typer.Option(None, help="sentence-transformers model name or local path."),
    factory: str | None = typer.Option(None, help="FAISS factory string (default: by size)."),
    config_file: Path | None = typer.Option(None, "--config", help="Build settings (TOML or JSON)."),
    cache: Path | None = typer.Option(None, "--cache", help="Embedding cache (default INDEXES/...sqlite)."),
    allow_refused: bool = typer.Option(False, "--allow-refused", help="Build with a tuned model directory "
                                       "(recommender tune) that its gate refused."),
) -> None:
    """Build a new index version from a catalogue and publish it as `current`."""
    def action() -> None:
        import dataclasses

        from ..build.rebuild import build as run_build

        config = build_config(config_file, column_map=column_map(column) or None, max_reject_ratio=max_reject_ratio,
                              model=model, factory=factory)
        if allow_refused:
            config = dataclasses.replace(config, embedder=dataclasses.replace(config.embedder, allow_refused=True))
        report = run_build(catalogue, indexes, views_source=views, config=config, progress=sys.stderr.isatty(),
                           cache_path=cache, on_stage=lambda s, t: typer.echo(f"  {s}: {t:.2f}s", err=True))
        typer.echo(report.catalogue_summary)
        if report.rejected:
            typer.echo(f"rejected rows with reasons: {report.rejects_path}")
        typer.echo(report.summary())
    run(action)


@app.command()
def info(indexes: Path = INDEXES, verify: bool = typer.Option(False, "--verify", help="Check every sha256.")) -> None:
    """Print the manifest of a build (`current` by default)."""
    def action() -> None:
        from ..storage.manifest import read_manifest
        from ..storage.versions import resolve_build_dir

        manifest = read_manifest(resolve_build_dir(indexes), verify_files=verify)
        typer.echo(json.dumps(manifest.to_dict(), indent=2, sort_keys=True))
    run(action)


def _no_progress_bars() -> None:
    """No model-loading progress bars on stderr (the rebuild's JSON log owns it)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already imported (reads the variable at import): switch it off
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def _metric_gate(name: str | None, cache: Path | None) -> Callable[[Path], float] | None:
    """The quality metric ``--metric-gate`` names (None: none)."""
    if name is None:
        return None
    if name != "semeval":
        raise ValueError(f"--metric-gate {name!r} is unknown; use semeval")
    from ..evaluation.gate import semeval_gate

    return semeval_gate(os.environ.get("RECOMMENDER_DATA", "../shared/data"), cache_path=cache)


@app.command()
def rebuild(
    articles: str = typer.Option(..., "--articles", help="Catalogue: .csv/.jsonl/.parquet/MIND .tsv, or "
                                 "postgresql://user@host/db#table (or #SELECT ...)."),
    views: str | None = typer.Option(None, "--views", help="Page views (article_id,timestamp,count): a file "
                                        "or a database URL like --articles."),
    indexes: Path = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root."),
    config_file: Path | None = typer.Option(None, "--config", help="Build settings incl. a gates section (TOML/JSON)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Run every stage and gate, publish nothing."),
    executor: str = typer.Option("local", "--executor", help="Where the embedding, neighbour and related stages "
                                 "run: local or ray."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster (default: local Ray)."),
    ray_actors: int = typer.Option(1, "--ray-actors", help="Ray actors, one model (or one copy of the "
                                 "index and matrices) each."),
    ray_gpus: float = typer.Option(0.0, "--ray-gpus-per-actor", help="GPUs per Ray actor."),
    cache: Path | None = typer.Option(None, "--cache", help="Embedding cache (default INDEXES/...sqlite)."),
    metric_gate: str | None = typer.Option(None, "--metric-gate", help="semeval: gate on SemEval-2022 Pearson "
                                              "(reads RECOMMENDER_DATA)."),
) -> None:
    """Nightly rebuild: incremental, gated, published atomically. Exit codes: 0 published (or dry run passed),
    1 other failure (nothing published), 2 input invalid, 3 a quality gate failed (nothing published),
    4 another rebuild is running."""
    from ..errors import GateFailedError, InvalidCatalogueError, RebuildLockedError, RecommenderError
    from .runlog import EXIT_FAILED, EXIT_GATE_FAILED, EXIT_INVALID_INPUT, EXIT_LOCKED, RunLog, pause_at

    log = RunLog()
    if log.as_json:  # keep stderr pure JSON lines
        _no_progress_bars()
    try:
        from ..build.executors import RayConfig, make_executor
        from ..build.rebuild import rebuild as run_rebuild

        config = build_config(config_file)
        chosen = make_executor(executor, RayConfig(address=ray_address, num_actors=ray_actors,
                                                   num_gpus_per_actor=ray_gpus))
        report = run_rebuild(source(articles), indexes, views_source=source(views), config=config, cache_path=cache,
                             progress=not log.as_json, publish=not dry_run, on_stage=log.stage, executor=chosen,
                             metric=_metric_gate(metric_gate, cache), metric_name=metric_gate or "metric",
                             checkpoint=pause_at(os.environ.get("RECOMMENDER_PAUSE_AT"), log))
    except RebuildLockedError as exc:
        log.event("error", f"error: {exc}", kind="locked", message=str(exc))
        raise typer.Exit(EXIT_LOCKED) from None
    except GateFailedError as exc:
        if exc.report is not None:
            # cast: errors.py, a leaf of the layering, types the report as object; rebuild attaches its BuildReport
            failed = cast("BuildReport", exc.report)
            log.report(failed)
            typer.echo(failed.summary())
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
        from ..errors import IndexFormatError
        from ..storage.versions import IndexStore

        store = IndexStore(indexes)
        rows: list[dict] = []
        try:
            current = store.current()
        except IndexFormatError as exc:
            current = None
            typer.echo(f"warning: {exc}", err=True)
        published = store.published()
        for path, manifest in store.versions():
            diff = manifest.source.get("diff", {}) if manifest else {}
            rows.append({"build_id": path.name, "current": path == current, "published": path.name in published,
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
                       f"{r['factory'] or ''}{'' if r['published'] or not r['complete'] else '  (never published)'}")
    run(action)


@app.command()
def rollback(version: str | None = typer.Argument(None, help="Build id (default: the one before current)."),
             indexes: Path = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root.")) -> None:
    """Point `current` at an earlier build (verified first; one atomic rename; takes the rebuild lock)."""
    def action() -> None:
        from ..build.lock import RebuildLock
        from ..errors import IndexFormatError
        from ..storage.versions import IndexStore

        store = IndexStore(indexes)
        try:
            current = store.current()
            before = current.name if current else "nothing"
        except IndexFormatError as exc:
            before = f"broken: {exc}"
        with RebuildLock(indexes):  # a running rebuild would publish over the rollback
            target = store.rollback(version)
        typer.echo(f"current -> {target.name} (was {before})")
    run(action)


@app.command()
def gc(indexes: Path = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root."),
       keep: int = typer.Option(5, "--keep", help="Complete builds to keep (current is always kept).")) -> None:
    """Delete old builds and what killed rebuilds left behind (takes the rebuild lock)."""
    def action() -> None:
        from ..build.lock import RebuildLock
        from ..storage.versions import IndexStore

        if keep < 1:
            raise ValueError(f"--keep must be at least 1, got {keep}")
        store = IndexStore(indexes)
        with RebuildLock(indexes):
            stale = store.clean_stale()
            removed = store.gc(keep)
        typer.echo(f"removed {len(removed)} old build(s) and {len(stale)} stale staging item(s); "
                   f"{len(store.versions())} kept")
    run(action)


