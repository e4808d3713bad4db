"""Prometheus metrics of one service process, and the ASGI middleware that times every request."""

from __future__ import annotations

import re
import time
from typing import Any, Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
# Latency buckets from 0.25 ms: the related lookup is a table read.
BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """One registry per app (tests create many apps), exported as Prometheus text by ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("recommender_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("recommender_request_seconds", "Request latency by route", ["method", "route"],
                                 buckets=BUCKETS, registry=r)
        self.index_info = Gauge("recommender_index_info", "The loaded build (value 1)", ["build_id", "model"],
                                registry=r)
        self.index_articles = Gauge("recommender_index_articles", "Articles in the loaded build", registry=r)
        self.index_age = Gauge("recommender_index_age_seconds", "Seconds since the loaded build was created",
                               registry=r)
        self.delta_articles = Gauge("recommender_live_delta_articles", "Articles in the live delta", registry=r)
        self.taken_down = Gauge("recommender_live_taken_down", "Taken-down article ids", registry=r)
        self.events = Counter("recommender_events_ingested", "Events counted, by type", ["type"], registry=r)
        self.event_batches_rejected = Counter("recommender_event_batches_rejected", "Event batches refused whole",
                                              registry=r)
        self.reloads = Counter("recommender_index_reloads", "Reload attempts by outcome", ["outcome"], registry=r)
        self.degraded = Gauge("recommender_degraded", "1 while a store is unreachable and the service degrades "
                              "(views: lists use the last live views read; writes answer 503)", ["component"],
                              registry=r)
        self.reload_refused = Gauge("recommender_index_reload_refused",
                                    "1 while the newest published build was refused (the old one serves)",
                                    ["build_id"], registry=r)

    def export(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)


_CONVERTER = re.compile(r":\w+}")


def route_template(scope: Scope) -> str | None:
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
