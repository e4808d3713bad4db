"""Read and validate page-view events or hourly aggregates (CSV or Parquet)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InvalidCatalogueError

EVENT_COLUMNS = ("article_id", "timestamp", "count")


def read_views(source: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read page views: one row per event (``count`` omitted = 1) or per aggregate bucket.

    Returns:
        (events with ``article_id`` str, ``timestamp`` aware UTC, ``count`` int64; rejects with ``record``,
        ``article_id``, ``reason``).
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        path = Path(source)
        if not path.exists():
            raise InvalidCatalogueError(f"views file {path} does not exist")
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix.lower() in (".csv", ".gz"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            raise InvalidCatalogueError(f"views file {path} must be .csv or .parquet")
    frame = frame.rename(columns={"id": "article_id", "time": "timestamp", "views": "count"})
    missing = [c for c in ("article_id", "timestamp") if c not in frame]
    if missing:
        raise InvalidCatalogueError(f"views need columns article_id, timestamp[, count]; missing {missing} "
                                    f"(columns: {list(frame.columns)})")
    records = np.arange(1, len(frame) + 1)
    article_id = frame["article_id"].astype(str).str.strip()
    timestamp = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce", format="mixed")
    count = pd.to_numeric(frame["count"], errors="coerce") if "count" in frame else pd.Series(1, index=frame.index)
    reasons = np.select(
        [article_id == "", timestamp.isna(), count.isna() | (count < 0) | (count != np.floor(count))],
        ["missing article_id", "unparseable timestamp; use ISO 8601", "count must be a non-negative integer"],
        default="",
    )
    bad = reasons != ""
    rejects = pd.DataFrame({"record": records[bad], "article_id": article_id[bad].to_numpy(), "reason": reasons[bad]})
    events = pd.DataFrame({"article_id": article_id[~bad].to_numpy(), "timestamp": timestamp[~bad].to_numpy(),
                           "count": count[~bad].astype("int64").to_numpy()})
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    return events, rejects
