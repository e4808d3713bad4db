"""Error mapping, in one place: domain errors and bad requests become JSON errors with the right status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import IndexFormatError, InvalidQueryError, RecommenderError, UnknownArticleError
from ..query.rules import RuleError

log = logging.getLogger("recommender.service")


class ApiError(Exception):
    """An error with its HTTP status, raised by routes and middleware."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   **extra: object) -> JSONResponse:
    """The JSON error envelope ``{"error": {"code", "message", ...}}``."""
    body = {"code": code, "message": message, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse({"error": jsonable_encoder(body)}, status_code=status, headers=headers)


def unauthorized(message: str) -> ApiError:
    """401 with the ``WWW-Authenticate`` challenge."""
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def install_error_handlers(app: FastAPI) -> None:
    """Register every exception -> status mapping of the service."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(UnknownArticleError)
    async def unknown_article(request: Request, exc: UnknownArticleError) -> JSONResponse:
        return error_response(404, "unknown_article", f"unknown article id {exc.article_id!r}: it is not in the "
                              f"loaded index or the live delta (or it was taken down)", article_id=exc.article_id)

    @app.exception_handler(InvalidQueryError)
    async def invalid_query(request: Request, exc: InvalidQueryError) -> JSONResponse:
        return error_response(422, "invalid_query", str(exc))

    @app.exception_handler(IndexFormatError)
    async def no_index(request: Request, exc: IndexFormatError) -> JSONResponse:
        return error_response(503, "index_unavailable", str(exc))

    @app.exception_handler(RuleError)
    async def invalid_rule(request: Request, exc: RuleError) -> JSONResponse:
        return error_response(422, "invalid_rule", str(exc), conflicts=list(exc.conflicts) or None)

    @app.exception_handler(RecommenderError)
    async def recommender_error(request: Request, exc: RecommenderError) -> JSONResponse:
        return error_response(422, "invalid_request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"location": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
                   for e in exc.errors()]
        where = "; ".join(f"{'.'.join(str(p) for p in d['location'])}: {d['message']}" for d in details[:5])
        return error_response(422, "invalid_request", f"the request is invalid: {where}", details=details)

    from ..live.sql import StoreUnavailableError
    from .degraded import store_errors

    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, exc: StoreUnavailableError) -> JSONResponse:
        return error_response(503, "store_unavailable", f"{exc}; nothing was written: retry later",
                              {"Retry-After": "5"})

    for error in store_errors():
        @app.exception_handler(error)
        async def store_down(request: Request, exc: Exception) -> JSONResponse:
            log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
            return error_response(503, "store_unavailable", f"a store this request needs is unavailable "
                                  f"({type(exc).__name__}: {exc}); nothing was written: retry later",
                                  {"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code,
                                                                                         "http_error")
        message = (f"no route {request.method} {request.url.path}; see /docs" if exc.status_code in (404, 405)
                   else str(exc.detail))
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"unexpected {type(exc).__name__}; the error is logged")
