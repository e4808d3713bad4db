"""Texts to vectors: the embedder contract, one class per backend, the packaged models and the embedding cache."""

from __future__ import annotations

from .base import Embedder, ModelIdentity
from .cache import EmbeddingCache, embed_cached, text_key
from .factory import make_embedder
from .models import resolve_model

__all__ = ["Embedder", "EmbeddingCache", "ModelIdentity", "embed_cached", "make_embedder", "resolve_model",
           "text_key"]
