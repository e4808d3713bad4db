"""The live state one service process ranks with: the delta's upserts and the takedowns, as one overlay, and the
editorial rules."""

from __future__ import annotations

from pathlib import Path

from ..query.overlay import Overlay
from ..query.rules import RuleSet
from .delta import DeltaStore
from .rules import RuleStore
from .takedowns import TakedownStore

DELTA_FILE = "live-delta.sqlite"
TAKEDOWNS_FILE = "takedowns.sqlite"
RULES_FILE = "rules.sqlite"


class LiveState:
    """An ``OverlaySource`` (the delta's live articles with the takedowns over them) and a ``RuleSource`` (the
    editorial rules).

    Takedowns that older versions wrote into the delta are moved to the takedown store on open (once).
    """

    def __init__(self, delta: DeltaStore, takedowns: TakedownStore, rules: RuleStore) -> None:
        self.delta = delta
        self.takedowns = takedowns
        self.rules = rules
        legacy = sorted(delta.legacy_deleted)
        for article_id in legacy:
            takedowns.take_down(article_id, "migration", "taken down before takedowns were kept apart from the "
                                "live delta")
        if legacy:
            delta.drop(legacy)
        self._overlay: Overlay | None = None

    @property
    def overlay(self) -> Overlay:
        """The latest snapshot: live articles, and every takedown (of build or live articles)."""
        base = self.delta.overlay
        seq = (base.seq, self.takedowns.token)
        if self._overlay is None or self._overlay.seq != seq:
            self._overlay = Overlay(base.live, self.takedowns.ids, base.live_row_of, seq)
        return self._overlay

    @property
    def ruleset(self) -> RuleSet:
        """The editorial rules as last synced."""
        return self.rules.ruleset

    def sync(self) -> bool:
        """Pick up changes other processes made; True when anything changed."""
        changed = self.delta.sync()
        changed = self.takedowns.sync() or changed
        return self.rules.sync() or changed

    def close(self) -> None:
        """Close the stores."""
        self.delta.close()
        self.takedowns.close()
        self.rules.close()


def open_live_state(root: Path, dims: int, takedowns: str | None = None, delta: str | Path | None = None,
                    rules: str | None = None) -> LiveState:
    """The live state of an indexes root: ``live-delta.sqlite``, ``takedowns.sqlite`` and ``rules.sqlite`` in it,
    or the takedowns / rules in the databases ``takedowns`` / ``rules`` name (``postgresql://`` URLs shared by
    replicas)."""
    return LiveState(DeltaStore(delta or root / DELTA_FILE, dims), TakedownStore(takedowns or root / TAKEDOWNS_FILE),
                     RuleStore(rules or root / RULES_FILE))
