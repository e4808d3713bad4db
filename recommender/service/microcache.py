"""A response micro-cache for the public list routes, as ASGI middleware (nginx's ``proxy_cache`` idea, in-process).

A popular article's page is read by many readers at once, and each page view asks for the same related list.
The rendered response is kept for ``list_cache_seconds``, keyed by the route and the parameters that route
accepts (normalised: unknown parameters such as ``?x=junk`` and their order do not make new entries), so a
repeat costs a dictionary lookup instead of routing, validation, ranking and serialisation. The cache is bounded
in bytes and in entries (oldest first out), expired entries are evicted as new ones come, and everything dies
at once when the served build or the live state changes (a takedown, upsert or rule change, in any worker, once
this worker has synced it, or an editorial rule starting or expiring). Only 200 responses are kept; errors always
go through the app.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
CACHED_PATHS = re.compile(r"^/v1/(?:articles/.+/related|popular)$")
# What each cached route reads from its query string; anything else leaves its response unchanged.
PARAMETERS = {"related": ("k", "section", "max_age_hours", "explain", "language"),
              "popular": ("k", "section", "window_hours", "explain", "language", "beside")}
Entry = tuple[float, Any, list, bytes]


def cache_key(scope: Scope, vary_origin: bool) -> tuple:
    """(path, the route's own parameters sorted, last value of each, the Origin when CORS headers vary by it)."""
    path = scope["path"]
    accepted = PARAMETERS["popular" if path == "/v1/popular" else "related"]
    values = {name: value for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                                        keep_blank_values=True) if name in accepted}
    origin = None
    if vary_origin:
        origin = next((value for name, value in scope.get("headers", ()) if name == b"origin"), None)
    return path, tuple(sorted(values.items())), origin


class ResponseCache:
    """Serve repeated GETs of the list routes from rendered bytes while their list would be the same anyway.

    Args:
        app: the wrapped ASGI app.
        max_age_seconds: how long an entry lives (the service's ``list_cache_seconds``; 0 turns caching off).
        max_entries / max_bytes: the bounds; the oldest entries go first.
        vary_origin: key entries by the ``Origin`` header too (CORS response headers depend on it).
    """

    def __init__(self, app: Callable, max_age_seconds: float, max_entries: int = 20_000,
                 max_bytes: int = 32 * 1024 * 1024, vary_origin: bool = False) -> None:
        self.app = app
        self.max_age_seconds = max_age_seconds
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.vary_origin = vary_origin
        self.entries: OrderedDict[tuple, Entry] = OrderedDict()
        self.bytes = 0
        self.generation: tuple | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI event."""
        if (scope["type"] != "http" or scope["method"] != "GET" or self.max_age_seconds <= 0
                or not CACHED_PATHS.match(scope["path"])):
            await self.app(scope, receive, send)
            return
        service = getattr(scope["app"].state, "service", None)
        if service is None or self._in_experiment(scope, service):
            await self.app(scope, receive, send)
            return
        rules = service.live.ruleset
        # A rule change, or a rule starting or expiring, makes every kept response stale.
        generation = (service.served.path, service.served.loaded_at, service.live.overlay.seq, rules.seq,
                      rules.validity(service.served.recommender.clock().timestamp() / 3600)[0])
        if generation != self.generation:
            self.clear()
            self.generation = generation
        key = cache_key(scope, self.vary_origin)
        now = time.monotonic()
        self._expire(now)
        hit = self.entries.get(key)
        if hit is not None:
            scope["route"] = hit[1]  # the metrics and impression middlewares label the request by its route
            await send({"type": "http.response.start", "status": 200, "headers": hit[2]})
            await send({"type": "http.response.body", "body": hit[3]})
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if start is not None and start["status"] == 200 and generation == self.generation:
            self._add(key, (now, scope.get("route"), list(start.get("headers", [])), b"".join(chunks)))

    @staticmethod
    def _in_experiment(scope: Scope, service: Any) -> bool:
        """A list a running experiment serves to this reader: each is its own impression, never a cached one."""
        query = scope.get("query_string", b"")
        if b"reader=" not in query:
            return False
        reader = dict(parse_qsl(query.decode("latin-1"))).get("reader")
        widget = "popular" if scope["path"] == "/v1/popular" else "related"
        return bool(service.experiments.covers(widget, reader, service.served.recommender.clock()))

    def _add(self, key: tuple, entry: Entry) -> None:
        size = len(entry[3]) + sum(len(k) + len(v) for k, v in entry[2])
        if size > self.max_bytes:
            return
        old = self.entries.pop(key, None)
        if old is not None:
            self.bytes -= self._size(old)
        self.entries[key] = entry
        self.bytes += size
        while self.entries and (self.bytes > self.max_bytes or len(self.entries) > self.max_entries):
            _, evicted = self.entries.popitem(last=False)
            self.bytes -= self._size(evicted)

    def _expire(self, now: float) -> None:
        # Entries are kept in insertion order, which is expiry order.
        while self.entries:
            key, entry = next(iter(self.entries.items()))
            if now - entry[0] < self.max_age_seconds:
                return
            del self.entries[key]
            self.bytes -= self._size(entry)

    @staticmethod
    def _size(entry: Entry) -> int:
        return len(entry[3]) + sum(len(k) + len(v) for k, v in entry[2])

    def clear(self) -> None:
        """Drop every entry."""
        self.entries.clear()
        self.bytes = 0
