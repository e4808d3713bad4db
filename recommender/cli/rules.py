"""`recommender rules list|add|remove|check|log`: the editorial rules every list obeys (pins, blocks, boosts,
buries, guardrails, embargoes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from .common import AS_JSON, NOW, app, indexes_root, load_recommender, parse_now, run

rules = typer.Typer(no_args_is_help=True, help="Editorial rules: applied in every list, on every build and worker.")
app.add_typer(rules, name="rules")
INDEXES = typer.Option(Path("indexes"), "--indexes", "-i", help="Indexes root (holds rules.sqlite and `current`).")
SHARED = typer.Option(None, "--rules", envvar="RECOMMENDER_RULES",
                      help="A postgresql:// URL shared by replicas (default: rules.sqlite in the root).")
BY = typer.Option(os.environ.get("USER", "cli"), "--by", help="Who acts (recorded with the rule and in the log).")


def _store(indexes: Path, shared: str | None) -> Any:
    from ..live.rules import RuleStore
    from ..live.state import RULES_FILE

    return RuleStore(shared or indexes_root(indexes) / RULES_FILE)


def _status(rule: Any, now_hours: float) -> str:
    if rule.active(now_hours):
        return "active"
    return "scheduled" if rule.starts_at is not None and now_hours < rule.starts_at else "expired"


@rules.command("list")
def list_rules(indexes: Path = INDEXES, shared: str | None = SHARED, as_json: bool = AS_JSON) -> None:
    """Every stored rule and whether it acts now (active, scheduled, expired)."""
    def action() -> None:
        from datetime import UTC, datetime

        from ..times import epoch_hours

        now_hours = float(epoch_hours(datetime.now(UTC)))
        shown = [{**r.to_dict(), "status": _status(r, now_hours)} for r in _store(indexes, shared).ruleset.rules]
        if as_json:
            typer.echo(json.dumps(shown, indent=2))
            return
        if not shown:
            typer.echo("no rules")
        common = {"id", "kind", "author", "reason", "label", "created_at", "starts_at", "expires_at", "status"}
        for r in shown:
            target = ", ".join(f"{k}={v}" for k, v in r.items() if k not in common)
            until = f" until {r['expires_at']}" if r["expires_at"] else ""
            typer.echo(f"{r['id']:<14} {r['kind']:<9} {r['status']:<9} {target}{until}  by {r['author']}: "
                       f"{r['reason']}")
    run(action)


@rules.command("add")
def add(kind: str = typer.Argument(..., help="pin, block, boost, bury, guardrail or embargo."),
        article: str | None = typer.Option(None, "--article", help="The article pinned, blocked or embargoed."),
        beside: str | None = typer.Option(None, "--beside", help="Pin/block: in the lists of this article."),
        story: str | None = typer.Option(None, "--story", help="Pin: in the lists of every article of this "
                                         "article's story."),
        section: str | None = typer.Option(None, "--section", help="Pin: this section's popular list; block: "
                                           "this section's lists; boost/bury: articles of this section."),
        list_name: str | None = typer.Option(None, "--list", help="Pin: related, more_like_this or popular."),
        position: int | None = typer.Option(None, "--position", help="Pin: 1-based position."),
        tag: str | None = typer.Option(None, "--tag", help="Boost/bury: articles with this tag; guardrail: one "
                                       "side."),
        never_beside_tag: str | None = typer.Option(None, "--never-beside-tag", help="Guardrail: the other side."),
        beside_tag: str | None = typer.Option(None, "--beside-tag", help="Block: beside any article with this "
                                              "tag."),
        byline: str | None = typer.Option(None, "--byline", help="Boost/bury: articles by this author."),
        min_age_hours: float | None = typer.Option(None, "--min-age-hours"),
        max_age_hours: float | None = typer.Option(None, "--max-age-hours"),
        multiply: float | None = typer.Option(None, "--multiply", help="Boost/bury: score factor."),
        add_score: float | None = typer.Option(None, "--add", help="Boost/bury: score change."),
        until: str | None = typer.Option(None, "--until", help="Embargo: not listed before this (ISO 8601)."),
        starts_at: str | None = typer.Option(None, "--starts-at", help="Acts from (ISO 8601; default now)."),
        expires_at: str | None = typer.Option(None, "--expires-at", help="Stops acting at (ISO 8601)."),
        label: str | None = typer.Option(None, "--label", help="Public words beside a pinned or boosted item."),
        rule_id: str | None = typer.Option(None, "--id", help="The rule's id (default: generated)."),
        reason: str = typer.Option(..., "--reason", help="Why (stored with the rule and in the log)."),
        by: str = BY, indexes: Path = INDEXES, shared: str | None = SHARED) -> None:
    """Add a rule, checked against the served build (unknown articles) and the stored rules (contradictions)."""
    def action() -> None:
        from ..query.rule_check import checked
        from ..query.rules import Rule

        fields = {"kind": kind, "article_id": article, "beside": beside, "story": story, "section": section,
                  "list": list_name, "position": position, "tag": tag, "never_beside_tag": never_beside_tag,
                  "beside_tag": beside_tag, "byline": byline, "min_age_hours": min_age_hours,
                  "max_age_hours": max_age_hours, "multiply": multiply, "add": add_score, "until": until,
                  "starts_at": starts_at, "expires_at": expires_at, "label": label, "id": rule_id,
                  "author": by, "reason": reason}
        rule = Rule.from_dict({k: v for k, v in fields.items() if v is not None})
        stored = _store(indexes, shared).add(rule, checked(load_recommender(indexes, shared)))
        typer.echo(f"added rule {stored.id} ({stored.kind}); every worker applies it within its next poll")
    run(action)


@rules.command("remove")
def remove(rule_id: str = typer.Argument(..., help="The rule to remove."), indexes: Path = INDEXES,
           shared: str | None = SHARED, by: str = BY,
           reason: str = typer.Option(..., "--reason", help="Why (recorded in the log).")) -> None:
    """Remove a rule: it stops acting everywhere (the log keeps it)."""
    def action() -> None:
        if _store(indexes, shared).remove(rule_id, by, reason) is None:
            raise ValueError(f"no rule {rule_id!r}; `recommender rules list` lists them")
        typer.echo(f"removed rule {rule_id}")
    run(action)


@rules.command("log")
def log(indexes: Path = INDEXES, shared: str | None = SHARED, rule_id: str | None = typer.Option(None, "--rule"),
        as_json: bool = AS_JSON) -> None:
    """The audit log, newest first: who added or removed which rule, when and why."""
    def action() -> None:
        entries = _store(indexes, shared).history(rule_id=rule_id)
        if as_json:
            typer.echo(json.dumps(entries, indent=2))
            return
        for e in entries:
            typer.echo(f"{e['at']}  {e['action']:<7} {e['rule_id']:<14} by {e['actor']}: {e['reason']}")
    run(action)


@rules.command("check")
def check(article_id: str = typer.Argument(..., help="The article whose lists to check."),
          indexes: Path = INDEXES, shared: str | None = SHARED, k: int = typer.Option(10, "--k", "-k"),
          now: str | None = NOW, as_json: bool = AS_JSON) -> None:
    """Which rules touch this article and its related list, and how (with and without them)."""
    def action() -> None:
        from ..query.rule_check import rule_report

        report = rule_report(load_recommender(indexes, shared), article_id, k, parse_now(now))
        if as_json:
            typer.echo(json.dumps(report, indent=2))
            return
        for title, key in (("rules naming it", "rules_naming"), ("rules matching it", "rules_matching")):
            typer.echo(f"{title}: " + (", ".join(f"{r['id']} ({r['kind']}{'' if r['active'] else ', inactive'})"
                                                 for r in report[key]) or "none"))
        related = report["related"]
        typer.echo(f"related list ({k}): " + ", ".join(r["article_id"] for r in related["with_rules"]))
        typer.echo("without rules: " + ", ".join(related["without_rules"]))
        for entry in related["added"]:
            typer.echo(f"  + {entry['article_id']}: {entry['why']}")
        for entry in related["removed"]:
            typer.echo(f"  - {entry['article_id']}: {entry['why']}")
    run(action)
