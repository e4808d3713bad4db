"""LiveRecommender: one loaded build plus the live delta (upserts, takedowns) and live popularity.

Indexed articles' related lists come from ``fastpath.NeighbourRanker`` (a cached table read and a re-blend);
everything else (delta articles, more-like-this, a delta article close enough to join a neighbour list, lists
the neighbours cannot fill) goes through ``ranking.rank`` over a small table of the candidates gathered from
the FAISS index and from a brute-force scan of the delta. Taken-down ids and main rows replaced by a live edit
are hidden everywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

import numpy as np
import pandas as pd

from . import popularity
from .delta import DeltaSnapshot, DeltaStore
from .engine import Recommender, check_k, epoch_hours
from .errors import InvalidQueryError, UnknownArticleError
from .fastpath import NeighbourRanker
from .ranking import (Anchor, ArticleTable, Filters, Recommendation, anchor_of, explain, language_mask,
                      list_language, rank)
from .stories import StoryTable, assign, is_copy, time_order, title_words

# Indexed neighbours a live article is compared with to find its copy group and story.
LIVE_STORY_CANDIDATES = 20


@dataclass(frozen=True)
class _Anchor(Anchor):
    """An article a list is for, from the build or the delta: ``Anchor`` plus what ranking around it needs."""

    vector: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    title: str = ""
    group: int = -1
    language: str = ""


@dataclass(frozen=True)
class LivePopularity:
    """Trending and freshness at one time for the build's rows and the delta's, normalised together."""

    now: datetime
    now_hours: float
    trending: np.ndarray
    freshness: np.ndarray
    delta_trending: np.ndarray
    delta_freshness: np.ndarray
    raw: np.ndarray  # decayed views per build row then per delta row, default window (for ``popular``)
    snapshot: DeltaSnapshot  # the delta these arrays are aligned with; a request uses this one throughout

    @property
    def delta_seq(self) -> int:
        """Sequence number of the delta snapshot."""
        return self.snapshot.seq


class LiveRecommender:
    """Related / more-like-this / popular over ``engine`` with the delta of ``store`` applied."""

    def __init__(self, engine: Recommender, store: DeltaStore, cache_size: int = 20_000,
                 list_max_age_seconds: float = 0.0, result_cache_size: int | None = None) -> None:
        self.engine = engine
        self.store = store
        self.config = engine.ranking
        self._id_index = pd.Index(engine.table.ids)
        self.fast = None
        if engine.neighbours is not None and (self.config.mmr_lambda is None or self.config.mmr_lambda >= 1.0):
            self.fast = NeighbourRanker(engine.table, engine.neighbours, engine.neighbour_scores, self.config,
                                        cache_size)
        # The build's page views as arrays (row, hours since the epoch, count): a refresh is one bincount.
        events = engine.events
        self._event_rows = self._id_index.get_indexer(events["article_id"]) if len(events) else np.zeros(0, int)
        self._event_hours = np.asarray(epoch_hours(events["timestamp"]), dtype=np.float64) if len(events) \
            else np.zeros(0)
        self._event_counts = events["count"].to_numpy(dtype=np.float64)
        self._hidden_seq = -1
        self._hidden = np.zeros(len(engine), dtype=bool)
        self._delta_stories: tuple[int, StoryTable] | None = None
        self._story_rows: dict[str, np.ndarray] | None = None
        self._popularity: LivePopularity | None = None
        # Related lists of the current popularity snapshot and delta: a page read by many readers at once is
        # ranked once per refresh. Cleared whole when full (a refresh makes every entry stale anyway).
        self._results: dict[tuple, tuple[LivePopularity, int, list[Recommendation], float]] = {}
        # None: as many lists as candidate entries; 0: no list cache (the service's response cache in front
        # answers repeated requests, and thousands of cached lists are objects every full GC pass walks).
        self.result_cache_size = cache_size if result_cache_size is None else result_cache_size
        # A ranked list is reused while the delta is unchanged and its popularity snapshot is at most this old
        # (0: only with the very same snapshot). Takedowns and upserts always invalidate at once.
        self.list_max_age_seconds = list_max_age_seconds

    @property
    def delta(self) -> DeltaSnapshot:
        """The delta as last synced."""
        return self.store.snapshot

    def hidden(self, snapshot: DeltaSnapshot | None = None) -> np.ndarray:
        """(n,) bool: build rows taken down or replaced by a live edit (in ``snapshot``, default the latest)."""
        snapshot = self.delta if snapshot is None else snapshot
        if snapshot.seq != self._hidden_seq:
            hidden = np.zeros(len(self.engine), dtype=bool)
            for article_id in [*snapshot.deleted, *snapshot.row_of]:
                row = self.engine.row_of.get(article_id)
                if row is not None:
                    hidden[row] = True
            self._hidden, self._hidden_seq = hidden, snapshot.seq
        return self._hidden

    def contains(self, article_id: str) -> bool:
        """Whether an id is listed (in the delta, or in the build and not hidden)."""
        if article_id in self.delta.row_of:
            return True
        row = self.engine.row_of.get(article_id)
        return row is not None and not self.hidden()[row]

    def raw_views(self, now: datetime, window_hours: float, snapshot: DeltaSnapshot) -> np.ndarray:
        """Decayed views in the window (build events + live counters) per build row, then per delta row."""
        engine, config = self.engine, self.engine.popularity_config
        n = len(engine)
        raw = np.zeros(n + len(snapshot), dtype=np.float64)
        age = float(epoch_hours(now)) - self._event_hours
        keep = (age <= window_hours) & (self._event_rows >= 0)
        weights = self._event_counts[keep] * popularity.decay(age[keep], config.trending_half_life_hours)
        raw[:n] = np.bincount(self._event_rows[keep], weights=weights, minlength=n)
        live = engine.views.decayed_views(now, config.trending_half_life_hours, window_hours) \
            if engine.views is not None else {}
        if live:
            ids = list(live)
            values = np.fromiter(live.values(), dtype=np.float64, count=len(ids))
            rows = self._id_index.get_indexer(ids)
            np.add.at(raw, rows[rows >= 0], values[rows >= 0])
            for position in np.flatnonzero(rows < 0).tolist():
                delta_row = snapshot.row_of.get(ids[position])
                if delta_row is not None:
                    raw[n + delta_row] += values[position]
        for article_id, delta_row in snapshot.row_of.items():
            row = engine.row_of.get(article_id)  # a live edit keeps the views of the version it replaces
            if row is not None:
                raw[n + delta_row] += raw[row]
        return raw

    def refresh_popularity(self, now: datetime | None = None) -> LivePopularity:
        """Recompute trending (build events + live counters) and freshness for the build and the delta."""
        now = now or datetime.now(timezone.utc)
        engine, snapshot = self.engine, self.delta
        config = engine.popularity_config
        raw = self.raw_views(now, config.window_hours, snapshot)
        trending = popularity.normalise_log(raw)
        now_hours = float(epoch_hours(now))
        half_life = config.freshness_half_life_hours
        fresh = popularity.decay(now_hours - engine.table.published_hours, half_life)
        delta_fresh = popularity.decay(now_hours - snapshot.table.published_hours, half_life)
        result = LivePopularity(now, now_hours, trending[: len(engine)], fresh, trending[len(engine):],
                                delta_fresh, raw, snapshot)
        self._popularity = result
        return result

    def popularity(self, now: datetime | None = None) -> LivePopularity:
        """The last refreshed popularity; recomputed when the delta changed, or at ``now`` when one is given."""
        cached = self._popularity
        if cached is None or cached.delta_seq != self.delta.seq or (now is not None and cached.now != now):
            return self.refresh_popularity(now)
        return cached

    # ------------------------------------------------------------------ queries

    def delta_stories(self, snapshot: DeltaSnapshot) -> StoryTable:
        """Copy group and story of each delta article, as if it had arrived in publication order.

        Each joins the group of an indexed or earlier live article it copies, else the story of its most similar
        indexed neighbour within the story window (``stories.assign``); computed once per delta snapshot.
        """
        cached = self._delta_stories
        if cached is not None and cached[0] == snapshot.seq:
            return cached[1]
        engine, table = self.engine, snapshot.table
        n = len(snapshot)
        groups = np.zeros(n, dtype=np.int64)
        story_ids = np.empty(n, dtype=object)
        if n and engine.stories is not None:
            base = int(engine.stories.copy_groups.max(initial=-1)) + 1
            count = min(LIVE_STORY_CANDIDATES, len(engine))
            found, sims = engine.index.search(np.asarray(table.vectors, dtype=np.float32), count)
            placed: list[int] = []
            for i in time_order(table.published_hours).tolist():
                groups[i], story_ids[i] = assign(
                    found[i], sims[i], str(table.titles[i]), float(table.published_hours[i]), engine.table.titles,
                    engine.table.published_hours, engine.stories, self.config, engine.config.stories, base + i,
                    str(table.ids[i]))
                words = title_words(str(table.titles[i]))
                for j in placed:  # two live copies of one piece (both sent before the rebuild)
                    if is_copy(float(table.vectors[i] @ table.vectors[j]), words, title_words(str(table.titles[j])),
                               self.config):
                        groups[i], story_ids[i] = groups[j], story_ids[j]
                        break
                placed.append(i)
        elif n:
            groups[:] = -1
        result = StoryTable(groups, story_ids)
        self._delta_stories = (snapshot.seq, result)
        return result

    def _anchor(self, article_id: str, snapshot: DeltaSnapshot) -> _Anchor:
        position = snapshot.row_of.get(article_id)
        if position is not None:
            table, stories = snapshot.table, self.delta_stories(snapshot)
            story = stories.story_ids[position]
            return _Anchor(None if story is None else str(story), float(table.published_hours[position]),
                           table.row_tags(position), table.vectors[position], str(table.titles[position]),
                           int(stories.copy_groups[position]), str(table.languages[position]))
        row = self.engine.row_of.get(article_id)
        if row is None or self.hidden(snapshot)[row]:
            raise UnknownArticleError(article_id)
        table = self.engine.table
        described = anchor_of(table, row)
        return _Anchor(described.story, described.hours, described.tags, np.asarray(table.vectors[row]),
                       str(table.titles[row]), table.group(row), str(table.languages[row]))

    def related(self, article_id: str, k: int = 10, section: str | None = None,
                max_age_hours: float | None = None, now: datetime | None = None,
                language: str | None = None) -> list[Recommendation]:
        """Articles related to one article (indexed or live); see ``Recommender.related``."""
        check_k(k)
        pop = self.popularity(now)
        snapshot = pop.snapshot
        key = (article_id, k, section, max_age_hours, language)
        cached = self._results.get(key)
        if cached is not None and cached[1] == snapshot.seq and self._fresh_enough(cached, pop):
            return cached[2]
        results = self._related(article_id, k, section, max_age_hours, pop, snapshot, language)
        self._remember(key, (pop, snapshot.seq, results, time.monotonic()))
        return results

    def _remember(self, key: tuple, entry: tuple) -> None:
        if self.result_cache_size <= 0:
            return
        if len(self._results) >= self.result_cache_size:
            self._results.clear()
        self._results[key] = entry

    def _fresh_enough(self, cached: tuple, pop: LivePopularity) -> bool:
        # Reuse a list ranked with the current snapshot, or one at most list_max_age_seconds old both by the
        # snapshots' times and by the clock: by snapshot times alone, a service that refreshes popularity only on
        # events (popularity_refresh_seconds=0) served a list from before a click for as long as no event came.
        ranked_with, ranked_at = cached[0], cached[3]
        age_seconds = max((pop.now - ranked_with.now).total_seconds(), time.monotonic() - ranked_at)
        return ranked_with is pop or 0 <= age_seconds < self.list_max_age_seconds

    def _related(self, article_id: str, k: int, section: str | None, max_age_hours: float | None,
                 pop: LivePopularity, snapshot: DeltaSnapshot, language: str | None) -> list[Recommendation]:
        row = self.engine.row_of.get(article_id)
        policy = self.config.related_languages
        if row is None or article_id in snapshot.row_of or self.fast is None:
            anchor = self._anchor(article_id, snapshot)
            return self._ranked(anchor.vector, k, section, max_age_hours, {article_id}, [anchor], pop,
                                language=list_language(language, anchor.language, policy))
        hidden = self.hidden(snapshot)
        if hidden[row]:
            raise UnknownArticleError(article_id)
        language = list_language(language, str(self.engine.table.languages[row]), policy)
        vector = np.asarray(self.engine.table.vectors[row])
        entry = self.fast.entry(row)
        # A live article is scored by its cosine beside the build's candidates (scored by the build's relatedness):
        # it can enter this list only if that cosine reaches the lowest candidate score.
        delta_close = len(snapshot) and float((snapshot.table.vectors @ vector).max()) >= entry.min_similarity
        if not delta_close:
            results = self.fast.related(row, k, pop.trending, pop.freshness, pop.now_hours, hidden, section,
                                        max_age_hours, language)
            if results is not None:
                return results
        # The build's ranked candidates plus the live articles (by cosine); widened by a search if still short.
        first = (np.asarray(self.engine.neighbours[row], dtype=np.int64),
                 np.asarray(self.engine.neighbour_scores[row], dtype=np.float32))
        return self._ranked(vector, k, section, max_age_hours, {article_id}, [self._anchor(article_id, snapshot)],
                            pop, first, language)

    def more_like_this(self, ids: Sequence[str] = (), text_vector: np.ndarray | None = None,
                       negative_ids: Sequence[str] = (), exclude_ids: Sequence[str] = (), k: int = 10,
                       section: str | None = None, max_age_hours: float | None = None,
                       now: datetime | None = None, language: str | None = None) -> list[Recommendation]:
        """Like ``Recommender.more_like_this`` over build + delta; ``text_vector`` is the embedded free text."""
        check_k(k)
        if not ids and text_vector is None:
            raise InvalidQueryError("more_like_this needs at least one article id or a non-empty text")
        pop = self.popularity(now)
        positives = [self._anchor(i, pop.snapshot) for i in ids]
        negatives = [self._anchor(i, pop.snapshot).vector for i in negative_ids]
        vectors = [a.vector for a in positives] + ([text_vector] if text_vector is not None else [])
        query = np.mean(vectors, axis=0)
        if negatives:
            query = query + self.config.negative_weight * (query - np.mean(negatives, axis=0))
        query = (query / max(np.linalg.norm(query), 1e-12)).astype(np.float32)
        excluded = {*ids, *negative_ids, *exclude_ids}
        language = list_language(language, positives[0].language if positives else "", self.config.related_languages)
        return self._ranked(query, k, section, max_age_hours, excluded, positives, pop, language=language)

    def _ranked(self, query: np.ndarray, k: int, section: str | None, max_age_hours: float | None,
                excluded: set[str], anchors: list[_Anchor], pop: LivePopularity,
                first: tuple[np.ndarray, np.ndarray] | None = None,
                language: str | None = None) -> list[Recommendation]:
        engine, snapshot = self.engine, pop.snapshot
        hidden = self.hidden(snapshot)
        total = len(engine) + len(snapshot)
        count = len(first[0]) if first is not None else self.config.candidate_count
        while True:
            if first is None:
                rows, sims = engine.index.search(query[None, :], min(count + int(hidden.sum()), len(engine)))
                rows, sims = rows[0], sims[0]
            else:
                rows, sims = first
            keep = rows >= 0
            keep[keep] = ~hidden[rows[keep]]
            rows, sims = rows[keep], sims[keep]
            order = np.argsort(rows, kind="stable")
            rows, sims = rows[order], sims[order]
            delta_sims = snapshot.table.vectors @ query
            delta_rows = np.argsort(-delta_sims, kind="stable")[:count]
            table = _candidate_table(engine.table, rows, snapshot.table, self.delta_stories(snapshot),
                                     delta_rows, anchors)
            n = len(rows) + len(delta_rows)
            trending = np.concatenate([pop.trending[rows], pop.delta_trending[delta_rows], np.zeros(len(anchors))])
            fresh = np.concatenate([pop.freshness[rows], pop.delta_freshness[delta_rows], np.zeros(len(anchors))])
            excluded_rows = frozenset(i for i in range(n) if table.ids[i] in excluded) | frozenset(
                range(n, n + len(anchors)))
            results = rank(table, np.arange(n), np.concatenate([sims, delta_sims[delta_rows]]), k, self.config,
                           Filters(excluded_rows, section, max_age_hours, language), pop.now_hours, trending, fresh,
                           list(range(n, n + len(anchors))))
            if len(results) >= k or count >= total:
                return results
            count, first = max(count * 4, self.config.candidate_count), None

    def story_rows(self) -> dict[str, np.ndarray]:
        """Build rows of each story id (computed once per loaded build)."""
        rows = self._story_rows
        if rows is None:
            stories = self.engine.stories
            rows = {} if stories is None else {
                str(story): group.to_numpy() for story, group in
                pd.Series(np.arange(len(stories.story_ids))).groupby(stories.story_ids, sort=False)}
            self._story_rows = rows
        return rows

    def story(self, article_id: str, k: int = 20, now: datetime | None = None) -> list[Recommendation]:
        """The story timeline of an article: its story's pieces in publication order, one entry per piece.

        Copies (wire copies, re-publications) collapse into the earliest; the article itself is included with
        relation "this article"; the others are labelled "same story, earlier" / "same story, later". At most
        ``k`` entries, the ones closest in time to the article when the story is longer.

        Raises:
            UnknownArticleError: the id is neither indexed nor live (or was taken down).
        """
        check_k(k)
        pop = self.popularity(now)
        snapshot = pop.snapshot
        anchor = self._anchor(article_id, snapshot)
        if anchor.story is None:
            return []
        engine, n = self.engine, len(self.engine)
        hidden = self.hidden(snapshot)
        rows = [int(r) for r in self.story_rows().get(anchor.story, np.zeros(0, int)) if not hidden[r]]
        delta_stories = self.delta_stories(snapshot)
        rows += [n + int(i) for i in np.flatnonzero(delta_stories.story_ids == anchor.story)]

        def source(i: int) -> tuple[ArticleTable, int]:
            return (engine.table, i) if i < n else (snapshot.table, i - n)

        def group(i: int) -> int:
            return int(engine.table.copy_groups[i]) if i < n else int(delta_stories.copy_groups[i - n])

        def hours(i: int) -> float:
            table, row = source(i)
            value = float(table.published_hours[row])
            return np.inf if np.isnan(value) else value

        own = next((i for i in rows if str(source(i)[0].ids[source(i)[1]]) == article_id), None)
        entries: dict[int, list[int]] = {}
        for i in sorted(rows, key=lambda i: (i != own, hours(i), i)):  # the article leads its own copy group
            entries.setdefault(group(i), []).append(i)
        heads = sorted(entries, key=lambda g: hours(entries[g][0]))
        if len(heads) > k:  # the k pieces nearest in time to the article, still in time order
            nearest = sorted(heads, key=lambda g: abs(hours(entries[g][0]) - anchor.hours))[:k]
            heads = [g for g in heads if g in nearest]
        trending = np.concatenate([pop.trending, pop.delta_trending])
        freshness = np.concatenate([pop.freshness, pop.delta_freshness])
        results = []
        for g in heads:
            i, *copies = entries[g]
            table, row = source(i)
            similarity = float(np.asarray(table.vectors[row]) @ anchor.vector)
            is_self = str(table.ids[row]) == article_id
            relation, reasons, shared = explain(similarity, float(trending[i]), float(freshness[i]), anchor.story,
                                                float(table.published_hours[row]), anchor,
                                                table.row_tags(row))
            if is_self:
                relation, reasons, shared = "this article", (), ()
            results.append(Recommendation(
                article_id=str(table.ids[row]), title=str(table.titles[row]), score=similarity,
                similarity=similarity, trending=float(trending[i]), freshness=float(freshness[i]),
                section=str(table.sections[row]), url=str(table.urls[row]), published_at=table.published_iso(row),
                duplicates=tuple(str(source(c)[0].ids[source(c)[1]]) for c in copies), reasons=reasons,
                story_id=anchor.story, relation=relation, shared_tags=shared, same_story=1.0))
        return results

    def popular(self, k: int = 10, section: str | None = None, window_hours: float | None = None,
                now: datetime | None = None, language: str | None = None) -> list[Recommendation]:
        """Most-read listed articles (build and delta) by decayed live + build views; see ``Recommender.popular``."""
        check_k(k)
        pop = self.popularity(now)
        key = ("popular", k, section, window_hours, language)
        cached = self._results.get(key)
        if cached is not None and cached[1] == pop.delta_seq and self._fresh_enough(cached, pop):
            return cached[2]
        results = self._popular(k, section, window_hours, pop, language)
        self._remember(key, (pop, pop.delta_seq, results, time.monotonic()))
        return results

    def _popular(self, k: int, section: str | None, window_hours: float | None,
                 pop: LivePopularity, language: str | None = None) -> list[Recommendation]:
        window = self.engine.popularity_config.window_hours if window_hours is None else window_hours
        if window <= 0:
            raise InvalidQueryError(f"window_hours must be positive, got {window}")
        snapshot, table, n = pop.snapshot, self.engine.table, len(self.engine)
        views = (pop.raw if window_hours is None else self.raw_views(pop.now, window, snapshot)).copy()
        views[:n][self.hidden(snapshot)] = 0.0
        if section is not None:
            views[:n][table.sections != section] = 0.0
            views[n:][snapshot.table.sections != section] = 0.0
        if language:
            views[:n][~language_mask(table.languages, language)] = 0.0
            views[n:][~language_mask(snapshot.table.languages, language)] = 0.0
        fresh = np.concatenate([pop.freshness, pop.delta_freshness])
        listed = np.flatnonzero(views > 0)
        order = listed[np.lexsort((-fresh[listed], -views[listed]))][:k]
        top = float(np.log1p(views[listed].max())) if len(listed) else 1.0
        results = []
        for i in order.tolist():
            source, row = (table, i) if i < n else (snapshot.table, i - n)
            score = float(np.log1p(views[i]) / top)
            results.append(Recommendation(
                article_id=str(source.ids[row]), title=str(source.titles[row]), score=score, similarity=0.0,
                trending=score, freshness=float(fresh[i]), section=str(source.sections[row]),
                url=str(source.urls[row]), published_at=source.published_iso(row),
                reasons=(f"{views[i]:.0f} decayed views in the last {window:g} h",)))
        return results


def _candidate_table(main: ArticleTable, rows: np.ndarray, delta: ArticleTable, delta_stories: StoryTable,
                     delta_rows: np.ndarray, anchors: list[_Anchor]) -> ArticleTable:
    """A small table of the candidates (build rows, then delta rows, then the anchors) for ``rank``."""
    def join(name: str, anchor_values: list) -> np.ndarray:
        return np.concatenate([getattr(main, name)[rows], getattr(delta, name)[delta_rows],
                               np.array(anchor_values, dtype=getattr(main, name).dtype)])

    def objects(main_values: np.ndarray | None, delta_values: np.ndarray | None, anchor_values: list) -> np.ndarray:
        values = ([None] * len(rows) if main_values is None else main_values[rows].tolist()) + (
            [None] * len(delta_rows) if delta_values is None else delta_values[delta_rows].tolist()) + anchor_values
        out = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):  # element-wise: equal-length tag lists must not become a 2-D array
            out[i] = value
        return out

    dims = main.vectors.shape[1]
    anchor_vectors = np.array([a.vector for a in anchors], dtype=np.float32).reshape(len(anchors), dims)
    main_groups = main.copy_groups[rows] if main.copy_groups is not None else np.full(len(rows), -1)
    return ArticleTable(
        ids=join("ids", [""] * len(anchors)), titles=join("titles", [a.title for a in anchors]),
        sections=join("sections", [""] * len(anchors)), urls=join("urls", [""] * len(anchors)),
        published_hours=join("published_hours", [a.hours for a in anchors]),
        vectors=np.concatenate([np.asarray(main.vectors[rows], dtype=np.float32),
                                np.asarray(delta.vectors[delta_rows], dtype=np.float32), anchor_vectors]),
        copy_groups=np.concatenate([main_groups, delta_stories.copy_groups[delta_rows],
                                    np.array([a.group for a in anchors], dtype=np.int64)]).astype(np.int64),
        story_ids=objects(main.story_ids, delta_stories.story_ids, [a.story for a in anchors]),
        tags=objects(main.tags, delta.tags, [a.tags for a in anchors]),
        languages=objects(main.languages, delta.languages, [a.language for a in anchors]))
