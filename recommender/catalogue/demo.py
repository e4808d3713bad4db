"""The built-in demo corpus, optionally moved in time so that "now" is the hour after its last page view."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from .read import read_catalogue
from .views import read_views

DEMO_DIR = Path(__file__).parent / "demo_data"
# The corpus was written as of this moment: its newest article and page views are from the day before.
DEMO_EPOCH = datetime(2026, 11, 27, tzinfo=UTC)


def demo_files() -> tuple[Path, Path]:
    """The demo corpus files (articles.jsonl, views.csv) exactly as written."""
    return DEMO_DIR / "articles.jsonl", DEMO_DIR / "views.csv"


def demo_catalogue(now: datetime | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The demo articles and views with every date shifted by whole hours so ``now`` plays ``DEMO_EPOCH``.

    A demo served next month would otherwise have no views in any popularity window and no fresh articles.
    ``now=None`` uses the clock; ``now=DEMO_EPOCH`` returns the corpus unshifted.
    """
    articles_file, views_file = demo_files()
    now = now or datetime.now(UTC)
    shift = pd.Timedelta(hours=round((now - DEMO_EPOCH).total_seconds() / 3600))
    articles = read_catalogue(articles_file).articles
    for column in ("published_at", "updated_at", "embargo_until"):
        articles[column] = articles[column] + shift
    views, _ = read_views(views_file)
    views["timestamp"] = views["timestamp"] + shift
    return articles, views
