"""A response micro-cache for the public list routes, as ASGI middleware (nginx's ``proxy_cache`` idea, in-process).

A popular article's page is read by many readers at once, and each page view asks for the same related list.
The live recommender already reuses a ranked list for ``list_cache_seconds`` (same build, same live delta); this
keeps the *rendered response* for exactly as long, keyed by path and query string, so a repeat costs a dictionary
lookup instead of routing, parameter validation, ranking and serialisation. An entry dies at once when the served
build or the live delta changes (a takedown or upsert, in any worker, once this worker has synced it), like the
ranked-list cache behind it. Only 200 responses are kept; errors always go through the app.
"""

from __future__ import annotations

import re
import time
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
CACHED_PATHS = re.compile(r"^/v1/(?:articles/.+/related|popular)$")


class ResponseCache:
    """Serve repeated GETs of the list routes from rendered bytes while their list would be reused anyway.

    Args:
        app: the wrapped ASGI app.
        max_age_seconds: how long an entry lives (the service's ``list_cache_seconds``; 0 turns caching off).
        max_entries: entries kept; the cache is cleared whole when full (a build or delta change clears it too).
        vary_origin: key entries by the ``Origin`` header too (CORS response headers depend on it).
    """

    def __init__(self, app: Callable, max_age_seconds: float, max_entries: int = 20_000,
                 vary_origin: bool = False) -> None:
        self.app = app
        self.max_age_seconds = max_age_seconds
        self.max_entries = max_entries
        self.vary_origin = vary_origin
        self.entries: dict[tuple, tuple[float, Any, list, bytes]] = {}
        self.generation: tuple | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "GET" or self.max_age_seconds <= 0
                or not CACHED_PATHS.match(scope["path"])):
            await self.app(scope, receive, send)
            return
        service = getattr(scope["app"].state, "service", None)
        if service is None:
            await self.app(scope, receive, send)
            return
        generation = (service.served.path, service.served.loaded_at, service.live.overlay.seq)
        if generation != self.generation:
            self.entries.clear()
            self.generation = generation
        key = (scope["path"], scope["query_string"], self._origin(scope) if self.vary_origin else None)
        now = time.monotonic()
        hit = self.entries.get(key)
        if hit is not None and now - hit[0] < self.max_age_seconds:
            scope["route"] = hit[1]  # the metrics middleware labels the request by its route
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
            if len(self.entries) >= self.max_entries:
                self.entries.clear()
            self.entries[key] = (now, scope.get("route"), list(start.get("headers", [])), b"".join(chunks))

    @staticmethod
    def _origin(scope: Scope) -> bytes | None:
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                return value
        return None
