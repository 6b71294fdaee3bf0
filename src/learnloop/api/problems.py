"""Problem details (RFC 9457) for every error the API returns; nothing escapes as a 500
with a traceback.

``learnloop.errors`` classes map by their ``status`` (InvalidInput 422, NotFound 404,
Conflict 409, PermissionDenied 403, Unauthenticated 401, DatabaseUnavailable 503, always
with ``Retry-After``);
request validation errors (malformed JSON, wrong types) are 422 with the field list.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import LearnloopError

log = logging.getLogger("learnloop.api")

MEDIA = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthenticated", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 413: "Request too large",
          415: "Unsupported media type", 422: "Invalid input", 429: "Too many requests",
          500: "Internal error", 502: "Provider error", 503: "Service unavailable"}


def problem(status: int, detail: str, *, code: str | None = None, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body = {"type": f"https://learnloop.dev/problems/{code or status}", "title": TITLES.get(status, "Error"),
            "status": status, "detail": detail, **extra}
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    return JSONResponse(jsonable_encoder(body), status_code=status, media_type=MEDIA, headers=headers)


def retry_after(request: Request, exc: Exception) -> str:
    """Seconds until a retry may succeed, as the server sees it: an error's own
    ``retry_after`` if it has one, else the database's estimate (the embedded server's
    supervisor knows when its next restart is due), else the request's connection wait."""
    own = getattr(exc, "retry_after", None)
    if own is None:
        client = getattr(request.app.state, "client", None)
        db = getattr(client, "db", None)
        own = db.retry_after() if db is not None and hasattr(db, "retry_after") else None
    if own is None:
        own = getattr(getattr(request.app.state, "settings", None), "api_db_timeout", None) or 2.0
    return str(max(1, math.ceil(float(own))))


def _fields(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Only loc/msg/type: "input" and "ctx" may hold the (possibly huge or secret) value.
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors[:20]]


PROBLEM_SCHEMA = {
    "title": "Problem", "type": "object", "required": ["type", "title", "status", "detail"],
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "field": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "loc": {"type": "array", "items": {"type": "string"}}, "msg": {"type": "string"},
            "type": {"type": "string"}}}},
    },
}
# Every status an operation may answer besides its success, documented once for all
# (a 500 is a bug, so it is not documented).
_COMMON = {
    400: "The request could not be read (e.g. a malformed form body)",
    401: "No API key, or a malformed, unknown or revoked one",
    403: "The key lacks the scope this operation needs",
    404: "Unknown id or project, or one of another tenant",
    409: "The change conflicts with stored data",
    413: "The body is larger than LEARNLOOP_API_MAX_BODY_BYTES",
    422: "Invalid input: the body, a parameter or a value (see docs/api.md, Accepted JSON)",
    429: "Too many requests of this kind at once; retry after Retry-After seconds",
    503: "The database (or a configured provider) is unavailable; retry after Retry-After seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying",
                                "schema": {"type": "integer", "minimum": 1}}}


def document(app: FastAPI) -> None:
    """Document the problem responses of every operation in the OpenAPI schema (so that
    clients, and schemathesis' status-code and content-type checks, know them)."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = base()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        ref = {"$ref": "#/components/schemas/Problem"}
        for path, ops in schema.get("paths", {}).items():
            for op in ops.values():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                codes = _COMMON if path.startswith("/v1/") else {503: _COMMON[503]}
                for code, what in codes.items():
                    r = op["responses"].setdefault(str(code), {"description": what})
                    r["content"] = {MEDIA: {"schema": ref}}
                    if code in (429, 503):
                        r["headers"] = _RETRY_AFTER
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    @app.exception_handler(LearnloopError)
    async def _learnloop(request: Request, exc: LearnloopError) -> JSONResponse:
        status = exc.status if 400 <= exc.status < 600 else 500
        if status >= 500 and status != 503:
            log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc.message)
        field = getattr(exc, "field", None)
        extra = {"field": field} if field else {}
        headers = {"Retry-After": retry_after(request, exc)} if status in (429, 503) else None
        return problem(status, exc.message, code=exc.code, headers=headers, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = _fields(list(exc.errors()))
        first = errs[0] if errs else {"loc": [], "msg": "invalid request"}
        where = ".".join(p for p in first["loc"] if p not in ("body",)) or "request"
        return problem(422, f"{where}: {first['msg']}", code="invalid_input", errors=errs)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 503:
            headers = {"Retry-After": retry_after(request, exc), **(headers or {})}
        return problem(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def _db(request: Request, exc: Exception) -> JSONResponse:
        return problem(503, "the database is unavailable right now; retry shortly", code="database_unavailable",
                       headers={"Retry-After": retry_after(request, exc)})

    @app.exception_handler(psycopg.DataError)
    async def _data(request: Request, exc: psycopg.DataError) -> JSONResponse:
        return problem(422, f"a value was refused by the database: {exc.diag.message_primary or exc}",
                       code="invalid_input")

    @app.exception_handler(psycopg.IntegrityError)
    async def _integrity(request: Request, exc: psycopg.IntegrityError) -> JSONResponse:
        return problem(409, f"the change conflicts with stored data: {exc.diag.message_primary or exc}",
                       code="conflict")

    @app.exception_handler(Exception)
    async def _other(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal error; it has been logged", code="internal")
