"""Trending and freshness scores: pure functions of their inputs. No I/O and no clock: the caller passes ``now``.

Scores blend with cosine similarity, so each is normalised into [0, 1]:

- ``freshness = 0.5 ** (age_hours / half_life_hours)``: 1.0 at publication, 0.5 after one half-life;
  an article dated in the future counts as age 0; an unknown date counts as 0 (not fresh).
- ``trending`` is the sum of page views, each weighted ``0.5 ** (hours_ago / half_life_hours)``, over the
  window; ``normalise_log`` maps it to ``log1p(x) / log1p(max)``, so one viral article does not flatten the
  rest of the list to zero (view counts are heavy-tailed).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd


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
