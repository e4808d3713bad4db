"""Widget clicks and impressions: a public click-event route (validated, rate-limited, size-limited, Origin-
checked) and the widget metrics.

A page cannot hold the write token, so clicks do not go through ``POST /v1/events``. ``POST /v1/events/click``
takes one click at a time with no token; what an anonymous caller can do with it is bounded: one event per
request, only for an article the index lists, at ``click_rate_per_minute`` per client address (burst
``click_burst``; the buckets live in the view counters' store, shared by the workers of a node or, with Redis,
by every replica), and, when the service has a CORS allow-list, only from those origins. A click counts as a
``click`` and, with ``click_counts_as_view``, as a page view of the article, so it reaches ``popular``.

An impression is a list answered 200 to the widget's own request: ``?widget=<kind>`` on a list route, fetched
by a browser in CORS mode (``Sec-Fetch-Mode: cors``) from an allowed origin (or from the service's own pages
when there is no allow-list). Cached answers count too: the response cache counts the ones it answers.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Awaitable, Callable, Literal, Mapping
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ..errors import UnknownArticleError
from ..experiments.impression_token import MAX_ID_CHARS
from .counters import CountedEvent
from .errors import ApiError
from .metrics import route_template
from .ratelimit import RateLimiter, shared_rate_limiter
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
    impression_id: str | None = Field(default=None, pattern=rf"^[A-Za-z0-9_-]{{8,{MAX_ID_CHARS}}}$",
                                      description="The list's impression id, when it was served inside an "
                                                  "experiment.")


class WidgetMetrics:
    """Per-widget counters in the app's registry: click-through is ``clicks / impressions`` per widget."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.clicks = Counter("recommender_widget_clicks", "Recommendations followed, by widget", ["widget"],
                              registry=registry)
        self.impressions = Counter("recommender_widget_impressions", "Lists served to the widget, by widget",
                                   ["widget"], registry=registry)
        self.refused = Counter("recommender_widget_clicks_refused", "Click events refused, by reason", ["reason"],
                               registry=registry)
        self.experiment_clicks = Counter("recommender_experiment_clicks", "Clicks that came back with an impression "
                                         "id: credited to an experiment's arm, or not (unknown or expired impression, "
                                         "an item it did not show, a repeat)", ["outcome"], registry=registry)


def impression_widget(scope: Mapping[str, Any]) -> str | None:
    """The ``widget`` a request is marked with (``?widget=<kind>``, what ``widget.js`` sends); None when unmarked."""
    query = scope.get("query_string", b"") if scope["type"] == "http" else b""
    if b"widget=" not in query:
        return None
    return parse_qs(query.decode("latin-1")).get("widget", [""])[0]


def is_impression(scope: Mapping[str, Any], widget: str, origins: frozenset[str]) -> bool:
    """Whether a 200 answered to a request marked ``widget`` is an impression: a list route (``scope["route"]``
    set by routing or by the response cache) fetched by the widget itself."""
    return widget in WIDGETS and route_template(scope) in LIST_ROUTES and widget_request(scope, origins)


class ImpressionMiddleware:
    """Counts a list answered 200 to a request marked ``?widget=<kind>`` (what ``widget.js`` sends); the response
    cache counts the ones it answers itself the same way."""

    def __init__(self, app: Callable, metrics: WidgetMetrics, origins: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.metrics = metrics
        self.origins = origins

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        """Handle one ASGI event."""
        widget = impression_widget(scope)
        if widget is None:
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_status)
        if status == 200 and is_impression(scope, widget, self.origins):
            self.metrics.impressions.labels(widget).inc()


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def widget_request(scope: Mapping[str, Any], origins: frozenset[str]) -> bool:
    """Whether a list request is the widget's own fetch: a browser in CORS mode, from the service's own pages or
    an allowed origin. An ``<img>``, a link or a page of another site is not."""
    if _header(scope, b"sec-fetch-mode") != "cors":
        return False
    return _header(scope, b"sec-fetch-site") == "same-origin" or _header(scope, b"origin") in origins


def allowed_click(request: Request, origins: frozenset[str]) -> bool:
    """Whether a click may be counted: with an allow-list, only from the service's own pages or those origins;
    without, from anywhere but a page of another site (``Sec-Fetch-Site: cross-site``)."""
    site = request.headers.get("sec-fetch-site")
    if origins:
        return site == "same-origin" or request.headers.get("origin") in origins
    return site != "cross-site"


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
    if not allowed_click(request, request.app.state.click_origins):
        raise _refuse(request, "origin", ApiError(
            403, "origin_not_allowed", f"clicks are counted only from the site's pages (origin "
            f"{request.headers.get('origin')!r} is not in the allow-list)"))
    address = request.client.host if request.client else "unknown"
    wait = await run_in_threadpool(_limiter(request).take, address)
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
            f"\"source_id\" and \"impression_id\" (optional)}}: {where}")) from None
    live = state.served.recommender
    for article_id in (event.article_id, event.source_id):
        if article_id is not None and not live.contains(article_id):
            raise _refuse(request, "unknown_article", UnknownArticleError(article_id))
    now = datetime.now(UTC)
    events = [CountedEvent(event.article_id, now, 1, "click")]
    if settings.click_counts_as_view:
        events.append(CountedEvent(event.article_id, now, 1, "view"))
    await run_in_threadpool(state.counter.add, events)
    for counted in events:
        state.metrics.events.labels(counted.kind).inc()
    request.app.state.widget_metrics.clicks.labels(event.widget).inc()
    if event.impression_id is not None:
        credited = await run_in_threadpool(state.experiments.clicked, event.impression_id, event.article_id,
                                            now)
        request.app.state.widget_metrics.experiment_clicks.labels("credited" if credited else "not_credited").inc()
    if settings.popularity_refresh_seconds == 0:
        await run_in_threadpool(state.refresh_popularity)
    return Response(status_code=204)


def _limiter(request: Request) -> RateLimiter:
    """The click rate limiter, made on first use with the service's counter store (shared buckets)."""
    app_state = request.app.state
    if getattr(app_state, "click_limiter", None) is None:
        settings = app_state.settings
        app_state.click_limiter = shared_rate_limiter(app_state.service.counter, settings.click_rate_per_minute,
                                                      settings.click_burst)
    return app_state.click_limiter


def install_clicks(app: FastAPI, origins: list[str]) -> None:
    """Add the click route and the widget metrics (in the app's registry) to ``app``; ``install_impressions``
    adds the impression counter of the lists the app answers."""
    app.state.widget_metrics = WidgetMetrics(app.state.metrics.registry)
    app.state.click_origins = frozenset(origins)
    app.state.click_limiter = None
    app.include_router(router)


def install_impressions(app: FastAPI, origins: list[str]) -> None:
    """Count impressions of the widget's lists the app answers (the response cache counts its own)."""
    app.add_middleware(ImpressionMiddleware, metrics=app.state.widget_metrics, origins=frozenset(origins))
