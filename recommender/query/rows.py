"""The rows a recommender lists: the build's table read from storage, and the live articles placed over it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .. import stories
from ..config import BuildConfig, RankingConfig, StoryConfig
from ..storage import layout
from ..storage.index import FaissIndex
from ..storage.reader import StoredBuild
from ..times import epoch_hours
from .overlay import Overlay
from .popularity import BuildEvents
from .ranking import RowFields
from .table import ArticleTable, ListedArticles, object_array

# Indexed neighbours a live article is compared with to find its copy group and story.
LIVE_STORY_CANDIDATES = 20


def _story_settings(config: BuildConfig) -> tuple:
    """What the stored copy groups and stories depend on."""
    return (config.ranking.duplicate_similarity, config.ranking.duplicate_title_jaccard, config.stories)


@dataclass(frozen=True)
class BuildRows:
    """What a recommender reads per build row: the table, the row of each id, and the row strings as results
    show them. Shared by the recommenders of one build whose copy-group and story settings agree (the service's
    experiment arms over the served build, ``Recommender(shares=...)``): the same rows are not read twice.

    Attributes:
        stored / settings: the build and the ``_story_settings`` the table was made with.
        table / row_of / id_index / fields: the rows, article id -> build row, the ids as a pandas index, the
            row-string cache.
        events: the build's page views over those rows (what popularity snapshots are computed from).
    """

    stored: StoredBuild
    settings: tuple
    table: ArticleTable
    row_of: dict[Any, int]
    id_index: pd.Index
    fields: RowFields
    events: BuildEvents

    @classmethod
    def of(cls, stored: StoredBuild, config: BuildConfig, shared: BuildRows | None = None) -> BuildRows:
        """``shared`` when it holds this build's rows made with the same settings, else this build's rows made
        now."""
        settings = _story_settings(config)
        if shared is not None and shared.stored is stored and shared.settings == settings:
            return shared
        table = build_table(stored, config)
        id_index = pd.Index(table.ids)
        return cls(stored, settings, table, {article_id: row for row, article_id in enumerate(table.ids)},
                   id_index, RowFields(), BuildEvents.of(stored.events, id_index))


def build_table(stored: StoredBuild, config: BuildConfig) -> ArticleTable:
    """The build's rows as the ranker reads them; copy groups and stories regrouped when ``config`` groups
    otherwise than the build did (or the build predates the stored columns)."""
    articles = stored.articles
    ids = articles["id"].to_numpy(dtype=object)
    titles = articles["title"].to_numpy(dtype=object)
    hours = np.asarray(epoch_hours(articles["published_at"]), dtype=np.float64)
    if set(layout.STORY_COLUMNS) <= set(articles.columns) and _story_settings(config) == _story_settings(
            stored.config):
        groups = articles["copy_group"].to_numpy(dtype=np.int64)
        story_ids = articles["story_id"].astype(str).to_numpy(dtype=object)
    else:
        rows = np.asarray(stored.related_rows)
        table = stories.story_table(ids, titles, rows, stories.neighbour_cosines(stored.vectors, rows), hours,
                                    config.ranking, config.stories)
        groups, story_ids = table.copy_groups, table.story_ids.astype(str).astype(object)
    tags = object_array([tuple(t) if t is not None else () for t in articles["tags"]]) if "tags" in articles \
        else object_array([()] * len(ids))
    languages = (articles["language"].fillna("").astype(str).to_numpy(dtype=object) if "language" in articles
                 else np.full(len(ids), "", dtype=object))
    authors = (articles["author"].fillna("").astype(str).to_numpy(dtype=object) if "author" in articles
               else np.full(len(ids), "", dtype=object))
    embargo = (np.asarray(epoch_hours(articles["embargo_until"]), dtype=np.float64) if "embargo_until" in articles
               else np.full(len(ids), np.nan))
    return ArticleTable(ids=ids, titles=titles, sections=articles["section"].fillna("").to_numpy(dtype=object),
                        urls=articles["url"].fillna("").to_numpy(dtype=object), published_hours=hours,
                        vectors=stored.vectors, copy_groups=groups, story_ids=story_ids, tags=tags,
                        languages=languages, authors=authors, embargo_hours=embargo)


def listed_articles(build: ArticleTable, row_of: Mapping[str, int], overlay: Overlay, index: FaissIndex,
                    ranking: RankingConfig, story_config: StoryConfig) -> ListedArticles:
    """The build's rows and the overlay's as one row space: live articles placed in copy groups and stories,
    taken-down ids and replaced build rows hidden."""
    live = overlay.live
    groups, story_ids = place_live(build, live, index, ranking, story_config)
    live = ArticleTable(live.ids, live.titles, live.sections, live.urls, live.published_hours,
                        np.asarray(live.vectors, dtype=np.float32), groups, story_ids, live.tags, live.languages,
                        live.authors, live.embargo_hours)
    n = len(build)
    hidden = np.zeros(n + len(live), dtype=bool)
    for article_id in overlay.taken_down:
        row = row_of.get(article_id)
        if row is not None:
            hidden[row] = True
        live_row = overlay.live_row_of.get(article_id)
        if live_row is not None:
            hidden[n + live_row] = True
    for article_id in overlay.live_row_of:  # a live edit replaces the indexed version
        row = row_of.get(article_id)
        if row is not None:
            hidden[row] = True
    return ListedArticles(build, live, hidden, overlay.live_row_of, overlay.seq, row_of)


def place_live(build: ArticleTable, live: ArticleTable, index: FaissIndex, ranking: RankingConfig,
               story_config: StoryConfig) -> tuple[np.ndarray, np.ndarray]:
    """Copy group and story of each live article, as if it had arrived in publication order: it joins the
    group of an indexed or earlier live article it copies, else the story of its most similar indexed
    neighbour within the story window (``stories.assign``)."""
    m = len(live)
    groups = np.zeros(m, dtype=np.int64)
    story_ids = np.empty(m, dtype=object)
    if not m:
        return groups, story_ids
    base = int(build.copy_groups.max(initial=-1)) + 1
    found, sims = index.search(np.asarray(live.vectors, dtype=np.float32), min(LIVE_STORY_CANDIDATES, len(build)))
    grouping = stories.StoryTable(build.copy_groups, build.story_ids)
    placed: list[int] = []
    for i in stories.time_order(live.published_hours).tolist():
        groups[i], story_ids[i] = stories.assign(
            found[i], sims[i], str(live.titles[i]), float(live.published_hours[i]), build.titles,
            build.published_hours, grouping, ranking, story_config, base + i, str(live.ids[i]))
        words = stories.title_words(str(live.titles[i]))
        for j in placed:  # two live copies of one piece (both sent before the rebuild)
            if stories.is_copy(float(live.vectors[i] @ live.vectors[j]), words,
                               stories.title_words(str(live.titles[j])), ranking):
                groups[i], story_ids[i] = groups[j], story_ids[j]
                break
        placed.append(i)
    return groups, story_ids
