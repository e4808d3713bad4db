"""Experiment impressions kept in the worker and written in batches, off the request path.

A list served inside an experiment only adds its impression here (its counts summed, its record serialised:
``impression_batch.Batch``); the service's background loop writes what
is pending every ``experiment_flush_seconds`` in one transaction (SQLite) or one pipelined round trip (Redis). So
the counter store sees a worker's impressions at most one flush interval late, and a click, a report or a
guardrail check first writes this worker's own pending impressions. A click that reaches another worker (or
replica) before the serving worker's flush finds its impression after one more interval: it is retried once then.

A failed flush keeps its impressions pending (logged) and retries with the next one; at most ``max_pending`` wait,
after which the oldest are given up, logged with their count, so a counter store that stays down cannot grow a
worker's memory without bound. A worker stopped cleanly flushes on close; one killed loses at most one interval.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Sequence

from .experiment_counts import Credit, ExperimentCounts
from .impression_batch import Batch, Impression, Prepared

log = logging.getLogger("recommender.service")


class BufferedCounts:
    """An ``ExperimentCounts`` whose impressions are written in batches.

    Args:
        store: where the counts live.
        flush_seconds: how often the service flushes (a click not found is retried once after this long).
        max_pending: impressions kept while the store cannot be written; the oldest beyond it are given up.
    """

    def __init__(self, store: ExperimentCounts, flush_seconds: float, max_pending: int = 100_000) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self.given_up = 0
        self._pending = Batch()
        self._lock = threading.Lock()  # guards _pending
        self._flushing = threading.Lock()  # one flush at a time, so impressions reach the store in order

    def served_many(self, impressions: Sequence[Impression]) -> None:
        """Keep impressions for the next flush."""
        at = time.time()
        with self._lock:
            self._pending.add(impressions, at)

    def served_prepared(self, impression_id: str, prepared: Prepared) -> None:
        """Keep one impression of a prepared list for the next flush."""
        at = time.time()
        with self._lock:
            self._pending.add_prepared(impression_id, prepared, at)

    def write(self, batch: Batch) -> None:
        """Keep a prepared batch for the next flush."""
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
                    excess = len(batch) - self.max_pending
                    if excess > 0:
                        batch.drop_oldest(excess)
                        self.given_up += excess
                        log.error("experiment counts: %d impressions given up (the counter store has not been "
                                  "writable for %d pending ones)", excess, self.max_pending)
                raise
            return len(batch)

    def clicked(self, impression_id: str, article_id: str) -> Credit:
        """Credit a click; an impression not in the store yet (another worker's, not flushed) is looked up again
        after one flush interval."""
        self.flush()
        credit = self.store.clicked(impression_id, article_id)
        if not credit.known:
            time.sleep(self.flush_seconds * 1.5)
            credit = self.store.clicked(impression_id, article_id)
        return credit

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
