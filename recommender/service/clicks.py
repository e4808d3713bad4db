"""Widget clicks: a public click-event route (validated, per-IP rate-limited, size-limited) and widget metrics.

A page cannot hold the write token, so clicks do not go through ``POST /v1/events``. ``POST /v1/events/click``
takes one click at a time with no token; what an anonymous caller can do with it is bounded: one event per
request, only for an article the index lists, at ``click_rate_per_minute`` per client address (burst
``click_burst``). A click counts as a ``click`` and, with ``click_counts_as_view``, as a page view of the
article (the reader lands on it), so it reaches ``popular`` like any other view.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ..errors import UnknownArticleError
from .counters import CountedEvent
from .errors import ApiError
from .metrics import route_template
from .schemas import ErrorResponse, Text

WIDGETS = ("related", "more-like-this", "popular")
LIST_ROUTES = frozenset({"/v1/articles/{article_id}/related", "/v1/more-like-this", "/v1/popular"})
# A click is ~100 bytes of JSON; anything much larger is not from the widget.
MAX_CLICK_BYTES = 2_048

router = APIRouter()


class ClickEvent(BaseModel):
    """One followed recommendation: the article clicked, the widget that listed it and the page it was on."""

    model_config = ConfigDict(extra="forbid")

    article_id: Text = Field(min_length=1, max_length=200)
    widget: Literal["related", "more-like-this", "popular"]
    source_id: Text | None = Field(default=None, min_length=1, max_length=200)


class RateLimiter:
    """Token buckets per key: ``burst`` tokens, refilled at ``per_minute / 60`` a second.

    At most ``max_keys`` buckets are kept (the least recently seen go first), so a flood of addresses costs
    bounded memory; a forgotten address starts again with a full bucket.
    """

    def __init__(self, per_minute: float, burst: int, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0 or burst < 1 or max_keys < 1:
            raise ValueError(f"per_minute must be > 0, burst >= 1 and max_keys >= 1, got {per_minute}, {burst}, "
                             f"{max_keys}")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one token for ``key``; returns 0.0 when allowed, else the seconds until a token is due."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens - 1.0 if wait == 0.0 else tokens, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait


class WidgetMetrics:
    """Per-widget counters in the app's registry: click-through is ``clicks / impressions`` per widget."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.clicks = Counter("recommender_widget_clicks", "Recommendations followed, by widget", ["widget"],
                              registry=registry)
        self.impressions = Counter("recommender_widget_impressions", "Lists served to the widget, by widget",
                                   ["widget"], registry=registry)
        self.refused = Counter("recommender_widget_clicks_refused", "Click events refused, by reason", ["reason"],
                               registry=registry)


class ImpressionMiddleware:
    """Counts a list answered 200 to a request marked ``?widget=<kind>`` (what ``widget.js`` sends)."""

    def __init__(self, app: Callable, metrics: WidgetMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if b"widget=" not in query:
            await self.app(scope, receive, send)
            return
        widget = parse_qs(query.decode("latin-1")).get("widget", [""])[0]
        status = 0

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_status)
        if status == 200 and widget in WIDGETS and route_template(scope) in LIST_ROUTES:
            self.metrics.impressions.labels(widget).inc()


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise ApiError(413, "payload_too_large", f"a click event is at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"a click event is at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(request: Request, reason: str, error: Exception) -> Exception:
    request.app.state.widget_metrics.refused.labels(reason).inc()
    return error


@router.post("/v1/events/click", status_code=204, tags=["events"],
             responses={code: {"model": ErrorResponse} for code in (404, 413, 422, 429)},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": ClickEvent.model_json_schema()},
                 "text/plain": {"schema": {"type": "string", "description": "The same JSON object (what "
                                           "navigator.sendBeacon sends: no CORS preflight)."}}}}})
async def click(request: Request) -> Response:
    """One widget click, public (no token): the clicked article gets a click (and a view); rate-limited per client."""
    state = request.app.state.service
    settings = state.settings
    wait = request.app.state.click_limiter.take(request.client.host if request.client else "unknown")
    if wait:
        raise _refuse(request, "rate_limited", ApiError(
            429, "rate_limited", f"too many click events from this address; retry in {math.ceil(wait)} s",
            {"Retry-After": str(math.ceil(wait))}))
    try:
        raw = await _read_body(request, MAX_CLICK_BYTES)
        event = ClickEvent.model_validate_json(raw)
    except ApiError as exc:
        raise _refuse(request, "too_large", exc) from None
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        raise _refuse(request, "invalid", ApiError(
            422, "invalid_click", f"a click event is {{\"article_id\", \"widget\": one of {', '.join(WIDGETS)}, "
            f"\"source_id\" (optional)}}: {where}")) from None
    live = state.served.recommender
    for article_id in (event.article_id, event.source_id):
        if article_id is not None and not live.contains(article_id):
            raise _refuse(request, "unknown_article", UnknownArticleError(article_id))
    now = datetime.now(timezone.utc)
    events = [CountedEvent(event.article_id, now, 1, "click")]
    if settings.click_counts_as_view:
        events.append(CountedEvent(event.article_id, now, 1, "view"))
    await run_in_threadpool(state.counter.add, events)
    for counted in events:
        state.metrics.events.labels(counted.kind).inc()
    request.app.state.widget_metrics.clicks.labels(event.widget).inc()
    if settings.popularity_refresh_seconds == 0:
        await run_in_threadpool(live.refresh_popularity)
    return Response(status_code=204)


def install_clicks(app: FastAPI, per_minute: float, burst: int) -> None:
    """Add the click route, its rate limiter and the widget metrics (in the app's registry) to ``app``."""
    metrics = WidgetMetrics(app.state.metrics.registry)
    app.state.widget_metrics = metrics
    app.state.click_limiter = RateLimiter(per_minute, burst)
    app.include_router(router)
    app.add_middleware(ImpressionMiddleware, metrics=metrics)
