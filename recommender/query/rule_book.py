"""A recommender's editorial rules: where they come from (a ``RuleSet`` or the service's rule store), compiled into
``Editorial`` lookups once per rule change, row change or rule start / expiry, and narrowed to each list."""

from __future__ import annotations

import threading

from .editorial import Editorial, ListRules
from .rules import RuleSet, RuleSource
from .table import Anchor, ArticleTable, ListedArticles

NO_RULES = RuleSet()


class RuleBook:
    """A recommender's rules: where they come from, compiled once per rule change, row change or rule start /
    expiry, and narrowed to each list.

    Args:
        source: a ``RuleSet`` or the service's rule store (None: no rules; embargoes still hold).
        build: the build's table (its rows' case-folded tags are computed once, when a rule first needs them).
    """

    def __init__(self, source: RuleSource | None, build: ArticleTable) -> None:
        self.source = source
        self._build = build
        self._compiled: Editorial | None = None
        self._build_tags: list[frozenset[str]] | None = None
        self._compiling = threading.Lock()  # concurrent requests wait for one compilation instead of each running it

    @property
    def ruleset(self) -> RuleSet:
        """The rules as last read."""
        return self.source.ruleset if self.source is not None else NO_RULES

    def use(self, source: RuleSource | None) -> None:
        """Obey these rules from now on."""
        self.source, self._compiled = source, None

    def compiled(self, listed: ListedArticles, now_hours: float) -> Editorial:
        """The rules acting at ``now_hours`` over ``listed``."""
        rules, cached = self.ruleset, self._compiled
        if cached is not None and cached.holds(listed, rules, now_hours):
            return cached
        with self._compiling:
            cached = self._compiled
            if cached is not None and cached.holds(listed, rules, now_hours):
                return cached  # another thread compiled it while this one waited
            compiled = Editorial.compile(rules, listed, now_hours, lambda: self._folded_tags(listed))
            self._compiled = compiled
            return compiled

    def ready(self, listed: ListedArticles, now_hours: float) -> bool:
        """Whether the rules as last read are compiled for ``listed`` at ``now_hours`` (a list would not wait)."""
        cached = self._compiled
        return cached is not None and cached.holds(listed, self.ruleset, now_hours)

    def for_list(self, kind: str, listed: ListedArticles, now_hours: float, anchor: Anchor | None,
                 section: str | None) -> ListRules:
        """The rules of one list beside ``anchor`` (None: free text, plain popular)."""
        compiled = self.compiled(listed, now_hours)
        if anchor is None:
            return compiled.for_list(kind, now_hours, section=section)
        table, local = listed.source(anchor.row)
        return compiled.for_list(kind, now_hours, anchor.row, str(table.ids[local]), anchor.section, anchor.story,
                                 anchor.tags, section)

    def _folded_tags(self, listed: ListedArticles) -> list[frozenset[str]]:
        if self._build_tags is None:
            self._build_tags = [frozenset(str(t).casefold() for t in (row or ())) for row in self._build.tags]
        return self._build_tags + [frozenset(str(t).casefold() for t in (row or ())) for row in listed.live.tags]
