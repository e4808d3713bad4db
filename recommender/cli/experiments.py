"""`recommender experiment add|list|report|stop|rotate-key`: online experiments between rankings (A/B or
interleaving), and the key their impression ids are signed with."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from .common import AS_JSON, app, indexes_root, run

experiment = typer.Typer(no_args_is_help=True, help="Online experiments: A/B splits and team-draft interleaving.")
app.add_typer(experiment, name="experiment")
INDEXES = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root (holds experiments.sqlite).")
SHARED = typer.Option(None, "--experiments", envvar="RECOMMENDER_EXPERIMENTS",
                      help="A postgresql:// URL shared by replicas (default: experiments.sqlite in the root).")
VIEWS = typer.Option("sqlite", "--views", envvar="RECOMMENDER_VIEWS", help="Where the service counts: sqlite "
                     "(views.sqlite in the root), sqlite:///path or redis://host:6379/0.")
BY = typer.Option(os.environ.get("USER", "cli"), "--by", help="Who acts (recorded in the log).")


def _experiments(indexes: Path, shared: str | None, views: str) -> Any:
    from ..service.experiments import open_experiments

    return open_experiments(indexes_root(indexes), shared, views)


def _read(path: Path) -> dict[str, Any]:
    import tomllib

    if path.suffix == ".toml":
        return tomllib.loads(path.read_text())
    return json.loads(path.read_text())


@experiment.command("add")
def add(definition: Path = typer.Argument(..., help="The experiment: a TOML or JSON file (docs/experiments.md)."),
        indexes: Path = INDEXES, shared: str | None = SHARED, by: str = BY,
        reason: str = typer.Option("", "--reason", help="Why (recorded in the log).")) -> None:
    """Define an experiment; running services serve it within their next poll."""
    def action() -> None:
        from ..experiments.definition import Experiment

        try:
            parsed = Experiment.from_dict(_read(definition))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{definition}: {exc}") from None
        stored = _experiments(indexes, shared, "sqlite").store.create(parsed, by, reason)
        typer.echo(f"experiment {stored.experiment.name} ({stored.experiment.kind}, arms "
                   f"{', '.join(stored.experiment.arm_names)}) stored")
    run(action)


@experiment.command("list")
def list_experiments(indexes: Path = INDEXES, shared: str | None = SHARED, as_json: bool = AS_JSON) -> None:
    """Every experiment and its state."""
    def action() -> None:
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        rows = [r.to_dict(now) for _, r in sorted(_experiments(indexes, shared, "sqlite").store.all().items())]
        if as_json:
            typer.echo(json.dumps(rows, indent=2, default=str))
            return
        if not rows:
            typer.echo("no experiments")
        for r in rows:
            stopped = f"; stopped: {', '.join(r['stopped_arms'])}" if r["stopped_arms"] else ""
            typer.echo(f"{r['name']:<20} {r['kind']:<10} {'active' if r['active'] else 'inactive':<8} arms "
                       f"{', '.join(a['name'] for a in r['arms'])} on {', '.join(r['widgets'])}{stopped}")
    run(action)


@experiment.command("report")
def report(name: str = typer.Argument(..., help="The experiment."), indexes: Path = INDEXES,
           shared: str | None = SHARED, views: str = VIEWS, as_json: bool = AS_JSON) -> None:
    """Per arm impressions, clicks, CTR with a 95% interval (and interleaving's wins / losses / ties, sign test),
    and one line: which arm wins, or how much more data is needed."""
    def action() -> None:
        experiments = _experiments(indexes, shared, views)
        try:
            result = experiments.report(name)
        except KeyError as exc:
            raise ValueError(str(exc).strip("'\"")) from None
        if as_json:
            typer.echo(json.dumps({"report": result.to_dict(), "series": experiments.series(name),
                                   "log": experiments.store.history(name)}, indent=2, default=str))
            return
        for line in result.lines():
            typer.echo(line)
    run(action)


@experiment.command("stop")
def stop(name: str = typer.Argument(..., help="The experiment."),
         arm: str | None = typer.Option(None, "--arm", help="Stop this arm only (its readers see control)."),
         indexes: Path = INDEXES, shared: str | None = SHARED, by: str = BY,
         reason: str = typer.Option(..., "--reason", help="Why (recorded in the log).")) -> None:
    """Stop one arm, or end the experiment."""
    def action() -> None:
        store = _experiments(indexes, shared, "sqlite").store
        try:
            if arm is None:
                store.end(name, by, reason)
            elif not store.stop_arm(name, arm, by, reason):
                raise ValueError(f"arm {arm!r} of {name!r} is stopped already")
        except KeyError as exc:
            raise ValueError(str(exc).strip("'\"")) from None
        typer.echo(f"stopped {'arm ' + arm + ' of ' if arm else ''}experiment {name}")
    run(action)


@experiment.command("rotate-key")
def rotate_key(indexes: Path = INDEXES, shared: str | None = SHARED, by: str = BY,
               revoke: bool = typer.Option(False, "--revoke", help="Drop every older key now (a key that leaked): "
                                           "ids it signed are no longer credited."),
               reason: str = typer.Option(..., "--reason", help="Why (recorded in the log).")) -> None:
    """Make a new impression key. Every worker signs with it from its next poll; the replaced key still verifies
    ids as long as a click on them is credited, plus an hour (26 hours), unless --revoke."""
    def action() -> None:
        store = _experiments(indexes, shared, "sqlite").store
        made = store.rotate_key(by, reason, revoke=revoke)
        older = [k for k in store.keys if k.id != made.id]
        kept = "; ".join(f"key {k.id} verifies until {k.verifies_until}" for k in older) or "no older key verifies"
        typer.echo(f"impression key {made.id} made; {kept}")
    run(action)
