"""The one ranking core: candidates -> filters -> blend -> copy collapse -> optional MMR -> explained results.

Every list of the product goes through ``rank``: related (from the build's related table or a search), more like
this, the live articles beside them, and the lists the CLI, the evaluation and the service return. Candidate
sources only decide which rows are considered and with what relatedness (``Candidates``); how they become a list
is decided here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from ..config import RankingConfig
from .editorial import ListRules, Pin
from .explain import explain
from .filters import Filters, candidate_mask
from .popularity import Popularity
from .results import Recommendation
from .table import Anchor, ListedArticles


def blend(relatedness: np.ndarray, trending: np.ndarray, freshness: np.ndarray, same_story: np.ndarray,
          config: RankingConfig) -> np.ndarray:
    """A result's score: ``weight_relatedness * relatedness + weight_trending * trending + weight_freshness *
    freshness + weight_same_story * same_story``."""
    return (config.weight_relatedness * relatedness + config.weight_trending * trending
            + config.weight_freshness * freshness + config.weight_same_story * same_story)


@dataclass(frozen=True)
class Candidates:
    """The rows a list may be made of, before filters, with what ranking needs about each.

    Attributes:
        rows: (c,) int64 listed rows, unique and ascending.
        relatedness: (c,) float64 relatedness to the anchor (or to the query vector).
        groups: copy group of each row (Python ints: the walk reads them one by one).
        same_story: (c,) float64, 1.0 where the row is in the first anchor's story.
        anchor_copy: whether each row is a copy of an anchor (never listed beside it).
    """

    rows: np.ndarray
    relatedness: np.ndarray
    groups: tuple[int, ...]
    same_story: np.ndarray
    anchor_copy: tuple[bool, ...]

    @classmethod
    def of(cls, listed: ListedArticles, rows: np.ndarray, relatedness: np.ndarray,
           anchors: Sequence[Anchor]) -> Candidates:
        """Candidates from (row, relatedness) pairs in any order (-1 rows dropped; a repeated row keeps its first
        relatedness)."""
        rows = np.asarray(rows, dtype=np.int64)
        relatedness = np.asarray(relatedness, dtype=np.float64)
        valid = rows >= 0
        rows, first = np.unique(rows[valid], return_index=True)
        relatedness = relatedness[valid][first]
        groups = listed.take("copy_groups", rows)
        story = anchors[0].story if anchors else None
        same_story = ((listed.take("story_ids", rows) == story).astype(np.float64) if story is not None
                      else np.zeros(len(rows)))
        if len(anchors) == 1:  # a related list (most lists): one comparison, not a set test
            anchor_copy = groups == anchors[0].group
        else:
            anchor_copy = np.isin(groups, np.fromiter((a.group for a in anchors), dtype=np.int64,
                                                      count=len(anchors)))
        return cls(rows, relatedness, tuple(groups.tolist()), same_story, tuple(anchor_copy.tolist()))

    @classmethod
    def none(cls) -> Candidates:
        """No candidates (e.g. the live articles of a build without any)."""
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0), (), np.zeros(0), ())

    def __len__(self) -> int:
        return len(self.rows)

    def extended(self, other: Candidates) -> Candidates:
        """These candidates followed by ``other``'s, whose rows all come after these (live rows after build rows)."""
        if not len(other):
            return self
        return Candidates(np.concatenate([self.rows, other.rows]),
                          np.concatenate([self.relatedness, other.relatedness]), self.groups + other.groups,
                          np.concatenate([self.same_story, other.same_story]), self.anchor_copy + other.anchor_copy)


Fields = tuple[str, str, str, str, str | None]  # id, title, section, url, ISO publication time
Facts = tuple[str | None, float, tuple[str, ...]]  # story id, publication hours since the epoch, tags


class RowFields:
    """Per-row strings of results (``Fields``) and what explaining a result reads (``Facts``), cached for build
    rows: a list reads each ~5 times per request and numpy scalar conversions cost ~10x a dict read."""

    def __init__(self) -> None:
        self._build: dict[int, tuple[Fields, Facts]] = {}

    def row(self, listed: ListedArticles, row: int) -> tuple[Fields, Facts]:
        """Both of a listed row."""
        entry = self._build.get(row) if row < listed.n_build else None
        if entry is None:
            table, local = listed.source(row)
            entry = ((str(table.ids[local]), str(table.titles[local]), str(table.sections[local]),
                      str(table.urls[local]), table.published_iso(local)),
                     (table.story(local), float(table.published_hours[local]), table.row_tags(local)))
            if row < listed.n_build:
                self._build[row] = entry
        return entry

    def get(self, listed: ListedArticles, row: int) -> Fields:
        """(id, title, section, url, published_at) of a listed row."""
        return self.row(listed, row)[0]


def eligible_pins(listed: ListedArticles, rules: ListRules, k: int, filters: Filters, now_hours: float,
                  anchor_group: int | None, languages: frozenset[str] = frozenset()) -> list[Pin]:
    """The pins of a list that may be shown, by position: listed, allowed by the other rules and the list's
    filters, within ``k``, not a copy of the anchor or of an earlier pin, not kept from an earlier pin by a
    guardrail (the first position wins)."""
    out: list[Pin] = []
    groups: set[int] = set() if anchor_group is None else {anchor_group}
    forbidden: set[str] = set()
    for pin in rules.pins:
        row = np.array([pin.row])
        if pin.position > k or not candidate_mask(listed, row, filters, now_hours, languages)[0] \
                or not rules.allowed(row)[0]:
            continue
        group = int(listed.take("copy_groups", row)[0])
        if group in groups or rules.forbids(pin.row, forbidden):
            continue
        groups.add(group)
        forbidden |= rules.forbidden_by(pin.row)
        out.append(pin)
    return out


def pinned_result(result: Recommendation, pin: Pin) -> Recommendation:
    """A result as its pin shows it: the rule's public label, and the rule named in the reasons."""
    return replace(result, label=pin.label, source="pinned",
                   reasons=(f"chosen by the editors (rule {pin.rule_id}, position {pin.position})", *result.reasons))


def rank(listed: ListedArticles, candidates: Candidates, k: int, config: RankingConfig, filters: Filters,
         popularity: Popularity, anchor: Anchor | None, fields: RowFields,
         languages: frozenset[str] = frozenset(), rules: ListRules | None = None, floor: float | None = None,
         query: np.ndarray | None = None) -> list[Recommendation]:
    """Turn candidates into at most ``k`` explained recommendations (fewer when the candidates run out).

    Args:
        listed: the row space (build + live rows, what is hidden).
        candidates: the rows considered and their relatedness.
        k: list length.
        config: blend weights and MMR.
        filters: exclusions, section, age, language.
        popularity: trending and freshness of every listed row.
        anchor: the article the list is for (its story labels results "same story" / "background"); None for a
            list without one (free text).
        fields: the per-row string cache.
        languages: the languages present in ``listed`` (skips a language mask that would keep every row).
        rules: the editorial rules of this list (blocks, embargoes, guardrails, boosts, pins).
        floor: candidates less related than this are not listed (pins are the editors' choice: exempt).
        query: the list's query vector (the relatedness of a pinned article that is not a candidate).

    Returns:
        Recommendations, best first, never two copies of one piece, never a copy of an anchor, never two
        articles a guardrail keeps apart; pins at their positions.
    """
    keep = candidate_mask(listed, candidates.rows, filters, popularity.now_hours, languages)
    if rules is not None:
        keep &= rules.allowed(candidates.rows)
    if floor is not None:
        keep &= candidates.relatedness >= floor
    index = np.flatnonzero(keep)
    kept = candidates.rows[index]
    scores = blend(candidates.relatedness[index], popularity.trending[kept], popularity.freshness[kept],
                   candidates.same_story[index], config)
    if rules is not None:
        scores = rules.adjusted(kept, scores, listed.take("published_hours", kept))
    order = index[np.argsort(-scores, kind="stable")].tolist()
    score_of = dict(zip(index.tolist(), scores.tolist()))
    pins = (eligible_pins(listed, rules, k, filters, popularity.now_hours, anchor.group if anchor else None)
            if rules is not None and rules.pins else [])
    chosen, collapsed = _walk(order, candidates, k - len(pins), config, score_of, listed, rules,
                              {int(listed.take("copy_groups", np.array([p.row]))[0]) for p in pins},
                              set().union(*(rules.forbidden_by(p.row) for p in pins)) if rules else set())
    results = []
    for i in chosen:
        row = int(candidates.rows[i])
        results.append(_result(listed, row, float(candidates.relatedness[i]), score_of[i],
                               float(candidates.same_story[i]), popularity, anchor, fields, rules,
                               tuple(fields.get(listed, int(candidates.rows[d]))[0] for d in collapsed[i])
                               if i in collapsed else ()))
    if pins:
        _insert_pins(results, pins, listed, candidates, config, popularity, anchor, fields, query)
    return results[:k]


def _insert_pins(results: list[Recommendation], pins: Sequence[Pin], listed: ListedArticles,
                 candidates: Candidates, config: RankingConfig, popularity: Popularity, anchor: Anchor | None,
                 fields: RowFields, query: np.ndarray | None) -> None:
    """Put each pinned article at its position in ``results``, scored as the list would score it (its
    relatedness to the list's query when it is not a candidate)."""
    position = {int(r): i for i, r in enumerate(candidates.rows.tolist())}
    story = anchor.story if anchor else None
    for pin in pins:
        at = position.get(pin.row)
        vector = listed.take("vectors", np.array([pin.row]))[0]
        reference = query if query is not None else (anchor.vector if anchor is not None else None)
        relatedness = (float(candidates.relatedness[at]) if at is not None else
                       float(vector @ reference) if reference is not None and len(reference) else 0.0)
        same = float(story is not None and listed.take("story_ids", np.array([pin.row]))[0] == story)
        score = float(blend(np.array([relatedness]), popularity.trending[[pin.row]],
                            popularity.freshness[[pin.row]], np.array([same]), config)[0])
        pinned = _result(listed, pin.row, relatedness, score, same, popularity, anchor, fields, None, ())
        results.insert(min(pin.position - 1, len(results)), pinned_result(pinned, pin))


def _result(listed: ListedArticles, row: int, relatedness: float, score: float, same_story: float,
            popularity: Popularity, anchor: Anchor | None, fields: RowFields, rules: ListRules | None,
            duplicates: tuple[str, ...]) -> Recommendation:
    """One explained result (a boost or bury that moved it named in its reasons and label)."""
    trend, fresh = float(popularity.trending[row]), float(popularity.freshness[row])
    (article_id, title, section, url, published), (story, published_hours, tags) = fields.row(listed, row)
    relation, reasons, shared = explain(relatedness, trend, fresh, story, published_hours, anchor, tags)
    label = ""
    boost = rules.boost_of(row, published_hours) if rules is not None else None
    if boost is not None:
        label = boost[0]
        reasons = (*reasons, f"{'promoted' if label else 'demoted'} by the editors (rule {boost[1]})")
    return Recommendation(
        article_id=article_id, title=title, score=score, relatedness=relatedness, trending=trend, freshness=fresh,
        section=section, url=url, published_at=published, duplicates=duplicates, reasons=reasons, story_id=story,
        relation=relation, shared_tags=shared, same_story=same_story, label=label)


def _walk(order: list[int], candidates: Candidates, k: int, config: RankingConfig, score_of: dict[int, float],
          listed: ListedArticles, rules: ListRules | None = None, taken_groups: set[int] | None = None,
          forbidden: set[str] | None = None) -> tuple[list[int], dict[int, list[int]]]:
    """Pick up to ``k`` candidates best first (by MMR when configured), skipping copies of an anchor and of
    ``taken_groups`` (pinned pieces) and rows a guardrail keeps from an earlier entry, and collapsing copies of a
    chosen entry into it; copies further down the list collapse too."""
    groups, anchor_copy = candidates.groups, candidates.anchor_copy
    taken, forbidden = taken_groups or set(), set(forbidden or ())
    chosen: list[int] = []
    collapsed: dict[int, list[int]] = {}
    shown: dict[int, int] = {}  # copy group -> the chosen candidate showing it
    guarded = rules is not None and bool(rules.editorial.guardrails)  # any guardrail rule at all
    mmr_lambda = config.mmr_lambda if config.mmr_lambda is not None and config.mmr_lambda < 1.0 else None
    vectors = listed.take("vectors", candidates.rows) if mmr_lambda is not None else None
    remaining = order
    position = 0
    while position < len(remaining) and len(chosen) < k:
        if mmr_lambda is not None and vectors is not None and chosen:
            rest = remaining[position:]
            redundancy = (vectors[rest] @ vectors[chosen].T).max(axis=1)
            relevance = np.fromiter((score_of[i] for i in rest), dtype=np.float64, count=len(rest))
            mmr = mmr_lambda * relevance - (1 - mmr_lambda) * redundancy
            pick = position + int(np.argmax(mmr))
            remaining = remaining[:position] + [remaining[pick]] + remaining[position:pick] + remaining[pick + 1:]
        i = remaining[position]
        position += 1
        if anchor_copy[i] or groups[i] in taken:
            continue
        holder = shown.get(groups[i])
        if holder is not None:
            collapsed.setdefault(holder, []).append(i)
            continue
        if rules is not None and forbidden and rules.forbids(int(candidates.rows[i]), forbidden):
            continue
        chosen.append(i)
        shown[groups[i]] = i
        if guarded and rules is not None:
            forbidden |= rules.forbidden_by(int(candidates.rows[i]))
    for i in remaining[position:]:
        holder = shown.get(groups[i])
        if holder is not None:
            collapsed.setdefault(holder, []).append(i)
    return chosen, collapsed
