"""Online experiments in the service: which arm (or which interleaved merge) a reader's list comes from, the
impression that carries it, the click credited back, the report and the automatic stop.

An arm is a ranking of the one query path: the served build with the arm's ``[ranking]`` / ``[popularity]`` /
``[relatedness]`` settings (``Arm.build_config``), or another published build (``Arm.build_id``), with the same
live layer, rules and views. Lists outside every running experiment, or of readers outside its traffic share, are
the served build's own (and the response cache serves them as before).

Each arm's rendered list is kept per request (``kept_lists.py``); when every list a request needs is kept, the
response cache serves it without the app (``serve_kept``), still as its own impression. Each impression id
carries what its list showed, signed with the site's key (``experiments.impression_token``): serving one adds to
its count keys' tally in the worker's buffer (``impression_buffer.py``, written by the background loop) and
stores nothing else; a click is credited from its id.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Hashable

from ..errors import UnknownArticleError
from ..experiments.assignment import arm_in_traffic, in_traffic
from ..experiments.definition import Arm, Experiment
from ..experiments.guardrail import Stop, arms_to_stop
from ..experiments.impression_token import NONCES, Header, ImpressionSigner, TokenError, experiment_tag
from ..experiments.interleaving import Flips, merge_pattern, team_draft
from ..experiments.report import Report, report
from ..query.recommender import Recommender
from .experiment_arms import ArmKey, ArmLoader, ArmRecommenders
from .experiment_counts import ExperimentCounts, open_experiment_counts
from .experiment_store import ExperimentStore, Running
from .experiment_tallies import hourly_series, tallies
from .impression_batch import CountKeys, count_keys
from .kept_lists import Generation, KeptLists
from .rendering import RenderedList

log = logging.getLogger("recommender.service")
Compute = Callable[[Recommender], RenderedList]
EXPERIMENTS_FILE = "experiments.sqlite"
# Team-draft merges kept (``Experiments._merged``): at most 2**5 per pair of kept lists at k = 10; when there are
# more, all are dropped (they are rebuilt from the kept lists at one draft each).
MERGES_KEPT = 65_536
# Prepared impressions kept on one shown list (one per experiment, widget, hour and arms shown).
PREPARED_PER_LIST = 16
# A click is credited when its list was served within this many hours (by the hour its id carries).
CLICK_HOURS = 24
# What every impression of one shown list, widget and hour shares: (its count keys, its id's signed header). Kept
# on an arm's list (``RenderedList.derived``) or with a merge.
Prepared = tuple[CountKeys, Header]
# A kept merge, by (list a's serial, list b's, k, pattern, experiment, widget, hour): the merged list's ids, items
# and fallback, and its prepared impression. Exact tuples of strings, bytes and hash states, so the garbage
# collector stops tracking them: tens of thousands are kept, and as objects (a list, its dicts, named tuples:
# ~6 tracked objects a merge) they made each full collection take 20-50 ms, the interleaved lists' p99
# (benchmarks/RESULTS.md).
Merge = tuple[tuple[str, ...], tuple[bytes, ...], "str | None", Prepared]
MergeKey = tuple[int, int, int, int, str, str, int]


@dataclass(frozen=True)
class Served:
    """What a list served inside an experiment says about itself (in the response: ``impression_id``,
    ``experiment`` and, A/B, ``arm``)."""

    impression_id: str
    experiment: str
    arm: str | None


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
        self.signer = ImpressionSigner(store.impression_key)
        self._tags: tuple[tuple[int, int], dict[bytes, Experiment]] = ((-2, -2), {})
        self.arms = ArmRecommenders(arm_loader)
        self.kept = KeptLists(list_cache_seconds, list_cache_entries, generation)
        self._merges: dict[MergeKey, Merge] = {}
        self._by_name: tuple[tuple[int, int], list[Running]] = ((-2, -2), [])  # the store's token, sorted
        self._running: dict[str, tuple[tuple[int, int], datetime, datetime, list[Running]]] = {}

    def use_arms(self, arms: dict[ArmKey, Recommender]) -> None:
        """Serve with these arm recommenders from now on (a new build), every kept list dropped."""
        self.arms.use(arms)
        self.kept.clear()
        self._merges.clear()

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
        found = [r for r in by_name if widget in r.experiment.widgets and r.active(now)]
        times = [t for r in by_name for t in (r.experiment.starts_at, r.experiment.stops_at) if t is not None]
        since = max((t for t in times if t <= now), default=datetime.min.replace(tzinfo=UTC))
        until = min((t for t in times if t > now), default=datetime.max.replace(tzinfo=UTC))
        self._running[widget] = (token, since, until, found)
        return found

    def covering(self, widget: str, reader: str | None, now: datetime) -> Running | None:
        """The first running experiment that covers the widget and the reader: the one its list is served in."""
        if reader is None:
            return None
        return next((r for r in self.running(widget, now) if in_traffic(r.experiment, reader)), None)

    def _list(self, experiment: Experiment, arm: str, key: Hashable, compute: Compute, k: int) -> RenderedList:
        """An arm's rendered list for the request ``key``: kept, or ranked now and kept."""
        full_key = (experiment.name, arm, key)
        kept, generation = self.kept.get(full_key)
        if kept is not None:
            return kept[0]
        # A partial of a module function, not a closure: a kept list's remake is a few objects the garbage
        # collector tracks, not a function and its cells (see ``rendering.ranked``).
        remake = functools.partial(_arm_list, self.arms, experiment, arm, compute, k)
        listed = remake()[0]
        self.kept.put(full_key, (listed, k), generation, remake)
        return listed

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
        the request (its route and parameters): an arm's list for it is kept for the list cache's lifetime."""
        running = self.covering(widget, reader, now)
        if running is not None:
            assert reader is not None
            try:
                lists = {arm: self._list(running.experiment, arm, key, compute, k)
                         for arm in self._arms_of(running, reader)}
            except UnknownArticleError:
                # An arm's own build lacks the article (a live one, or newer than that build): the reader gets the
                # served list, outside the experiment (no impression is counted).
                return compute(served), None
            return self._impression(running, widget, now, lists, k)
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
        results, served = self._impression(running, widget, now, lists, k)
        return results, served, tuple(due)

    def refresh(self, due: tuple[Hashable, ...]) -> None:
        """Rank kept lists again (``serve_kept``'s due ones), keeping the new lists."""
        for key in due:
            self.kept.refresh(key)

    def _impression(self, running: Running, widget: str, now: datetime, lists: dict[str, RenderedList], k: int,
                    ) -> tuple[RenderedList, Served]:
        """The list shown (the A/B arm's, or the team-draft merge its impression's random bits decide) and its
        impression, counted."""
        experiment = running.experiment
        nonce = NONCES.take()
        hour = int(now.timestamp() // 3600)
        if experiment.kind == "ab":
            (arm, results), = lists.items()
            prepared = self._prepared(results, experiment, widget, hour, arm)
        else:
            first, second = experiment.arm_names
            results, prepared = self._merged(experiment, widget, hour, lists[first], lists[second], k,
                                             merge_pattern(int.from_bytes(nonce, "little"), k))
            arm = None
        if results:
            self.counts.served(prepared[0])
        return results, Served(self.signer.issue(prepared[1], nonce), experiment.name, arm)

    def _prepared(self, results: RenderedList, experiment: Experiment, widget: str, hour: int, arm: str,
                  ) -> Prepared:
        """An A/B arm's list's prepared impression in ``widget`` and ``hour`` (kept on the list: it leaves when the
        list does)."""
        key = (experiment.name, widget, hour)
        prepared: Prepared | None = results.derived.get(key)
        if prepared is None:
            if len(results.derived) >= PREPARED_PER_LIST:
                results.derived.clear()  # hours pass: a list kept long does not collect them
            arms = (arm,) * len(results)
            prepared = (count_keys(experiment.name, arm, widget, hour, arms),
                        self.signer.header(experiment, widget, hour, arms, results.ids))
            results.derived[key] = prepared
        return prepared

    def _merged(self, experiment: Experiment, widget: str, hour: int, a: RenderedList, b: RenderedList, k: int,
                pattern: int) -> tuple[RenderedList, Prepared]:
        """The team-draft merge of ``a`` (the first arm's list) and ``b`` decided by ``pattern``
        (``merge_pattern``), and its prepared impression: kept per pair of lists, so a hot list's impressions draft
        once per pattern (the draft was ~60% of assembling an interleaved list from kept lists, measured in a
        loop)."""
        key = (a.serial, b.serial, k, pattern, experiment.name, widget, hour)
        merge = self._merges.get(key)
        if merge is None:
            first, second = experiment.arm_names
            merged, teams = team_draft(a.ids, b.ids, k, Flips(pattern))
            listed = a.picked(merged, [b])
            arms = tuple(first if t == "a" else second for t in teams)
            merge = (listed.ids, listed.items, listed.fallback,
                     (count_keys(experiment.name, "*", widget, hour, arms),
                      self.signer.header(experiment, widget, hour, arms, listed.ids)))
            if len(self._merges) >= MERGES_KEPT:
                self._merges.clear()
            self._merges[key] = merge
        return RenderedList(merge[0], merge[1], merge[2]), merge[3]

    def clicked(self, impression_id: str, article_id: str, now: datetime) -> str | None:
        """Credit a widget click that came back with its impression id; the experiment credited, or None (an id
        this site did not issue, or of a list served over ``CLICK_HOURS`` ago, an item the list did not show, a
        repeat)."""
        token, tags = self._tags
        if token != self.store.token:
            tags = {experiment_tag(name): r.experiment for name, r in self.store.all().items()}
            self._tags = self.store.token, tags
        try:
            shown = self.signer.read(impression_id, tags)
        except TokenError as exc:
            log.info("click with impression id %.40r... not credited: %s", impression_id, exc)
            return None
        if not 0 <= now.timestamp() // 3600 - shown.hour <= CLICK_HOURS:
            return None
        return shown.experiment if self.counts.clicked(shown, article_id) else None

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
