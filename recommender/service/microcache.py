"""A response micro-cache for the public list routes, as ASGI middleware (nginx's ``proxy_cache`` idea, in-process).

A popular article's page is read by many readers at once, and each page view asks for the same related list.
The rendered response is kept for ``list_cache_seconds``, keyed by the route and the parameters that route
accepts (normalised: unknown parameters such as ``?x=junk`` and their order do not make new entries), so a
repeat costs a dictionary lookup instead of routing, validation, ranking and serialisation. The cache is bounded
in bytes and in entries (oldest first out), expired entries are evicted as new ones come, and everything dies
at once when the served build or the live state changes (a takedown, upsert or rule change, in any worker, once
this worker has synced it, or an editorial rule starting or expiring). Only 200 responses are kept; errors always
go through the app.

The cache is the service's front door: it wraps FastAPI's whole middleware stack (``app.ServiceApp``), so what it
answers skips routing and every middleware (a hot list outside experiments costs ~10% less worker CPU:
benchmarks/RESULTS.md), and it counts and times those requests itself exactly as ``MetricsMiddleware`` and
``ImpressionMiddleware`` count the app's: by route, status and latency, and as a widget impression when the request
is one. A list it has not kept (the long tail of an archive: hardly a list repeats there) it ranks itself, with the
routes' own parameter models and functions (``lists.py``) and the headers the app sent for a list of the same
route, Origin and degraded state (its *template*, learned from the app's first answer of that kind), at a fraction
of the worker CPU of routing it (benchmarks/RESULTS.md, the long tail). What it does not answer (a parameter
those models refuse, an unknown article, any error, a request over the header limit, an Origin outside the allowed
ones) goes through the whole stack unchanged.

A list inside an experiment is its own impression: it is assembled here from the arms' kept lists
(``Experiments.serve_kept``) with its kind's template, or ranked here when they are not kept, and the kept lists
it found due are ranked again on the event loop right after the response is sent.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Awaitable, Callable, MutableMapping
from urllib.parse import parse_qsl

from .clicks import WidgetMetrics, impression_widget, is_impression
from .kept_responses import Headers, KeptResponses
from .lists import ARTICLE_ID_MAX_CHARS, PopularQuery, RelatedQuery, popular_list, related_list
from .metrics import Metrics, route_template
from .rendering import body
from .schemas import READER_PATTERN

log = logging.getLogger("recommender.service")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
CACHED_PATHS = re.compile(r"^/v1/(?:articles/.+/related|popular)$")
# What each cached route reads from its query string; anything else leaves its response unchanged.
PARAMETERS = {"related": ("k", "section", "max_age_hours", "explain", "language"),
              "popular": ("k", "section", "window_hours", "explain", "language", "beside")}
READER = re.compile(READER_PATTERN)
_ARTICLES, _RELATED = "/v1/articles/", "/related"
MAX_TEMPLATES = 64  # header templates: routes x allowed origins (and none) x degraded or not


def _widget(scope: Scope) -> str:
    return "popular" if scope["path"] == "/v1/popular" else "related"


def _query(scope: Scope) -> dict[str, str]:
    """The query string's parameters, the last value of each."""
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))


def list_key(scope: Scope, query: dict[str, str] | None = None) -> str:
    """What names a list request's list (its route and parameters, not who asks): the key of an experiment arm's
    kept list (``kept_lists.py``). ``query``: the parsed query string, when the caller has it."""
    return cache_key(scope, vary_origin=False, query=query)


def _part(text: str) -> str:
    return text.replace("\x00", "\x00\x01") if "\x00" in text else text  # a separator is never followed by \x01


def cache_key(scope: Scope, vary_origin: bool, query: dict[str, str] | None = None) -> str:
    """The path, the route's own parameters in a fixed order (the last value of each), and the Origin when CORS
    headers vary by it, joined by NUL (escaped inside each part). A str: a key the garbage collector never
    visits (``kept_responses.py``)."""
    path = scope["path"]
    values = query if query is not None else _query(scope)
    parts = [_part(path)]
    for name in PARAMETERS["popular" if path == "/v1/popular" else "related"]:
        value = values.get(name)
        if value is not None:
            parts.append(f"{name}={_part(value)}")
    if vary_origin:
        origin = next((value for name, value in scope.get("headers", ()) if name == b"origin"), None)
        if origin is not None:
            parts.append("origin=" + _part(origin.decode("latin-1")))
    return "\x00".join(parts)


def _with_length(headers: Headers, body: bytes) -> list[tuple[bytes, bytes]]:
    """A kept header set as sent: its first, the route's id, becomes the body's length."""
    sent = list(headers)
    sent[0] = (b"content-length", str(len(body)).encode())
    return sent


class ResponseCache:
    """Serve the list routes' GETs from rendered bytes while their list would be the same anyway, and rank the
    others here when their parameters are valid (``lists.py``), with the headers the app sends for such a list.

    Args:
        app: the wrapped ASGI app.
        max_age_seconds: how long an entry lives (the service's ``list_cache_seconds``; 0 turns caching off).
        max_entries / max_bytes: the bounds; the oldest entries go first.
        vary_origin: key entries by the ``Origin`` header too (CORS response headers depend on it).
        metrics / widgets / origins: where the requests it answers are counted (None: not counted, e.g. an app
            without metrics), and the origins whose widget requests count as impressions (and whose lists it
            ranks here: another Origin's request always goes to the app, whose CORS middleware judges it).
        max_header_bytes: requests with more header bytes go to the app (which refuses them: ``limits.py``).
    """

    def __init__(self, app: Callable, max_age_seconds: float, max_entries: int = 20_000,
                 max_bytes: int = 32 * 1024 * 1024, vary_origin: bool = False, metrics: Metrics | None = None,
                 widgets: WidgetMetrics | None = None, origins: frozenset[str] = frozenset(),
                 max_header_bytes: int | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.widgets = widgets
        self.origins = origins
        self.max_header_bytes = max_header_bytes
        self._series: dict[int, tuple[Any, Any]] = {}  # a route's request counter and latency histogram (200s)
        self.max_age_seconds = max_age_seconds
        self.vary_origin = vary_origin
        self.entries = KeptResponses(max_entries, max_bytes)  # the responses: route id and headers, body
        # The app's headers for a list, by route, Origin and degraded views (``_kind``): a handful, no body.
        self.templates = KeptResponses(MAX_TEMPLATES, 1024 * 1024)
        self._routes: dict[bytes, Any] = {}  # the app's routes by id, as the first header of an entry's set
        self.generation: tuple | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI event."""
        if (scope["type"] != "http" or scope["method"] != "GET" or self.max_age_seconds <= 0
                or not CACHED_PATHS.match(scope["path"]) or self._headers_over_limit(scope)):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        service = getattr(scope["app"].state, "service", None)
        if service is None:
            await self.app(scope, receive, send)
            return
        generation = service.list_generation()
        if generation != self.generation:
            self.clear()
            self.generation = generation
        query = _query(scope)
        key = cache_key(scope, self.vary_origin, query)
        now = time.monotonic()
        self.entries.expire(now, self.max_age_seconds)
        reader = query.get("reader")
        reader = reader if reader is not None and READER.match(reader) else None  # an invalid one: the app refuses
        running = service.experiments.covering(_widget(scope), reader, service.served.recommender.clock())
        if running is not None and reader is not None:
            await self._experiment_list(scope, receive, send, service, running, reader, query,
                                        self._kind(scope, service.views.degraded), generation, started)
            return
        hit = self.entries.get(key)
        if hit is not None:
            await self._send(scope, send, hit[0], hit[1], started)
            return
        kind = self._kind(scope, service.views.degraded)
        template = None if kind is None else self.templates.get(kind)
        content = None if template is None else self._ranked(scope, service, query)
        if template is None or content is None:
            await self._through_app(scope, receive, send, key, kind, generation, now)
            return
        await self._send(scope, send, template[0], content, started)
        if generation == self.generation:
            self.entries.put(key, template[0], content, now)

    def _headers_over_limit(self, scope: Scope) -> bool:
        return self.max_header_bytes is not None and sum(
            len(name) + len(value) for name, value in scope.get("headers", ())) > self.max_header_bytes

    def _kind(self, scope: Scope, degraded: bool) -> str | None:
        """What the app's headers for a 200 list depend on: the route, the Origin (when CORS headers vary by it)
        and whether live views are degraded (``X-Degraded``); None for an Origin outside ``origins``."""
        kind = f"{_widget(scope)}\x00{int(degraded)}"
        if not self.vary_origin:
            return kind
        origin = next((value for name, value in scope.get("headers", ()) if name == b"origin"), None)
        if origin is None:
            return kind
        text = origin.decode("latin-1")
        return f"{kind}\x00{_part(text)}" if text in self.origins else None

    def _ranked(self, scope: Scope, service: Any, query: dict[str, str]) -> bytes | None:
        """The body the route would send for this request, ranked through the same models and functions
        (``lists.py``); None when the route should answer (an invalid parameter, an unknown article, any error:
        the route raises it again and answers it as it always does)."""
        try:
            if scope["path"] == "/v1/popular":
                listed = popular_list(service, PopularQuery.model_validate(query), list_key(scope, query))
            else:
                article_id = scope["path"][len(_ARTICLES):-len(_RELATED)]
                if len(article_id) > ARTICLE_ID_MAX_CHARS or not service.served.recommender.contains(article_id):
                    return None  # the route's 422 or 404, ranked once
                listed = related_list(service, article_id, RelatedQuery.model_validate(query),
                                      list_key(scope, query))
        except Exception:  # noqa: BLE001 - the route answers it, with the app's error handling
            return None
        return body(*listed)

    async def _send(self, scope: Scope, send: Send, headers: Headers, content: bytes, started: float) -> None:
        """Send a 200 answered here, counted and timed under its route."""
        scope["route"] = self._routes[headers[0][1]]  # the request is counted by its route, as the app's are
        await send({"type": "http.response.start", "status": 200, "headers": _with_length(headers, content)})
        await send({"type": "http.response.body", "body": content})
        self._answered(scope, started)

    def _answered(self, scope: Scope, started: float) -> None:
        """Count and time a 200 answered here: the request under its route, and the impression when the widget
        asked for the list (what the metrics and impression middlewares do for the app's answers)."""
        if self.metrics is None:
            return
        route = id(scope["route"])  # the app's routes live as long as the app (an APIRoute is not hashable)
        series = self._series.get(route)
        if series is None:
            template = route_template(scope) or "unmatched"
            series = (self.metrics.requests.labels("GET", template, "200"),
                      self.metrics.latency.labels("GET", template))
            self._series[route] = series
        series[0].inc()
        series[1].observe(time.perf_counter() - started)
        widget = impression_widget(scope)
        if widget is not None and self.widgets is not None and is_impression(scope, widget, self.origins):
            self.widgets.impressions.labels(widget).inc()

    async def _through_app(self, scope: Scope, receive: Receive, send: Send, key: str | None, kind: str | None,
                           generation: tuple | None, now: float) -> None:
        """Answer from the app; keep a 200 (under ``key``, unless None: an experiment list) and its headers as
        the template of its ``kind``."""
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body" and key is not None:
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if start is None or start["status"] != 200 or generation != self.generation:
            return
        route = scope.get("route")
        route_id = str(id(route)).encode()
        self._routes.setdefault(route_id, route)
        # The route's id travels as a pseudo-header ahead of the real ones, so one interned set says both.
        headers = ((b"", route_id), *((name, value) for name, value in start.get("headers", ())
                                      if name != b"content-length"))
        if key is not None:
            self.entries.put(key, headers, b"".join(chunks), now)
        if kind is not None and self.templates.get(kind) is None:
            self.templates.put(kind, headers, b"", now)

    async def _experiment_list(self, scope: Scope, receive: Receive, send: Send, service: Any, running: Any,
                               reader: str, query: dict[str, str], kind: str | None, generation: tuple | None,
                               started: float) -> None:
        """A list inside an experiment: each is its own impression, never a kept response. When the arms' lists
        it needs are kept (``Experiments.serve_kept``), it is assembled here without ranking, and the lists due
        are ranked again after it is sent; otherwise it is ranked here (``_ranked``: the arms' lists are kept
        then) or, should that or the assembly fail (logged), by the app."""
        template = None if kind is None else self.templates.get(kind)
        if template is None:
            await self._through_app(scope, receive, send, None, kind, generation, time.monotonic())
            return
        recommender = service.served.recommender
        try:
            found = service.experiments.serve_kept(running, _widget(scope), reader, recommender.clock(),
                                                   list_key(scope, query), generation)
            content = None if found is None else body(recommender.manifest.build_id, found[0], found[1])
        except Exception:  # noqa: BLE001 - the app answers it instead, with its own error handling
            log.exception("experiment list %s: assembling it from kept lists failed; ranking it instead",
                          scope["path"])
            found = content = None
        if found is None:
            content = self._ranked(scope, service, query)
        if content is None:
            await self._through_app(scope, receive, send, None, kind, generation, time.monotonic())
            return
        await self._send(scope, send, template[0], content, started)
        if found is not None and found[2]:
            asyncio.get_running_loop().call_soon(service.experiments.refresh, found[2])

    def clear(self) -> None:
        """Drop every entry."""
        self.entries.clear()
        self.templates.clear()
