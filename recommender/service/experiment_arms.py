"""Experiment arms' recommenders, one per (experiment, arm), made by the worker's background threads.

An arm's recommender is the served build with the arm's settings (or the published build it names) over the same
live layer; it shares the served recommender's row table, row strings and candidates where its settings allow
(``Recommender(shares=...)``). Making one (popularity, rules; and the row table when it cannot share it) took
0.5-1 s at 100k articles before it shared them, ~0.15 s since; made by the first request that needed it, it
stalled every request of the worker meanwhile (p99 130-430 ms in ``service_load.py --experiment`` runs where a
worker's first experiment list fell in the timed window). So the sync loop makes the
arms of every running experiment (``make``), and a reload makes the new build's before it swaps it in (``made``
with its own loader, then ``use``); a request makes one only if it comes before the next sync.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable, Iterable

from ..experiments.definition import Arm
from ..query.recommender import Recommender
from .experiment_store import Running

log = logging.getLogger("recommender.service")
ArmLoader = Callable[[Arm], Recommender]
ArmKey = tuple[str, str]  # (experiment name, arm name)


class ArmRecommenders:
    """The arms' recommenders of one service process.

    Args:
        loader: makes an arm's recommender from the served build (the service's ``arm_recommender``).
    """

    def __init__(self, loader: ArmLoader) -> None:
        self.loader = loader
        self._made: dict[ArmKey, Recommender] = {}
        self._failed: set[ArmKey] = set()  # arms that could not be made from the served build: logged once
        self._lock = threading.Lock()

    def get(self, experiment: str, arm: Arm) -> Recommender:
        """One arm's recommender (made now if the sync has not made it yet)."""
        key = (experiment, arm.name)
        found = self._made.get(key)
        if found is None:
            found = self.loader(arm)
            with self._lock:
                self._made[key] = found
        return found

    def all(self) -> list[Recommender]:
        """The recommenders made so far (their popularity is refreshed with the served build's)."""
        with self._lock:
            return list(self._made.values())

    def made(self, running: Iterable[Running], now: datetime, loader: ArmLoader | None = None,
             ) -> dict[ArmKey, Recommender]:
        """Every arm of the ``running`` experiments, rules compiled for ``now``: those made already and the others
        made now with ``loader`` (default: this one's; every arm, when one is given)."""
        made: dict[ArmKey, Recommender] = {}
        for experiment in running:
            for arm in experiment.experiment.arms:
                key = (experiment.experiment.name, arm.name)
                found = None if loader is not None else self._made.get(key)
                if found is None and key not in self._failed:
                    try:
                        found = (loader or self.loader)(arm)
                    except Exception:  # noqa: BLE001 - logged once; a request for it then fails as before
                        log.exception("experiment %s: arm %s could not be made", *key)
                        self._failed.add(key)
                if found is not None:
                    found.prepare(now)
                    made[key] = found
        return made

    def make(self, running: Iterable[Running], now: datetime) -> None:
        """Make the arms not made yet and compile every arm's rules (``made``)."""
        made = self.made(running, now)
        with self._lock:
            for key, recommender in made.items():
                self._made.setdefault(key, recommender)

    def use(self, arms: dict[ArmKey, Recommender]) -> None:
        """Serve with these recommenders from now on (a new build: made from it)."""
        with self._lock:
            self._made = dict(arms)
            self._failed = set()
