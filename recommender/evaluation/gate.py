"""One trustworthy number for a nightly quality gate: Pearson of the model's cosine vs SemEval-2022 T8 judgements."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..catalogue import embedding_texts, validate
from ..config import BuildConfig, CatalogueConfig, EmbedderConfig
from ..config_files import as_built
from ..embedding.base import Embedder
from ..embedding.cache import EmbeddingCache, embed_cached
from ..query.recommender import Recommender
from ..storage.manifest import read_manifest
from .datasets import load_semeval
from .metrics import pearson


def semeval_pearson(model: Recommender | Embedder, data_dir: str | Path, lang_pairs: Sequence[str] | None = ("en-en",),
                    original_only: bool = True, cache_path: str | Path | None = None,
                    max_chars: int | None = None, limit: int | None = None, seed: int = 0) -> float:
    """Pearson between cosine(article 1, article 2) and -Overall on SemEval-2022 Task 8 pairs.

    The official task metric is Pearson on ``Overall``; the sign is flipped because 1 means "very similar".
    Articles are embedded exactly as a build embeds them (``articles.embedding_text``), so the value equals the
    "embeddings" row of ``recommender evaluate`` for the same pairs.

    Args:
        model: a loaded build (its query-time embedder and ``max_chars`` are used) or an embedder.
        max_chars: characters embedded per article with an embedder (default ``EmbedderConfig().max_chars``).
        data_dir: the shared datasets folder.
        lang_pairs: language pairs to score (default en-en, the clean English subset); None = all.
        original_only: drop machine-translated augmentation rows.
        cache_path: an embedding cache file, so a nightly run embeds the pairs once per model.
        limit / seed: a seeded sample of this many pairs (None: all).

    Returns:
        The correlation in [-1, 1] (higher is better).
    """
    if isinstance(model, Recommender):
        embedder, max_chars = model.embedder, model.config.embedder.max_chars
    else:
        embedder, max_chars = model, max_chars or EmbedderConfig().max_chars
    dataset = load_semeval(data_dir, original_only=original_only, lang_pairs=lang_pairs, limit=limit, seed=seed)
    articles = validate(dataset.articles.copy(), CatalogueConfig()).articles.set_index("id", drop=False)
    cache = EmbeddingCache(cache_path) if cache_path is not None else None
    try:
        vectors, _ = embed_cached(embedder, embedding_texts(articles, max_chars), cache)
    finally:
        if cache is not None:
            cache.close()
    row_of = {article_id: n for n, article_id in enumerate(articles.index)}
    first = vectors[[row_of[a] for a in dataset.pairs["id1"]]]
    second = vectors[[row_of[b] for b in dataset.pairs["id2"]]]
    cosine = np.einsum("ij,ij->i", first, second)
    return pearson(cosine, -dataset.pairs["overall"].to_numpy(dtype=np.float64))


def semeval_gate(data_dir: str | Path, lang_pairs: Sequence[str] | None = ("en-en",),
                 cache_path: str | Path | None = None) -> Callable[[Path], float]:
    """A ``metric(build_directory) -> float`` for the rebuild's metric gate (higher is better): the Pearson of
    the build's model, configured as the build records it. One embedder per model is loaded across calls."""
    embedders: dict[str, Embedder] = {}

    def metric(directory: Path) -> float:
        from ..embedding.factory import make_embedder

        manifest = read_manifest(directory, verify_files=False)
        config = BuildConfig.from_dict(as_built(manifest.build.get("config", {}))).embedder
        key = repr(config)
        if key not in embedders:
            embedders[key] = make_embedder(config)
            embedders[key].identity.check_matches(manifest.model, "build")
        return semeval_pearson(embedders[key], data_dir, lang_pairs=lang_pairs, cache_path=cache_path,
                               max_chars=config.max_chars)

    metric.__name__ = "semeval_pearson"
    return metric
