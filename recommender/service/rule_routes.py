"""The editorial rule routes: ``GET/POST/DELETE /v1/rules``, the audit log and ``check`` (all need the write
token: rules are the desk's tools, not a public API)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from ..query.rule_check import checked, rule_report
from ..query.rules import Rule
from ..times import epoch_hours
from .errors import ApiError
from .routes import ACTOR, ERRORS, REASON, State, Writer

router = APIRouter(tags=["rules"], dependencies=[Writer])
RULE_ID = Annotated[str, Path(min_length=1, max_length=64)]


def _status(rule: Rule, now_hours: float) -> str:
    if rule.active(now_hours):
        return "active"
    return "scheduled" if rule.starts_at is not None and now_hours < rule.starts_at else "expired"


@router.get("/v1/rules", responses=ERRORS)
def list_rules(state: State, status: str | None = Query(None, pattern="^(active|scheduled|expired)$",
                                                       description="Only rules in this state.")) -> dict[str, Any]:
    """Every stored rule with its state (active, scheduled, expired) at this moment."""
    state.rules.sync()
    now_hours = float(epoch_hours(state.served.recommender.clock()))
    rules = [{**r.to_dict(), "status": _status(r, now_hours)} for r in state.rules.ruleset.rules]
    return {"rules": [r for r in rules if status is None or r["status"] == status], "count": len(rules)}


@router.post("/v1/rules", status_code=201, responses=ERRORS)
def add_rule(state: State, body: Annotated[dict[str, Any], Body(description="A rule (see the docs' Rule kinds).",
                                                                 examples=[{"kind": "pin", "article_id": "a-2",
                                                                            "beside": "a-1", "position": 1,
                                                                            "author": "desk", "reason": "explainer"}
                                                                           ])]) -> dict[str, Any]:
    """Store a rule; every worker of every replica applies it within its next live-state poll. A malformed rule,
    an unknown article or a contradiction with a stored rule is a 422 naming the problem (``conflicts``)."""
    recommender = state.served.recommender
    rule = Rule.from_dict(body, recommender.clock())
    stored = state.rules.add(rule, checked(recommender))
    state.live.sync()
    return {"rule": stored.to_dict()}


@router.delete("/v1/rules/{rule_id}", responses=ERRORS)
def remove_rule(state: State, rule_id: RULE_ID, actor: str = ACTOR, reason: str = REASON) -> dict[str, Any]:
    """Remove a rule: it stops acting everywhere (the audit log keeps it)."""
    removed = state.rules.remove(rule_id, actor, reason)
    if removed is None:
        raise ApiError(404, "unknown_rule", f"no rule {rule_id!r}; GET /v1/rules lists them")
    state.live.sync()
    return {"removed": removed.to_dict()}


@router.get("/v1/rules/log", responses=ERRORS)
def rule_log(state: State, limit: int = Query(200, ge=1, le=10_000),
             rule_id: str | None = Query(None, max_length=64, description="Only this rule's entries.")
             ) -> dict[str, Any]:
    """The audit log, newest first: who added or removed which rule, when and why (with the rule)."""
    return {"log": state.rules.history(limit, rule_id)}


@router.get("/v1/rules/check/{article_id:path}", responses=ERRORS)
def check(state: State, article_id: Annotated[str, Path(min_length=1, max_length=200)],
          k: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
    """Which rules touch this article and its related list, and how (the list with and without them)."""
    state.live.sync()
    return rule_report(state.served.recommender, article_id, k, datetime.now(UTC) if state.clock is None
                       else state.clock())
