"""Times as hours since the epoch: the unit every age, window and half-life in the engine is measured in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd


def epoch_hours(when: pd.Series | pd.DatetimeIndex | datetime) -> np.ndarray | float:
    """Hours since 1970-01-01 UTC (NaN where unknown); naive datetimes are UTC."""
    if isinstance(when, datetime):
        # Plain datetime arithmetic (every list reads its "now" this way: a pandas Timestamp cost ~10x).
        return (when.replace(tzinfo=UTC) if when.tzinfo is None else when).timestamp() / 3600.0
    values = pd.to_datetime(when, utc=True)
    # Subtract the epoch rather than cast to int64: the cast's unit follows the column's (s, ms, ns).
    return ((values - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(hours=1)).to_numpy(dtype=np.float64,
                                                                                  na_value=np.nan)


def iso_hours(hours: float) -> str | None:
    """ISO 8601 UTC (``2026-11-27T08:00:00Z``) of hours since the epoch; None for NaN."""
    if hours != hours:  # NaN
        return None
    # datetime arithmetic, not numpy's datetime64 string cast (~5x the time: each result of a list reads one).
    return (_EPOCH + timedelta(seconds=int(round(hours * 3600)))).isoformat() + "Z"


_EPOCH = datetime(1970, 1, 1)
