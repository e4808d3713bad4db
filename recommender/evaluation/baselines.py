"""The methods compared in one harness: random, most popular, lexical more-like-this, embeddings only, full blend.

Every method answers the same two questions, batch first: ``related_lists(article_ids, k)`` (ids, best first,
never the article itself) and ``pair_scores(pairs)`` (a relatedness score per article pair, NaN where the
method has none). The two engine methods call ``Recommender.related`` on a real build.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Protocol, Sequence

import numpy as np
import pandas as pd

from ..catalogue.texts import lexical_texts
from ..config import BuildConfig
from ..query.recommender import Recommender

METHODS = ("random", "most_popular", "lexical", "embeddings", "full_blend")


class Method(Protocol):
    """A way of making related lists and pair scores."""

    name: str

    def related_lists(self, article_ids: Sequence[str], k: int) -> list[list[str]]:
        """The ``k`` articles to show beside each of ``article_ids`` (ids, best first, never the article itself)."""
        ...

    def pair_scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Relatedness of each (id1, id2) pair, higher = more related; NaN where the method has no such score."""
        ...


def _top_excluding(order: np.ndarray, row: int, k: int) -> np.ndarray:
    return order[order != row][:k]


class RandomMethod:
    """``k`` articles drawn uniformly at random (seeded): the floor every method must beat."""

    name = "random"

    def __init__(self, ids: Sequence[str], seed: int = 0) -> None:
        self.ids = np.asarray(ids, dtype=object)
        self.row_of = {a: i for i, a in enumerate(self.ids)}
        self.seed = seed

    def related_lists(self, article_ids: Sequence[str], k: int) -> list[list[str]]:  # noqa: D102
        rng = np.random.default_rng(self.seed)
        size = min(k + 1, len(self.ids))
        return [list(self.ids[_top_excluding(rng.choice(len(self.ids), size=size, replace=False),
                                             self.row_of[a], k)]) for a in article_ids]

    def pair_scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:  # noqa: D102 - Method's
        return np.random.default_rng(self.seed).random(len(pairs))


class MostPopularMethod:
    """The same most-viewed list beside every article (ties: newer first, then catalogue order).

    Without views every article ties and, without dates too, the list is the catalogue's first ``k`` articles:
    a fixed list, which is what a "most read" widget shows on a site that has no analytics.
    """

    name = "most_popular"

    def __init__(self, ids: Sequence[str], views: np.ndarray, published_hours: np.ndarray) -> None:
        self.ids = np.asarray(ids, dtype=object)
        self.row_of = {a: i for i, a in enumerate(self.ids)}
        recency = np.nan_to_num(np.asarray(published_hours, dtype=np.float64), nan=-np.inf)
        self.order = np.lexsort((np.arange(len(self.ids)), -recency, -np.asarray(views, dtype=np.float64)))

    def related_lists(self, article_ids: Sequence[str], k: int) -> list[list[str]]:  # noqa: D102 - Method's
        head = self.order[: k + 1]
        return [list(self.ids[_top_excluding(head, self.row_of[a], k)]) for a in article_ids]

    def pair_scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:  # noqa: D102 - Method's
        return np.full(len(pairs), np.nan)


class LexicalMethod:
    """Elasticsearch-style more-like-this: cosine of TF-IDF vectors over title + abstract + body.

    Sublinear term frequency, English stop words dropped, terms in over half the documents ignored
    (``more_like_this`` likewise skips frequent terms and keeps each document's distinctive ones).
    """

    name = "lexical"

    def __init__(self, ids: Sequence[str], texts: Sequence[str], batch_size: int = 1024) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.ids = np.asarray(ids, dtype=object)
        self.row_of = {a: i for i, a in enumerate(self.ids)}
        self.matrix = TfidfVectorizer(sublinear_tf=True, stop_words="english", max_df=0.5,
                                      dtype=np.float32).fit_transform(list(texts)).tocsr()
        self.batch_size = batch_size

    def related_lists(self, article_ids: Sequence[str], k: int) -> list[list[str]]:  # noqa: D102 - Method's
        rows = np.array([self.row_of[a] for a in article_ids], dtype=np.int64)
        lists: list[list[str]] = []
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start:start + self.batch_size]
            scores = (self.matrix[batch] @ self.matrix.T).toarray()
            scores[np.arange(len(batch)), batch] = -np.inf
            for row_scores in scores:
                top = np.argpartition(-row_scores, min(k, len(row_scores) - 1))[: k + 1]
                # Stable order: score, then catalogue position (ties are common with short texts).
                top = top[np.lexsort((top, -row_scores[top]))]
                lists.append([self.ids[t] for t in top if np.isfinite(row_scores[t])][:k])
        return lists

    def pair_scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:  # noqa: D102 - Method's
        first = self.matrix[[self.row_of[a] for a, _ in pairs]]
        second = self.matrix[[self.row_of[b] for _, b in pairs]]
        return np.asarray(first.multiply(second).sum(axis=1)).ravel().astype(np.float64)


class EngineMethod:
    """``Recommender.related`` over a real build; pair score = the blend score the second article would get."""

    def __init__(self, name: str, recommender: Recommender, now: datetime | None) -> None:
        self.name = name
        self.recommender = recommender
        self.now = now

    def related_lists(self, article_ids: Sequence[str], k: int) -> list[list[str]]:  # noqa: D102 - Method's
        return [[r.article_id for r in self.recommender.related(a, k=k, now=self.now)] for a in article_ids]

    def pair_scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:  # noqa: D102 - Method's
        return self.recommender.pair_scores(pairs, now=self.now)


def embeddings_only(config: BuildConfig) -> BuildConfig:
    """The build's config with popularity, freshness, same-story collapse, MMR and the hybrid relatedness (the
    build's fused related table; lists then come from a FAISS search) all switched off."""
    # Thresholds above 1 can never be reached by a cosine or a Jaccard: nothing is collapsed.
    ranking = dataclasses.replace(config.ranking, weight_relatedness=1.0, weight_trending=0.0, weight_freshness=0.0,
                                  weight_same_story=0.0, duplicate_similarity=2.0, duplicate_title_jaccard=2.0,
                                  mmr_lambda=None)
    return dataclasses.replace(config, ranking=ranking,
                               relatedness=dataclasses.replace(config.relatedness, enabled=False))


def article_texts(articles: pd.DataFrame) -> list[str]:
    """Title + abstract + body of each catalogue row (the lexical baseline's document, as the build's)."""
    return lexical_texts(articles)


def make_methods(names: Sequence[str], recommender: Recommender, articles: pd.DataFrame, views: np.ndarray,
                 now: datetime | None, seed: int = 0) -> list[Method]:
    """The named methods over one loaded build and its catalogue (rows in build order).

    Args:
        names: any of ``METHODS``.
        recommender: the loaded build; "full_blend" uses it as it is, "embeddings" a copy with the blend off.
        articles: the catalogue frame the build was made from (for the lexical baseline's text).
        views: raw page views per build row (zeros when the dataset has none).
        now: reference time for recency and trending.
        seed: the random baseline's seed.
    """
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    ids = list(recommender.table.ids)
    methods: list[Method] = []
    for name in names:
        if name == "random":
            methods.append(RandomMethod(ids, seed))
        elif name == "most_popular":
            methods.append(MostPopularMethod(ids, views, recommender.table.published_hours))
        elif name == "lexical":
            text_of = dict(zip(articles["id"], article_texts(articles)))
            methods.append(LexicalMethod(ids, [text_of[i] for i in ids]))
        elif name == "embeddings":
            # The same build files, loaded again with the blend switched off (no embedder needed for related).
            plain = Recommender(recommender.stored, embeddings_only(recommender.config))
            methods.append(EngineMethod("embeddings", plain, now))
        else:
            methods.append(EngineMethod("full_blend", recommender, now))
    return methods
