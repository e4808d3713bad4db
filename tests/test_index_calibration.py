"""efSearch calibration (issue 17): a build raises HNSW's efSearch until recall@10 against exact search reaches
the target, records what it tried, and every reader searches with the value chosen unless it asks for another."""

from __future__ import annotations

import numpy as np

from recommender.build import build
from recommender.build.index_calibration import calibrated
from recommender.config import BuildConfig, IndexConfig
from recommender.storage.index import FaissIndex, exact_search, recall_at_k
from recommender.storage.manifest import read_manifest
from recommender.storage.reader import read_build

from .test_index_update import HashEmbedder, _catalogue, _unit

# A deliberately weak graph (degree 8, efConstruction 16) on 24-dim random vectors: efSearch 8 misses about half
# the exact neighbours, so the calibration has to climb (to 256 when this was written).
WEAK = IndexConfig(factory="HNSW8,Flat", hnsw_m=8, ef_construction=16, ef_search=8, recall_target=0.95,
                   max_ef_search=1024, calibration_queries=300)


def _recall(index: FaissIndex, vectors: np.ndarray, rows: np.ndarray) -> float:
    found, _ = index.search(vectors[rows], 10)
    return recall_at_k(found, exact_search(vectors, vectors[rows], 10)[0])


def test_calibration_picks_the_smallest_doubling_that_reaches_the_target_on_unseen_queries():
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 20_000, 24)
    index = FaissIndex.build(vectors, WEAK)
    held_out = rng.choice(len(vectors), size=300, replace=False)  # not the calibration's own sample
    assert _recall(index, vectors, held_out) < 0.9  # as configured, the index misses neighbours
    tuned, calibration = calibrated(index, vectors, WEAK)
    tried = list(calibration.recall_by_ef_search.items())
    assert [ef for ef, _ in tried] == [8 * 2 ** i for i in range(len(tried))]  # doubling from ef_search
    assert calibration.reached and tried[-1][1] >= 0.95 and all(r < 0.95 for _, r in tried[:-1])
    assert tuned.config.ef_search == calibration.ef_search == tried[-1][0] > 8
    assert _recall(tuned, vectors, held_out) >= 0.94  # holds on queries it was not chosen on (sampling noise)
    capped, short = calibrated(index, vectors, IndexConfig(**{**WEAK.__dict__, "max_ef_search": 16}))
    assert not short.reached and short.ef_search == capped.config.ef_search == 16  # stops at the cap, says so
    same, off = calibrated(index, vectors, IndexConfig(**{**WEAK.__dict__, "recall_target": 0.0}))
    assert off.ef_search == 8 and off.recall_by_ef_search == {}  # 0 turns it off
    flat = FaissIndex.build(vectors[:1000], IndexConfig())
    assert calibrated(flat, vectors[:1000], IndexConfig())[1].recall_by_ef_search == {}  # exact: nothing to tune


def test_a_build_serves_the_calibrated_ef_search_and_a_reader_may_ask_for_another(tmp_path):
    config = BuildConfig(index=IndexConfig(factory="HNSW4,Flat", hnsw_m=4, ef_construction=4, ef_search=1,
                                           recall_target=0.99, calibration_queries=100))
    build(_catalogue(), tmp_path, config=config, embedder=HashEmbedder())
    stored = read_build(tmp_path)
    manifest = read_manifest(stored.directory, verify_files=False)
    calibration = manifest.source["index"]["calibration"]
    chosen = manifest.index["ef_search"]
    assert chosen == calibration["ef_search"] > 1 and calibration["queries"] == 100
    assert calibration["recall_at_10_by_ef_search"]["1"] < 0.99
    assert stored.index.config.ef_search == chosen  # what the build measured is what a reader searches with
    asked = read_build(tmp_path, index_config=IndexConfig(factory="HNSW4,Flat", hnsw_m=4, ef_search=64))
    assert asked.index.config.ef_search == 64
