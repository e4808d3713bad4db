"""The FastAPI app: ``create_app(settings)`` loads the index in the lifespan and wires routes, errors, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
from datetime import datetime
from typing import AsyncIterator, Callable

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from ..embedding.base import Embedder
from ..version import __version__
from .background import background_tasks
from .clicks import install_clicks, install_impressions
from .errors import install_error_handlers
from .experiment_routes import router as experiment_router
from .limits import BodyLimitMiddleware, HeaderLimitMiddleware
from .metrics import Metrics, MetricsMiddleware, worker_exited
from .microcache import ResponseCache
from .pages import install_pages
from .routes import router
from .rule_routes import router as rule_router
from .settings import ServiceSettings
from .state import ServiceState


class ServiceApp(FastAPI):
    """The service's FastAPI app with a *front door*: an ASGI wrapper around FastAPI's whole middleware stack
    (its error, telemetry and body-limit middlewares and ours), here the response cache. A repeated list, or one
    assembled from an experiment's kept lists, then costs no routing and no middleware at all."""

    front: Callable[[Callable], Callable] | None = None

    def build_middleware_stack(self) -> Callable:
        """FastAPI's stack, inside the front door when there is one."""
        stack = super().build_middleware_stack()
        return stack if self.front is None else self.front(stack)


def create_app(settings: ServiceSettings | None = None, embedder: Embedder | None = None,
               clock: Callable[[], datetime] | None = None) -> FastAPI:
    """Build the service.

    Args:
        settings: service settings; None reads ``RECOMMENDER_*`` environment variables.
        embedder: the query-time embedder (tests share one); None loads the build's model.
        clock: "now" of the lists (tests compare the service with the CLI at one moment); default the clock.
    """
    settings = settings or ServiceSettings()
    metrics = Metrics()
    app = ServiceApp(title="recommender", version=__version__, lifespan=_lifespan(settings, metrics, embedder, clock),
                     description="Related, more-like-this and popular articles for news sites, with live updates.",
                     telemetry=None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False})
    app.state.metrics = metrics
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(rule_router)
    app.include_router(experiment_router)
    install_clicks(app, settings.cors_origins)
    install_pages(app, settings.demo_pages)
    _install_middleware(app, settings, metrics)
    return app


def _lifespan(settings: ServiceSettings, metrics: Metrics, embedder: Embedder | None,
              clock: Callable[[], datetime] | None) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager]:
    """What a worker does at start (load the build, warm the model, start the background loops) and at stop."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import faiss

        # One OpenMP thread per worker: single queries are faster and workers do not fight over cores.
        faiss.omp_set_num_threads(settings.faiss_threads)
        state = await asyncio.to_thread(ServiceState, settings, metrics, embedder, clock)
        if settings.warm_model and embedder is None:
            await asyncio.to_thread(state.embedder.encode, ["warm up"])
        # The loaded index and the model's imports (torch alone is ~300k functions, tuples and dicts) are
        # long-lived: move them out of the cyclic GC's reach, after the warm-up has imported everything. Each full
        # collection walked all of them and stalled a worker for up to ~164 ms under load (benchmarks/JOURNAL.md).
        gc.collect()
        gc.freeze()
        app.state.service = state
        tasks = [asyncio.create_task(loop()) for loop in background_tasks(state)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            state.close()
            worker_exited()

    return lifespan


def _install_middleware(app: ServiceApp, settings: ServiceSettings, metrics: Metrics) -> None:
    """CORS, the body and header limits, the impression counter and the metrics (innermost first), and the
    response cache in front of them all."""
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"], max_age=600)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(HeaderLimitMiddleware, max_bytes=settings.max_header_bytes)
    install_impressions(app, settings.cors_origins)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.response_cache_entries:
        # The front door: it counts and times what it answers as the two middlewares above count the app's.
        app.front = functools.partial(
            ResponseCache, max_age_seconds=settings.list_cache_seconds, max_entries=settings.response_cache_entries,
            max_bytes=settings.response_cache_bytes, vary_origin=bool(settings.cors_origins), metrics=metrics,
            widgets=app.state.widget_metrics, origins=frozenset(settings.cors_origins),
            max_header_bytes=settings.max_header_bytes)
