"""Popularity: hand-computed decay, trending and normalisation."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from recommender.query.popularity import decay, freshness, normalise_log, trending

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_decay_is_half_at_one_half_life_and_clamps_the_future():
    """weight == 0.5 at age == half-life; future ages count as now; NaN ages give 0."""
    assert decay(np.array([0.0, 6.0, 12.0, -5.0, np.nan]), 6.0).tolist() == [1.0, 0.5, 0.25, 1.0, 0.0]
    with pytest.raises(ValueError, match="half_life_hours must be positive"):
        decay(np.array([1.0]), 0)


def test_freshness_from_publication_dates():
    """Freshness halves every half-life; unknown dates are not fresh."""
    published = pd.Series(pd.to_datetime(["2026-11-27T12:00Z", "2026-11-24T12:00Z", None], utc=True))
    assert freshness(published, NOW, 72.0).tolist() == [1.0, 0.5, 0.0]


def test_trending_sums_decayed_views_inside_the_window():
    """Views decay with age, sum per article, and old ones fall out of the window."""
    events = pd.DataFrame({
        "article_id": ["a", "a", "b", "c", "d"],
        "timestamp": pd.to_datetime(["2026-11-27T12:00Z", "2026-11-27T06:00Z", "2026-11-27T00:00Z",
                                     "2026-11-20T00:00Z", "2026-11-28T00:00Z"], utc=True),
        "count": [10, 8, 40, 1000, 3],
    })
    scores = trending(events, NOW, half_life_hours=6.0, window_hours=48.0)
    assert scores["a"] == pytest.approx(10 + 8 * 0.5)
    assert scores["b"] == pytest.approx(40 * 0.25)
    assert "c" not in scores.index
    assert scores["d"] == pytest.approx(3.0)
    assert trending(events.iloc[:0], NOW, 6.0).empty


def test_normalise_log_maps_into_unit_interval():
    """log1p(x) / log1p(max); zeros stay zeros."""
    values = normalise_log(np.array([0.0, 9.0, 99.0]))
    assert values[0] == 0.0 and values[2] == 1.0
    assert values[1] == pytest.approx(np.log(10) / np.log(100))
    assert normalise_log(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
