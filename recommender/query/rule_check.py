"""What the editorial rules do to one article's lists (``recommender rules check``, ``GET /v1/rules/check/{id}``),
and the article facts a new rule is checked against."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import numpy as np

from ..times import epoch_hours
from .editorial import ListRules
from .recommender import Recommender
from .rule_book import NO_RULES, RuleBook
from .rules import Rule, RuleSet, check_rule


def article_info(recommender: Recommender) -> Any:
    """``(section, case-folded tags)`` of a listed article id, None for one that is not listed (``check_rule``)."""
    def info(article_id: str) -> tuple[str, frozenset[str]] | None:
        if not recommender.contains(article_id):
            return None
        fields = recommender.article(article_id)
        return str(fields.get("section") or ""), frozenset(_tags(fields))
    return info


def _tags(fields: dict[str, Any]) -> list[str]:
    """The case-folded tags of an article's fields (a list, tuple or numpy array; absent: none)."""
    tags = fields.get("tags")
    return [str(t).casefold() for t in tags] if tags is not None else []


def checked(recommender: Recommender, now: datetime | None = None) -> Any:
    """A ``RuleStore.add`` check: the rule names listed articles and contradicts no stored rule."""
    def check(rule: Rule, stored: RuleSet) -> None:
        check_rule(rule, stored, article_info(recommender), float(epoch_hours(now or recommender.clock())))
    return check


def without_rules(recommender: Recommender) -> Recommender:
    """The same recommender (same build, overlay, views and caches) obeying no rules."""
    clone = copy.copy(recommender)
    clone.rules = RuleBook(None, recommender.table)
    return clone


def _why_not(rules: ListRules, row: int, ruleset: RuleSet) -> str:
    """Why the rules keep ``row`` out of a list (the first reason found)."""
    compiled = rules.editorial
    if compiled.blocked[row]:
        return "blocked everywhere"
    if compiled.not_before[row] > rules.now_hours:
        return f"embargoed for {compiled.not_before[row] - rules.now_hours:.1f} more hours"
    if row in set(rules.excluded.tolist()):
        return "blocked in this list (its section, beside this article or its tags), or kept away by a guardrail"
    return "moved below the list by a bury or by a pinned article"


def rule_report(recommender: Recommender, article_id: str, k: int = 10, now: datetime | None = None
                ) -> dict[str, Any]:
    """Which rules touch ``article_id`` and its related list, and how: the rules naming it or matching it, and the
    list with and without the rules (what was added, removed and why).

    Raises:
        UnknownArticleError: the article is not listed.
    """
    fields = recommender.article(article_id)
    ruleset = recommender.rules.ruleset
    now = now or recommender.clock()
    now_hours = float(epoch_hours(now))
    section = str(fields.get("section") or "")
    tags = set(_tags(fields))
    listed = recommender.listed()

    def story_of(other: str) -> object:
        return listed.take("story_ids", np.array([recommender.row(other)]))[0] if recommender.contains(other) else None

    story = story_of(article_id)
    naming, matching = [], []
    for rule in ruleset.rules:
        target = rule.target
        if article_id in rule.articles or ("story" in target and story_of(str(target["story"])) == story):
            naming.append(rule)
        elif (target.get("section") == section or str(target.get("tag", "")).casefold() in tags
              or str(target.get("never_beside_tag", "")).casefold() in tags
              or str(target.get("beside_tag", "")).casefold() in tags
              or (target.get("byline") and target.get("byline") == fields.get("author"))):
            matching.append(rule)
    with_rules = recommender.related(article_id, k=k, now=now)
    plain = without_rules(recommender).related(article_id, k=k, now=now)
    shown = {r.article_id for r in with_rules}
    rules = recommender.rules.for_list("related", listed, now_hours, recommender.anchor(listed, article_id), None)
    removed = [{"article_id": r.article_id, "why": _why_not(rules, recommender.row(r.article_id), ruleset)}
               for r in plain if r.article_id not in shown]
    before = {r.article_id for r in plain}
    added = [{"article_id": r.article_id, "why": r.reasons[0] if r.source == "pinned" else
              "fills the place of a removed article"} for r in with_rules if r.article_id not in before]

    def shown_rule(rule: Rule) -> dict[str, Any]:
        return {**rule.to_dict(), "active": rule.active(now_hours)}

    return {"article_id": article_id, "now": now.isoformat(), "rules_naming": [shown_rule(r) for r in naming],
            "rules_matching": [shown_rule(r) for r in matching],
            "related": {"with_rules": [r.to_dict() for r in with_rules], "without_rules": [r.article_id for r in plain],
                        "added": added, "removed": removed,
                        "labelled": [{"article_id": r.article_id, "label": r.label, "source": r.source}
                                     for r in with_rules if r.label or r.source != "ranked"]}}


__all__ = ["NO_RULES", "article_info", "checked", "rule_report", "without_rules"]
