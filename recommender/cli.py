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
    base = Path(__file__).parent / "demo_data"
    return base / "articles.jsonl", base / "views.csv"


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
) -> None:
    """Build a new index version from a catalogue and publish it as `current`."""
    def action() -> None:
        from .pipeline import build as run_build

        config = _config(config_file, column_map=_column_map(column) or None, max_reject_ratio=max_reject_ratio,
                         model=model, factory=factory)
        report = run_build(catalogue, indexes, views_source=views, config=config, progress=sys.stderr.isatty(),
                           on_stage=lambda s, t: typer.echo(f"  {s}: {t:.2f}s", err=True))
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
    now: Optional[str] = typer.Option("2026-11-27T00:00:00Z", "--now", help="Reference time of the demo."),
) -> None:
    """Build the built-in demo corpus and print related, more-like-this and popular lists."""
    def action() -> None:
        from .engine import Recommender
        from .pipeline import build as run_build

        articles, views = demo_files()
        report = run_build(articles, indexes, views_source=views, progress=sys.stderr.isatty())
        typer.echo(report.catalogue_summary)
        typer.echo(report.summary())
        engine = Recommender.load(indexes)
        when = _parse_now(now)
        _print_results(engine.related(article_id, k=5, now=when), False,
                       f"\nrelated to {article_id}: {engine.article(article_id)['title']}")
        _print_results(engine.more_like_this(text="train drivers strike over pay", k=5, now=when), False,
                       "\nmore like this: 'train drivers strike over pay'")
        _print_results(engine.popular(k=5, now=when), False, "\npopular now")
    _run(action)


def main() -> None:
    """Entry point."""
    app()


if __name__ == "__main__":
    main()
