"""Editorial rules as the ranker applies them: which rows a list may not show, how scores move, what is pinned.

``Editorial.compile(rules, listed, now)`` turns the rules acting at ``now`` into lookups over one listed row space
(valid until a rule starts or expires, or the rows change); ``Editorial.for_list`` narrows them to one list (the
article it is for, the list kind, its section) as ``ListRules``, which ``ranking.rank``, ``popular.most_read`` and
``timeline.story_timeline`` obey. Embargoes need no rule: a row whose ``published_at`` or ``embargo_until`` lies
after ``now`` is never listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Mapping, Sequence

import numpy as np

from ..times import epoch_hours
from .rules import Rule, RuleSet
from .table import ListedArticles

_NO_ROWS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Pin:
    """One pin as a list applies it: listed ``row`` at 1-based ``position``."""

    row: int
    position: int
    label: str
    rule_id: str


@dataclass(frozen=True)
class AgedBoost:
    """A boost or bury with an age range (applied per list: ages move with ``now``)."""

    rows: np.ndarray
    min_age_hours: float
    max_age_hours: float
    multiply: float
    add: float
    label: str
    rule_id: str


@dataclass(frozen=True)
class Editorial:
    """The rules acting in ``[valid_from, valid_until)`` as lookups over one listed row space.

    Attributes:
        blocked: (N,) rows blocked everywhere.
        not_before: (N,) hours before which each row is not listed (its publication time, ``embargo_until`` and
            embargo rules; NaN: no limit).
        in_section / beside / beside_tag: rows blocked in a section's lists, beside an article id, beside any
            article with a (case-folded) tag.
        guardrails: case-folded tag -> the tags never shown beside it (both directions).
        row_guards: row -> its case-folded tags that a guardrail names.
        tag_rows: guardrail tag -> the rows carrying it.
        multiply / add: (N,) boosts and buries without an age range; ``boost_owner``: (N,) index into
            ``boost_rules`` ((label, rule id)) of the first such rule acting on a row, -1 for none.
        aged: boosts and buries with an age range.
        pins: (list, "beside" | "story" | "section" | "", key) -> pins, by position.
    """

    blocked: np.ndarray
    not_before: np.ndarray
    in_section: Mapping[str, np.ndarray]
    beside: Mapping[str, np.ndarray]
    beside_tag: Mapping[str, np.ndarray]
    guardrails: Mapping[str, frozenset[str]]
    row_guards: Mapping[int, frozenset[str]]
    tag_rows: Mapping[str, np.ndarray]
    multiply: np.ndarray
    add: np.ndarray
    boost_owner: np.ndarray
    boost_rules: tuple[tuple[str, str], ...]
    aged: tuple[AgedBoost, ...]
    pins: Mapping[tuple[str, str, str], tuple[Pin, ...]]
    valid_from: float
    valid_until: float
    key: object

    @classmethod
    def compile(cls, rules: RuleSet, listed: ListedArticles, now_hours: float,
                folded_tags: Callable[[], list[frozenset[str]]] | None = None) -> Editorial:
        """The rules acting at ``now_hours`` over ``listed`` (``folded_tags``: each row's case-folded tags, read
        only when a guardrail or a tag boost needs them)."""
        n = len(listed)
        row_of = {str(a): i for i, a in enumerate(listed.build.ids)}
        row_of.update({a: listed.n_build + r for a, r in listed.live_row_of.items()})
        take = listed.take
        every = np.arange(n)
        sections, authors = take("sections", every), take("authors", every)
        active = rules.active(now_hours)
        needs_tags = any(r.kind == "guardrail" or r.kind in ("boost", "bury") and "tag" in r.target for r in active)
        tags = (folded_tags or (lambda: folded(listed)))() if needs_tags else []
        story_ids = take("story_ids", every)
        with np.errstate(invalid="ignore"):
            not_before = np.fmax(take("published_hours", every), take("embargo_hours", every))
        blocked = np.zeros(n, dtype=bool)
        scoped: dict[str, dict[str, list[int]]] = {"section": {}, "beside": {}, "beside_tag": {}}
        guardrails: dict[str, set[str]] = {}
        pins: dict[tuple[str, str, str], list[Pin]] = {}
        for rule in active:
            target = rule.target
            row = row_of.get(str(target.get("article_id", "")))
            if rule.kind == "block" and row is not None:
                scope = next((k for k in ("section", "beside", "beside_tag") if k in target), None)
                if scope is None:
                    blocked[row] = True
                else:
                    key = target[scope].casefold() if scope == "beside_tag" else target[scope]
                    scoped[scope].setdefault(key, []).append(row)
            elif rule.kind == "embargo" and row is not None:
                not_before[row] = np.fmax(not_before[row], float(epoch_hours(_parse(target["until"]))))
            elif rule.kind == "guardrail":
                a, b = target["tag"].casefold(), target["never_beside_tag"].casefold()
                guardrails.setdefault(a, set()).add(b)
                guardrails.setdefault(b, set()).add(a)
            elif rule.kind == "pin" and row is not None:
                scope = next((k for k in ("beside", "story", "section") if k in target), "")
                key = str(target.get(scope, ""))
                if scope == "story":
                    story_row = row_of.get(key)
                    if story_row is None:
                        continue
                    key = str(story_ids[story_row])
                pins.setdefault((target["list"], scope, key), []).append(
                    Pin(row, int(target["position"]), rule.label, rule.id))
        multiply, add, boost_owner, boost_rules, aged = _boosts(active, {"section": sections, "byline": authors},
                                                                tags, n)
        row_guards, tag_rows = _guarded_rows(tags, guardrails)
        valid_from, valid_until = rules.validity(now_hours)
        return cls(blocked=blocked, not_before=not_before, in_section=_arrays(scoped["section"]),
                   beside=_arrays(scoped["beside"]), beside_tag=_arrays(scoped["beside_tag"]),
                   guardrails={t: frozenset(v) for t, v in guardrails.items()},
                   row_guards=row_guards, tag_rows=_arrays(tag_rows), multiply=multiply, add=add,
                   boost_owner=boost_owner, boost_rules=boost_rules, aged=aged,
                   pins={k: tuple(sorted(v, key=lambda p: p.position)) for k, v in pins.items()},
                   valid_from=valid_from, valid_until=valid_until, key=(listed.seq, rules.seq))

    def holds(self, listed: ListedArticles, rules: RuleSet, now_hours: float) -> bool:
        """Whether this compilation is the one for ``listed`` and ``rules`` at ``now_hours``."""
        return self.key == (listed.seq, rules.seq) and self.valid_from <= now_hours < self.valid_until

    def for_list(self, kind: str, now_hours: float, anchor_row: int | None = None, anchor_id: str | None = None,
                 anchor_section: str | None = None, anchor_story: str | None = None,
                 anchor_tags: Sequence[str] = (), section: str | None = None) -> ListRules:
        """The rules of one list.

        Args:
            kind: "related", "more_like_this" or "popular".
            now_hours: the list's "now" (embargoes, age ranges).
            anchor_row / anchor_id / anchor_section / anchor_story / anchor_tags: the article the list is beside
                (None for free text and plain popular lists).
            section: the section the list is filtered to, if any.
        """
        excluded = [_NO_ROWS]
        for name in {anchor_section, section} - {None}:
            excluded.append(self.in_section.get(str(name), _NO_ROWS))
        if anchor_id is not None:
            excluded.append(self.beside.get(anchor_id, _NO_ROWS))
        folded = {str(t).casefold() for t in anchor_tags}
        for tag in folded:
            excluded.append(self.beside_tag.get(tag, _NO_ROWS))
        forbidden = set().union(*(self.guardrails.get(t, frozenset()) for t in folded))
        for tag in forbidden:
            excluded.append(self.tag_rows.get(tag, _NO_ROWS))
        pins: list[Pin] = []
        if kind == "popular":
            pins += self.pins.get((kind, "section", section), ()) if section is not None else ()
            pins += self.pins.get((kind, "", ""), ())
        else:
            pins += self.pins.get((kind, "beside", anchor_id or ""), ()) if anchor_id is not None else ()
            pins += self.pins.get((kind, "story", anchor_story), ()) if anchor_story is not None else ()
        # Usually nothing is excluded: skip the concatenation and sort of empty arrays.
        rows = [e for e in excluded if len(e)]
        return ListRules(self, now_hours, np.unique(np.concatenate(rows)) if rows else _NO_ROWS, anchor_row,
                         tuple(sorted(pins, key=lambda p: p.position)))


def _boosts(active: Sequence[Rule], columns: Mapping[str, np.ndarray], tags: list[frozenset[str]], n: int,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[tuple[str, str], ...], tuple[AgedBoost, ...]]:
    """The boosts and buries among ``active``: (N,) multiply and add of those without an age range, the index into
    the (label, rule id) list of the first such rule acting on each row (-1: none), and the aged ones. Each
    (criterion, value) is matched against the rows once, and rules with the same criteria act together (their
    effects multiply and add up in any order)."""
    matches: dict[tuple[str, str], np.ndarray] = {}

    def rows_matching(criteria: tuple[tuple[str, str], ...]) -> np.ndarray:
        match = np.ones(n, dtype=bool)
        for key in criteria:
            if key not in matches:
                criterion, value = key
                matches[key] = (np.fromiter((value in row_tags for row_tags in tags), dtype=bool, count=n)
                                if criterion == "tag" else columns[criterion] == value)
            match &= matches[key]
        return match

    grouped: dict[tuple[tuple[str, str], ...], list] = {}
    aged: list[AgedBoost] = []
    for rule in active:
        if rule.kind not in ("boost", "bury"):
            continue
        target = rule.target
        criteria = tuple((c, str(target[c]).casefold() if c == "tag" else str(target[c]))
                         for c in ("section", "byline", "tag") if c in target)
        effect = float(target.get("multiply", 1.0)), float(target.get("add", 0.0))
        label = rule.label if rule.kind == "boost" else ""
        if "min_age_hours" in target or "max_age_hours" in target:
            aged.append(AgedBoost(np.flatnonzero(rows_matching(criteria)), float(target.get("min_age_hours", -np.inf)),
                                  float(target.get("max_age_hours", np.inf)), *effect, label, rule.id))
            continue
        group = grouped.setdefault(criteria, [1.0, 0.0, (label, rule.id)])  # the first rule names it
        group[0] *= effect[0]
        group[1] += effect[1]
    multiply, add = np.ones(n), np.zeros(n)
    boost_owner = np.full(n, -1, dtype=np.int32)
    boost_rules: list[tuple[str, str]] = []
    for criteria, (times, plus, first) in grouped.items():  # in the order of each group's first rule
        match = rows_matching(criteria)
        multiply[match] *= times
        add[match] += plus
        boost_owner[match & (boost_owner < 0)] = len(boost_rules)
        boost_rules.append(first)
    return multiply, add, boost_owner, tuple(boost_rules), tuple(aged)


def _guarded_rows(tags: list[frozenset[str]], guardrails: Mapping[str, set[str]],
                  ) -> tuple[dict[int, frozenset[str]], dict[str, list[int]]]:
    """Each row's case-folded tags that a guardrail names, and each such tag's rows."""
    row_guards = {r: frozenset(t & guardrails.keys()) for r, t in enumerate(tags) if t & guardrails.keys()}
    tag_rows: dict[str, list[int]] = {}
    for r, guarded in row_guards.items():
        for tag in guarded:
            tag_rows.setdefault(tag, []).append(r)
    return row_guards, tag_rows


def folded(listed: ListedArticles) -> list[frozenset[str]]:
    """Each listed row's tags, case-folded."""
    return [frozenset(str(t).casefold() for t in (row or ())) for row in listed.take("tags", np.arange(len(listed)))]


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _arrays(sets: Mapping[str, list[int]]) -> dict[str, np.ndarray]:
    return {k: np.unique(np.asarray(v, dtype=np.int64)) for k, v in sets.items()}


@dataclass(frozen=True)
class ListRules:
    """The rules of one list (``Editorial.for_list``).

    Attributes:
        editorial: the compiled rules.
        now_hours: the list's "now".
        excluded: sorted rows this list may not show (blocks in its section / beside its article / its tags, and
            guardrails against its article's tags).
        anchor_row: the article the list is beside (never excluded from its own timeline), if any.
        pins: the pins of this list, by position.
    """

    editorial: Editorial
    now_hours: float
    excluded: np.ndarray
    anchor_row: int | None
    pins: tuple[Pin, ...]

    def allowed(self, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` (global, valid) the rules let this list show."""
        rules = self.editorial
        keep = ~rules.blocked[rows]
        keep &= ~(rules.not_before[rows] > self.now_hours)  # NaN (no embargo) compares False, without a warning
        if len(self.excluded):
            keep &= ~np.isin(rows, self.excluded, assume_unique=False)
        return keep

    def adjusted(self, rows: np.ndarray, scores: np.ndarray, published_hours: np.ndarray) -> np.ndarray:
        """Scores after the boosts and buries (``score * multiply + add``)."""
        rules = self.editorial
        scores = scores * rules.multiply[rows] + rules.add[rows]
        for boost in rules.aged:
            age = self.now_hours - published_hours
            hit = np.isin(rows, boost.rows) & (age >= boost.min_age_hours) & (age <= boost.max_age_hours)
            scores = np.where(hit, scores * boost.multiply + boost.add, scores)
        return scores

    def boost_of(self, row: int, published_hours: float) -> tuple[str, str] | None:
        """(public label, rule id) of a boost or bury acting on ``row``, if any."""
        rules = self.editorial
        owner = int(rules.boost_owner[row])
        if owner >= 0:
            return rules.boost_rules[owner]
        age = self.now_hours - published_hours
        for boost in rules.aged:
            at = int(np.searchsorted(boost.rows, row))
            if boost.min_age_hours <= age <= boost.max_age_hours and at < len(boost.rows) and boost.rows[at] == row:
                return boost.label, boost.rule_id
        return None

    def guards(self, row: int) -> frozenset[str]:
        """The guardrail tags ``row`` carries."""
        return self.editorial.row_guards.get(row, frozenset())

    def forbids(self, row: int, forbidden: set[str]) -> bool:
        """Whether ``row`` carries a tag a list's earlier entries forbid."""
        return bool(forbidden) and bool(self.guards(row) & forbidden)

    def forbidden_by(self, row: int) -> set[str]:
        """The tags ``row``'s presence in a list forbids."""
        return set().union(*(self.editorial.guardrails.get(t, frozenset()) for t in self.guards(row)))
