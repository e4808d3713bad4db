"""Experiment impressions as counted: the count keys one list served adds to, and batches of such counts for the
counter store (``experiment_counts``).

An impression stores nothing of its own (its id carries what it showed: ``experiments.impression_token``), so
serving one adds 1 to the tally of its tuple of count keys (cached, shared by every impression of one arm, widget,
hour and list length) and writing a batch is one statement (its rows passed as one JSON parameter:
``sqlitedb.json_rows``) or one pipelined round trip, however many impressions it holds. A batch's size is bounded
by the distinct tuples, not by the impressions, so a worker whose counter store is down keeps counting in
bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

CountKey = tuple[str, str]  # (experiment, count field)
CountKeys = tuple[CountKey, ...]


@lru_cache(maxsize=16_384)
def count_keys(experiment: str, arm: str, widget: str, hour: int, arms: tuple[str, ...]) -> CountKeys:
    """One count key per increment of serving a list: ``imp|ARM|WIDGET|HOUR`` once (``arm``: the A/B arm, "*"
    for an interleaved list) and ``pimp|SHOWN|POS`` per position (``arms``: the arm that showed each position),
    the same tuple for every list alike."""
    return ((experiment, f"imp|{arm}|{widget}|{hour}"),
            *((experiment, f"pimp|{shown}|{position}") for position, shown in enumerate(arms)))


@dataclass
class Batch:
    """Impressions counted for one write: how many impressions share each tuple of count keys (serving one is one
    dictionary increment)."""

    served: dict[CountKeys, int] = field(default_factory=dict)
    impressions: int = 0

    def __len__(self) -> int:
        return self.impressions

    def add(self, keys: CountKeys, n: int = 1) -> None:
        """Count ``n`` impressions of lists with these count keys."""
        self.served[keys] = self.served.get(keys, 0) + n
        self.impressions += n

    def extend(self, other: Batch) -> None:
        """Add another batch's impressions."""
        for keys, n in other.served.items():
            self.served[keys] = self.served.get(keys, 0) + n
        self.impressions += other.impressions

    def changes(self) -> dict[CountKey, int]:
        """The count increments, by (experiment, field)."""
        changes: dict[CountKey, int] = {}
        for keys, n in self.served.items():
            for key in keys:
                changes[key] = changes.get(key, 0) + n
        return changes

    def rows(self) -> list[tuple[str, str, int]]:
        """(experiment, field, increment) for each count."""
        return [(e, f, n) for (e, f), n in self.changes().items() if n]
