"""Service settings (pydantic-settings): from ``RECOMMENDER_*`` environment variables, the CLI or a test."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Everything the lookup service reads; built inside ``create_app`` so tests pass their own.

    Attributes:
        index: the ``current`` pointer of an indexes root (watched for hot reload), the root itself, or a
            build directory (served as it is, never reloaded).
        views: view counter store: ``sqlite`` (``views.sqlite`` next to the index), ``sqlite:///path`` or
            ``redis://host:6379/0`` (shared by replicas).
        write_token: bearer token required by ``POST/DELETE /v1/articles`` and ``POST /v1/events``; unset
            disables writes (401).
        cors_origins: origins allowed to call the API from a browser (the widget's site).
        delta: where the live delta (upserted articles) is kept: a SQLite file (default ``live-delta.sqlite`` in the
            indexes root) or a ``postgresql://`` URL shared by replicas.
        takedowns: where takedowns are kept: a SQLite file (default ``takedowns.sqlite`` in the indexes root) or a
            ``postgresql://`` URL shared by replicas.
        rules: where the editorial rules are kept: a SQLite file (default ``rules.sqlite`` in the indexes root) or
            a ``postgresql://`` URL shared by replicas.
        experiments: where online experiments are defined: a SQLite file (default ``experiments.sqlite`` in the
            indexes root) or a ``postgresql://`` URL shared by replicas; their impressions and clicks are counted
            in the ``views`` store.
        experiment_check_seconds: how often each worker applies the experiments' guardrails (stops an arm
            clearly worse than control).
        experiment_flush_seconds: how often each worker writes the impressions it served inside experiments to
            the counter store (they are kept in the worker until then, off the request path).
        reload_poll_seconds: how often ``current`` is checked for a new version (0: never).
        delta_poll_seconds: how often a worker picks up changes other workers and replicas made to the delta, the
            takedowns and the rules.
        popularity_refresh_seconds: live views reach trending at most this late (0: on the next request).
        list_cache_seconds: a ranked list is served again for up to this long after its popularity snapshot
            (takedowns, upserts, rule changes and new builds invalidate at once); with the refresh, the blend lags
            views by at most the sum. 30 s: a hot page's list is ranked twice a minute per worker, not twelve
            times (at 5 s the hot-page benchmark answered half as many requests, p99 above 5 ms:
            benchmarks/RESULTS.md, "Related inside a running experiment").
        response_cache_entries / response_cache_bytes: bounds of the rendered list responses kept for
            ``list_cache_seconds`` and sent again to repeated requests without routing or ranking
            (``microcache.py``); 0 entries turns that cache off.
        click_rate_per_minute, click_burst: rate limit of ``POST /v1/events/click`` per client address.
        click_counts_as_view: a widget click also counts as a page view of the clicked article.
        mmap_builds: memory-map a build's arrays and index instead of reading them into each worker (saves memory
            for a large archive; then no build file may ever be edited in place, or workers die of SIGBUS: published
            files are read-only, and the supervisor restarts a worker that dies).
        demo_pages: serve ``/demo/articles/{id}`` (the demo article page with the widget; it shows whole bodies,
            so it is off by default).
        opentelemetry: FastAPI's native OpenTelemetry (a span, metrics and logs per request, to the global
            providers a site sets up, e.g. with ``opentelemetry-instrument``). Off by default: left on, FastAPI
            looks for configured providers on every request, cache hits included (three lookups and environment
            reads, 9-11% of a hot list's worker CPU: benchmarks/RESULTS.md), and the service has its own Prometheus
            metrics.
    """

    model_config = SettingsConfigDict(env_prefix="RECOMMENDER_", extra="ignore")

    index: Path = Path("indexes/current")
    views: str = "sqlite"
    write_token: SecretStr | None = None
    cors_origins: list[str] = Field(default_factory=list)
    delta: str | None = None
    takedowns: str | None = None
    rules: str | None = None
    experiments: str | None = None
    experiment_check_seconds: float = Field(default=60.0, gt=0)
    experiment_flush_seconds: float = Field(default=0.25, gt=0, le=60)
    max_body_bytes: int = Field(default=1_000_000, ge=1_000)
    max_header_bytes: int = Field(default=16_384, ge=1_024)
    max_text_chars: int = Field(default=5_000, ge=1)
    max_events_per_batch: int = Field(default=1_000, ge=1)
    max_articles_per_batch: int = Field(default=100, ge=1)
    reload_poll_seconds: float = Field(default=2.0, ge=0)
    delta_poll_seconds: float = Field(default=0.25, gt=0)
    popularity_refresh_seconds: float = Field(default=1.0, ge=0)
    list_cache_seconds: float = Field(default=30.0, ge=0)
    response_cache_entries: int = Field(default=20_000, ge=0)
    response_cache_bytes: int = Field(default=32 * 1024 * 1024, ge=0)
    view_bucket_seconds: int = Field(default=600, ge=1)
    view_retention_hours: float = Field(default=72.0, gt=0)
    max_future_event_seconds: float = Field(default=300.0, ge=0)
    candidate_cache_size: int = Field(default=20_000, ge=0)
    faiss_threads: int = Field(default=1, ge=1)
    mmap_builds: bool = False
    warm_model: bool = True
    # The widget's public click route (no token): a token bucket per client address.
    click_rate_per_minute: float = Field(default=30.0, gt=0)
    click_burst: int = Field(default=20, ge=1)
    # A followed recommendation is also a page view of its article (off when the site sends its own views).
    click_counts_as_view: bool = True
    # /demo/articles/{id}: articles of the index laid out with the widget, full bodies included: off unless asked
    # for (`recommender serve --demo-pages`, on in `make demo`).
    demo_pages: bool = False
    opentelemetry: bool = False
