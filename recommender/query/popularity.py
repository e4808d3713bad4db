"""Trending and freshness: the decay maths (pure functions, no clock: the caller passes ``now``) and the
per-row snapshot a list is ranked with.

Scores blend with cosine similarity, so each is normalised into [0, 1]:

- ``freshness = 0.5 ** (age_hours / half_life_hours)``: 1.0 at publication, 0.5 after one half-life;
  an article dated in the future counts as age 0; an unknown date counts as 0 (not fresh).
- ``trending`` is the sum of page views, each weighted ``0.5 ** (hours_ago / half_life_hours)``, over the
  window; ``normalise_log`` maps it to ``log1p(x) / log1p(max)``, so one viral article does not flatten the
  rest of the list to zero (view counts are heavy-tailed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Mapping, Protocol

import numpy as np
import pandas as pd

from ..config import PopularityConfig
from ..times import epoch_hours
from .table import ListedArticles


def _hours_between(earlier: pd.Series | pd.DatetimeIndex, now: datetime) -> np.ndarray:
    now_ts = pd.Timestamp(now)
    now_ts = now_ts.tz_localize("UTC") if now_ts.tzinfo is None else now_ts.tz_convert("UTC")
    delta = (now_ts - pd.to_datetime(earlier, utc=True)) / pd.Timedelta(hours=1)
    return np.asarray(delta, dtype=np.float64)


def decay(age_hours: np.ndarray, half_life_hours: float) -> np.ndarray:
    """``0.5 ** (age / half_life)``; negative ages (future dates) clamp to 0, NaN ages give 0."""
    if half_life_hours <= 0:
        raise ValueError(f"half_life_hours must be positive, got {half_life_hours}")
    age = np.clip(np.asarray(age_hours, dtype=np.float64), 0.0, None)
    weight = np.power(0.5, age / half_life_hours)
    return np.where(np.isnan(weight), 0.0, weight)


def freshness(published_at: pd.Series, now: datetime, half_life_hours: float) -> np.ndarray:
    """Freshness in [0, 1] of each article from its ``published_at`` (aware UTC; NaT allowed)."""
    return decay(_hours_between(published_at, now), half_life_hours)


def trending(events: pd.DataFrame, now: datetime, half_life_hours: float,
             window_hours: float | None = None) -> pd.Series:
    """Decayed page views per article.

    Args:
        events: columns ``article_id``, ``timestamp`` (aware UTC) and ``count`` (views in that event or bucket).
        now: the reference time; events after it count as happening now.
        half_life_hours: a view counts half after this long.
        window_hours: events older than this are ignored (None keeps all).

    Returns:
        Decayed view totals indexed by article_id (only articles with views in the window).
    """
    if events.empty:
        return pd.Series(dtype=np.float64, name="trending")
    age = _hours_between(events["timestamp"], now)
    keep = np.ones(len(events), dtype=bool) if window_hours is None else age <= window_hours
    weighted = events["count"].to_numpy(dtype=np.float64) * decay(age, half_life_hours)
    frame = pd.DataFrame({"article_id": events["article_id"].to_numpy()[keep], "score": weighted[keep]})
    return frame.groupby("article_id")["score"].sum().rename("trending")


def normalise_log(values: np.ndarray) -> np.ndarray:
    """Map non-negative scores into [0, 1] by ``log1p(x) / log1p(max)``; all zeros stay zeros."""
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
    top = values.max(initial=0.0)
    return np.log1p(values) / np.log1p(top) if top > 0 else np.zeros_like(values)


class ViewSource(Protocol):
    """Live page views (a counter store) that add to the build's own ``views.parquet`` events."""

    def decayed_views(self, now: datetime, half_life_hours: float, window_hours: float) -> Mapping[str, float]:
        """Page views per article id in the window, each weighted ``0.5 ** (hours_ago / half_life_hours)``."""
        ...


@dataclass(frozen=True)
class BuildEvents:
    """A build's page-view events as arrays over its rows, so a refresh is one ``bincount``."""

    rows: np.ndarray    # (e,) int64 build row of each event (-1: an article the build does not hold)
    hours: np.ndarray   # (e,) float64 event time, hours since the epoch
    counts: np.ndarray  # (e,) float64 views

    @classmethod
    def of(cls, events: pd.DataFrame, id_index: pd.Index) -> BuildEvents:
        """From a build's events frame (``article_id``, ``timestamp``, ``count``) and its row ids."""
        if not len(events):
            return cls(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))
        return cls(np.asarray(id_index.get_indexer(events["article_id"]), dtype=np.int64),
                   np.asarray(epoch_hours(events["timestamp"]), dtype=np.float64),
                   events["count"].to_numpy(dtype=np.float64))


@dataclass(frozen=True)
class Popularity:
    """Trending, freshness and decayed views of every listed row at one time, normalised together.

    Attributes:
        now / now_hours: the reference time.
        trending: (N,) ``normalise_log`` of the decayed views in the default window.
        freshness: (N,) ``decay(age, freshness_half_life_hours)``.
        raw: (N,) decayed views in the default window (``popular`` ranks by it).
        seq: the listed snapshot the arrays are aligned with.
    """

    now: datetime
    now_hours: float
    trending: np.ndarray
    freshness: np.ndarray
    raw: np.ndarray
    seq: object


def decayed_views(listed: ListedArticles, events: BuildEvents, id_index: pd.Index, views: ViewSource | None,
                  now: datetime, config: PopularityConfig, window_hours: float) -> np.ndarray:
    """Decayed page views in the window per listed row: the build's events plus the live counters; a live edit of
    an indexed article keeps the views of the version it replaces."""
    n = listed.n_build
    raw = np.zeros(len(listed), dtype=np.float64)
    age = float(epoch_hours(now)) - events.hours
    keep = (age <= window_hours) & (events.rows >= 0)
    weights = events.counts[keep] * decay(age[keep], config.trending_half_life_hours)
    raw[:n] = np.bincount(events.rows[keep], weights=weights, minlength=n)
    live = views.decayed_views(now, config.trending_half_life_hours, window_hours) if views is not None else {}
    if live:
        ids = list(live)
        values = np.fromiter(live.values(), dtype=np.float64, count=len(ids))
        rows = np.asarray(id_index.get_indexer(ids), dtype=np.int64)
        np.add.at(raw, rows[rows >= 0], values[rows >= 0])
        for position in np.flatnonzero(rows < 0).tolist():
            live_row = listed.live_row_of.get(ids[position])
            if live_row is not None:
                raw[n + live_row] += values[position]
    if listed.live_row_of:
        live_ids = list(listed.live_row_of)
        replaced = np.asarray(id_index.get_indexer(live_ids), dtype=np.int64)
        for article_id, row in zip(live_ids, replaced.tolist()):
            if row >= 0:
                raw[n + listed.live_row_of[article_id]] += raw[row]
    return raw


def snapshot(listed: ListedArticles, events: BuildEvents, id_index: pd.Index, views: ViewSource | None,
             now: datetime, config: PopularityConfig) -> Popularity:
    """The popularity of every listed row at ``now``."""
    raw = decayed_views(listed, events, id_index, views, now, config, config.window_hours)
    now_hours = float(epoch_hours(now))
    published = np.concatenate([listed.build.published_hours, listed.live.published_hours])
    return Popularity(now, now_hours, normalise_log(raw), decay(now_hours - published,
                                                                config.freshness_half_life_hours), raw, listed.seq)


class PopularityCache:
    """The latest popularity snapshot of a recommender: one taken at the clock is reused for
    ``max_age_seconds`` while the rows are unchanged; one at a given ``now`` is computed once.

    Args:
        events / id_index: the build's page-view events and the id index they are aligned with.
        config: decay and window settings.
        max_age_seconds: how long a snapshot taken at the clock is reused (the service refreshes its own and
            passes infinity).
    """

    def __init__(self, events: BuildEvents, id_index: pd.Index, config: PopularityConfig,
                 max_age_seconds: float) -> None:
        self.events, self.id_index, self.config = events, id_index, config
        self.max_age_seconds = max_age_seconds
        self._latest: tuple[Popularity, float] | None = None

    def emptied(self) -> PopularityCache:
        """A cache with these settings and no snapshot (the view source changed)."""
        return PopularityCache(self.events, self.id_index, self.config, self.max_age_seconds)

    def or_shared(self, other: PopularityCache | None) -> PopularityCache:
        """``other`` when its snapshots would be these (the same build events, settings and reuse; the caller
        vouches for the same view source), so one serves both; else this one."""
        same = (other is not None and other.events is self.events and other.config == self.config
                and other.max_age_seconds == self.max_age_seconds)
        return other if same and other is not None else self

    def refresh(self, listed: ListedArticles, views: ViewSource | None, now: datetime) -> Popularity:
        """A new snapshot at ``now``."""
        result = snapshot(listed, self.events, self.id_index, views, now, self.config)
        self._latest = (result, time.monotonic())
        return result

    def at(self, listed: ListedArticles, views: ViewSource | None, now: datetime | None,
           clock: Callable[[], datetime]) -> Popularity:
        """The snapshot for ``listed`` at ``now`` (None: the clock), reused when it may be."""
        cached = self._latest
        if cached is not None and cached[0].seq == listed.seq:
            if now is None and time.monotonic() - cached[1] < self.max_age_seconds:
                return cached[0]
            if now is not None and cached[0].now == now:
                return cached[0]
        return self.refresh(listed, views, now or clock())
