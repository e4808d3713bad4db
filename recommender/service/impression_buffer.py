"""Experiment impressions counted in the worker and written in batches, off the request path.

A list served inside an experiment only adds 1 to its count keys' tally here (``impression_batch.Batch``); the
service's background loop writes what is pending every ``experiment_flush_seconds`` in one transaction (SQLite)
or one pipelined round trip (Redis). So the counter store sees a worker's impressions at most one flush interval
late, and a report or a guardrail check first writes this worker's own pending impressions. A click needs none of
them: its impression id says what the list showed (``experiments.impression_token``), so it is credited at once,
by any worker or replica.

A failed flush keeps its counts pending (logged by the background loop) and retries with the next one. Pending
counts take memory per distinct tuple of count keys (arm, widget, hour, list length), not per impression, so a
counter store that stays down costs a worker no more than a few kilobytes an hour. A worker stopped cleanly
flushes on close; one killed loses at most one interval of impression counts (never a click: clicks are written
before the click route answers).
"""

from __future__ import annotations

import logging
import threading

from ..experiments.impression_token import ShownList
from .experiment_counts import ExperimentCounts
from .impression_batch import Batch, CountKeys

log = logging.getLogger("recommender.service")


class BufferedCounts:
    """An ``ExperimentCounts`` whose impressions are written in batches.

    Args:
        store: where the counts live.
    """

    def __init__(self, store: ExperimentCounts) -> None:
        self.store = store
        self._pending = Batch()
        self._lock = threading.Lock()  # guards _pending
        self._flushing = threading.Lock()  # one flush at a time

    def served(self, keys: CountKeys, n: int = 1) -> None:
        """Count ``n`` impressions for the next flush."""
        with self._lock:
            self._pending.add(keys, n)

    def write(self, batch: Batch) -> None:
        """Keep a batch of impressions for the next flush."""
        with self._lock:
            self._pending.extend(batch)

    @property
    def pending(self) -> int:
        """Impressions not written yet."""
        return len(self._pending)

    def flush(self) -> int:
        """Write every pending impression; the number written. On failure they stay pending and it raises."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, Batch()
            if not batch:
                return 0
            try:
                self.store.write(batch)
            except BaseException:
                with self._lock:
                    batch.extend(self._pending)
                    self._pending = batch
                raise
            return len(batch)

    def clicked(self, shown: ShownList, position: int) -> bool:
        """Credit a click (straight to the store: it depends on no pending impression)."""
        return self.store.clicked(shown, position)

    def fields(self, experiment: str) -> dict[str, int]:
        """Every count field of an experiment, this worker's pending impressions written first."""
        self.flush()
        return self.store.fields(experiment)

    def close(self) -> None:
        """Write what is pending (logged when it cannot be) and release the store."""
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - closing must release the store; the loss is logged
            log.exception("experiment counts: %d impressions not written at shutdown", self.pending)
        self.store.close()
