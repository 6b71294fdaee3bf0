"""OTLP/HTTP trace receiver (``POST /v1/traces``) and the trace read routes.

The receiver follows the OpenTelemetry protocol spec rather than this API's JSON
conventions, because exporters are its clients: the body is ``application/x-protobuf`` or
``application/json`` (optionally gzip), the answer is an ExportTraceServiceResponse in the
request's encoding (``partial_success`` counts the spans it rejected), and every error is a
``google.rpc.Status`` in that encoding: 400 undecodable, 401/403 key, 413 too large, 415
media type or encoding, 429 too many concurrent exports and 503 database away, both with
``Retry-After``. The key comes in ``Authorization: Bearer llk_...`` (what
``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20llk_...`` sends); the project in
``X-Learnloop-Project``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any
from uuid import UUID

import psycopg
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ...errors import LearnloopError
from ...events import keys as _keys
from ...traces import otlp
from ...traces.annotations import SpanAnnotation
from ...traces.ingest import ingest
from ...traces.tree import Trace, TraceSummary
from ..deps import Read, Write, _ctx
from ._shared import Limit, Offset, Page, page

log = logging.getLogger("learnloop.api")
router = APIRouter(tags=["traces"])

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_CONCURRENT = 8  # exports decoded and written at once; more wait, then get a 429
QUEUE_WAIT = 10.0  # seconds an export waits for its turn before the 429
# HTTP status -> google.rpc.Code, as OTLP/gRPC would say it
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 415: 3, 422: 3, 429: 8, 500: 13, 503: 14}


class _Status(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


def _gate(request: Request) -> asyncio.Semaphore:
    st = request.app.state
    sem = getattr(st, "otlp_gate", None)
    if sem is None:
        sem = st.otlp_gate = asyncio.Semaphore(MAX_CONCURRENT)
    return sem


@router.post("/v1/traces", include_in_schema=False)
async def export_traces(request: Request) -> Response:
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    as_json = ctype == JSON
    try:
        if ctype not in (PROTOBUF, JSON):
            raise _Status(415, f"unsupported Content-Type {ctype or '(none)'!r}: send {PROTOBUF} or {JSON}")
        encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
        if encoding not in ("gzip", "identity"):
            raise _Status(415, f"unsupported Content-Encoding {encoding!r}: send gzip or none")
        limit = request.app.state.settings.api_max_body_bytes
        body = await request.body()
        sem = _gate(request)
        try:
            await asyncio.wait_for(sem.acquire(), QUEUE_WAIT)
        except TimeoutError:
            raise _Status(429, "too many exports at once; retry after the delay", retry_after=1) from None
        try:
            result = await run_in_threadpool(_export, request, body, encoding == "gzip", as_json, limit)
        finally:
            sem.release()
    except _Status as st:
        headers = {"Retry-After": str(st.retry_after)} if st.retry_after else None
        return Response(otlp.status_body(_GRPC.get(st.status, 2), st.message, as_json), status_code=st.status,
                        media_type=JSON if as_json else PROTOBUF, headers=headers)
    return Response(otlp.response(result.rejected, result.message, as_json), status_code=200,
                    media_type=JSON if as_json else PROTOBUF)


def _export(request: Request, body: bytes, gzipped: bool, as_json: bool, limit: int) -> Any:
    """Authenticate, decode and write, in the threadpool; errors become OTLP statuses."""
    try:
        ctx = _ctx(request, _principal(request), request.headers.get("x-learnloop-project") or "default",
                   "ingest", create=True)
        if gzipped:
            body = otlp.gunzip(body, limit)
        req = otlp.parse_json(body) if as_json else otlp.parse_protobuf(body)
        decoded = otlp.flatten(req)
        with ctx.client.db.connection() as conn:
            return ingest(conn, ctx.scope, decoded)
    except (PoolTimeout, psycopg.OperationalError):
        raise _Status(503, "the database is unavailable right now; retry shortly", retry_after=2) from None
    except LearnloopError as exc:
        status = 400 if exc.status == 422 else exc.status
        if status == 503:
            raise _Status(503, exc.message, retry_after=2) from None
        raise _Status(status if 400 <= status < 600 else 500, exc.message) from None
    except psycopg.DataError as exc:
        raise _Status(400, f"a value was refused by the database: {exc.diag.message_primary or exc}") from None


def _principal(request: Request) -> _keys.Principal:
    auth = request.headers.get("authorization") or ""
    scheme, _, key = auth.partition(" ")
    if scheme.lower() != "bearer":
        key = ""
    with request.app.state.client.db.connection() as conn:
        return _keys.authenticate(conn, key.strip() or None)


class SpanAnnotations(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: list[SpanAnnotation] = Field(max_length=10_000)


class AnnotationsResult(BaseModel):
    feedback: int = Field(description="Feedback rows created (annotations whose generation is known).")


@router.post("/v1/span_annotations", response_model=AnnotationsResult,
             summary="Span annotations (Phoenix-compatible) as automatic feedback")
def span_annotations(body: SpanAnnotations, ctx: Write) -> Any:
    return {"feedback": ctx.client.traces.annotate(body.data)}


@router.get("/v1/traces", response_model=Page[TraceSummary], summary="Recent traces of the project (newest first)")
def recent_traces(ctx: Read, limit: Limit = 50, offset: Offset = 0) -> Any:
    return page(ctx.client.traces.recent(limit=limit, offset=offset), limit, offset)


@router.get("/v1/traces/{trace_id}", response_model=Trace, summary="One trace as a tree of spans")
def get_trace(trace_id: Annotated[str, Path(max_length=64)], ctx: Read) -> Any:
    return ctx.client.traces.trace(trace_id)


@router.get("/v1/generations/{generation_id}/trace", response_model=Trace,
            summary="The trace a generation was received in, as a tree of spans")
def generation_trace(generation_id: UUID, ctx: Read) -> Any:
    return ctx.client.traces.for_generation(generation_id)
