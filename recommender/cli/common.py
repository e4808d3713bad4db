"""What every command shares: the typer app, common options, error handling, config and result printing."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Related-articles recommendations for news sites: build indexes and query them.")

INDEXES = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root (uses its `current`) or a build dir.")
NOW = typer.Option(None, "--now", help="Reference time, ISO 8601 (default: the clock).")
AS_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def run(action: Callable[[], Any]) -> Any:
    """Run a command body; a user error becomes one line on stderr and exit code 2, never a traceback."""
    from ..errors import RecommenderError

    try:
        return action()
    except (RecommenderError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def parse_now(now: str | None) -> datetime | None:
    """``--now`` as an aware datetime (naive times are UTC)."""
    if now is None:
        return None
    import pandas as pd

    try:
        stamp = pd.Timestamp(now)
    except ValueError:
        raise typer.BadParameter(f"--now {now!r} is not an ISO 8601 time") from None
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()


def build_config(config_file: Path | None, **overrides: Any) -> Any:
    """The build settings of ``--config`` (or the defaults) with the command line's overrides."""
    from ..config import BuildConfig
    from ..config_files import load_build_config

    config = load_build_config(config_file) if config_file else BuildConfig()
    return config.with_overrides(**{k: v for k, v in overrides.items() if v is not None})


def column_map(columns: list[str]) -> dict[str, str]:
    """``--column SOURCE=FIELD`` options as a mapping."""
    mapping = {}
    for item in columns:
        if "=" not in item:
            raise typer.BadParameter(f"--column {item!r} must be SOURCE=FIELD, e.g. text=body")
        source, target = item.split("=", 1)
        mapping[source.strip()] = target.strip()
    return mapping


def print_results(results: list, as_json: bool, header: str) -> None:
    """A list as JSON, or as a table under ``header``."""
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
        return
    typer.echo(header)
    if not results:
        typer.echo("  (no results)")
    for n, r in enumerate(results, start=1):
        date = (r.published_at or "")[:10]
        typer.echo(f"{n:>3}. {r.score:6.3f}  {r.article_id:<14} {r.section:<12} {date}  {r.title}")
        parts = f"relatedness {r.relatedness:.3f}, trending {r.trending:.3f}, freshness {r.freshness:.3f}"
        extra = f"; collapsed {', '.join(r.duplicates)}" if r.duplicates else ""
        chosen = f"  [{r.label}]" if r.label else f"  [{r.source}: {r.reasons[0]}]" if r.source != "ranked" else ""
        typer.echo(f"       {parts}{extra}{chosen}")




def source(value: str | None) -> Any:
    """A catalogue or views argument: a database URL as it is, anything else a path."""
    return value if value is None or "://" in value else Path(value)


def indexes_root(path: Path) -> Path:
    """The indexes root of a ``--indexes`` argument (a root, its ``current``, or a build directory in it)."""
    path = Path(path)
    if path.name == "current" or (path.parent.name == "builds"):
        return path.parent if path.name == "current" else path.parent.parent
    return path


def load_recommender(indexes: Path, rules: str | None = None) -> Any:
    """The build behind ``--indexes`` with the root's live state over it (the takedowns, live articles and
    editorial rules the service serves: ``RECOMMENDER_TAKEDOWNS`` / ``RECOMMENDER_RULES`` name shared databases,
    as for the service), so the command line lists what the service lists."""
    import os

    from ..live.state import DELTA_FILE, RULES_FILE, TAKEDOWNS_FILE, open_live_state
    from ..query.recommender import Recommender
    from ..storage.reader import read_build

    stored = read_build(indexes)
    root = indexes_root(indexes)
    shared, rules = os.environ.get("RECOMMENDER_TAKEDOWNS"), rules or os.environ.get("RECOMMENDER_RULES")
    if shared or rules or any((root / name).exists() for name in (TAKEDOWNS_FILE, DELTA_FILE, RULES_FILE)):
        live = open_live_state(root, stored.manifest.index["dims"], shared, rules=rules)
        return Recommender(stored, overlay=live, rules=live)
    return Recommender(stored)
