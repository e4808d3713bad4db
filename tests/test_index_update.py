"""Incremental HNSW index (issue 17): tombstones + appends keep recall against exact search over 30 nights of
churn, never return a removed article, and a damaged current index is rebuilt, not reused."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd
import pytest

from recommender.build import build
from recommender.build.index_update import updated
from recommender.catalogue.demo import demo_files
from recommender.config import BuildConfig, EmbedderConfig, IndexConfig
from recommender.embedding.base import Embedder, ModelIdentity
from recommender.errors import IndexFormatError
from recommender.storage import layout
from recommender.storage.index import FaissIndex, exact_search, recall_at_k
from recommender.storage.manifest import read_manifest
from recommender.storage.reader import read_build

HNSW = IndexConfig(factory="HNSW32,Flat", ef_construction=40, ef_search=64)


class HashEmbedder(Embedder):
    """A deterministic stand-in for the model: a unit vector drawn from each text's sha256."""

    def __init__(self, dims: int = 16) -> None:
        self.config = EmbedderConfig()
        self.identity = ModelIdentity("hash-embedder", dims, "0" * 64, "hash-fp32")

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        out = np.stack([np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little"))
                        .normal(size=self.identity.dims) for t in texts]).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_thirty_nights_of_churn_keep_recall_and_never_return_removed_articles():
    """20k vectors, 30 nights of 1% churn (half edited, half taken down, as many new): recall@10 of the updated
    index against exact search stays >= 0.95 every night, the old vector of a removed or edited article never
    finds it (a tombstone that leaked would be its own nearest neighbour), and compaction happens."""
    rng = np.random.default_rng(0)
    n, d = 20_000, 32
    vectors, ids = _unit(rng, n, d), np.arange(n)
    index, next_id, modes = FaissIndex.build(vectors, HNSW), n, []
    for _night in range(30):
        changed = rng.choice(len(vectors), size=n // 100, replace=False)
        edited, removed = np.sort(changed[: len(changed) // 2]), np.sort(changed[len(changed) // 2:])
        kept = np.setdiff1d(np.arange(len(vectors)), removed)
        gone_vectors = vectors[np.concatenate([edited, removed])]
        gone_ids = set(ids[removed].tolist())
        fresh = np.concatenate([vectors[kept], _unit(rng, len(removed), d)])
        edited_new = np.searchsorted(kept, edited)
        fresh[edited_new] = _unit(rng, len(edited), d)
        ids = np.concatenate([ids[kept], np.arange(next_id, next_id + len(removed))])
        next_id += len(removed)
        reused = np.setdiff1d(np.arange(len(kept)), edited_new)
        positions = index.positions if index.positions is not None else np.arange(index.rows_total)
        row_of = np.full(len(vectors), -1)
        row_of[positions[positions >= 0]] = np.flatnonzero(positions >= 0)
        next_index = updated(index, fresh, row_of[kept[reused]], reused, HNSW)
        modes.append("incremental" if next_index is not None else "compaction")
        index, vectors = next_index or FaissIndex.build(fresh, HNSW), fresh
        assert index.count == len(vectors)
        sample = rng.choice(len(vectors), size=300, replace=False)
        found, _ = index.search(vectors[sample], 10)
        assert recall_at_k(found, exact_search(vectors, vectors[sample], 10)[0]) >= 0.95
        hits, _ = index.search(gone_vectors, 1)
        assert not np.isin(ids[hits[:, 0]], list(gone_ids)).any()
        assert (hits[:, 0] >= 0).all() and (hits[:, 0] < len(vectors)).all()
    assert "compaction" in modes and modes.count("incremental") >= 20


def test_positions_that_do_not_cover_every_article_are_refused():
    """A positions array naming an article twice (so another is unfindable) is a damaged build."""
    vectors = _unit(np.random.default_rng(1), 100, 8)
    index = FaissIndex.build(vectors, HNSW)
    with pytest.raises(IndexFormatError, match="exactly once"):
        FaissIndex(index.index, index.factory, HNSW, np.r_[np.arange(99), 5])


def _catalogue() -> pd.DataFrame:
    articles, _ = demo_files()
    return pd.read_json(articles, lines=True, dtype={"id": str}).drop(columns=["story"])


def _source(root: object) -> dict:
    return read_manifest(read_build(root).directory, verify_files=False).source["index"]


def test_a_rebuild_updates_the_current_index_and_the_reader_maps_positions(tmp_path):
    """With HNSW forced, the second build appends only the edited and new articles, tombstones the edited and
    removed ones, and the stored build searches like exact search over its own vectors; Flat builds keep the
    old layout (no positions file)."""
    config, embedder = BuildConfig(index=HNSW), HashEmbedder()
    frame = _catalogue()
    build(frame, tmp_path, config=config, embedder=embedder)
    assert _source(tmp_path)["mode"] == "full"
    edited = frame.copy()
    edited.loc[[3, 10], "body"] = "Correction: " + edited.loc[[3, 10], "body"]
    removed_id = str(edited.loc[20, "id"])
    removed_vector = read_build(tmp_path).vectors[20].copy()
    edited = edited.drop(index=20).reset_index(drop=True)
    build(edited, tmp_path, config=config, embedder=embedder)
    stored = read_build(tmp_path)
    info = _source(tmp_path)
    assert info["mode"] == "incremental" and info["appended"] == 2 and info["tombstoned"] == 3
    assert stored.index.rows_total == len(frame) + 2 and layout.INDEX_POSITIONS in stored.manifest.files
    assert stored.manifest.format_version == 3  # readers from before the positions refuse it, not misread it
    found, _ = stored.index.search(np.asarray(stored.vectors), 5)
    exact, _ = exact_search(np.asarray(stored.vectors), np.asarray(stored.vectors), 5)
    assert recall_at_k(found, exact) >= 0.95 and (found[:, 0] == np.arange(len(edited))).mean() >= 0.99
    hit, _ = stored.index.search(removed_vector[None, :], 3)
    assert (hit >= 0).all() and removed_id not in stored.articles["id"].to_numpy()[hit[0]]
    flat = tmp_path / "flat"
    build(frame, flat, config=BuildConfig(), embedder=embedder)
    build(edited, flat, config=BuildConfig(), embedder=embedder)
    assert _source(flat)["mode"] == "full" and layout.INDEX_POSITIONS not in read_build(flat).manifest.files
    assert read_build(flat).manifest.format_version == 2


def test_a_damaged_current_index_is_rebuilt_with_a_warning(tmp_path, caplog):
    """A current vectors.faiss whose bytes differ from its manifest sha256 is not reused: the rebuild builds
    the index in full, says so in a warning, and the new build searches correctly."""
    config, embedder = BuildConfig(index=HNSW), HashEmbedder()
    frame = _catalogue()
    build(frame, tmp_path, config=config, embedder=embedder)
    path = read_build(tmp_path).directory / layout.INDEX
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    edited = frame.copy()
    edited.loc[0, "body"] = "Update: " + edited.loc[0, "body"]
    with caplog.at_level(logging.WARNING, logger="recommender.build"):
        build(edited, tmp_path, config=config, embedder=embedder)
    assert "building the index from scratch" in caplog.text
    info = _source(tmp_path)
    assert info["mode"] == "full" and "unusable" in info["reason"]
    stored = read_build(tmp_path)
    found, _ = stored.index.search(np.asarray(stored.vectors), 1)
    assert (found[:, 0] == np.arange(len(edited))).all()
