"""The live layer between rebuilds: the durable stores of upserted articles and takedowns that every worker of
every replica reads, as the overlay the recommender ranks with."""

from __future__ import annotations

from .delta import DeltaStore

__all__ = ["DeltaStore"]
