"""The GET list routes' parameters and lists: what ``/v1/articles/{article_id}/related`` and ``/v1/popular``
answer, written once for the two callers that rank them.

The routes (``routes.py``) validate their query strings with these models and answer through FastAPI; the
response cache's front door (``microcache.py``) validates a request it has not kept with the same models and
ranks it with the same functions, without routing, FastAPI's per-parameter machinery or the middleware stack
(the long tail, where hardly a list repeats, is most of a large archive's traffic). Whatever the front door
cannot answer (a parameter these models refuse, an unknown article, any error) goes to the route, which answers
it the same way it always does, errors included.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Hashable

from pydantic import BaseModel, ConfigDict, Field

from .rendering import RenderedList, ranked
from .schemas import READER_PATTERN

if TYPE_CHECKING:
    from .experiment_impressions import Served
    from .state import ServiceState

ARTICLE_ID_MAX_CHARS = 200
EXPLAIN = "Include score components, collapsed duplicates and reasons."


class ListQuery(BaseModel):
    """The parameters every GET list route takes."""

    model_config = ConfigDict(frozen=True)

    k: int = Field(10, ge=1, le=100, description="List length.")
    section: str | None = Field(None, max_length=200, description="Only this section.")
    explain: bool = Field(False, description=EXPLAIN)
    language: str | None = Field(None, min_length=1, max_length=20, description="Only articles in this language "
                                 "(e.g. 'en'); related lists default to the article's own language unless the "
                                 "build allows any.")
    reader: str | None = Field(None, pattern=READER_PATTERN, description="The widget's reader id (random, kept in "
                               "localStorage, no cookie): which arm of a running experiment this reader's lists "
                               "come from.")


class RelatedQuery(ListQuery):
    """``GET /v1/articles/{article_id}/related``'s query parameters."""

    max_age_hours: float | None = Field(None, gt=0, le=1e6, description="Only articles this recent.")


class PopularQuery(ListQuery):
    """``GET /v1/popular``'s query parameters."""

    window_hours: float | None = Field(None, gt=0, le=1e5, description="Views in this window.")
    beside: str | None = Field(None, min_length=1, max_length=ARTICLE_ID_MAX_CHARS, description="The article the "
                               "list is shown beside: never listed itself, and the editors' blocks beside it and "
                               "guardrails against its tags hold (an id that is not listed is ignored: the "
                               "widget's fallback for an unknown article).")


Listed = tuple[str, RenderedList, "Served | None"]  # the build id, the list, its impression inside an experiment


def related_list(state: ServiceState, article_id: str, query: RelatedQuery, key: Hashable) -> Listed:
    """Articles related to one article: precomputed neighbours re-blended with live popularity, inside the first
    running experiment that covers the reader. ``key``: the request's list key (``microcache.list_key``)."""
    recommender = state.served.recommender
    listed, served = state.experiments.serve(
        "related", query.reader, recommender.clock(), recommender, functools.partial(ranked, "related", query.explain, (
            ("article_id", article_id), ("k", query.k), ("section", query.section),
            ("max_age_hours", query.max_age_hours), ("language", query.language))), query.k, key)
    return recommender.manifest.build_id, listed, served


def popular_list(state: ServiceState, query: PopularQuery, key: Hashable) -> Listed:
    """Most-read articles now, inside the first running experiment that covers the reader."""
    recommender = state.served.recommender
    beside = query.beside if query.beside is not None and recommender.contains(query.beside) else None
    listed, served = state.experiments.serve(
        "popular", query.reader, recommender.clock(), recommender, functools.partial(ranked, "popular", query.explain, (
            ("k", query.k), ("section", query.section), ("window_hours", query.window_hours),
            ("language", query.language), ("beside", beside))), query.k, key)
    return recommender.manifest.build_id, listed, served
