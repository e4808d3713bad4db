"""The neighbour and related stages on Ray actors (a real local Ray instance, real FAISS): the same bytes as the
local executor, shard for shard, in a full build and in an incremental rebuild."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from recommender.build import build
from recommender.build.executors import RayConfig, RayExecutor
from recommender.build.index_update import updated
from recommender.build.neighbours import neighbour_search
from recommender.build.ray_stages import RayShards
from recommender.build.related_tables import RelatedState
from recommender.build.shards import LocalShards
from recommender.catalogue.demo import demo_files
from recommender.config import BuildConfig, IndexConfig
from recommender.storage.index import FaissIndex
from recommender.storage.layout import IDS, INDEX, RELATED_ROWS, RELATED_SCORES, VECTORS
from recommender.storage.manifest import read_manifest

from .test_shards import assert_same_bytes, stage_arrays, synthetic

pytestmark = pytest.mark.slow
FACTORIES = ["Flat", "HNSW16,Flat"]


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """One local Ray instance (2 CPUs) for the module; the executors find it initialised."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("factory", FACTORIES)
def test_ray_shards_give_the_local_shards_bytes(factory):
    """2,000 articles in shards of 300 rows on two actors holding the index, vectors and TF-IDF matrix: every
    array of the neighbour and related stages equals the in-process run's."""
    vectors, texts, tags = synthetic(2_000)
    config = BuildConfig(index=IndexConfig(factory=factory), neighbour_count=20, neighbour_margin=4)
    local = stage_arrays(vectors, texts, tags, config, LocalShards(300))
    assert_same_bytes(stage_arrays(vectors, texts, tags, config, RayShards(300, num_actors=2)), local)


def test_ray_actors_search_an_incrementally_updated_index_as_the_build_does():
    """An HNSW index updated in place (tombstones and appended rows, positions mapped) travels to the actors with
    its positions: the actors' neighbour tables equal the in-process ones and never name a removed article."""
    vectors, _, _ = synthetic(2_200)
    config = IndexConfig(factory="HNSW16,Flat")
    old = FaissIndex.build(vectors[:2_000], config)
    new = vectors[200:]  # the first 200 articles removed; 200 new ones appended at the end
    index = updated(old, new, np.arange(200, 2_000), np.arange(1_800), config)
    assert index is not None and index.positions is not None and (index.positions == -1).sum() == 200
    local = neighbour_search(LocalShards(300), index, new, 10)(np.arange(len(new)))
    remote = neighbour_search(RayShards(300, num_actors=2), index, new, 10)(np.arange(len(new)))
    assert local[0].tobytes() == remote[0].tobytes() and local[1].tobytes() == remote[1].tobytes()
    assert local[0].max() < len(new) and (local[0] >= 0).all()


def _edited(frame: pd.DataFrame) -> pd.DataFrame:
    """The next night: two articles edited, one deleted, the held-back ones published."""
    edited = frame.copy()
    for row in (3, 40):
        edited.loc[row, "body"] = "Correction: an earlier version misstated a figure. " + edited.loc[row, "body"]
    return edited.drop(index=[22]).reset_index(drop=True)


def _stage_files(path: object) -> dict[str, object]:
    """What must match between the two builds: the manifest's checksums of the data files the stages write or
    read, and every array of the related state (its meta holds the fit time, so the file's bytes differ)."""
    manifest = read_manifest(path)  # type: ignore[arg-type]
    files = {name: manifest.files[name]["sha256"] for name in (IDS, VECTORS, INDEX, RELATED_ROWS, RELATED_SCORES)}
    state = RelatedState.load(path)  # type: ignore[arg-type]
    assert state is not None and state.lexical is not None and state.matrix is not None
    meta = {k: v for k, v in state.meta.items() if k != "lexical_fitted_at"}
    arrays = {"dense_rows": state.dense.rows, "dense_scores": state.dense.scores, "dense_floor": state.dense.floor,
              "lexical_rows": state.lexical.rows, "lexical_scores": state.lexical.scores,
              "candidates": state.candidates, "cosines": state.cosines, "pair_lexical": state.lexical_scores,
              "shared": state.shared, "matrix": state.matrix.data}
    return {"files": files, "meta": json.dumps(meta, sort_keys=True), "arrays": arrays,
            "related": manifest.source["related"]}


@pytest.mark.parametrize("factory", FACTORIES)
def test_a_ray_build_and_rebuild_equal_the_local_ones(tmp_path, embedder, cache_path, factory):
    """The demo corpus built with ``--executor ray`` (2 actors, shards of 40 rows) and with the local executor:
    the neighbour and related files have the same checksums and the related state the same arrays; then the
    same incremental rebuild on both (sharded re-searches of the changed rows) matches again."""
    articles, _ = demo_files()
    frame = pd.read_json(articles, lines=True, dtype={"id": str}).drop(columns=["story"])
    config = BuildConfig(index=IndexConfig(factory=factory), neighbour_count=10, neighbour_margin=3,
                         query_shard_rows=40)
    ray_executor = RayExecutor(RayConfig(num_actors=2))
    roots = {"local": tmp_path / "local", "ray": tmp_path / "ray"}
    found = {}
    for name, root in roots.items():
        report = build(frame.iloc[:-4], root, config=config, embedder=embedder, cache_path=cache_path,
                       executor=ray_executor if name == "ray" else None)
        found[name] = _stage_files(report.path)
        assert read_manifest(report.path).source["executor"] == name
    _assert_equal_builds(found["local"], found["ray"])
    for name, root in roots.items():
        report = build(_edited(frame), root, config=config, embedder=embedder, cache_path=cache_path,
                       executor=ray_executor if name == "ray" else None)
        found[name] = _stage_files(report.path)
    assert found["ray"]["related"]["mode"] == "incremental"
    assert 0 < found["ray"]["related"]["dense_rows_searched"] < len(frame)
    _assert_equal_builds(found["local"], found["ray"])
    shutil.rmtree(tmp_path)


def _assert_equal_builds(local: dict[str, object], ray: dict[str, object]) -> None:
    assert ray["files"] == local["files"]
    assert ray["meta"] == local["meta"]
    assert ray["related"] == local["related"]
    assert_same_bytes(ray["arrays"], local["arrays"])  # type: ignore[arg-type]
