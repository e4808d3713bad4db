"""The live layer between rebuilds: the durable stores of upserted articles and of takedowns that every worker of
every replica reads, as the overlay the recommender ranks with."""

from __future__ import annotations

from .delta import DeltaStore
from .state import LiveState, open_live_state
from .takedowns import TakedownStore

__all__ = ["DeltaStore", "LiveState", "TakedownStore", "open_live_state"]
