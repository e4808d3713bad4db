"""Kept versions share unchanged files by hard link (issue 17): rebuilding never changes an older version's
bytes, disk use counts a shared file once, and gc frees only what no kept build links."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recommender.build import build
from recommender.catalogue.demo import demo_files
from recommender.config import BuildConfig
from recommender.fileio import file_sha256
from recommender.storage import layout
from recommender.storage.manifest import read_manifest
from recommender.storage.sharing import disk_bytes, freed_bytes
from recommender.storage.versions import IndexStore

from .test_index_update import HNSW, HashEmbedder


def _catalogue() -> pd.DataFrame:
    articles, _ = demo_files()
    return pd.read_json(articles, lines=True, dtype={"id": str}).drop(columns=["story"])


def _files(directory) -> dict[str, tuple[str, int]]:  # noqa: ANN001 - a Path
    return {p.name: (file_sha256(p), p.stat().st_ino) for p in sorted(directory.iterdir()) if p.is_file()}


def test_rebuilding_shares_unchanged_files_and_never_changes_an_older_version(tmp_path):
    """Three rebuilds after the first, each editing one article: the files that did not change (ids.npy) are the
    same inode as the first build's, every file of the first build keeps its bytes and still verifies, and the
    disk count of the kept builds counts the shared files once."""
    config, embedder = BuildConfig(index=HNSW, keep_versions=5), HashEmbedder()
    frame = _catalogue()
    build(frame, tmp_path, config=config, embedder=embedder)
    store = IndexStore(tmp_path)
    first = store.current()
    assert first is not None
    before = _files(first)
    for night in range(3):
        frame = frame.copy()
        frame.loc[night, "body"] = f"Correction {night}: " + frame.loc[night, "body"]
        build(frame, tmp_path, config=config, embedder=embedder)
        newest = store.current()
        assert newest is not None and newest != first
        shared = read_manifest(newest, verify_files=False).source["shared_with_previous"]
        assert layout.IDS in shared and layout.VECTORS not in shared
    assert _files(first) == before  # bytes and inodes of the oldest version untouched
    read_manifest(first, verify_files=True)
    assert (newest / layout.IDS).stat().st_ino == (first / layout.IDS).stat().st_ino
    assert (first / layout.IDS).stat().st_nlink == 4
    assert all(not (p.stat().st_mode & 0o222) for p in first.iterdir() if p.is_file())  # read-only inode
    usage = store.disk_usage()
    ids_bytes = (first / layout.IDS).stat().st_size
    assert usage["apparent"] - usage["unique"] >= 3 * ids_bytes
    assert usage == disk_bytes(p for p, _ in store.versions())


def test_gc_frees_only_files_no_kept_build_links(tmp_path):
    """Deleting the oldest build frees its own files, not those hard-linked into the newer one; the newer
    build still verifies after gc."""
    keep_two, embedder = BuildConfig(index=HNSW, keep_versions=2), HashEmbedder()
    frame = _catalogue()
    build(frame, tmp_path, config=keep_two, embedder=embedder)
    first = IndexStore(tmp_path).current()
    frame.loc[0, "body"] = "Correction: " + frame.loc[0, "body"]
    build(frame, tmp_path, config=keep_two, embedder=embedder)
    store = IndexStore(tmp_path)
    newest = store.current()
    assert first is not None and newest is not None
    own = sum(p.stat().st_size for p in first.iterdir() if p.is_file() and p.stat().st_nlink == 1)
    shared = sum(p.stat().st_size for p in first.iterdir() if p.is_file() and p.stat().st_nlink > 1)
    assert shared > 0 and freed_bytes([first]) == own
    unique_before = store.disk_usage()["unique"]
    assert store.gc(1) == [first]
    assert store.disk_usage()["unique"] == unique_before - own
    read_manifest(newest, verify_files=True)
    assert np.load(newest / layout.IDS).shape[0] == len(frame)

