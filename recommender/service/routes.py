"""HTTP routes: thin; each parses input, calls the live recommender or a store, and renders JSON.

Lookups that only read tables are ``async def`` (they take microseconds); anything that embeds text or writes
to a store is a plain ``def``, which FastAPI runs in its thread pool so the event loop never waits on it.
"""

from __future__ import annotations

import functools
import hmac
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .counters import CountedEvent
from .errors import ApiError, unauthorized
from .lists import ARTICLE_ID_MAX_CHARS, EXPLAIN, PopularQuery, RelatedQuery, popular_list, related_list
from .microcache import list_key
from .rendering import ranked, rendered, respond
from .schemas import (
    DeleteResponse,
    ErrorResponse,
    EventsRequest,
    EventsResponse,
    LiftResponse,
    ListResponse,
    MoreLikeThisRequest,
    Ready,
    TakedownsResponse,
    UpsertRequest,
    UpsertResponse,
)
from .state import ServiceState
from .writes import upsert_articles

router = APIRouter()
bearer = HTTPBearer(auto_error=False, description="The write token from the service configuration.")
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (401, 404, 413, 422)}


async def get_state(request: Request) -> ServiceState:
    """The process's service state (set by the lifespan)."""
    return request.app.state.service


State = Annotated[ServiceState, Depends(get_state)]


def require_writer(request: Request,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """Refuse a write without the configured bearer token (401)."""
    token = request.app.state.settings.write_token
    if token is None:
        raise unauthorized("writes are disabled: the service has no write token (set RECOMMENDER_WRITE_TOKEN)")
    if credentials is None:
        raise unauthorized("this endpoint needs 'Authorization: Bearer <write token>'")
    if not hmac.compare_digest(credentials.credentials.encode(), token.get_secret_value().encode()):
        raise unauthorized("the bearer token is not the configured write token")


Writer = Depends(require_writer)


@router.get("/healthz", tags=["ops"])
async def healthz() -> dict[str, str]:
    """Alive."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Ready, tags=["ops"])
async def readyz(state: State) -> Ready:
    """The loaded index: version, article count, model; and a refused newer version, if any."""
    served, engine = state.served, state.served.recommender
    refused = state.refused
    overlay = state.live.overlay
    return Ready(ready=True, build_id=engine.manifest.build_id, articles=len(engine),
                 model=engine.manifest.model.name, created_at=engine.manifest.created_at,
                 loaded_at=served.loaded_at.isoformat(), delta_articles=len(overlay.live),
                 taken_down=len(overlay.taken_down),
                 refused_build=refused[0].name if refused else None, refused_reason=refused[1] if refused else None,
                 degraded=["views"] if state.views.degraded else [], current_problem=state.pointer_problem)


@router.get("/metrics", tags=["ops"], response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}})
async def metrics(state: State) -> Response:
    """Prometheus metrics of this process."""
    state.update_gauges()
    return Response(state.metrics.export(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/v1/articles/{article_id:path}/related", response_model=ListResponse, responses=ERRORS, tags=["lists"])
async def related(request: Request, state: State,
                  article_id: Annotated[str, Path(min_length=1, max_length=ARTICLE_ID_MAX_CHARS)],
                  query: Annotated[RelatedQuery, Query()]) -> Response:
    """Articles related to one article: precomputed neighbours re-blended with live popularity."""
    build_id, listed, served = related_list(state, article_id, query, list_key(request.scope))
    return respond(build_id, listed, state.views.degraded, served)


@router.get("/v1/articles/{article_id:path}/story", response_model=ListResponse, responses=ERRORS, tags=["lists"])
async def story(state: State, article_id: Annotated[str, Path(min_length=1, max_length=ARTICLE_ID_MAX_CHARS)],
                k: int = Query(20, ge=1, le=100, description="At most this many pieces (nearest in time)."),
                explain: bool = Query(False, description=EXPLAIN)) -> Response:
    """The article's story as a timeline: earlier and later pieces in publication order, copies collapsed."""
    recommender = state.served.recommender
    return respond(recommender.manifest.build_id, rendered(recommender.story(article_id, k=k), explain),
                   state.views.degraded)


@router.post("/v1/more-like-this", response_model=ListResponse, responses=ERRORS, tags=["lists"])
def more_like_this(state: State, body: MoreLikeThisRequest) -> Response:
    """Articles like several examples and/or free text, unlike the negative examples."""
    text = (body.text or "").strip()
    if len(text) > state.settings.max_text_chars:
        raise ApiError(413, "payload_too_large", f"text has {len(text)} characters; the limit is "
                       f"{state.settings.max_text_chars}: send the headline and lead only")
    recommender = state.served.recommender
    listed, served = state.experiments.serve(
        "more-like-this", body.reader, recommender.clock(), recommender, functools.partial(
            ranked, "more_like_this", body.explain, (
                ("ids", tuple(body.ids)), ("text", text), ("negative_ids", tuple(body.negative_ids)),
                ("exclude_ids", tuple(body.exclude_ids)), ("k", body.k), ("section", body.section),
                ("max_age_hours", body.max_age_hours), ("language", body.language))), body.k,
        ("more-like-this", tuple(body.ids), text, tuple(body.negative_ids), tuple(body.exclude_ids), body.k,
         body.section, body.max_age_hours, body.language, body.explain))
    return respond(recommender.manifest.build_id, listed, state.views.degraded, served)


@router.get("/v1/popular", response_model=ListResponse, responses=ERRORS, tags=["lists"])
async def popular(request: Request, state: State, query: Annotated[PopularQuery, Query()]) -> Response:
    """Most-read articles now: decayed page views (build + live), ties broken by freshness."""
    build_id, listed, served = popular_list(state, query, list_key(request.scope))
    return respond(build_id, listed, state.views.degraded, served)


@router.post("/v1/articles", response_model=UpsertResponse, responses=ERRORS, tags=["writes"],
             dependencies=[Writer])
def upsert(state: State, body: UpsertRequest) -> UpsertResponse:
    """New or edited articles: embedded now and searchable at once (merged at the next rebuild)."""
    if len(body.articles) > state.settings.max_articles_per_batch:
        raise ApiError(413, "payload_too_large", f"{len(body.articles)} articles in one batch; the limit is "
                       f"{state.settings.max_articles_per_batch}: split the batch")
    ids = upsert_articles(state, body.articles)
    return UpsertResponse(upserted=ids, delta_size=len(state.delta.overlay.live))


ACTOR = Query("api", min_length=1, max_length=200, description="Who acts (recorded in the audit log).")
REASON = Query("", max_length=1000, description="Why (recorded in the audit log).")


@router.delete("/v1/articles/{article_id:path}", response_model=DeleteResponse, responses=ERRORS, tags=["writes"],
               dependencies=[Writer])
def take_down(state: State, article_id: Annotated[str, Path(min_length=1, max_length=200)], actor: str = ACTOR,
              reason: str = REASON) -> DeleteResponse:
    """Take an article out of every list at once, on every build loaded now or later, until the takedown is lifted
    (``DELETE /v1/takedowns/{article_id}``)."""
    from ..errors import UnknownArticleError

    if not state.served.recommender.contains(article_id):
        raise UnknownArticleError(article_id)
    state.takedowns.take_down(article_id, actor, reason)
    state.live.sync()
    return DeleteResponse(deleted=article_id, delta_size=len(state.delta.overlay.live))


@router.get("/v1/takedowns", response_model=TakedownsResponse, responses=ERRORS, tags=["writes"],
            dependencies=[Writer])
def takedowns(state: State) -> TakedownsResponse:
    """Every active takedown (who, when, why) and the newest entries of the audit log."""
    state.takedowns.sync()
    return TakedownsResponse(takedowns=[t.to_dict() for t in state.takedowns.active()],
                             log=state.takedowns.history(200))


@router.delete("/v1/takedowns/{article_id:path}", response_model=LiftResponse, responses=ERRORS, tags=["writes"],
               dependencies=[Writer])
def lift(state: State, article_id: Annotated[str, Path(min_length=1, max_length=200)], actor: str = ACTOR,
         reason: str = REASON) -> LiftResponse:
    """Lift a takedown: the article is listed again wherever a build or the delta holds it."""
    if not state.takedowns.lift(article_id, actor, reason):
        raise ApiError(404, "not_taken_down", f"article {article_id!r} is not taken down; GET /v1/takedowns "
                       f"lists the takedowns")
    state.live.sync()
    return LiftResponse(lifted=article_id)


@router.post("/v1/events", response_model=EventsResponse, responses=ERRORS, tags=["writes"], dependencies=[Writer])
def events(state: State, body: EventsRequest) -> EventsResponse:
    """Page views and widget clicks; they reach ``popular`` and the blend within a refresh interval."""
    settings = state.settings
    if len(body.events) > settings.max_events_per_batch:
        raise ApiError(413, "payload_too_large", f"{len(body.events)} events in one batch; the limit is "
                       f"{settings.max_events_per_batch}: split the batch")
    now = datetime.now(UTC)
    latest = now + timedelta(seconds=settings.max_future_event_seconds)
    earliest = now - timedelta(hours=settings.view_retention_hours)
    counted = []
    for n, event in enumerate(body.events):
        when = event.timestamp or now
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        if not earliest <= when <= latest:
            state.metrics.event_batches_rejected.inc()
            raise ApiError(422, "invalid_events", f"events[{n}].timestamp {when.isoformat()} is outside "
                           f"[{earliest.isoformat()}, {latest.isoformat()}] (views older than the "
                           f"{settings.view_retention_hours:g} h retention, or in the future); nothing was counted")
        counted.append(CountedEvent(event.article_id, when, event.count, event.type))
    state.counter.add(counted)
    for kind in ("view", "click"):
        total = sum(1 for e in counted if e.kind == kind)
        if total:
            state.metrics.events.labels(kind).inc(total)
    if settings.popularity_refresh_seconds == 0:
        state.refresh_popularity()
    recommender = state.served.recommender
    unknown = sorted({e.article_id for e in counted if not recommender.contains(e.article_id)})
    return EventsResponse(accepted=len(counted), unknown_ids=unknown)
