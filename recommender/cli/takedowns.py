"""`recommender takedowns list|add|lift`: the takedowns every list obeys until they are lifted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from .common import AS_JSON, app, indexes_root, run

takedowns = typer.Typer(no_args_is_help=True, help="Takedowns: kept until lifted, on every build and worker.")
app.add_typer(takedowns, name="takedowns")
INDEXES = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root (holds takedowns.sqlite).")
SHARED = typer.Option(None, "--takedowns", envvar="RECOMMENDER_TAKEDOWNS",
                      help="A postgresql:// URL shared by replicas (default: takedowns.sqlite in the root).")
ACTOR = typer.Option(os.environ.get("USER", "cli"), "--by", help="Who acts (recorded in the audit log).")
REASON = typer.Option(..., "--reason", help="Why (recorded in the audit log).")


def _store(indexes: Path, shared: str | None):  # noqa: ANN202 - a TakedownStore, imported lazily
    from ..live.state import TAKEDOWNS_FILE
    from ..live.takedowns import TakedownStore

    return TakedownStore(shared or indexes_root(indexes) / TAKEDOWNS_FILE)


@takedowns.command("list")
def list_takedowns(indexes: Path = INDEXES, shared: str | None = SHARED, as_json: bool = AS_JSON,
                   log: bool = typer.Option(False, "--log", help="Print the audit log instead.")) -> None:
    """The active takedowns (or the audit log): id, who, when, why."""
    def action() -> None:
        store = _store(indexes, shared)
        rows = store.history() if log else [t.to_dict() for t in store.active()]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            typer.echo("no takedowns" if not log else "the audit log is empty")
        for row in rows:
            when = row.get("at") or row.get("taken_at")
            action_name = f"{row['action']:<10} " if log else ""
            typer.echo(f"{action_name}{row['article_id']:<24} {when}  by {row['actor']}: {row['reason']}")
    run(action)


@takedowns.command("add")
def add(article_id: str = typer.Argument(..., help="The article to take out of every list."),
        indexes: Path = INDEXES, shared: str | None = SHARED, actor: str = ACTOR, reason: str = REASON) -> None:
    """Take an article down (every worker applies it within its next live-state poll)."""
    def action() -> None:
        taken = _store(indexes, shared).take_down(article_id, actor, reason)
        typer.echo(f"taken down {taken.article_id} at {taken.taken_at} by {taken.actor}")
    run(action)


@takedowns.command("lift")
def lift(article_id: str = typer.Argument(..., help="The article to list again."), indexes: Path = INDEXES,
         shared: str | None = SHARED, actor: str = ACTOR, reason: str = REASON) -> None:
    """Lift a takedown: the article is listed again wherever a build or the delta holds it."""
    def action() -> None:
        if not _store(indexes, shared).lift(article_id, actor, reason):
            raise ValueError(f"{article_id!r} is not taken down; `recommender takedowns list` lists them")
        typer.echo(f"lifted the takedown of {article_id}")
    run(action)
