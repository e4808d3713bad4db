"""Experiment impressions as served, and batches of them prepared for the counter store (``experiment_counts``).

Each impression is prepared when it is served: its count keys (cached, shared between impressions alike) counted
once per batch, its record serialised. So writing a batch is one statement per table (its rows passed as one JSON
parameter: ``sqlitedb.json_rows``) or one pipelined round trip, with no Python work per impression; with that work
in the background flush, the flush held the GIL long enough to put the event loop's p99 at 10-13 ms, against 5 ms
without flushes (2026-12-01 22:20 UTC, ``service_load.py --experiment ab``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import itemgetter
from typing import NamedTuple, Sequence

import orjson


@dataclass(frozen=True)
class Impression:
    """One list served inside an experiment.

    Attributes:
        id: the opaque impression id the widget sends back with a click.
        experiment / kind / widget: which experiment, "ab" or "interleave", which widget.
        arm: the A/B arm served ("*" for an interleaved list).
        items: the article ids served, in order.
        arms: per position, the arm that showed it (A/B: one arm throughout; interleaving: the team's arm).
        hour: hours since the epoch when it was served (the counts' time bucket).
        team_arms: interleaving: the arms of teams "a" and "b" (the experiment's first and second arm).
    """

    id: str
    experiment: str
    kind: str
    widget: str
    arm: str
    items: tuple[str, ...]
    arms: tuple[str, ...]
    hour: int
    team_arms: tuple[str, ...] = ()


CountKey = tuple[str, str]  # (experiment, count field)
Record = tuple[str, float, str, tuple[CountKey, ...]]  # id, served at (epoch s), the stored JSON, its count keys
_STORED = itemgetter(0, 1, 2)


def count_keys(impression: Impression) -> tuple[CountKey, ...]:
    """One count key per increment of serving ``impression`` (``imp|ARM|WIDGET|HOUR`` once, ``pimp|ARM|POS`` per
    position), shared between impressions alike (an A/B arm's lists of one length in one hour: one tuple)."""
    return _count_keys(impression.experiment, impression.arm, impression.widget, impression.hour, impression.arms)


@lru_cache(maxsize=16_384)
def _count_keys(experiment: str, arm: str, widget: str, hour: int, arms: tuple[str, ...]) -> tuple[CountKey, ...]:
    return ((experiment, f"imp|{arm}|{widget}|{hour}"),
            *((experiment, f"pimp|{shown}|{position}") for position, shown in enumerate(arms)))


_ID_FIELD = '{"id":"'


class Prepared(NamedTuple):
    """What every impression of one list, widget and hour shares: its count keys and its record's JSON after the
    id. Made once (``of``) and reused, an impression of a hot list costs a new id and a string join. A tuple of
    strings, so the garbage collector stops tracking it.

    Attributes:
        keys: the count keys (``count_keys``).
        rest: the record as stored, after ``{"id":"<id>"``.
    """

    keys: tuple[CountKey, ...]
    rest: str

    @staticmethod
    def of(impression: Impression) -> Prepared:
        """The shared part of ``impression``'s record (its id is left out)."""
        stored = orjson.dumps(replace(impression, id="")).decode()
        return Prepared(count_keys(impression), stored[len(_ID_FIELD) + 1:])

    def record(self, impression_id: str, at: float) -> Record:
        """The record of one impression of it: ``impression_id`` (the service's ids need no JSON escaping:
        ``interleaving.new_impression_id``), served at ``at``."""
        return impression_id, at, f'{_ID_FIELD}{impression_id}"{self.rest}', self.keys


@dataclass
class Batch:
    """Impressions prepared for one write: how many impressions share each tuple of count keys (so serving one is
    one dictionary increment), and their records as stored, oldest first."""

    served: dict[tuple[CountKey, ...], int] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def add(self, impressions: Sequence[Impression], at: float) -> None:
        """Prepare impressions served at ``at``."""
        served = self.served
        for impression in impressions:
            keys = count_keys(impression)
            served[keys] = served.get(keys, 0) + 1
            self.records.append((impression.id, at, orjson.dumps(impression).decode(), keys))

    def add_prepared(self, impression_id: str, prepared: Prepared, at: float) -> None:
        """Add one impression of a prepared list, served at ``at``."""
        self.served[prepared.keys] = self.served.get(prepared.keys, 0) + 1
        self.records.append(prepared.record(impression_id, at))

    def extend(self, newer: Batch) -> None:
        """Append a newer batch."""
        for keys, n in newer.served.items():
            self.served[keys] = self.served.get(keys, 0) + n
        self.records.extend(newer.records)

    def drop_oldest(self, n: int) -> None:
        """Give up the ``n`` oldest impressions, their counts with them."""
        for record in self.records[:n]:
            self.served[record[3]] -= 1
        del self.records[:n]

    def changes(self) -> dict[CountKey, int]:
        """The count increments, by (experiment, field)."""
        changes: dict[CountKey, int] = {}
        for keys, n in self.served.items():
            for key in keys:
                changes[key] = changes.get(key, 0) + n
        return changes

    def rows(self) -> tuple[list[tuple[str, str, int]], map]:
        """(experiment, field, increment) for each count, and (id, at, json) for each record."""
        return [(e, f, n) for (e, f), n in self.changes().items() if n], map(_STORED, self.records)

    @staticmethod
    def of(impressions: Sequence[Impression]) -> Batch:
        """A batch of impressions served now."""
        batch = Batch()
        batch.add(impressions, time.time())
        return batch
