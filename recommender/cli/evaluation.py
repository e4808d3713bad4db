"""`recommender evaluate`: every task x method on the public datasets, and the sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import app, build_config, run


def read_rules(location: str):  # noqa: ANN201 - a RuleSet, imported lazily
    """Rules from a JSON file (a list of rule objects) or a rule store (SQLite file, postgresql:// URL)."""
    from ..query.rules import Rule, RuleError, RuleSet

    if location.endswith(".json"):
        items = json.loads(Path(location).read_text())
        if not isinstance(items, list):
            raise ValueError(f"{location}: expected a JSON list of rules, got {type(items).__name__}")
        rules = []
        for n, item in enumerate(items):
            try:
                rules.append(Rule.from_dict(item))
            except RuleError as exc:
                raise ValueError(f"{location}: rule [{n}]: {exc}") from None
        return RuleSet(tuple(rules), seq=location)
    from ..live.rules import RuleStore

    return RuleStore(location).ruleset


@app.command()
def evaluate(
    data: Path = typer.Option(Path("../shared/data"), "--data", envvar="RECOMMENDER_DATA",
                              help="Shared datasets folder (env RECOMMENDER_DATA)."),
    task: list[str] = typer.Option([], "--task", help="semeval, bbc, reuters, ag_news, mind (repeatable; "
                                   "default all)."),
    method: list[str] = typer.Option([], "--method", help="random, most_popular, lexical, embeddings, full_blend "
                                                          "(repeatable; default all)."),
    k: int = typer.Option(10, "--k", "-k", help="List length."),
    limit: int | None = typer.Option(None, help="Seeded sample of this many catalogue rows / pairs per dataset."),
    queries: int | None = typer.Option(1000, help="Query articles per corpus task (seeded sample)."),
    lang: list[str] = typer.Option([], "--lang", help="SemEval language pair, e.g. en-en (repeatable; default all)."),
    with_translations: bool = typer.Option(False, help="Keep SemEval's machine-translated augmentation rows."),
    build: list[str] = typer.Option([], "--build", help="TASK=PATH: load this published build instead of building."),
    work_dir: Path = typer.Option(Path("evaluation-work"), help="Where evaluation indexes are built."),
    cache: Path | None = typer.Option(None, help="Embedding cache file (default: one per index root)."),
    out: Path = typer.Option(Path("evaluation-results"), "--out", help="Folder for results.json / results.csv."),
    sweep: bool = typer.Option(False, "--sweep", help="Also sweep ranking settings and plot them (PNG)."),
    seed: int = typer.Option(0, help="Seed of the samples and the random baseline."),
    config_file: Path | None = typer.Option(None, "--config", help="Build/ranking settings (TOML or JSON)."),
    rules: str | None = typer.Option(None, "--rules", help="Editorial rules to evaluate: a JSON file (a list of "
                                     "rules), a rules.sqlite file or a postgresql:// URL; adds a "
                                     "full_blend+rules row per corpus task with the share of lists they change."),
) -> None:
    """Score every task x method on the public datasets; print the table, write JSON/CSV (and sweep plots)."""
    def action() -> None:
        from ..evaluation.baselines import METHODS
        from ..evaluation.runner import TASKS, EvaluationConfig, format_table
        from ..evaluation.runner import evaluate as run_evaluation

        builds = {}
        for item in build:
            if "=" not in item:
                raise typer.BadParameter(f"--build {item!r} must be TASK=PATH, e.g. bbc=indexes/bbc")
            name, path = item.split("=", 1)
            builds[name.strip()] = Path(path.strip())
        config = EvaluationConfig(
            data_dir=data, tasks=tuple(task) or TASKS, methods=tuple(method) or METHODS, k=k, limit=limit,
            queries=queries, semeval_lang_pairs=tuple(lang) or None, semeval_original_only=not with_translations,
            seed=seed, work_dir=work_dir, cache_path=cache, builds=builds, build_config=build_config(config_file),
            rules=read_rules(rules) if rules else None)
        result = run_evaluation(config)
        typer.echo(format_table(result.table, k))
        for name, note in result.notes.items():
            typer.echo(f"  {name}: {note}")
        csv_path, json_path = result.write(out)
        typer.echo(f"wrote {json_path} and {csv_path}")
        if sweep:
            from ..evaluation.sweeps import run_sweeps

            choices, how = run_sweeps(config, out)
            typer.echo(format_table(choices, k))
            for line in how:
                typer.echo(f"  {line}")
            typer.echo(f"wrote {out / 'sweeps.csv'}, {out / 'sweep_choices.csv'} and {out}/sweep-*.png")
    run(action)
