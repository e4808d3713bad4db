"""Online experiments in the service: which arm (or which interleaved merge) a reader's list comes from, the
impression that carries it, the click credited back, the report and the automatic stop.

An arm is a ranking of the one query path: the served build with the arm's ``[ranking]`` / ``[popularity]`` /
``[relatedness]`` settings (``Arm.build_config``), or another published build (``Arm.build_id``), with the same
live layer, rules and views. Lists outside every running experiment, or of readers outside its traffic share, are
the served build's own (and the response cache serves them as before).

Each arm's rendered list is kept per request (``kept_lists.py``); when every list a request needs is kept, the
response cache serves it without the app (``serve_kept``), still as its own impression
(``experiment_impressions.py``: the list shown, its signed id and its counts); a click is credited from its id.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Hashable

from ..errors import UnknownArticleError
from ..experiments.assignment import arm_in_traffic, in_traffic
from ..experiments.definition import Arm, Experiment
from ..experiments.guardrail import Stop, arms_to_stop
from ..experiments.impression_token import CLICK_HOURS, ShownList, TokenError, experiment_tag
from ..experiments.report import Report, report
from ..query.recommender import Recommender
from .experiment_arms import ArmKey, ArmLoader, ArmRecommenders
from .experiment_counts import ExperimentCounts, open_experiment_counts
from .experiment_impressions import Served, ShownLists
from .experiment_store import ExperimentStore, Running
from .experiment_tallies import hourly_series, tallies
from .kept_lists import Generation, KeptLists
from .rendering import RenderedList

log = logging.getLogger("recommender.service")
Compute = Callable[[Recommender], RenderedList]
EXPERIMENTS_FILE = "experiments.sqlite"
RESYNC_SECONDS = 1.0  # at most one store sync a second for ids this process cannot read


class Experiments:
    """The experiments of one service process.

    Args:
        store: the definitions (synced with the live state).
        counts: where impressions and clicks are counted (the service's is buffered).
        arm_loader: a recommender for an arm (made by the background threads: ``experiment_arms.py``).
        list_cache_seconds / list_cache_entries: how long and how many arms' ranked lists are kept (0: none).
        generation: what every kept list depends on (the served build, the live state, the rules in force):
            when it changes, every kept list is dropped.
    """

    def __init__(self, store: ExperimentStore, counts: ExperimentCounts, arm_loader: ArmLoader,
                 list_cache_seconds: float = 0.0, list_cache_entries: int = 0,
                 generation: Generation = lambda: None) -> None:
        self.store = store
        self.counts = counts
        self.shown = ShownLists(store.signer, counts)
        self._key_id = store.key_id
        self._resynced_at = -RESYNC_SECONDS
        self._tags: tuple[tuple[int, int], dict[bytes, Experiment]] = ((-2, -2), {})
        self.arms = ArmRecommenders(arm_loader)
        self.kept = KeptLists(list_cache_seconds, list_cache_entries, generation)
        self._by_name: tuple[tuple[int, int], list[Running]] = ((-2, -2), [])  # the store's token, sorted
        self._running: dict[str, tuple[tuple[int, int], datetime, datetime, list[Running]]] = {}

    def use_arms(self, arms: dict[ArmKey, Recommender]) -> None:
        """Serve with these arm recommenders from now on (a new build), every kept list dropped."""
        self.arms.use(arms)
        self.kept.clear()
        self.shown.clear()

    def active(self, now: datetime) -> list[Running]:
        """The experiments running now, whatever their widgets."""
        return [r for r in self.store.all().values() if r.active(now)]

    def running(self, widget: str, now: datetime) -> list[Running]:
        """The experiments covering ``widget`` now, by name (kept per widget until the store changes or a start or
        stop time is passed: this runs for every list a reader id comes with)."""
        token = self.store.token
        kept = self._running.get(widget)
        if kept is not None and kept[0] == token and kept[1] <= now < kept[2]:
            return kept[3]
        token_sorted, by_name = self._by_name
        if token_sorted != token:
            by_name = [r for _, r in sorted(self.store.all().items())]
            self._by_name = token, by_name
            self._sign_with_newest_key()
        found = [r for r in by_name if widget in r.experiment.widgets and r.active(now)]
        times = [t for r in by_name for t in (r.experiment.starts_at, r.experiment.stops_at) if t is not None]
        since = max((t for t in times if t <= now), default=datetime.min.replace(tzinfo=UTC))
        until = min((t for t in times if t > now), default=datetime.max.replace(tzinfo=UTC))
        self._running[widget] = (token, since, until, found)
        return found

    def _sign_with_newest_key(self) -> None:
        """After a key rotation: sign with the new key from now on. The kept lists and merges hold ids' headers
        signed with the old one, so they go (ranked again, as after a new build)."""
        if self.store.key_id != self._key_id:
            self._key_id = self.store.key_id
            self.shown.signer = self.store.signer
            self.kept.clear()
            self.shown.clear()
            log.info("impression ids are signed with key %d from now on", self._key_id)

    def covering(self, widget: str, reader: str | None, now: datetime) -> Running | None:
        """The first running experiment that covers the widget and the reader: the one its list is served in."""
        if reader is None:
            return None
        return next((r for r in self.running(widget, now) if in_traffic(r.experiment, reader)), None)

    def _list(self, experiment: Experiment, arm: str, key: Hashable, compute: Compute, k: int,
              ) -> tuple[RenderedList, bool]:
        """An arm's rendered list for the request ``key``: kept, or ranked now (and kept when its request was ranked
        before within a lifetime); and whether it is kept."""
        full_key = (experiment.name, arm, key)
        kept, generation = self.kept.get(full_key)
        if kept is not None:
            return kept[0], True
        # A partial of a module function, not a closure: a kept list's remake is a few objects the garbage
        # collector tracks, not a function and its cells (see ``rendering.ranked``).
        remake = functools.partial(_arm_list, self.arms, experiment, arm, compute, k)
        listed = remake()[0]
        return listed, self.kept.put(full_key, (listed, k), generation, remake)

    @staticmethod
    def _arms_of(running: Running, reader: str) -> tuple[str, ...]:
        """The arms whose lists make the list of a reader it covers: the A/B arm (control once it is stopped), or
        both interleaved arms."""
        experiment = running.experiment
        if experiment.kind != "ab":
            return tuple(experiment.arm_names)
        arm = arm_in_traffic(experiment, reader)
        if arm in running.stopped:
            assert experiment.control is not None  # an A/B experiment always has one
            return (experiment.control,)
        return (arm,)

    def serve(self, widget: str, reader: str | None, now: datetime, served: Recommender, compute: Compute, k: int,
              key: Hashable) -> tuple[RenderedList, Served | None]:
        """The list for ``reader``: the served build's, or an arm's / an interleaved merge of two arms' inside the
        first running experiment that covers the widget and the reader (counted as an impression). ``key`` names
        the request (its route and parameters): an arm's list for it is kept for the list cache's lifetime once
        the request is ranked a second time within one."""
        running = self.covering(widget, reader, now)
        if running is not None:
            assert reader is not None
            lists, kept = {}, True
            try:
                for arm in self._arms_of(running, reader):
                    lists[arm], arm_kept = self._list(running.experiment, arm, key, compute, k)
                    kept = kept and arm_kept
            except UnknownArticleError:
                # An arm's own build lacks the article (a live one, or newer than that build): the reader gets the
                # served list, outside the experiment (no impression is counted).
                return compute(served), None
            return self.shown.show(running.experiment, widget, now, lists, k, kept)
        return compute(served), None

    def serve_kept(self, running: Running, widget: str, reader: str, now: datetime, key: Hashable,
                   generation: Hashable = None) -> tuple[RenderedList, Served, tuple[Hashable, ...]] | None:
        """What ``serve`` would answer inside ``running`` (which covers the reader: ``covering``), when every arm
        list it needs is kept (counted as an impression), and the kept lists now due to be ranked again (pass
        them to ``refresh`` once the response is sent); None when one is not kept: the request goes to the
        app. ``generation``: the caller's reading of the kept lists' generation (None: read it here)."""
        lists, k, due = {}, 0, []
        for arm in self._arms_of(running, reader):
            full_key = (running.experiment.name, arm, key)
            kept, stale = self.kept.lookup(full_key, generation)
            if kept is None:
                return None
            lists[arm], k = kept
            if stale:
                due.append(full_key)
        results, served = self.shown.show(running.experiment, widget, now, lists, k)
        return results, served, tuple(due)

    def refresh(self, due: tuple[Hashable, ...]) -> None:
        """Rank kept lists again (``serve_kept``'s due ones), keeping the new lists."""
        for key in due:
            self.kept.refresh(key)

    def clicked(self, impression_id: str, article_id: str, now: datetime) -> str | None:
        """Credit a widget click that came back with its impression id; the experiment credited, or None (an id
        this site did not issue, or of a list served over ``CLICK_HOURS`` ago, an item the list did not show, a
        repeat)."""
        try:
            shown = self._shown(impression_id, now)
        except TokenError as exc:
            log.info("click with impression id %.40r... not credited: %s", impression_id, exc)
            return None
        if not 0 <= now.timestamp() // 3600 - shown.hour <= CLICK_HOURS:
            return None
        position = shown.position(article_id)
        if position is None:
            return None
        return shown.experiment if self.counts.clicked(shown, position) else None

    def _shown(self, impression_id: str, now: datetime, resync: bool = True) -> ShownList:
        """What an id's list showed. An id this process cannot read may be signed with a key rotated (or name an
        experiment made) in another process since its last poll: then the store is synced, at most once a
        second, and the id read again."""
        token, tags = self._tags
        if token != self.store.token:
            tags = {experiment_tag(name): r.experiment for name, r in self.store.all().items()}
            self._tags = self.store.token, tags
        try:
            return self.store.signer.read(impression_id, tags, now.timestamp())
        except TokenError:
            if not resync or time.monotonic() - self._resynced_at < RESYNC_SECONDS or not self._resync():
                raise
        return self._shown(impression_id, now, resync=False)

    def _resync(self) -> bool:
        self._resynced_at = time.monotonic()
        return self.store.sync()

    def series(self, name: str) -> list[dict[str, object]]:
        """Impressions and clicks per hour and arm, oldest first (``experiment_tallies.hourly_series``)."""
        return hourly_series(self.counts.fields(name))

    def report(self, name: str) -> Report:
        """The decision report of one experiment."""
        experiment = self.store.get(name).experiment
        counts, outcomes = tallies(experiment, self.counts.fields(name))
        return report(experiment, counts, outcomes)

    def check_guardrails(self, now: datetime) -> list[Stop]:
        """Stop every arm the guardrail stops now (logged in the store and the service log)."""
        stopped: list[Stop] = []
        for name, running in self.store.all().items():
            if not running.active(now):
                continue
            counts, outcomes = tallies(running.experiment, self.counts.fields(name))
            for stop in arms_to_stop(running.experiment, counts, outcomes):
                if stop.arm not in running.stopped and self.store.stop_arm(name, stop.arm, "guardrail", stop.reason):
                    log.warning(stop.message())
                    stopped.append(stop)
        return stopped


def _arm_list(arms: ArmRecommenders, experiment: Experiment, arm: str, compute: Compute, k: int,
              ) -> tuple[RenderedList, int]:
    """An arm's list ranked again (a kept list's remake), with the list length the request asked for."""
    return compute(arms.get(experiment.name, experiment.arm(arm))), k


def open_experiments(root: Path, location: str | None = None, views: str = "sqlite") -> Experiments:
    """The experiments of an indexes root, for reading outside the service (CLI, notebooks): the definitions in
    ``location`` (default ``experiments.sqlite`` in the root) and the counts in the ``views`` store."""
    def no_arms(arm: Arm) -> Recommender:
        raise ValueError(f"arm {arm.name}: lists are served by the service, not read here")

    return Experiments(ExperimentStore(location or root / EXPERIMENTS_FILE), open_experiment_counts(views, root),
                       no_arms)
