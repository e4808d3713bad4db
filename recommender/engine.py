"""Recommender: related / more_like_this / popular over one loaded build."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd

from . import popularity
from .config import BuildConfig, PopularityConfig, RankingConfig
from .embedder import Embedder, SentenceTransformerEmbedder
from .errors import IndexFormatError, InvalidQueryError, UnknownArticleError
from .index import FaissIndex
from .manifest import Manifest, read_manifest
from .ranking import ArticleTable, Filters, Recommendation, language_mask, list_language, rank
from .store import resolve_build_dir
from .stories import StoryTable, neighbour_cosines, story_table

MAX_K = 100
# Files of a build besides the manifest.
ARTICLES_FILE, IDS_FILE, VECTORS_FILE = "articles.parquet", "ids.npy", "vectors.npy"
NEIGHBOURS_FILE, NEIGHBOUR_SCORES_FILE, VIEWS_FILE = "neighbours.npy", "neighbour_scores.npy", "views.parquet"
TABLE_COLUMNS = ["id", "title", "section", "url", "published_at", "language", "tags"]
# Same-story columns written by the build (``stories.py``); builds from before them get them computed at load.
STORY_COLUMNS = ["copy_group", "story_id"]


def _as_built(stored: dict[str, Any]) -> dict[str, Any]:
    """A manifest's build settings, with what builds from before a setting existed did in its place: the entity
    term (``RelatednessConfig.entity_weight``) was 0 before it was introduced."""
    relatedness = stored.get("relatedness")
    if isinstance(relatedness, dict) and "entity_weight" not in relatedness:
        return {**stored, "relatedness": {**relatedness, "entity_weight": 0.0}}
    return stored


def _story_settings(config: BuildConfig) -> tuple:
    """What the stored copy groups and stories depend on."""
    return (config.ranking.duplicate_similarity, config.ranking.duplicate_title_jaccard, config.stories)


def check_k(k: int) -> int:
    """Refuse a list length outside 1..100."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidQueryError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return int(k)


def epoch_hours(when: pd.Series | datetime) -> np.ndarray | float:
    """Hours since 1970-01-01 UTC (NaN where unknown)."""
    if isinstance(when, datetime):
        stamp = pd.Timestamp(when)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        return stamp.timestamp() / 3600.0
    values = pd.to_datetime(when, utc=True)
    # Subtract the epoch rather than cast to int64: the cast's unit follows the column's (s, ms, ns).
    hours = ((values - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(hours=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    return hours


class ViewSource(Protocol):
    """Live page views (a counter store) that add to the build's own ``views.parquet`` events."""

    def decayed_views(self, now: datetime, half_life_hours: float, window_hours: float) -> Mapping[str, float]:
        """Page views per article id in the window, each weighted ``0.5 ** (hours_ago / half_life_hours)``."""
        ...


@dataclass(frozen=True)
class Popularity:
    """Per-row trending and freshness at one reference time, both in [0, 1]."""

    now: datetime
    trending: np.ndarray
    freshness: np.ndarray
    raw_views: np.ndarray


class Recommender:
    """Related articles, more-like-this and popular lists over one build.

    Load with ``Recommender.load(path)``; ``path`` may be a build directory or an indexes root (its ``current``).
    Every query takes ``now`` (default: the clock) so results are reproducible in tests and notebooks.
    """

    def __init__(self, directory: Path, manifest: Manifest, index: FaissIndex, articles: pd.DataFrame,
                 vectors: np.ndarray, neighbours: np.ndarray | None, neighbour_scores: np.ndarray | None,
                 events: pd.DataFrame, config: BuildConfig, embedder: Embedder | None = None) -> None:
        self.directory = directory
        self.manifest = manifest
        self.index = index
        self.articles = articles
        self.config = config
        self.ranking: RankingConfig = config.ranking
        self.popularity_config: PopularityConfig = config.popularity
        self.neighbours = neighbours
        self.neighbour_scores = neighbour_scores
        self.events = events
        ids = articles["id"].to_numpy(dtype=object)
        self.row_of = {article_id: row for row, article_id in enumerate(ids)}
        titles = articles["title"].to_numpy(dtype=object)
        published_hours = np.asarray(epoch_hours(articles["published_at"]), dtype=np.float64)
        if set(STORY_COLUMNS) <= set(articles.columns):
            self.stories: StoryTable | None = StoryTable(articles["copy_group"].to_numpy(dtype=np.int64),
                                                         articles["story_id"].to_numpy(dtype=object))
        elif neighbours is not None:
            rows = np.asarray(neighbours)
            self.stories = story_table(ids, titles, rows, neighbour_cosines(vectors, rows), published_hours,
                                       config.ranking, config.stories)
        else:
            self.stories = None
        tags = articles["tags"].to_numpy(dtype=object) if "tags" in articles else None
        self.table = ArticleTable(
            ids=ids, titles=titles, sections=articles["section"].fillna("").to_numpy(dtype=object),
            urls=articles["url"].fillna("").to_numpy(dtype=object), published_hours=published_hours,
            vectors=vectors, copy_groups=self.stories.copy_groups if self.stories else None,
            story_ids=self.stories.story_ids if self.stories else None, tags=tags,
            languages=(articles["language"].fillna("").astype(str).to_numpy(dtype=object) if "language" in articles
                       else np.full(len(ids), "", dtype=object)),
        )
        self._embedder = embedder
        self._popularity: Popularity | None = None
        self.views: ViewSource | None = None
        if embedder is not None:
            embedder.identity.check_matches(manifest.model)

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None, verify: bool = True,
             config: BuildConfig | None = None) -> "Recommender":
        """Load a build, verifying its manifest and checksums.

        Args:
            path: a build directory, or an indexes root whose ``current`` is used (resolved once).
            embedder: the query-time embedder; checked against the build's model now. None loads the build's
                model lazily on the first free-text query (and checks it then).
            verify: check every file's sha256 against the manifest.
            config: ranking/popularity settings overriding the build's own.

        Raises:
            IndexFormatError: incomplete, damaged or foreign build; ModelMismatchError for another model.
        """
        directory = resolve_build_dir(path)
        manifest = read_manifest(directory, verify_files=verify)
        stored = BuildConfig.from_dict(_as_built(manifest.build.get("config", {})))
        build_config = config or stored
        index = FaissIndex.load(directory, manifest.index["factory"], build_config.index)
        import pyarrow.parquet as pq

        present = set(pq.read_schema(directory / ARTICLES_FILE).names)
        if _story_settings(build_config) != _story_settings(stored):
            present -= set(STORY_COLUMNS)  # other copy / story thresholds than the build's: regroup at load
        articles = pd.read_parquet(directory / ARTICLES_FILE,
                                   columns=[c for c in TABLE_COLUMNS + STORY_COLUMNS if c in present])
        vectors = np.load(directory / VECTORS_FILE, mmap_mode="r")
        ids = np.load(directory / IDS_FILE)
        if not (len(articles) == len(ids) == index.count == vectors.shape[0] == manifest.count) or \
                not np.array_equal(ids.astype(str), articles["id"].to_numpy(dtype=str)):
            raise IndexFormatError(f"{directory}: articles, ids, vectors and index disagree on the article count "
                                   f"or order; the build is damaged: rebuild it")
        neighbours = scores = None
        # The related table was ranked with the build's relatedness settings; with others, search instead.
        if (directory / NEIGHBOURS_FILE).exists() and build_config.relatedness.scoring() == stored.relatedness.scoring():
            neighbours = np.load(directory / NEIGHBOURS_FILE, mmap_mode="r")
            scores = np.load(directory / NEIGHBOUR_SCORES_FILE, mmap_mode="r")
        events = pd.read_parquet(directory / VIEWS_FILE) if (directory / VIEWS_FILE).exists() else pd.DataFrame(
            {"article_id": pd.Series(dtype=str), "timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
             "count": pd.Series(dtype="int64")})
        return cls(directory, manifest, index, articles, np.asarray(vectors), neighbours, scores, events,
                   build_config, embedder)

    # ------------------------------------------------------------------ helpers

    @property
    def embedder(self) -> Embedder:
        """The query-time embedder (loaded on first use and checked against the build's model)."""
        if self._embedder is None:
            embedder = SentenceTransformerEmbedder(self.config.embedder)
            embedder.identity.check_matches(self.manifest.model)
            self._embedder = embedder
        return self._embedder

    def __len__(self) -> int:
        return len(self.table.ids)

    def row(self, article_id: str) -> int:
        """Index row of an article id; ``UnknownArticleError`` when absent."""
        try:
            return self.row_of[article_id]
        except KeyError:
            raise UnknownArticleError(article_id) from None

    def article(self, article_id: str) -> dict[str, object]:
        """Stored fields of one article."""
        return self.articles.iloc[self.row(article_id)].to_dict()

    def use_views(self, views: ViewSource | None) -> None:
        """Blend live page views (e.g. the service's counter store) into trending and ``popular`` from now on."""
        self.views = views
        self._popularity = None

    def decayed_views(self, now: datetime, window_hours: float | None = None) -> pd.Series:
        """Decayed views per article id: the build's events plus the live ``views`` source, if any."""
        config = self.popularity_config
        window = config.window_hours if window_hours is None else window_hours
        decayed = popularity.trending(self.events, now, config.trending_half_life_hours, window)
        if self.views is not None:
            live = self.views.decayed_views(now, config.trending_half_life_hours, window)
            if live:
                decayed = decayed.add(pd.Series(live, dtype=np.float64), fill_value=0.0)
        return decayed

    def popularity_at(self, now: datetime | None = None, max_age_seconds: float = 60.0) -> Popularity:
        """Trending and freshness per row at ``now`` (cached for ``max_age_seconds``; 0 recomputes)."""
        now = now or datetime.now(timezone.utc)
        cached = self._popularity
        if cached is not None and abs((cached.now - now).total_seconds()) < max_age_seconds:
            return cached
        config = self.popularity_config
        decayed = self.decayed_views(now)
        raw = np.zeros(len(self), dtype=np.float64)
        if len(decayed):
            rows = np.array([self.row_of.get(a, -1) for a in decayed.index])
            raw[rows[rows >= 0]] = decayed.to_numpy()[rows >= 0]
        fresh = popularity.freshness(self.articles["published_at"], now, config.freshness_half_life_hours)
        self._popularity = Popularity(now, popularity.normalise_log(raw), fresh, raw)
        return self._popularity

    def _candidates(self, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        rows, scores = self.index.search(query[None, :], count)
        return rows[0], scores[0]

    def _rank(self, query: np.ndarray, k: int, filters: Filters, now: datetime | None,
              anchor_rows: Sequence[int], first: tuple[np.ndarray, np.ndarray] | None = None) -> list[Recommendation]:
        pop = self.popularity_at(now)
        count = len(first[0]) if first is not None else self.ranking.candidate_count
        candidates = first
        while True:
            if candidates is None:
                candidates = self._candidates(query, min(count, len(self)))
            results = rank(self.table, candidates[0], candidates[1], k, self.ranking, filters,
                           float(epoch_hours(pop.now)), pop.trending, pop.freshness, anchor_rows)
            # Filters or duplicates can eat the pool: widen it until k results or the whole catalogue.
            if len(results) >= k or count >= len(self):
                return results
            count, candidates = max(count * 4, self.ranking.candidate_count), None

    # ------------------------------------------------------------------ queries

    def related(self, article_id: str, k: int = 10, section: str | None = None, max_age_hours: float | None = None,
                exclude_ids: Sequence[str] = (), now: datetime | None = None,
                language: str | None = None) -> list[Recommendation]:
        """Articles related to one article: its story first, then its background.

        Args:
            article_id: the article being read.
            k: list length, 1..100.
            section: only this section.
            max_age_hours: only articles at most this old at ``now``.
            exclude_ids: never show these (already read); unknown ids here are ignored.
            now: reference time for recency, trending and ``max_age_hours``.
            language: only articles in this language; None = the article's own under
                ``related_languages = "same"`` (the default), any under "any".

        Raises:
            UnknownArticleError: ``article_id`` is not in the build.
            InvalidQueryError: ``k`` outside 1..100.
        """
        check_k(k)
        row = self.row(article_id)
        language = list_language(language, str(self.table.languages[row]), self.ranking.related_languages)
        filters = Filters(frozenset([row, *self._known_rows(exclude_ids)]), section, max_age_hours, language)
        # Precomputed neighbours make the common case a table read; _rank widens with a search if they run out.
        first = None
        if self.neighbours is not None:
            first = (np.asarray(self.neighbours[row]), np.asarray(self.neighbour_scores[row]))
        return self._rank(np.asarray(self.table.vectors[row]), k, filters, now, [row], first)

    def more_like_this(self, ids: Sequence[str] = (), text: str | None = None, negative_ids: Sequence[str] = (),
                       exclude_ids: Sequence[str] = (), k: int = 10, section: str | None = None,
                       max_age_hours: float | None = None, now: datetime | None = None,
                       language: str | None = None) -> list[Recommendation]:
        """Articles like several examples and/or free text, and unlike the negative examples.

        The query vector follows Qdrant's ``average_vector`` recommend strategy: ``avg(positives) +
        negative_weight * (avg(positives) - avg(negatives))``, normalised; positives are the given articles'
        vectors and the embedded ``text``. The examples themselves (positive and negative) are never returned.

        Raises:
            InvalidQueryError: neither ids nor text, or k outside 1..100.
            UnknownArticleError: an id in ``ids`` or ``negative_ids`` is not in the build.
        """
        check_k(k)
        text = (text or "").strip()
        if not ids and not text:
            raise InvalidQueryError("more_like_this needs at least one article id or a non-empty text")
        positive_rows = [self.row(i) for i in ids]
        negative_rows = [self.row(i) for i in negative_ids]
        positives = [np.asarray(self.table.vectors[r]) for r in positive_rows]
        if text:
            positives.append(self.embedder.encode([text])[0])
        query = np.mean(positives, axis=0)
        if negative_rows:
            negative = np.mean([self.table.vectors[r] for r in negative_rows], axis=0)
            query = query + self.ranking.negative_weight * (query - negative)
        query = (query / max(np.linalg.norm(query), 1e-12)).astype(np.float32)
        anchor_language = str(self.table.languages[positive_rows[0]]) if positive_rows else ""
        filters = Filters(frozenset([*positive_rows, *negative_rows, *self._known_rows(exclude_ids)]),
                          section, max_age_hours,
                          list_language(language, anchor_language, self.ranking.related_languages))
        return self._rank(query, k, filters, now, positive_rows)

    def popular(self, k: int = 10, section: str | None = None, window_hours: float | None = None,
                now: datetime | None = None, language: str | None = None) -> list[Recommendation]:
        """Most-read articles now: page views in the window with exponential decay, ties broken by freshness.

        Articles without views in the window are not listed (a popular list is about what readers read).
        """
        check_k(k)
        now = now or datetime.now(timezone.utc)
        config = self.popularity_config
        window = config.window_hours if window_hours is None else window_hours
        if window <= 0:
            raise InvalidQueryError(f"window_hours must be positive, got {window}")
        decayed = self.decayed_views(now, window)
        pop = self.popularity_at(now)
        rows = np.array([self.row_of.get(a, -1) for a in decayed.index], dtype=np.int64)
        views = decayed.to_numpy()
        keep = (rows >= 0) & (views > 0)
        if section is not None:
            keep &= self.table.sections[np.where(rows >= 0, rows, 0)] == section
        if language:
            keep &= language_mask(self.table.languages[np.where(rows >= 0, rows, 0)], language)
        rows, views = rows[keep], views[keep]
        order = np.lexsort((-pop.freshness[rows], -views))[:k]
        normalised = popularity.normalise_log(views)
        return [Recommendation(
            article_id=str(self.table.ids[r]), title=str(self.table.titles[r]), score=float(normalised[i]),
            similarity=0.0, trending=float(normalised[i]), freshness=float(pop.freshness[r]),
            section=str(self.table.sections[r]), url=str(self.table.urls[r]),
            published_at=self.table.published_iso(r),
            reasons=(f"{views[i]:.0f} decayed views in the last {window:g} h",),
        ) for i, r in ((int(i), int(rows[i])) for i in order)]

    def _known_rows(self, article_ids: Sequence[str]) -> list[int]:
        return [self.row_of[a] for a in article_ids if a in self.row_of]
