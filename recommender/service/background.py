"""Background loops of a service process: hot reload of ``current``, delta sync, popularity refresh, experiment
guardrails and the experiments' impressions written in batches.

Each loop sleeps in the event loop and does its work in a worker thread, so loading a new build (seconds
for a large one) or reading counters never blocks a request.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, Callable, Coroutine

import anyio

from .state import ServiceState

log = logging.getLogger("recommender.service")


async def _every(seconds: float, work: Callable[[], object], name: str) -> None:
    """Run ``work`` in a worker thread every ``seconds``. Cancelled (the worker stopping) during a round, it waits
    for that round's thread to finish first: the stores close after this returns, and a round still running
    would read or write a closed store (it did: a popularity refresh logged the views unreachable at every stop)."""
    while True:
        await asyncio.sleep(seconds)
        round_ = asyncio.ensure_future(anyio.to_thread.run_sync(work))
        try:
            await asyncio.shield(round_)
        except asyncio.CancelledError:
            await asyncio.gather(round_, return_exceptions=True)
            raise
        except Exception:  # noqa: BLE001 - a failed round is logged and retried next round
            log.exception("background %s failed; retrying in %.1fs", name, seconds)


def background_tasks(state: ServiceState) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    """The loops to run for the app's lifetime, as configured."""
    settings = state.settings
    loops = [lambda: _every(settings.delta_poll_seconds, state.sync_live, "live state sync"),
             lambda: _every(settings.experiment_check_seconds, lambda: state.experiments.check_guardrails(
                 datetime.now(UTC)), "experiment guardrails"),
             lambda: _every(settings.experiment_flush_seconds, state.flush_impressions, "experiment impressions")]
    if settings.reload_poll_seconds > 0 and state.pointer is not None:
        loops.append(lambda: _every(settings.reload_poll_seconds, state.check_reload, "reload"))
    if settings.popularity_refresh_seconds > 0:
        loops.append(lambda: _every(settings.popularity_refresh_seconds, state.refresh_popularity,
                                    "popularity refresh"))
    return loops
