"""The Recommender: related, more-like-this, popular and story lists over one build and what lies over it.

This is the one query path. The CLI, the Python API, ``recommender evaluate``, the notebooks and the HTTP service
all call these methods with the same parameters; the service only adds an overlay (live articles, takedowns), live
page views and its rule store, and a build with an empty overlay and no rules is just a build.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..config import BuildConfig
from ..embedding.base import Embedder
from ..errors import InvalidQueryError, UnknownArticleError
from ..storage.reader import StoredBuild, read_build
from ..times import epoch_hours
from .candidates import CandidateSource
from .editorial import ListRules
from .filters import Filters, check_k, list_language
from .overlay import Overlay, OverlaySource
from .popular import fallback, most_read
from .popularity import Popularity, PopularityCache, ViewSource, decayed_views
from .ranking import Candidates, blend, rank
from .results import Recommendation
from .rows import BuildRows, listed_articles
from .rule_book import RuleBook
from .rules import RuleSource
from .table import Anchor, ListedArticles
from .timeline import story_rows, story_timeline

Clock = Callable[[], datetime]


class Recommender:
    """Related articles, more-like-this, popular and story lists over one build (and an optional overlay).

    Load with ``Recommender.load(path)``; ``path`` may be a build directory or an indexes root (its ``current``).
    Every query takes ``now`` (default: the clock) so results are reproducible in tests and notebooks.
    """

    def __init__(self, stored: StoredBuild, config: BuildConfig | None = None, embedder: Embedder | None = None,
                 overlay: OverlaySource | None = None, views: ViewSource | None = None, clock: Clock | None = None,
                 use_related_table: bool = True, popularity_max_age_seconds: float = 1.0,
                 candidate_cache_size: int = 20_000, embed_lock: threading.Lock | None = None,
                 rules: RuleSource | None = None, shares: Recommender | None = None) -> None:
        """Args:
        stored: the build, read (``storage.reader.read_build``).
        config: ranking / popularity / story settings; default the build's own.
        embedder: the query-time embedder, checked against the build's model now; None loads the build's
            model on the first free-text query (and checks it then).
        overlay: live articles and takedowns over the build (the service's ``live.LiveState``).
        views: live page views added to the build's own (the service's counters).
        clock: "now" when a query gives none.
        use_related_table: False ranks related lists from a FAISS search instead of the build's related
            table (evaluation sweeps of the candidate settings).
        popularity_max_age_seconds: a popularity snapshot taken at the clock is reused this long (the service
            refreshes its own and passes infinity).
        candidate_cache_size: related-table candidate entries kept (rows read by many readers).
        embed_lock: serialises free-text embedding (the service shares one with its upserts).
        rules: the editorial rules every list obeys (a ``RuleSet``, or the service's rule store); none by
            default. Embargoes (a future ``published_at`` or an ``embargo_until``) hold without rules.
        shares: a recommender of the same build (an experiment arm's: the served one) whose rows (``BuildRows``)
            are used when the copy-group and story settings agree, its candidates when relatedness does too, its
            popularity snapshots when the popularity settings and views do too.
        """
        self.stored = stored
        self.config = config or stored.config
        self.directory: Path = stored.directory
        self.manifest = stored.manifest
        self.index = stored.index
        self.ranking = self.config.ranking
        self.popularity_config = self.config.popularity
        usable = use_related_table and self.config.relatedness.scoring() == stored.config.relatedness.scoring()
        # The related table was ranked with the build's relatedness settings; with others, search instead.
        self.related_rows = stored.related_rows if usable else None
        self.related_scores = stored.related_scores if usable else None
        self.rows: BuildRows = BuildRows.of(stored, self.config, shares.rows if shares is not None else None)
        self.table, self.row_of, self._id_index, self._fields = (self.rows.table, self.rows.row_of,
                                                                 self.rows.id_index, self.rows.fields)
        self._languages = frozenset(self.table.languages.tolist())
        self._overlay_source = overlay
        self.views = views
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self._popularity: PopularityCache = PopularityCache(
            self.rows.events, self._id_index, self.popularity_config, popularity_max_age_seconds).or_shared(
            shares._popularity if shares is not None and shares.views is views else None)
        self._embedder = embedder
        self._embed_lock = embed_lock or threading.Lock()
        if embedder is not None:
            embedder.identity.check_matches(self.manifest.model)
        same = shares is not None and shares.rows is self.rows and shares.related_rows is self.related_rows
        self.candidates: CandidateSource = shares.candidates if same and shares is not None else CandidateSource(
            self.index, self.related_rows, self.related_scores, candidate_cache_size)
        self._empty = Overlay.empty(self.table.vectors.shape[1])
        self._listed: ListedArticles | None = None
        self._story_rows: dict[str, np.ndarray] | None = None
        self.rules = RuleBook(rules, self.table)

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None, verify: bool = True,
             config: BuildConfig | None = None, mmap: bool = True, **options: object) -> Recommender:
        """Load a build, verifying its manifest and checksums.

        Args:
            path: a build directory, or an indexes root whose ``current`` is used (resolved once).
            embedder: the query-time embedder (see ``__init__``).
            verify: check every file's sha256 against the manifest.
            config: ranking/popularity settings overriding the build's own.
            mmap: memory-map the build's arrays and index (False reads them into memory).
            options: the other keyword arguments of ``__init__``.

        Raises:
            IndexFormatError: incomplete, damaged or foreign build; ModelMismatchError for another model.
        """
        stored = read_build(path, verify=verify, index_config=config.index if config else None, mmap=mmap)
        return cls(stored, config, embedder, **options)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ the row space

    def __len__(self) -> int:
        return len(self.table.ids)

    @property
    def articles(self) -> pd.DataFrame:
        """The build's stored article columns (``storage.layout.TABLE_COLUMNS``), in row order."""
        return self.stored.articles

    @property
    def embedder(self) -> Embedder:
        """The query-time embedder (loaded on first use and checked against the build's model)."""
        if self._embedder is None:
            from ..embedding.factory import make_embedder

            embedder = make_embedder(self.config.embedder)
            embedder.identity.check_matches(self.manifest.model)
            self._embedder = embedder
        return self._embedder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts with the query-time embedder, one call at a time."""
        with self._embed_lock:
            return self.embedder.encode(list(texts))

    def listed(self) -> ListedArticles:
        """The build's rows and the overlay's as one row space (recomputed when the overlay changed)."""
        overlay = self._overlay_source.overlay if self._overlay_source is not None else self._empty
        listed = self._listed
        if listed is None or listed.seq != overlay.seq:
            listed = self._listed = self._listed_from(overlay)
        return listed

    def _listed_from(self, overlay: Overlay) -> ListedArticles:
        return listed_articles(self.table, self.row_of, overlay, self.index, self.ranking, self.config.stories)

    def contains(self, article_id: str) -> bool:
        """Whether an id is listed (live, or in the build and neither taken down nor replaced)."""
        return self.listed().row_of(article_id) is not None

    def row(self, article_id: str) -> int:
        """Listed row of an article id; ``UnknownArticleError`` when it is not listed."""
        row = self.listed().row_of(article_id)
        if row is None:
            raise UnknownArticleError(article_id)
        return row

    def article(self, article_id: str) -> dict[str, object]:
        """The stored fields of one listed article (a build row: the build's columns; a live one: id, title,
        section, url, published_at, language, tags, author)."""
        listed = self.listed()
        row = self.row(article_id)
        if row < len(self):
            return self.stored.articles.iloc[row].to_dict()
        table, local = listed.source(row)
        return table.record(local)

    def anchor(self, listed: ListedArticles, article_id: str) -> Anchor:
        """The listed article a list is for (``UnknownArticleError`` when it is not listed)."""
        row = listed.row_of(article_id)
        if row is None:
            raise UnknownArticleError(article_id)
        return listed.anchor(row)

    # ------------------------------------------------------------------ popularity

    def use_views(self, views: ViewSource | None) -> None:
        """Blend live page views (e.g. the service's counter store) into trending and ``popular`` from now on."""
        self.views = views
        self._popularity = self._popularity.emptied()  # its own from now on, even if it shared one

    def refresh_popularity(self, now: datetime | None = None, listed: ListedArticles | None = None) -> Popularity:
        """Recompute trending and freshness of every listed row at ``now`` (default: the clock)."""
        return self._popularity.refresh(listed or self.listed(), self.views, now or self.clock())

    def popularity(self, now: datetime | None = None, listed: ListedArticles | None = None) -> Popularity:
        """Trending and freshness per listed row at ``now`` (default: the clock; a snapshot at the clock is reused
        for ``popularity_max_age_seconds`` while the overlay is unchanged), aligned with ``listed`` (default the
        latest; a query passes the one it ranks with, so an overlay change between two reads cannot misalign them)."""
        return self._popularity.at(listed or self.listed(), self.views, now, self.clock)

    # ------------------------------------------------------------------ editorial rules

    def _hours(self, now: datetime | None) -> float:
        """Rules act at the query's own time (the popularity snapshot may be older)."""
        return float(epoch_hours(now or self.clock()))

    def prepare(self, now: datetime | None = None) -> None:
        """The row snapshot and the rules compiled for ``now``, ahead of the next list (the service's sync loop)."""
        self.rules.compiled(self.listed(), self._hours(now))

    def use_rules(self, rules: RuleSource | None) -> None:
        """Obey these editorial rules from now on (None: none)."""
        self.rules.use(rules)

    def _filled(self, results: list[Recommendation], k: int, listed: ListedArticles, pop: Popularity,
                anchor: Anchor | None, filters: Filters, floor: float | None, now_hours: float
                ) -> list[Recommendation]:
        """A list the relatedness floor left short, filled by ``floor_fallback`` (``popular.fallback``)."""
        if floor is None or len(results) >= k or self.ranking.floor_fallback == "none":
            return results
        section = filters.section if filters.section is not None else (anchor.section or None if anchor else None)
        rules = self.rules.for_list("popular", listed, now_hours, anchor, section)
        shown = listed.rows_of([r.article_id for r in results])
        return results + fallback(listed, pop, k - len(results), section, filters, rules, shown, anchor,
                                  self.popularity_config.window_hours, self._fields,
                                  f"fewer than {k} articles are related above the floor {floor:g}")

    # ------------------------------------------------------------------ candidates

    def _ranked(self, listed: ListedArticles, query: np.ndarray, k: int, filters: Filters, pop: Popularity,
                anchors: Sequence[Anchor], first: Candidates | None, rules: ListRules,
                floor: float | None) -> list[Recommendation]:
        """Rank ``first`` (or a search around ``query``); filters, rules or copies can eat the pool, so it is
        widened by searching 4x as many until there are ``k`` results, the whole catalogue was considered, or
        (with a relatedness ``floor``) the candidates reach below the floor."""
        count = len(first) if first is not None else self.ranking.candidate_count
        total = len(listed)
        candidates = first
        while True:
            if candidates is None:
                candidates = self.candidates.searched(listed, query, count, anchors)
            results = rank(listed, candidates, k, self.ranking, filters, pop, anchors[0] if anchors else None,
                           self._fields, self._languages if not len(listed.live) else frozenset(), rules, floor,
                           query)
            below = floor is not None and len(candidates) and float(candidates.relatedness.min()) < floor
            if len(results) >= k or count >= total or below:
                return results
            count, candidates = max(count * 4, self.ranking.candidate_count), None

    # ------------------------------------------------------------------ queries

    def related(self, article_id: str, k: int = 10, section: str | None = None, max_age_hours: float | None = None,
                exclude_ids: Sequence[str] = (), now: datetime | None = None,
                language: str | None = None) -> list[Recommendation]:
        """Articles related to one article: its story first, then its background.

        Args:
            article_id: the article being read (indexed or live).
            k: list length, 1..100.
            section: only this section.
            max_age_hours: only articles at most this old at ``now``.
            exclude_ids: never show these (already read); unknown ids here are ignored.
            now: reference time for recency, trending and ``max_age_hours``.
            language: only articles in this language; None = the article's own under
                ``related_languages = "same"`` (the default), any under "any".

        Raises:
            UnknownArticleError: ``article_id`` is not listed.
            InvalidQueryError: ``k`` outside 1..100.
        """
        check_k(k)
        listed = self.listed()
        anchor = self.anchor(listed, article_id)
        pop = self.popularity(now, listed)
        language = list_language(language, anchor.language, self.ranking.related_languages)
        filters = Filters(frozenset([anchor.row, *listed.rows_of(exclude_ids)]), section, max_age_hours,
                          language)
        first = None
        if anchor.row < len(self) and self.related_rows is not None:
            entry = self.candidates.related_table(anchor.row, listed, anchor)
            first = entry.extended(self.candidates.live(listed, anchor.vector, len(entry), [anchor]))
        rules = self.rules.for_list("related", listed, self._hours(now), anchor, section)
        floor = self.ranking.related_floor
        results = self._ranked(listed, anchor.vector, k, filters, pop, [anchor], first, rules, floor)
        return self._filled(results, k, listed, pop, anchor, filters, floor, rules.now_hours)

    def related_many(self, article_ids: Sequence[str], k: int = 10, **options: object) -> list[list[Recommendation]]:
        """``related`` for each of ``article_ids``, in order."""
        return [self.related(a, k=k, **options) for a in article_ids]  # type: ignore[arg-type]

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
            UnknownArticleError: an id in ``ids`` or ``negative_ids`` is not listed.
        """
        check_k(k)
        text = (text or "").strip()
        if not ids and not text:
            raise InvalidQueryError("more_like_this needs at least one article id or a non-empty text")
        listed = self.listed()
        positives = [self.anchor(listed, i) for i in ids]
        negatives = [self.anchor(listed, i) for i in negative_ids]
        vectors = [a.vector for a in positives] + ([self.embed([text])[0]] if text else [])
        query = np.mean(vectors, axis=0)
        if negatives:
            query = query + self.ranking.negative_weight * (query - np.mean([a.vector for a in negatives], axis=0))
        query = (query / max(float(np.linalg.norm(query)), 1e-12)).astype(np.float32)
        pop = self.popularity(now, listed)
        excluded = [*(a.row for a in positives), *(a.row for a in negatives), *listed.rows_of(exclude_ids)]
        language = list_language(language, positives[0].language if positives else "", self.ranking.related_languages)
        filters = Filters(frozenset(excluded), section, max_age_hours, language)
        anchor = positives[0] if positives else None
        rules = self.rules.for_list("more_like_this", listed, self._hours(now), anchor, section)
        floor = self.ranking.more_like_this_floor
        results = self._ranked(listed, query, k, filters, pop, positives, None, rules, floor)
        return self._filled(results, k, listed, pop, anchor, filters, floor, rules.now_hours)

    def popular(self, k: int = 10, section: str | None = None, window_hours: float | None = None,
                now: datetime | None = None, language: str | None = None,
                beside: str | None = None) -> list[Recommendation]:
        """Most-read articles now: page views in the window with exponential decay, ties broken by freshness.

        Articles without views in the window are not listed (a popular list is about what readers read).
        ``beside``: the article the list is shown beside (never listed itself; the editors' blocks beside it and
        guardrails against its tags hold).

        Raises:
            InvalidQueryError: k outside 1..100, or a window that is not positive.
        """
        check_k(k)
        window = self.popularity_config.window_hours if window_hours is None else window_hours
        if not window > 0:
            raise InvalidQueryError(f"window_hours must be positive, got {window}")
        listed = self.listed()
        pop = self.popularity(now, listed)
        views = (pop.raw if window_hours is None else
                 decayed_views(listed, self.rows.events, self._id_index, self.views, pop.now, self.popularity_config,
                               window))
        anchor = self.anchor(listed, beside) if beside is not None else None
        rules = self.rules.for_list("popular", listed, self._hours(now), anchor, section)
        excluded = frozenset([anchor.row]) if anchor else frozenset()
        taken = frozenset([anchor.group]) if anchor else frozenset()
        return most_read(listed, views, pop, k, section, language, window, self._fields, rules, excluded, taken)

    def story(self, article_id: str, k: int = 20, now: datetime | None = None) -> list[Recommendation]:
        """The story timeline of an article: its story's pieces in publication order, one entry per piece.

        Copies (wire copies, re-publications) collapse into the earliest; the article itself is included with
        relation "this article"; the others are labelled "same story, earlier" / "same story, later". At most
        ``k`` entries, the ones closest in time to the article when the story is longer.

        Raises:
            UnknownArticleError: the id is not listed.
        """
        check_k(k)
        listed = self.listed()
        anchor = self.anchor(listed, article_id)
        pop = self.popularity(now, listed)
        if self._story_rows is None:
            self._story_rows = story_rows(self.table)
        rules = replace(self.rules.for_list("related", listed, self._hours(now), anchor, None), pins=())
        return story_timeline(listed, anchor, self._story_rows, k, pop, self._fields, rules)

    def pair_scores(self, pairs: Sequence[tuple[str, str]], now: datetime | None = None) -> np.ndarray:
        """The score the second article of each pair would get in the first's list, by the one ``blend``, with
        the embedding cosine as relatedness (SemEval-style pair judgements; no candidate filtering)."""
        listed = self.listed()
        pop = self.popularity(now, listed)
        first = np.array([self.row(a) for a, _ in pairs], dtype=np.int64)
        second = np.array([self.row(b) for _, b in pairs], dtype=np.int64)
        vectors = listed.take("vectors", first), listed.take("vectors", second)
        cosine = np.einsum("ij,ij->i", *vectors).astype(np.float64)
        same_story = (listed.take("story_ids", first) == listed.take("story_ids", second)).astype(np.float64)
        return blend(cosine, pop.trending[second], pop.freshness[second], same_story, self.ranking)
