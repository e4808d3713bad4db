"""Editorial rules: what the desk sets and every list obeys (pins, blocks, boosts and buries, guardrails, embargoes).

A ``Rule`` is data: its kind, what it targets, who set it, why, and when it acts (``starts_at`` .. ``expires_at``).
``RuleSet`` holds a site's rules as one snapshot; ``query.editorial`` turns the rules active at a time into lookups
over the listed rows, which the one ranking core applies in every list: related, more like this, popular, story
timelines and the fallbacks that fill them. ``check_rule`` refuses a rule that contradicts another. Kinds:

- ``pin``: ``article_id`` at ``position`` (1-based) in the ``list`` ("related", "more_like_this" or "popular") of
  the article ``beside``, of every article of the story of the article ``story``, or (popular) of ``section`` /
  every popular list;
- ``block``: ``article_id`` never listed: anywhere, in the lists of ``section`` (lists for an article of that
  section, or filtered to it), ``beside`` one article, or beside any article tagged ``beside_tag``;
- ``boost`` / ``bury``: scores of articles matching ``section``, ``tag``, ``byline`` (the article's ``author``
  field) and an age range
  (``min_age_hours`` .. ``max_age_hours``) are multiplied by ``multiply`` and raised by ``add`` (a boost raises, a
  bury lowers);
- ``guardrail``: articles tagged ``tag`` are never shown beside articles tagged ``never_beside_tag``, both ways: not
  in the list of such an article, and never both in one list;
- ``embargo``: ``article_id`` never listed before ``until`` (an article published in the future, or with a
  catalogue ``embargo_until``, is embargoed the same way without a rule).
"""

from __future__ import annotations

import bisect
import math
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Callable, Iterable, Mapping, Protocol

from ..errors import RecommenderError
from ..times import epoch_hours

KINDS = ("pin", "block", "boost", "bury", "guardrail", "embargo")
LISTS = ("related", "more_like_this", "popular")
MAX_POSITION = 100
DEFAULT_LABELS = {"pin": "Chosen by the editors", "boost": "Promoted by the editors"}
_FIELDS = {  # the fields each kind takes besides the common ones
    "pin": {"article_id", "position", "list", "beside", "story", "section"},
    "block": {"article_id", "section", "beside", "beside_tag"},
    "boost": {"section", "tag", "byline", "min_age_hours", "max_age_hours", "multiply", "add"},
    "bury": {"section", "tag", "byline", "min_age_hours", "max_age_hours", "multiply", "add"},
    "guardrail": {"tag", "never_beside_tag"},
    "embargo": {"article_id", "until"},
}
_COMMON = {"id", "kind", "author", "reason", "label", "created_at", "starts_at", "expires_at"}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class RuleError(RecommenderError):
    """A rule that cannot be stored: malformed, aimed at an unknown article, or contradicting another rule
    (``conflicts`` names the rules). The service answers 422 naming the problem."""

    def __init__(self, message: str, conflicts: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.conflicts = tuple(conflicts)


def _hours(value: Any, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RuleError(f"{name} {value!r} is not an ISO 8601 time (2026-12-01T08:00:00Z)") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return float(epoch_hours(stamp))


def _iso(hours: float | None) -> str | None:
    if hours is None:
        return None
    return datetime.fromtimestamp(hours * 3600, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Rule:
    """One editorial rule (see the module doc for the kinds and their fields).

    Attributes:
        id: unique; generated when not given.
        kind: one of ``KINDS``.
        author / reason: who set it and why (the audit log has them too).
        label: the public words a reader sees for a pinned or boosted item ("Chosen by the editors").
        created_at / starts_at / expires_at: hours since the epoch; the rule acts from ``starts_at`` (default its
            creation) until ``expires_at`` (default never).
        target: the kind's own fields (``article_id``, ``position``, ``tag``, ...).
    """

    id: str
    kind: str
    author: str
    reason: str
    label: str
    created_at: float
    starts_at: float | None
    expires_at: float | None
    target: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], now: datetime | None = None) -> Rule:
        """A rule from its JSON form, every field checked (``RuleError`` names the field and the fix)."""
        if not isinstance(data, Mapping):
            raise RuleError(f"a rule is a JSON object, got {type(data).__name__}")
        kind = data.get("kind")
        if kind not in KINDS:
            raise RuleError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        unknown = set(data) - _COMMON - _FIELDS[kind]
        if unknown:
            raise RuleError(f"a {kind} rule has no field(s) {sorted(unknown)}; it takes {sorted(_FIELDS[kind])}")
        for name in ("author", "reason"):
            if not isinstance(data.get(name), str) or not data[name].strip():
                raise RuleError(f"{name} is required: who sets the rule and why (the audit log keeps both)")
        rule_id = data.get("id") or f"r-{secrets.token_hex(5)}"
        if not isinstance(rule_id, str) or not _ID.match(rule_id):
            raise RuleError(f"id {rule_id!r} must be 1-64 letters, digits, '_', '.', ':' or '-'")
        created = _hours(data.get("created_at"), "created_at") or float(epoch_hours(now or datetime.now(UTC)))
        starts, expires = _hours(data.get("starts_at"), "starts_at"), _hours(data.get("expires_at"), "expires_at")
        if starts is not None and expires is not None and expires <= starts:
            raise RuleError(f"expires_at {data['expires_at']} is not after starts_at {data['starts_at']}")
        label = data.get("label") or DEFAULT_LABELS.get(kind, "")
        if not isinstance(label, str) or len(label) > 80:
            raise RuleError("label must be text of at most 80 characters (it is shown to readers)")
        target = {k: data[k] for k in _FIELDS[kind] if data.get(k) is not None}
        return cls(rule_id, kind, data["author"].strip(), data["reason"].strip(), label, created, starts, expires,
                   _checked_target(kind, target))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (times ISO 8601)."""
        return {"id": self.id, "kind": self.kind, "author": self.author, "reason": self.reason, "label": self.label,
                "created_at": _iso(self.created_at), "starts_at": _iso(self.starts_at),
                "expires_at": _iso(self.expires_at), **dict(self.target)}

    def active(self, now_hours: float) -> bool:
        """Whether the rule acts at ``now_hours``."""
        return (self.starts_at is None or self.starts_at <= now_hours) and (
            self.expires_at is None or now_hours < self.expires_at)

    @property
    def articles(self) -> tuple[str, ...]:
        """The article ids the rule names (to check they exist)."""
        return tuple(str(self.target[k]) for k in ("article_id", "beside", "story") if k in self.target)


def _text(target: dict[str, Any], name: str, required: bool = False) -> None:
    value = target.get(name)
    if value is None:
        if required:
            raise RuleError(f"{name} is required")
        return
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise RuleError(f"{name} must be non-empty text of at most 200 characters, got {value!r}")
    target[name] = value.strip()


def _number(target: dict[str, Any], name: str) -> float | None:
    value = target.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RuleError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _checked_target(kind: str, target: dict[str, Any]) -> dict[str, Any]:
    """The kind's fields checked and normalised."""
    for name in ("article_id", "beside", "story", "section", "beside_tag", "tag", "never_beside_tag", "byline"):
        _text(target, name)
    if kind in ("pin", "block", "embargo"):
        _text(target, "article_id", required=True)
    if kind == "pin":
        position = target.get("position")
        if isinstance(position, bool) or not isinstance(position, int) or not 1 <= position <= MAX_POSITION:
            raise RuleError(f"position must be an integer from 1 to {MAX_POSITION}, got {position!r}")
        target["list"] = target.get("list", "related")
        if target["list"] not in LISTS:
            raise RuleError(f"list must be one of {', '.join(LISTS)}, got {target['list']!r}")
        scopes = [k for k in ("beside", "story", "section") if k in target]
        if target["list"] == "popular" and set(scopes) - {"section"}:
            raise RuleError("a pin in a popular list takes section (or nothing: every popular list), not beside/story")
        if target["list"] != "popular" and len(scopes) != 1 or target["list"] != "popular" and "section" in target:
            raise RuleError("a pin in a related or more-like-this list takes exactly one of beside (an article) or "
                            "story (every article of a story)")
        if target.get("beside") == target["article_id"]:
            raise RuleError("an article cannot be pinned in its own list")
    elif kind == "block":
        if len([k for k in ("section", "beside", "beside_tag") if k in target]) > 1:
            raise RuleError("a block takes at most one of section, beside or beside_tag (none: everywhere)")
    elif kind in ("boost", "bury"):
        multiply, add = _number(target, "multiply"), _number(target, "add")
        low, high = _number(target, "min_age_hours"), _number(target, "max_age_hours")
        if multiply is None and add is None:
            raise RuleError(f"a {kind} needs multiply and/or add")
        if multiply is not None and multiply <= 0:
            raise RuleError(f"multiply must be positive, got {multiply}")
        raises = (multiply or 1.0) > 1.0 or (add or 0.0) > 0.0
        lowers = (multiply or 1.0) < 1.0 or (add or 0.0) < 0.0
        if kind == "boost" and (lowers or not raises) or kind == "bury" and (raises or not lowers):
            raise RuleError(f"a boost raises scores (multiply > 1, add > 0) and a bury lowers them; this {kind} "
                            f"does not")
        if not {"section", "tag", "byline"} & set(target) and low is None and high is None:
            raise RuleError(f"a {kind} needs a match: section, tag, byline (the article's author) or an age range")
        if low is not None and high is not None and high < low:
            raise RuleError(f"max_age_hours {high} is below min_age_hours {low}")
    elif kind == "guardrail":
        _text(target, "tag", required=True)
        _text(target, "never_beside_tag", required=True)
        if target["tag"].casefold() == target["never_beside_tag"].casefold():
            raise RuleError("a guardrail keeps two different tags apart")
    elif kind == "embargo":
        until = _hours(target.get("until"), "until")
        if until is None:
            raise RuleError("an embargo needs until (ISO 8601)")
        target["until"] = _iso(until)
    return target


@dataclass(frozen=True)
class RuleSet:
    """A site's rules as one snapshot (``seq`` changes with any change).

    It is its own ``RuleSource`` (``ruleset``), so a fixed set can be passed wherever a store can.
    """

    rules: tuple[Rule, ...] = ()
    seq: object = 0

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def ruleset(self) -> RuleSet:
        """Itself (the ``RuleSource`` protocol)."""
        return self

    def active(self, now_hours: float) -> list[Rule]:
        """The rules acting at ``now_hours``."""
        return [r for r in self.rules if r.active(now_hours)]

    @cached_property
    def _edges(self) -> list[float]:
        return sorted({t for r in self.rules for t in (r.starts_at, r.expires_at) if t is not None})

    def validity(self, now_hours: float) -> tuple[float, float]:
        """The interval ``[from, until)`` around ``now_hours`` in which no rule starts or expires."""
        edges = self._edges
        i = bisect.bisect_right(edges, now_hours)
        return (edges[i - 1] if i else -math.inf), (edges[i] if i < len(edges) else math.inf)

    @cached_property
    def _ids(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    def by_id(self, rule_id: str) -> Rule | None:
        """The rule with this id, if any."""
        return self._ids.get(rule_id)


class RuleSource(Protocol):
    """Where a recommender's rules come from: a ``RuleSet``, or the service's rule store (``live.rules``)."""

    @property
    def ruleset(self) -> RuleSet:
        """The latest snapshot."""
        ...


def without_article(rules: RuleSet, article_id: str) -> RuleSet:
    """The rules that do not name ``article_id`` (for ``check``: what a list would be without them)."""
    return replace(rules, rules=tuple(r for r in rules.rules if article_id not in r.articles))


ArticleInfo = Callable[[str], "tuple[str, frozenset[str]] | None"]


def _overlap(a: Rule, b: Rule) -> bool:
    """Whether two rules act at some common time."""
    start_a, start_b = a.starts_at if a.starts_at is not None else a.created_at, (
        b.starts_at if b.starts_at is not None else b.created_at)
    end_a, end_b = a.expires_at if a.expires_at is not None else math.inf, (
        b.expires_at if b.expires_at is not None else math.inf)
    return start_a < end_b and start_b < end_a


def _blocks_pin(block: Rule, pin: Rule, info: ArticleInfo) -> bool:
    """Whether ``block`` forbids what ``pin`` asks for (the same article, where the pin puts it)."""
    if block.target["article_id"] != pin.target["article_id"]:
        return False
    scope = block.target
    if "beside" in scope:
        return pin.target.get("beside") == scope["beside"]
    if "beside_tag" in scope:
        beside = info(str(pin.target.get("beside", "")))
        return beside is not None and scope["beside_tag"].casefold() in beside[1]
    if "section" in scope:
        if pin.target["list"] == "popular":
            return pin.target.get("section") == scope["section"]
        beside = info(str(pin.target.get("beside", "")))
        return beside is not None and beside[0] == scope["section"]
    return True


def _guardrail_forbids(guardrail: Rule, pin: Rule, info: ArticleInfo) -> bool:
    """Whether a guardrail keeps the pinned article away from the article it is pinned beside."""
    pinned, beside = info(pin.target["article_id"]), info(str(pin.target.get("beside", "")))
    if pinned is None or beside is None:
        return False
    a, b = guardrail.target["tag"].casefold(), guardrail.target["never_beside_tag"].casefold()
    return (a in pinned[1] and b in beside[1]) or (b in pinned[1] and a in beside[1])


def _contradicts(new: Rule, old: Rule, info: ArticleInfo, now_hours: float) -> str | None:
    """Why ``new`` contradicts ``old`` (or None)."""
    if not _overlap(new, old):
        return None
    for pin, other in ((new, old), (old, new)):
        if pin.kind != "pin":
            continue
        if other.kind == "block" and _blocks_pin(other, pin, info):
            return f"rule {other.id} blocks article {pin.target['article_id']} where pin {pin.id} puts it"
        if other.kind == "embargo" and other.target["article_id"] == pin.target["article_id"]:
            until = _hours(other.target["until"], "until") or 0.0
            if until > max(now_hours, pin.starts_at or pin.created_at):
                return (f"article {pin.target['article_id']} is embargoed until {other.target['until']} (rule "
                        f"{other.id}) and pin {pin.id} would list it before then")
        if other.kind == "guardrail" and _guardrail_forbids(other, pin, info):
            return (f"guardrail {other.id} keeps '{other.target['tag']}' and '{other.target['never_beside_tag']}' "
                    f"apart; pin {pin.id} puts one beside the other")
    if new.kind == old.kind == "pin":
        scope = ("list", "beside", "story", "section")
        if all(new.target.get(k) == old.target.get(k) for k in scope):
            if new.target["position"] == old.target["position"]:
                return f"pin {old.id} already holds position {old.target['position']} of that list"
            if new.target["article_id"] == old.target["article_id"]:
                return f"pin {old.id} already pins article {old.target['article_id']} in that list"
    return None


def check_rule(rule: Rule, rules: RuleSet, info: ArticleInfo, now_hours: float) -> None:
    """Refuse a rule that names an article that is not listed, or contradicts a stored rule.

    An embargo may name an article that is not listed yet (it usually arrives later). ``info`` gives the section
    and case-folded tags of a listed article, None for one that is not listed.

    Raises:
        RuleError: naming the problem and, for a contradiction, the rules involved (``conflicts``).
    """
    if rules.by_id(rule.id) is not None:
        raise RuleError(f"a rule with id {rule.id!r} exists; remove it first or choose another id", [rule.id])
    for name in ("article_id", "beside", "story"):
        article_id = rule.target.get(name)
        if article_id is not None and rule.kind != "embargo" and info(str(article_id)) is None:
            raise RuleError(f"{name} {article_id!r} is not a listed article (unknown, or taken down); check the id "
                            f"with GET /v1/articles/{{id}}/related")
    if rule.kind == "block" and "section" in rule.target and rule.target["section"] == "":
        raise RuleError("section must not be empty")
    for old in rules.rules:
        reason = _contradicts(rule, old, info, now_hours)
        if reason is not None:
            raise RuleError(f"rule {rule.id} contradicts rule {old.id}: {reason}; remove one of them first",
                            [old.id])
