"""Embedding executors: the Ray Data job (local Ray instance) gives the local executor's vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.build import build
from recommender.build.executors import LocalExecutor, RayConfig, RayExecutor, make_executor
from recommender.catalogue import embedding_texts, read_catalogue
from recommender.catalogue.demo import demo_files
from recommender.query import Recommender

pytestmark = pytest.mark.slow


def test_unknown_executor_is_refused():
    """A typo names the choices."""
    assert isinstance(make_executor("local"), LocalExecutor)
    with pytest.raises(ValueError, match="unknown executor 'spark'; choose local or ray"):
        make_executor("spark")


def test_ray_executor_matches_local_vectors(tmp_path, embedder):
    """A build whose embedding stage ran on Ray (2 CPUs, one actor) has the local model's vectors within 1e-5."""
    import ray  # the "ray" extra, part of the test extra
    frame = pd.read_json(demo_files()[0], lines=True, dtype={"id": str}).drop(columns=["story"]).iloc[:30]
    try:
        # A fresh cache: all 30 texts go through Ray, none come from the suite cache.
        report = build(frame, tmp_path / "idx", embedder=embedder, cache_path=tmp_path / "cache.sqlite",
                       executor=RayExecutor(RayConfig(num_cpus=2, num_actors=1, batch_size=8)))
    finally:
        ray.shutdown()
    assert report.executor == "ray" and report.embedded == 30 and report.published
    built = Recommender.load(tmp_path / "idx", embedder=embedder)
    local = embedder.encode(embedding_texts(read_catalogue(frame).articles, 1_500))
    np.testing.assert_allclose(np.asarray(built.table.vectors), local, atol=1e-5)
