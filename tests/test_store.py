"""Build directories: manifest checks, damaged builds refused, atomic current, versions kept."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from recommender.build import build
from recommender.errors import IndexFormatError, ModelMismatchError
from recommender.query import Recommender
from recommender.storage.manifest import read_manifest
from recommender.storage.versions import IndexStore

pytestmark = pytest.mark.slow

ARTICLES = pd.DataFrame({
    "id": [f"s{i}" for i in range(12)],
    "title": ["Harbour bridge strike enters second day", "Bridge workers reject new pay offer",
              "Commuters face delays as bridge strike continues", "Bridge strike ends after pay deal",
              "City marathon draws record field", "Marathon winner breaks course record",
              "Heatwave warning issued for the weekend", "Temperatures to reach 38C on Saturday",
              "Tech firm unveils folding tablet", "Folding tablet goes on sale next month",
              "Museum reopens after two-year refit", "Library extends opening hours"],
    "section": ["local"] * 4 + ["sport"] * 2 + ["weather"] * 2 + ["tech"] * 2 + ["culture"] * 2,
    "published_at": pd.date_range("2026-11-20", periods=12, freq="6h", tz="UTC").astype(str),
})


@pytest.fixture()
def root(tmp_path, embedder, cache_path):
    """A fresh indexes root with one published build."""
    build(ARTICLES, tmp_path, embedder=embedder, cache_path=cache_path)
    return tmp_path


def test_build_publishes_a_verified_version_behind_current(root, embedder):
    """current points at a complete build whose manifest records model, counts and file checksums."""
    store = IndexStore(root)
    manifest = read_manifest(store.current())
    assert manifest.count == 12 and manifest.index["factory"] == "Flat"
    assert manifest.embedder["fingerprint"] == embedder.identity.fingerprint
    assert set(manifest.files) >= {"vectors.faiss", "ids.npy", "articles.parquet", "vectors.npy"}
    engine = Recommender.load(root, embedder=embedder)
    assert sorted(r.article_id for r in engine.related("s0", k=3)) == ["s1", "s2", "s3"]


def rewrite(directory, data: dict) -> None:
    """Replace a build's manifest with ``data`` and a matching digest (a consistent, deliberate edit)."""
    raw = json.dumps(data).encode()
    (directory / "manifest.json").write_bytes(raw)
    (directory / "manifest.sha256").write_text(hashlib.sha256(raw).hexdigest())


def manifest_of(directory) -> dict:
    return json.loads((directory / "manifest.json").read_text())


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "manifest.json").unlink(), "manifest.json is missing"),
    (lambda d: (d / "manifest.sha256").unlink(), "manifest.sha256 is missing"),
    (lambda d: (d / "ids.npy").write_bytes(b"garbage"), "does not match its sha256"),
    (lambda d: (d / "vectors.faiss").unlink(), "listed in the manifest is missing"),
    (lambda d: rewrite(d, {**manifest_of(d), "format_version": 99}), "format_version 99"),
    (lambda d: (d / "manifest.json").write_text((d / "manifest.json").read_text().replace('"weight_trending": 0.05',
                                                                                        '"weight_trending": 5.0')),
     "does not match its digest"),
    (lambda d: rewrite(d, {**manifest_of(d), "files": {}}), "files does not list"),
    (lambda d: rewrite(d, [manifest_of(d)]), "holds a JSON list"),
])
def test_damaged_builds_are_refused_with_the_reason(root, damage, message):
    """A missing manifest, digest or file, a bad checksum, an edited manifest (its digest differs), an unknown
    format version, a manifest listing no files, or one that is not an object raise IndexFormatError."""
    damage(IndexStore(root).current())
    with pytest.raises(IndexFormatError, match=message):
        Recommender.load(root)


def test_index_refused_by_another_model(root, embedder):
    """An embedder whose identity differs from the manifest's model is refused at load."""
    current = IndexStore(root).current()
    data = manifest_of(current)
    data["embedder"]["fingerprint"] = "f" * 64
    rewrite(current, data)
    with pytest.raises(ModelMismatchError, match="query-time embedder"):
        Recommender.load(root, embedder=embedder, verify=False)


def test_versions_are_kept_and_current_moves_atomically(root, embedder, cache_path):
    """Each build is a new version; current moves to the newest; only keep_versions remain."""
    from recommender.config import BuildConfig

    store = IndexStore(root)
    first = store.current()
    for _ in range(3):
        build(ARTICLES, root, embedder=embedder, cache_path=cache_path, config=BuildConfig(keep_versions=2))
    assert store.current() != first and store.current_link.is_symlink()
    assert len(store.versions()) == 2 and store.current() in [p for p, _ in store.versions()]
    assert not list(store.builds.glob(".stage-*"))
    np.testing.assert_array_equal(np.load(store.current() / "ids.npy"), ARTICLES["id"].to_numpy(dtype=str))


def test_dry_run_leaves_current_alone(root, embedder, cache_path):
    """publish=False verifies a build without moving current."""
    store = IndexStore(root)
    before = store.current()
    build(ARTICLES.iloc[:6], root, embedder=embedder, cache_path=cache_path, publish=False)
    assert store.current() == before and len(store.versions()) == 1


def test_gc_keeps_the_rejects_of_the_newest_unpublished_runs_only(tmp_path):
    """Rejects files of runs that never published (failed gate, dry run) are kept for the newest `keep` runs."""
    store = IndexStore(tmp_path)
    (tmp_path / "rejects").mkdir(parents=True)
    ids = [f"20261127T0{h}0000Z-00000001" for h in range(1, 5)]
    for build_id in ids:
        (tmp_path / "rejects" / f"{build_id}.csv").write_text("record,id,field,reason\n")
        (tmp_path / "rejects" / f"{build_id}-views.csv").write_text("row,reason\n")
    store.gc(keep=2)
    left = sorted(p.name for p in (tmp_path / "rejects").iterdir())
    assert left == sorted(f"{b}{suffix}.csv" for b in ids[2:] for suffix in ("", "-views"))
