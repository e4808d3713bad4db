"""What a build or rebuild did: the diff against ``current``, per-stage seconds, gate verdicts; one line or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .gates import GateResult


@dataclass(frozen=True)
class CatalogueDiff:
    """The new catalogue against the current build, by article id and sha256 of the embedded text."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0

    @classmethod
    def compare(cls, ids: np.ndarray, keys: list[str], current: dict[str, str] | None) -> CatalogueDiff:
        """Counts for articles ``ids`` with text hashes ``keys`` against ``current`` (id -> text hash)."""
        if current is None:
            return cls(new=len(ids))
        new = changed = unchanged = 0
        for article_id, key in zip(ids, keys):
            old = current.get(article_id)
            if old is None:
                new += 1
            elif old == key:
                unchanged += 1
            else:
                changed += 1
        deleted = len(set(current) - set(ids))
        return cls(new=new, changed=changed, unchanged=unchanged, deleted=deleted)

    def to_dict(self) -> dict[str, int]:
        """JSON-ready."""
        return {"new": self.new, "changed": self.changed, "unchanged": self.unchanged, "deleted": self.deleted}


@dataclass
class BuildReport:
    """What a build did: counts, per-stage seconds, gate verdicts and where it landed.

    ``embedded`` texts went through the model now; ``reused`` vectors came from the current build and
    ``cached`` ones from the embedding cache.
    """

    build_id: str
    path: Path | None
    articles: int
    rejected: int
    embedded: int
    cached: int
    seconds: dict[str, float] = field(default_factory=dict)
    catalogue_summary: str = ""
    rejects_path: Path | None = None
    views: int = 0
    views_rejected: int = 0
    reused: int = 0
    diff: CatalogueDiff = field(default_factory=CatalogueDiff)
    gates: list[GateResult] = field(default_factory=list)
    published: bool = False
    previous: str | None = None
    executor: str = "local"
    stale_cleaned: int = 0
    lock_takeover: dict[str, Any] | None = None
    reuse_refused: list[str] = field(default_factory=list)
    vectors_repaired: int = 0

    @property
    def total_seconds(self) -> float:
        """Wall time of all stages."""
        return sum(self.seconds.values())

    @property
    def failed_gates(self) -> list[GateResult]:
        """Gates that did not pass."""
        return [g for g in self.gates if not g.passed]

    def summary(self) -> str:
        """The final one-line summary."""
        rate = self.embedded / self.seconds["embed"] if self.seconds.get("embed") and self.embedded else 0.0
        stages = ", ".join(f"{name} {s:.1f}s" for name, s in self.seconds.items())
        d = self.diff
        outcome = ("published" if self.published else
                   "NOT published (gate failed)" if self.failed_gates else "not published (dry run)")
        gates = f"; gates {len(self.gates) - len(self.failed_gates)}/{len(self.gates)} passed" if self.gates else ""
        return (f"{outcome} {self.build_id}: {self.articles} articles ({d.new} new, {d.changed} changed, "
                f"{d.unchanged} unchanged, {d.deleted} deleted, {self.rejected} rejected); {self.embedded} embedded "
                f"({rate:.0f}/s, {self.executor}), {self.reused} reused, {self.cached} from cache, {self.views} view "
                f"rows{gates}; {self.total_seconds:.1f}s ({stages})"
                + (f"; NOT reused from current: {'; '.join(self.reuse_refused)}" if self.reuse_refused else "")
                + (f"; {self.vectors_repaired} damaged cached/reused vectors embedded again"
                   if self.vectors_repaired else ""))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the final structured log line)."""
        return {"event": "rebuild", "build_id": self.build_id, "path": str(self.path) if self.path else None,
                "published": self.published,
                "previous": self.previous, "articles": self.articles, "rejected": self.rejected, **self.diff.to_dict(),
                "embedded": self.embedded, "reused": self.reused, "cached": self.cached, "executor": self.executor,
                "views": self.views, "views_rejected": self.views_rejected, "stale_cleaned": self.stale_cleaned,
                "lock_takeover": self.lock_takeover, "gates": [g.to_dict() for g in self.gates],
                "reuse_refused": self.reuse_refused, "vectors_repaired": self.vectors_repaired,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "rejects_path": str(self.rejects_path) if self.rejects_path else None}

