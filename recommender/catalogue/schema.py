"""The catalogue schema: the fields an article has, their common alternative names, and a validated catalogue."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

FIELDS = ("id", "title", "abstract", "body", "url", "section", "published_at", "updated_at", "language", "tags",
          "views", "author", "embargo_until")
TEXT_FIELDS = ("title", "abstract", "body")
STRING_FIELDS = ("id", "title", "abstract", "body", "url", "section", "language", "author")
DATE_FIELDS = ("published_at", "updated_at", "embargo_until")
# Common alternative spellings, applied only when the schema name is absent from the source.
ALIASES = {
    "article_id": "id", "news_id": "id", "headline": "title", "text": "body", "content": "body",
    "lead": "abstract", "summary": "abstract", "description": "abstract", "category": "section",
    "date": "published_at", "published": "published_at", "entities": "tags", "lang": "language",
    "byline": "author", "embargoed_until": "embargo_until",
}
MIND_COLUMNS = ("id", "section", "subsection", "title", "abstract", "url", "title_entities", "abstract_entities")


@dataclass
class Catalogue:
    """A validated catalogue: the accepted articles, the rejected rows and what was repaired.

    Attributes:
        articles: one row per accepted article, columns ``FIELDS``, the dates (``DATE_FIELDS``) aware UTC;
            ``embargo_until``: never listed before it (a ``published_at`` in the future embargoes the same way).
        rejects: ``record`` (1-based position in the source), ``id``, ``field``, ``reason``.
        truncated_ids: ids whose text was longer than ``max_text_chars`` and was cut.
        ignored_columns: source columns that map to no schema field.
        records_in: records read from the source (accepted + rejected, always).
        repaired: values whose control characters were removed.
    """

    articles: pd.DataFrame
    rejects: pd.DataFrame
    truncated_ids: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    records_in: int = 0
    repaired: int = 0

    def summary(self) -> str:
        """One line for a terminal or a log."""
        reasons = self.rejects["reason"].str.split(":").str[0].value_counts().to_dict() if len(self.rejects) else {}
        parts = [f"{self.records_in} records read", f"{len(self.articles)} accepted", f"{len(self.rejects)} rejected"]
        if reasons:
            parts[-1] += " (" + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) + ")"
        if self.truncated_ids:
            parts.append(f"{len(self.truncated_ids)} truncated")
        if self.repaired:
            parts.append(f"{self.repaired} value(s) with control characters removed")
        if self.ignored_columns:
            parts.append("ignored columns: " + ", ".join(self.ignored_columns))
        return "; ".join(parts)

    def write_rejects(self, path: str | Path) -> Path:
        """Write the rejected rows with their reasons as CSV (an empty file with a header when none)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rejects.to_csv(path, index=False)
        return path


def reject_record(record: int, article_id: Any, field_name: str, reason: str) -> dict[str, Any]:
    """One row of the rejects file."""
    return {"record": int(record), "id": "" if article_id is None else str(article_id), "field": field_name,
            "reason": reason}
