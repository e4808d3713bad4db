"""What one service process holds: the served build (+ live delta), the counters, the embedder; load and swap."""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable

from ..config import BuildConfig
from ..config_files import as_built
from ..embedding.base import Embedder
from ..embedding.factory import make_embedder
from ..errors import IndexFormatError
from ..experiments.definition import Arm
from ..live.state import open_live_state
from ..query.recommender import Recommender
from ..storage.checks import self_match
from ..storage.manifest import read_manifest
from ..storage.versions import resolve_build_dir, resolve_link
from .counters import ViewCounter, open_counter
from .degraded import GuardedViews
from .experiment_counts import open_experiment_counts
from .experiment_store import ExperimentStore
from .experiments import EXPERIMENTS_FILE, Experiments
from .impression_buffer import BufferedCounts
from .metrics import Metrics
from .settings import ServiceSettings

log = logging.getLogger("recommender.service")


@dataclass(frozen=True)
class Served:
    """One loaded build with the live layer on top; requests take a reference and finish on it."""

    recommender: Recommender
    path: Path
    loaded_at: datetime


def locate(index: Path) -> tuple[Path | None, Path]:
    """(the ``current`` pointer to watch or None, the indexes root where the counters and delta live)."""
    if index.is_symlink():
        return index, index.parent
    if (index / "current").is_symlink() or (index / "current").is_dir():
        return index / "current", index
    return None, index.parent


class ServiceState:
    """The served build, the live delta, the view counters and the query embedder of one process."""

    def __init__(self, settings: ServiceSettings, metrics: Metrics, embedder: Embedder | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pointer, self.root = locate(settings.index)
        first = resolve_build_dir(settings.index)
        manifest = read_manifest(first, verify_files=False)
        if embedder is None:
            embedder = make_embedder(BuildConfig.from_dict(as_built(manifest.build.get("config", {}))).embedder)
        self.embedder = embedder
        self.clock = clock
        self.embed_lock = threading.Lock()
        self.counter: ViewCounter = open_counter(settings.views, self.root, settings.view_bucket_seconds,
                                                 settings.view_retention_hours)
        self.views = GuardedViews(self.counter, metrics)
        # Opened (and read) before the first build is loaded: no request is served without the takedowns.
        self.live = open_live_state(self.root, manifest.index["dims"], settings.takedowns, settings.delta,
                                    settings.rules)
        self.delta, self.takedowns, self.rules = self.live.delta, self.live.takedowns, self.live.rules
        self.refused: tuple[Path, str] | None = None
        self.pointer_problem: str | None = None
        self.impressions = BufferedCounts(open_experiment_counts(settings.views, self.root))
        self.experiments = Experiments(ExperimentStore(settings.experiments or self.root / EXPERIMENTS_FILE),
                                       self.impressions, self.arm_recommender, settings.list_cache_seconds,
                                       settings.response_cache_entries, self.list_generation)
        self.served: Served = self.load(first)
        now = self.served.recommender.clock()
        self.experiments.arms.make(self.experiments.active(now), now)  # before the first request needs them
        self._publish_metrics()

    def _options(self, popularity_max_age_seconds: float) -> dict:
        """What every recommender of this process shares: the live layer, rules, views, clock and embedder."""
        return dict(embedder=self.embedder, overlay=self.live, views=self.views, clock=self.clock,
                    popularity_max_age_seconds=popularity_max_age_seconds, rules=self.live,
                    candidate_cache_size=self.settings.candidate_cache_size, embed_lock=self.embed_lock)

    def load(self, path: Path) -> Served:
        """Load and verify a build (checksums, counts, model, self-neighbours) with the live layer on top."""
        settings = self.settings
        # Popularity is refreshed by the service (a background loop, or after each event when the interval is 0),
        # so a request never recomputes it.
        recommender = Recommender.load(path, verify=True, mmap=settings.mmap_builds, **self._options(math.inf))
        check = self_match(recommender.index, recommender.table.vectors, recommender.config.gates)
        if not check.passed:
            raise IndexFormatError(f"{path.name}: {check.message}")
        stale = [a for a in self.delta.overlay.live_row_of if a in recommender.row_of]
        if stale:
            # The new build holds these articles: the delta lets go (takedowns stay: they are not delta rows).
            self.delta.drop(stale)
        recommender.refresh_popularity()
        return Served(recommender, path, datetime.now(UTC))

    def arm_recommender(self, arm: Arm, served: Recommender | None = None) -> Recommender:
        """An experiment arm's recommender: the served build with the arm's settings, or the published build it
        names (verified like any load), over the same live layer; its popularity is refreshed with the served
        build's. ``served``: the build to make it from (default the served one)."""
        served = served or self.served.recommender
        max_age = math.inf  # refreshed with the served build's (``refresh_popularity``), never on a request
        if arm.build_id is None:
            return Recommender(served.stored, arm.build_config(served.config), shares=served,
                               **self._options(max_age))
        path = self.root / "builds" / arm.build_id
        if not (path / "manifest.json").exists():
            raise IndexFormatError(f"arm {arm.name}: build {arm.build_id} is not a published build under "
                                   f"{self.root / 'builds'}")
        loaded = Recommender.load(path, verify=True, mmap=self.settings.mmap_builds, **self._options(max_age))
        return Recommender(loaded.stored, arm.build_config(loaded.config), shares=loaded, **self._options(max_age))

    def list_generation(self) -> tuple:
        """What every kept list depends on: the served build, the live state, the rules and which of them are in
        force now (a rule change, or a rule starting or expiring, makes every kept list stale)."""
        rules = self.live.ruleset
        return (self.served.path, self.served.loaded_at, self.live.overlay.seq, rules.seq,
                rules.validity(self.served.recommender.clock().timestamp() / 3600)[0])

    def refresh_popularity(self) -> None:
        """Recompute trending and freshness of the served build and of every experiment arm made from it (the
        background loop's work: a request never recomputes them). An arm that shares the served build's snapshots
        (``Recommender(shares=...)``) finds the new one at the same time, computed once."""
        served = self.served.recommender
        now = served.clock()
        served.refresh_popularity(now)
        for arm in self.experiments.arms.all():
            arm.popularity(now)

    def flush_impressions(self) -> int:
        """Write this worker's pending experiment impressions (the background loop's work), counted in ``/metrics``:
        the wall time of each flush that had something to write (or failed), and what is still pending."""
        pending = self.impressions.pending
        started = time.perf_counter()
        try:
            return self.impressions.flush()
        finally:
            if pending:
                self.metrics.impression_flush.observe(time.perf_counter() - started)
            self.metrics.impressions_pending.set(self.impressions.pending)

    def sync_live(self) -> None:
        """Pick up what other processes wrote (the live state and the experiments) and compile the rules they
        make."""
        self.live.sync()
        self.experiments.store.sync()
        self.served.recommender.prepare()  # the rules compiled here, not by the next request
        now = self.served.recommender.clock()
        self.experiments.arms.make(self.experiments.active(now), now)  # arms made and compiled here too
        self.update_gauges()  # each worker's own gauges stay current, whichever worker answers a scrape

    def check_reload(self) -> bool:
        """Load a newly published ``current`` in this (background) thread and swap it in; True when swapped.

        A version that fails to load or verify is refused: the old one keeps serving and the refusal is
        reported by ``/readyz`` and ``/metrics`` until a newer version is published.
        """
        if self.pointer is None:
            return False
        try:
            target = resolve_link(self.pointer)
        except IndexFormatError as exc:
            if self.pointer_problem != str(exc):  # logged once per problem, not every poll
                log.error("not reloading: %s", exc)
                self.metrics.reloads.labels("pointer_broken").inc()
            self.pointer_problem = str(exc)
            return False
        self.pointer_problem = None
        if target is None:
            return False
        if target == self.served.path or (self.refused is not None and self.refused[0] == target):
            return False
        started = time.perf_counter()
        try:
            served = self.load(target)
        except Exception as exc:  # noqa: BLE001 - any failure means: refuse it, keep serving the old one
            self.refused = (target, f"{type(exc).__name__}: {exc}")
            self.metrics.reloads.labels("refused").inc()
            self.metrics.flag_only(self.metrics.reload_refused, (target.name,))
            log.error("refused new index version %s: %s", target, exc)
            return False
        now = served.recommender.clock()
        arms = self.experiments.arms.made(self.experiments.active(now), now,
                                          lambda arm: self.arm_recommender(arm, served.recommender))
        self.served, self.refused = served, None
        self.experiments.use_arms(arms)
        # The new build's objects join the permanent generation (see app.lifespan). Unfreeze and collect first:
        # the old build may hold reference cycles, which a frozen generation would keep forever (one full pass
        # per reload, in this background thread).
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.metrics.reloads.labels("loaded").inc()
        self.metrics.flag_only(self.metrics.reload_refused, None)
        self._publish_metrics()
        log.info("now serving %s (loaded in %.2fs)", target.name, time.perf_counter() - started)
        return True

    def _publish_metrics(self) -> None:
        engine = self.served.recommender
        self.metrics.flag_only(self.metrics.index_info, (engine.manifest.build_id, engine.manifest.model.name))
        self.metrics.index_articles.set(len(engine))

    def update_gauges(self) -> None:
        """Gauges kept current by the sync: index age, delta size, takedowns, pending impressions."""
        engine = self.served.recommender
        created = datetime.fromisoformat(engine.manifest.created_at.replace("Z", "+00:00"))
        self.metrics.index_age.set((datetime.now(UTC) - created).total_seconds())
        self.metrics.delta_articles.set(len(self.delta.overlay.live))
        self.metrics.taken_down.set(len(self.takedowns.ids))
        self.metrics.impressions_pending.set(self.impressions.pending)

    def close(self) -> None:
        """Close the stores."""
        self.counter.close()
        self.live.close()
        self.experiments.store.close()
        self.impressions.close()
