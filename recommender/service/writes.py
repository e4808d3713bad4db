"""Live upserts: validate articles like a catalogue, embed them like a build, store them in the delta."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..catalogue import embedding_texts, read_catalogue
from ..config import CatalogueConfig
from ..times import epoch_hours
from .errors import ApiError
from .schemas import ArticleIn
from .state import ServiceState


def upsert_articles(state: ServiceState, articles: Sequence[ArticleIn]) -> list[str]:
    """Validate, embed (in this worker thread) and store articles; they are searchable when this returns.

    Raises:
        ApiError: 422 naming each rejected article, field and reason (nothing is stored then).
    """
    frame = pd.DataFrame([a.model_dump() for a in articles])
    # The catalogue reader parses dates itself; an absent date is an empty cell, as in a CSV.
    for name in ("published_at", "embargo_until"):
        frame[name] = [getattr(a, name).isoformat() if getattr(a, name) else "" for a in articles]
    ids = frame["id"].tolist()
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ApiError(422, "invalid_articles", f"article ids {duplicates} appear more than once in the batch; "
                       f"send each article once")
    engine = state.served.recommender
    catalogue = read_catalogue(frame, CatalogueConfig(max_reject_ratio=1.0,
                                                      max_text_chars=engine.config.catalogue.max_text_chars))
    if len(catalogue.rejects):
        reasons = "; ".join(f"articles[{int(r.record) - 1}] (id {r.id!r}) {r.field}: {r.reason}"
                            for r in catalogue.rejects.itertuples())
        raise ApiError(422, "invalid_articles", f"nothing was stored: {reasons}")
    accepted = catalogue.articles
    texts = embedding_texts(accepted, engine.config.embedder.max_chars)
    vectors = engine.embed(texts)
    hours = np.asarray(epoch_hours(accepted["published_at"]), dtype=np.float64)
    embargo = np.asarray(epoch_hours(accepted["embargo_until"]), dtype=np.float64)
    records: list[dict[str, Any]] = [
        {"id": str(row.id), "title": str(row.title), "section": str(row.section or ""),
         "url": str(row.url or ""), "published_hours": None if np.isnan(h) else float(h),
         "tags": [str(t) for t in row.tags], "language": str(row.language or ""), "author": str(row.author or ""),
         "embargo_hours": None if np.isnan(e) else float(e)}
        for row, h, e in zip(accepted.itertuples(), hours, embargo)]
    state.delta.upsert(records, vectors)
    return [r["id"] for r in records]
