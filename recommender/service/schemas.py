"""Request and response bodies of the HTTP API (pydantic); these are what the OpenAPI document shows."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(value: str) -> str:
    r"""Refuse text that cannot be encoded as UTF-8 (a lone surrogate such as a ``\\ud800`` JSON escape): a 422
    naming the field, not a 500 from the tokenizer, the JSON encoder or a store."""
    if _SURROGATE.search(value):
        raise ValueError("text that cannot be encoded as UTF-8 (a lone surrogate such as \\ud800); send valid "
                         "Unicode")
    return value


# Every text field of a request.
Text = Annotated[str, AfterValidator(encodable)]
ArticleId = Field(min_length=1, max_length=200)
READER_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"


class Components(BaseModel):
    """The parts of a result's score."""

    similarity: float
    trending: float
    freshness: float
    same_story: float = Field(description="1 when the result is in the article's own story.")


class Item(BaseModel):
    """One recommended article. ``components``, ``duplicates``, ``reasons``, ``explanation`` and ``shared_tags``
    only with ``explain=true``."""

    article_id: str
    title: str
    section: str
    url: str
    published_at: str | None
    score: float
    components: Components | None = None
    duplicates: list[str] | None = None
    reasons: list[str] | None = None
    explanation: str | None = Field(None, description="The reasons as one sentence.")
    shared_tags: list[str] | None = Field(None, description="Tags / entities shared with the article.")
    story_id: str | None = Field(None, description="The story this article belongs to (id of its first piece).")
    relation: str = Field("", description="'same story, earlier' / 'same story, later' / 'same story' (its "
                          "story's timeline), 'this article' (story timeline), 'background' (another story), "
                          "or '' for lists without an anchor article (free text, popular).")
    label: str = Field("", description="Words for readers beside an editors' choice ('Chosen by the editors'); "
                       "'' for the ranker's own picks.")
    source: Literal["ranked", "pinned", "fallback"] = Field(
        "ranked", description="'ranked' (the ranker chose it), 'pinned' (an editorial pin), 'fallback' (too few "
        "articles passed the relatedness floor; filled from the declared fallback).")


class ListResponse(BaseModel):
    """A list of recommendations and the index version that produced it."""

    build_id: str
    items: list[Item]
    fallback: str | None = Field(None, description="Where the list was filled from when too few articles passed "
                                 "the relatedness floor (e.g. \"popular in section 'world'\"); null when it was "
                                 "not.")
    impression_id: str | None = Field(None, description="A list served inside an online experiment: send it back "
                                      "with a click (POST /v1/events/click) to credit the arm that showed the item.")
    experiment: str | None = Field(None, description="The experiment the list was served in.")
    arm: str | None = Field(None, description="The A/B arm the reader sees (null when interleaved).")


class MoreLikeThisRequest(BaseModel):
    """Articles like these examples and/or this text, unlike the negative examples."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Text] = Field(default_factory=list, max_length=50)
    text: Text | None = None
    negative_ids: list[Text] = Field(default_factory=list, max_length=50)
    exclude_ids: list[Text] = Field(default_factory=list, max_length=500)
    k: int = Field(default=10, ge=1, le=100)
    section: Text | None = Field(default=None, max_length=200)
    max_age_hours: float | None = Field(default=None, gt=0, le=1e6)
    language: Text | None = Field(default=None, min_length=1, max_length=20)
    explain: bool = False
    reader: str | None = Field(default=None, pattern=READER_PATTERN, description="The widget's reader id (which "
                               "arm of a running experiment the reader sees).")


class ArticleIn(BaseModel):
    """A new or edited article (the catalogue schema; ``published_at`` ISO 8601)."""

    model_config = ConfigDict(extra="forbid")

    id: Text = ArticleId
    title: Text = Field(min_length=1, max_length=1_000)
    abstract: Text = ""
    body: Text = ""
    url: Text = ""
    section: Text = ""
    published_at: datetime | None = None
    language: Text = ""
    tags: list[Text] = Field(default_factory=list, max_length=100)
    author: Text = Field("", max_length=200)
    embargo_until: datetime | None = Field(None, description="Never listed before this time (an embargo; a "
                                           "published_at in the future embargoes the same way).")

    @field_validator("published_at", "embargo_until")
    @classmethod
    def _plausible_date(cls, value: datetime | None) -> datetime | None:
        if value is not None and not 1800 <= value.year <= 2200:
            raise ValueError(f"{value.isoformat()} is outside the years 1800-2200; send the real time (ISO 8601)")
        return value


class UpsertRequest(BaseModel):
    """A batch of articles to make searchable now."""

    model_config = ConfigDict(extra="forbid")

    articles: list[ArticleIn] = Field(min_length=1)


class UpsertResponse(BaseModel):
    """What the upsert did."""

    upserted: list[str]
    delta_size: int


class DeleteResponse(BaseModel):
    """A takedown."""

    deleted: str
    delta_size: int


class TakedownsResponse(BaseModel):
    """The active takedowns and the newest audit-log entries (newest first)."""

    takedowns: list[dict[str, str]]
    log: list[dict[str, object]]


class LiftResponse(BaseModel):
    """A lifted takedown."""

    lifted: str


class Event(BaseModel):
    """``count`` page views (or widget clicks) of an article; ``timestamp`` defaults to now."""

    model_config = ConfigDict(extra="forbid")

    article_id: Text = ArticleId
    type: Literal["view", "click"] = "view"
    timestamp: datetime | None = None
    count: int = Field(default=1, ge=1, le=1_000_000)


class EventsRequest(BaseModel):
    """A batch of events, applied whole or not at all."""

    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(min_length=1)


class EventsResponse(BaseModel):
    """What the batch added."""

    accepted: int
    unknown_ids: list[str]


class Ready(BaseModel):
    """The loaded index, and the last reload attempt that was refused (if any)."""

    ready: bool
    build_id: str
    articles: int
    model: str
    created_at: str
    loaded_at: str
    delta_articles: int
    taken_down: int
    refused_build: str | None = None
    refused_reason: str | None = None
    degraded: list[str] = Field(default_factory=list, description="Stores unreachable now (views: lists use the "
                                "last live views read, writes answer 503).")
    current_problem: str | None = Field(None, description="What is wrong with the `current` pointer (dangling, a "
                                        "loop), while the last good build keeps serving.")


class ErrorBody(BaseModel):
    """Every error: a code, a message naming the offending value and the fix, and details where useful."""

    code: str
    message: str
    article_id: str | None = None
    details: list[dict] | None = None
    conflicts: list[str] | None = Field(None, description="The stored rules a refused rule contradicts.")


class ErrorResponse(BaseModel):
    """The error envelope."""

    error: ErrorBody
