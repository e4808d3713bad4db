"""Query commands: related, more-like-this, popular, and the demo that builds and queries the demo corpus."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from .common import AS_JSON, INDEXES, NOW, app, indexes_root, load_recommender, parse_now, print_results, run


@app.command()
def related(
    article_ids: list[str] = typer.Argument(..., help="The article(s) being read; several print one list each."),
    indexes: Path = INDEXES,
    k: int = typer.Option(10, "--k", "-k", help="List length (1-100)."),
    section: str | None = typer.Option(None, help="Only this section."),
    max_age_hours: float | None = typer.Option(None, help="Only articles at most this old."),
    exclude: list[str] = typer.Option([], "--exclude", help="Article ids never to show (repeatable)."),
    language: str | None = typer.Option(None, help="Only this language (default: the article's own)."),
    now: str | None = NOW,
    as_json: bool = AS_JSON,
) -> None:
    """Articles related to one or several articles, with score components (--json with several ids: an object
    of id -> list)."""
    def action() -> None:
        engine = load_recommender(indexes)
        lists = engine.related_many(article_ids, k=k, section=section, max_age_hours=max_age_hours,
                                    exclude_ids=exclude, now=parse_now(now), language=language)
        if as_json and len(article_ids) > 1:
            typer.echo(json.dumps({a: [r.to_dict() for r in results] for a, results in zip(article_ids, lists)}))
            return
        for article_id, results in zip(article_ids, lists):
            print_results(results, as_json, f"related to {article_id}: {engine.article(article_id)['title']}")
    run(action)


MLT_FIELDS = ("ids", "text", "negative_ids", "exclude_ids", "k", "section", "max_age_hours", "language")


def read_queries(path: Path) -> list[dict[str, Any]]:
    """More-like-this queries, one JSON object per line with the fields of ``MLT_FIELDS``.

    Raises:
        ValueError: a line that is not such an object, naming the line and the unknown fields.
    """
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            query = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} line {number} is not JSON ({exc.msg}); write one query object per line") \
                from None
        if not isinstance(query, dict) or set(query) - set(MLT_FIELDS):
            unknown = sorted(set(query) - set(MLT_FIELDS)) if isinstance(query, dict) else "not an object"
            raise ValueError(f"{path} line {number}: {unknown}; a query has the fields {', '.join(MLT_FIELDS)}")
        queries.append(query)
    return queries


@app.command("more-like-this")
def more_like_this(
    article_id: list[str] = typer.Option([], "--id", help="A positive example article (repeatable)."),
    text: str | None = typer.Option(None, "--text", help="Free text to match."),
    negative: list[str] = typer.Option([], "--not", help="An article to steer away from (repeatable)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Article ids never to show (repeatable)."),
    queries: Path | None = typer.Option(None, "--queries", help="Many queries: a JSON Lines file of objects "
                                           "with ids, text, negative_ids, exclude_ids, k, section, max_age_hours, "
                                           "language (then --json prints a list of lists)."),
    indexes: Path = INDEXES,
    k: int = typer.Option(10, "--k", "-k", help="List length (1-100)."),
    section: str | None = typer.Option(None, help="Only this section."),
    max_age_hours: float | None = typer.Option(None, help="Only articles at most this old."),
    language: str | None = typer.Option(None, help="Only this language (default: the first example's)."),
    now: str | None = NOW,
    as_json: bool = AS_JSON,
) -> None:
    """Articles like several examples and/or free text, unlike the --not examples."""
    def action() -> None:
        engine = load_recommender(indexes)
        when = parse_now(now)
        if queries is not None:
            lists = [engine.more_like_this(**{"k": k, **query}, now=when) for query in read_queries(queries)]
            if as_json:
                typer.echo(json.dumps([[r.to_dict() for r in results] for results in lists]))
            else:
                for n, results in enumerate(lists, start=1):
                    print_results(results, False, f"more like this, query {n}")
            return
        results = engine.more_like_this(ids=article_id, text=text, negative_ids=negative, exclude_ids=exclude,
                                        k=k, section=section, max_age_hours=max_age_hours, now=when,
                                        language=language)
        print_results(results, as_json, "more like this")
    run(action)


@app.command()
def popular(
    indexes: Path = INDEXES,
    k: int = typer.Option(10, "--k", "-k", help="List length (1-100)."),
    section: str | None = typer.Option(None, help="Only this section."),
    window_hours: float | None = typer.Option(None, help="Views in this window count (default: config)."),
    language: str | None = typer.Option(None, help="Only this language."),
    now: str | None = NOW,
    as_json: bool = AS_JSON,
) -> None:
    """What readers read now: decayed page views."""
    def action() -> None:
        engine = load_recommender(indexes)
        results = engine.popular(k=k, section=section, window_hours=window_hours, now=parse_now(now),
                                 language=language)
        print_results(results, as_json, "popular")
    run(action)


DEMO_PIN = {"id": "demo-pin", "kind": "pin", "article_id": "demo-052", "beside": "demo-001", "position": 2,
            "author": "demo desk", "reason": "the truce and prisoner exchange: background readers of the talks ask "
            "for"}


def demo_pin(indexes: Path) -> str:
    """The demo's editorial pin (kept in the root's rule store; added once): the demo page shows it labelled."""
    from ..live.rules import RuleStore
    from ..live.state import RULES_FILE
    from ..query.rule_check import checked
    from ..query.rules import Rule

    store = RuleStore(indexes_root(indexes) / RULES_FILE)
    try:
        if store.ruleset.by_id(str(DEMO_PIN["id"])) is None:
            store.add(Rule.from_dict(DEMO_PIN), checked(load_recommender(indexes)))
        return (f"editors' pin: {DEMO_PIN['article_id']} at position {DEMO_PIN['position']} beside "
                f"{DEMO_PIN['beside']} (rule {DEMO_PIN['id']}; `recommender rules list`)")
    finally:
        store.close()


@app.command()
def demo(
    indexes: Path = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root to build into."),
    article_id: str = typer.Option("demo-001", "--article", help="Article to show related lists for."),
    now: str | None = typer.Option(None, "--now", help="Play the corpus as of this time (default: the clock; "
                                      "2026-11-27T00:00:00Z leaves its dates as written)."),
) -> None:
    """Build the built-in demo corpus and print related, more-like-this and popular lists.

    The corpus's dates and page views are shifted by whole hours so the demo is always "today" (popular and
    freshness need recent views); pass --now to pin the moment.
    """
    def action() -> None:

        from ..build.rebuild import build as run_build
        from ..catalogue.demo import demo_catalogue

        when = parse_now(now) or datetime.now(UTC)
        articles, views = demo_catalogue(when)
        report = run_build(articles, indexes, views_source=views, progress=sys.stderr.isatty())
        typer.echo(report.catalogue_summary)
        typer.echo(report.summary())
        typer.echo(demo_pin(indexes))
        engine = load_recommender(indexes)
        print_results(engine.related(article_id, k=5, now=when), False,
                       f"\nrelated to {article_id}: {engine.article(article_id)['title']}")
        print_results(engine.more_like_this(text="train drivers strike over pay", k=5, now=when), False,
                       "\nmore like this: 'train drivers strike over pay'")
        print_results(engine.popular(k=5, now=when), False, "\npopular now")
    run(action)
