"""Prometheus metrics of the service, and the ASGI middleware that times every request.

Under ``recommender serve`` every worker writes its metrics to files in ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multiprocess mode, set up by the command), and ``GET /metrics`` on any worker answers for
all of them: counters and histograms summed over the workers, gauges one series per live worker (``pid``
label). Without that directory (tests, an app embedded in another server) the metrics are this process's own.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Awaitable, Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The directory the workers' metric files go to, when the service runs in multiprocess mode."""
    return os.environ.get(MULTIPROCESS_DIR) or None

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
# Latency buckets from 0.25 ms: the related lookup is a table read.
BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """One registry per app (tests create many apps), exported as Prometheus text by ``GET /metrics``."""

    def __init__(self) -> None:
        # A gauge is per worker (multiprocess_mode="liveall"): in multiprocess mode each live worker's value is a
        # series of its own (pid label), and a dead worker's series leaves with it.
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("recommender_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("recommender_request_seconds", "Request latency by route", ["method", "route"],
                                 buckets=BUCKETS, registry=r)
        self.index_info = Gauge("recommender_index_info", "The loaded build (value 1)", ["build_id", "model"],
                                registry=r, multiprocess_mode="liveall")
        self.index_articles = Gauge("recommender_index_articles", "Articles in the loaded build", registry=r,
                                    multiprocess_mode="liveall")
        self.index_age = Gauge("recommender_index_age_seconds", "Seconds since the loaded build was created",
                               registry=r, multiprocess_mode="liveall")
        self.delta_articles = Gauge("recommender_live_delta_articles", "Articles in the live delta", registry=r,
                                    multiprocess_mode="liveall")
        self.taken_down = Gauge("recommender_live_taken_down", "Taken-down article ids", registry=r,
                                multiprocess_mode="liveall")
        self.events = Counter("recommender_events_ingested", "Events counted, by type", ["type"], registry=r)
        self.event_batches_rejected = Counter("recommender_event_batches_rejected", "Event batches refused whole",
                                              registry=r)
        self.reloads = Counter("recommender_index_reloads", "Reload attempts by outcome", ["outcome"], registry=r)
        self.degraded = Gauge("recommender_degraded", "1 while a store is unreachable and the service degrades "
                              "(views: lists use the last live views read; writes answer 503)", ["component"],
                              registry=r, multiprocess_mode="liveall")
        self.reload_refused = Gauge("recommender_index_reload_refused",
                                    "1 while the newest published build was refused (the old one serves)",
                                    ["build_id"], registry=r, multiprocess_mode="liveall")
        self.impressions_pending = Gauge("recommender_experiment_impressions_pending",
                                         "Experiment impressions served and not written to the counter store yet",
                                         registry=r, multiprocess_mode="liveall")
        self.impression_flush = Histogram("recommender_experiment_flush_seconds",
                                          "Wall time of one write of a worker's pending experiment impressions",
                                          buckets=BUCKETS, registry=r)

        self._flagged: dict[int, set[tuple[str, ...]]] = {}

    def flag_only(self, gauge: Gauge, labels: tuple[str, ...] | None) -> None:
        """Set ``gauge`` to 1 for ``labels`` and to 0 for every other series this process set (None: all 0).

        An info-style gauge (the loaded build, the refused build) changes labels over time; multiprocess mode
        cannot remove a series, so an old one stays, at 0. Without multiprocess mode old series are removed.
        """
        seen = self._flagged.setdefault(id(gauge), set())
        for old in seen - {labels}:
            if multiprocess_dir() is None:
                gauge.remove(*old)
            else:
                gauge.labels(*old).set(0)
        seen.clear()
        if labels is not None:
            gauge.labels(*labels).set(1)
            seen.add(labels)

    def export(self) -> bytes:
        """The Prometheus text exposition: every worker's metrics in multiprocess mode, else this registry's."""
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)


def worker_exited() -> None:
    """Remove this worker's live gauges from the multiprocess directory (its counters stay counted)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())


_CONVERTER = re.compile(r":\w+}")


def route_template(scope: Mapping[str, Any]) -> str | None:
    """The template of the route that handled a request, without path converters (``{article_id:path}`` is
    ``{article_id}``): the label metrics and the impression counter use; None before routing."""
    path = getattr(scope.get("route"), "path", None)
    return _CONVERTER.sub("}", path) if path else None


class MetricsMiddleware:
    """Counts and times every request by its route template (``/v1/articles/{article_id}/related``)."""

    def __init__(self, app: Callable, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI event."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = route_template(scope) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
