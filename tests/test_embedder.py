"""Embedder: packaged model offline, pinned weights, identity checks, embedding cache."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from recommender.config import EmbedderConfig
from recommender.embedding import EmbeddingCache, embed_cached, make_embedder, resolve_model
from recommender.embedding import models as embedder_module
from recommender.errors import ModelIntegrityError, ModelMismatchError, RecommenderError

pytestmark = pytest.mark.slow


def test_packaged_model_loads_offline_and_embeds_unit_vectors(embedder):
    """The default model resolves to its PyPI package and gives normalised 384-d vectors that mean something."""
    assert embedder.identity.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert embedder.identity.dims == 384 and len(embedder.identity.fingerprint) == 64
    vectors = embedder.encode(["Train drivers strike over pay", "Rail workers walk out in wage dispute",
                               "Chocolate cake recipe with cherries"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert embedder.encode([]).shape == (0, 384)


def test_weights_with_another_checksum_are_refused(monkeypatch):
    """A packaged weight file that differs from the pinned sha256 is a clear error."""
    name = "sentence-transformers/all-MiniLM-L6-v2"
    package, weights, _ = embedder_module.PACKAGED_MODELS[name]
    monkeypatch.setitem(embedder_module.PACKAGED_MODELS, name, (package, weights, "0" * 64))
    with pytest.raises(ModelIntegrityError, match="expected 0000"):
        resolve_model(name)


def test_unknown_model_name_is_never_downloaded():
    """A hub name that is not packaged fails with a message instead of a download."""
    with pytest.raises(RecommenderError, match="never downloaded"):
        resolve_model("sentence-transformers/some-other-model")


def test_a_changed_model_has_another_identity(tmp_path, embedder):
    """A local copy with one changed file fingerprints differently and is refused as a query embedder."""
    copy = tmp_path / "model"
    shutil.copytree(embedder.directory, copy)
    (copy / "config_sentence_transformers.json").write_text('{"prompts": {}, "similarity_fn_name": "dot"}')
    other = make_embedder(EmbedderConfig(model=str(copy)))
    assert other.identity.fingerprint != embedder.identity.fingerprint
    with pytest.raises(ModelMismatchError, match="rebuild the index"):
        other.identity.check_matches(embedder.identity)


def test_cache_embeds_only_new_texts(tmp_path, embedder):
    """A second pass reads every vector from the cache; a changed text is embedded again."""
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    texts = ["Ferry service resumes after storm", "Council budget vote delayed"]
    first, embedded = embed_cached(embedder, texts, cache)
    assert embedded == 2
    again, embedded = embed_cached(embedder, texts, cache)
    assert embedded == 0
    np.testing.assert_array_equal(first, again)
    _, embedded = embed_cached(embedder, [texts[0], "Council budget vote delayed again"], cache)
    assert embedded == 1
    cache.close()
