"""What lies over a build between rebuilds: live articles (upserts) and taken-down ids, as one snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol

from .table import ArticleTable


@dataclass(frozen=True)
class Overlay:
    """One immutable snapshot of the live layer.

    Attributes:
        live: articles upserted since the build (their copy groups and stories are assigned by the recommender,
            which knows the build; the values here are ignored).
        taken_down: ids never listed, whether the build or ``live`` holds them.
        live_row_of: article id -> row of ``live``.
        seq: changes whenever anything here changes (lists and popularity are cached per ``seq``).
    """

    live: ArticleTable
    taken_down: frozenset[str] = frozenset()
    live_row_of: Mapping[str, int] = field(default_factory=dict)
    seq: object = 0

    @classmethod
    def empty(cls, dims: int) -> Overlay:
        """Nothing over the build."""
        return cls(ArticleTable.empty(dims))


class OverlaySource(Protocol):
    """Where the live layer comes from (``live.LiveState`` in the service; none for a build on its own)."""

    @property
    def overlay(self) -> Overlay:
        """The latest snapshot."""
        ...
