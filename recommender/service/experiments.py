"""Online experiments in the service: which arm (or which interleaved merge) a reader's list comes from, the
impression that carries it, the click credited back, the report and the automatic stop.

An arm is a ranking of the one query path: the served build with the arm's ``[ranking]`` / ``[popularity]`` /
``[relatedness]`` settings (``Arm.build_config``), or another published build (``Arm.build_id``), with the same
live layer, rules and views. Lists outside every running experiment, or of readers outside its traffic share, are
the served build's own (and the response cache serves them as before).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from ..errors import UnknownArticleError
from ..experiments.assignment import assign, in_traffic
from ..experiments.definition import Arm, Experiment
from ..experiments.guardrail import Stop, arms_to_stop
from ..experiments.interleaving import impression_rng, new_impression_id, team_draft
from ..experiments.report import Report, report
from ..experiments.statistics import ArmCounts, Outcomes
from ..query.recommender import Recommender
from ..query.results import Recommendation
from .experiment_counts import ExperimentCounts, Impression, open_experiment_counts
from .experiment_store import ExperimentStore, Running

log = logging.getLogger("recommender.service")
Compute = Callable[[Recommender], list[Recommendation]]
ArmLoader = Callable[[Arm], Recommender]
EXPERIMENTS_FILE = "experiments.sqlite"


@dataclass(frozen=True)
class Served:
    """What a list served inside an experiment says about itself (in the response: ``impression_id``,
    ``experiment`` and, A/B, ``arm``)."""

    impression_id: str
    experiment: str
    arm: str | None


def tallies(experiment: Experiment, fields: dict[str, int]) -> tuple[dict[str, ArmCounts], Outcomes | None]:
    """Per-arm counts (and interleaving's outcomes) from the count fields (``experiment_counts``)."""
    impressions: dict[str, int] = {}
    clicks: dict[str, int] = {}
    positions: dict[str, dict[int, list[int]]] = {}
    outcomes = {"a": 0, "b": 0, "tie": 0}
    for field, count in fields.items():
        kind, name, *rest = field.split("|")
        if kind == "imp":
            impressions[name] = impressions.get(name, 0) + count
        elif kind == "clk":
            clicks[name] = clicks.get(name, 0) + count
        elif kind in ("pimp", "pclk"):
            slot = positions.setdefault(name, {}).setdefault(int(rest[0]), [0, 0])
            slot[kind == "pclk"] += count
        elif kind == "out":
            outcomes[name] += count
    shared = impressions.get("*")  # interleaving: every interleaved impression shows both teams
    counts = {}
    for arm in experiment.arm_names:
        depth = max(positions.get(arm, {0: [0, 0]}), default=-1) + 1
        slots = [positions.get(arm, {}).get(p, [0, 0]) for p in range(depth)]
        counts[arm] = ArmCounts(shared if shared is not None else impressions.get(arm, 0), clicks.get(arm, 0),
                                [s[0] for s in slots], [min(s[1], s[0]) for s in slots])
    if experiment.kind != "interleave":
        return counts, None
    total = shared or 0
    return counts, Outcomes(outcomes["a"], outcomes["b"], outcomes["tie"], max(total, sum(outcomes.values())))


class Experiments:
    """The experiments of one service process.

    Args:
        store: the definitions (synced with the live state).
        counts: where impressions and clicks are counted.
        arm_loader: a recommender for an arm (the service caches them per served build).
    """

    def __init__(self, store: ExperimentStore, counts: ExperimentCounts, arm_loader: ArmLoader) -> None:
        self.store = store
        self.counts = counts
        self.arm_loader = arm_loader
        self._arms: dict[tuple[str, str], Recommender] = {}
        self._lock = threading.Lock()

    def forget_arms(self) -> None:
        """Drop the arms' recommenders (a new build is served: they are made again from it)."""
        with self._lock:
            self._arms.clear()

    def running(self, widget: str, now: datetime) -> list[Running]:
        """The experiments covering ``widget`` now, by name."""
        return [r for _, r in sorted(self.store.all().items()) if widget in r.experiment.widgets and r.active(now)]

    def covers(self, widget: str, reader: str | None, now: datetime) -> bool:
        """Whether a list of ``widget`` for ``reader`` is served inside an experiment."""
        return reader is not None and any(in_traffic(r.experiment, reader) for r in self.running(widget, now))

    def _arm(self, experiment: Experiment, name: str) -> Recommender:
        key = (experiment.name, name)
        found = self._arms.get(key)
        if found is None:
            found = self.arm_loader(experiment.arm(name))
            with self._lock:
                self._arms[key] = found
        return found

    def serve(self, widget: str, reader: str | None, now: datetime, served: Recommender, compute: Compute, k: int,
              ) -> tuple[list[Recommendation], Served | None]:
        """The list for ``reader``: the served build's, or an arm's / an interleaved merge of two arms' inside the
        first running experiment that covers the widget and the reader (counted as an impression)."""
        if reader is not None:
            for running in self.running(widget, now):
                experiment = running.experiment
                if in_traffic(experiment, reader):
                    try:
                        return self._serve(running, widget, reader, now, compute, k)
                    except UnknownArticleError:
                        # An arm's own build lacks the article (a live one, or newer than that build): the
                        # reader gets the served list, outside the experiment (no impression is counted).
                        break
        return compute(served), None

    def _serve(self, running: Running, widget: str, reader: str, now: datetime, compute: Compute, k: int,
               ) -> tuple[list[Recommendation], Served]:
        experiment = running.experiment
        impression_id = new_impression_id()
        hour = int(now.timestamp() // 3600)
        if experiment.kind == "ab":
            arm = assign(experiment, reader)
            arm = experiment.control if arm is None or arm in running.stopped else arm
            assert arm is not None
            results = compute(self._arm(experiment, arm))
            record = Impression(impression_id, experiment.name, "ab", widget, arm,
                                tuple(r.article_id for r in results), (arm,) * len(results), hour)
            served = Served(impression_id, experiment.name, arm)
        else:
            first, second = experiment.arm_names
            lists = {name: compute(self._arm(experiment, name)) for name in (first, second)}
            by_id = {r.article_id: r for name in (second, first) for r in lists[name]}
            merged, teams = team_draft([r.article_id for r in lists[first]], [r.article_id for r in lists[second]],
                                       k, impression_rng(impression_id))
            results = [by_id[a] for a in merged]
            record = Impression(impression_id, experiment.name, "interleave", widget, "*", tuple(merged),
                                tuple(first if t == "a" else second for t in teams), hour, (first, second))
            served = Served(impression_id, experiment.name, None)
        if results:
            self.counts.served(record)
        return results, served

    def clicked(self, impression_id: str, article_id: str) -> str | None:
        """Credit a widget click that came back with its impression id; the experiment credited, or None."""
        return self.counts.clicked(impression_id, article_id)

    def series(self, name: str) -> list[dict[str, object]]:
        """Impressions and clicks per hour and arm (interleaving: clicks per team, impressions shared), oldest
        first: what a notebook plots as the running result."""
        rows: dict[tuple[int, str], list[int]] = {}
        for field, count in self.counts.fields(name).items():
            kind, arm, *rest = field.split("|")
            if kind in ("imp", "clk"):
                slot = rows.setdefault((int(rest[1]), arm), [0, 0])
                slot[kind == "clk"] += count
        return [{"hour": hour, "arm": arm, "impressions": n[0], "clicks": n[1]}
                for (hour, arm), n in sorted(rows.items())]

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


def open_experiments(root: Path, location: str | None = None, views: str = "sqlite") -> Experiments:
    """The experiments of an indexes root, for reading outside the service (CLI, notebooks): the definitions in
    ``location`` (default ``experiments.sqlite`` in the root) and the counts in the ``views`` store."""
    def no_arms(arm: Arm) -> Recommender:
        raise ValueError(f"arm {arm.name}: lists are served by the service, not read here")

    return Experiments(ExperimentStore(location or root / EXPERIMENTS_FILE), open_experiment_counts(views, root),
                       no_arms)
