"""Event routes: app-defined events in, the outbox (paged by event id), DuckDB analytics,
SQL over the archive."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ...errors import InvalidInput
from ...events import app_events as _app
from ..deps import Read, Write
from ..idempotency import request_hash, run_write
from ._shared import IdemKey

router = APIRouter(prefix="/v1/events", tags=["events"])


class OutboxEvent(BaseModel):
    """One event as the outbox, the list and the WebSocket stream (``type: "event"``) give it."""

    id: int
    project_id: UUID | None
    entity_type: str
    entity_id: str
    event_type: str
    payload: dict[str, Any]
    actor: str | None = Field(description="Who caused it: the user of an app event or entity.")
    txid: int
    created_at: datetime


class EventList(BaseModel):
    items: list[OutboxEvent]
    last_event_id: int = Field(description="Pass as `after` to continue (commit-safe, no gaps).")


class NewEvent(BaseModel):
    """An app-defined event. ``type`` matches ``^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$`` and does
    not start with one of learnloop's own words; ``payload`` is at most 64 KiB as JSON."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"type": "goal.completed", "entity_type": "goal", "entity_id": "g-17", "user": "u-3",
         "payload": {"score": 0.92}}]})
    type: str = Field(min_length=1, max_length=_app.MAX_TYPE_CHARS, description="Dotted lowercase name.")
    entity_type: str | None = Field(None, min_length=1, max_length=100)
    entity_id: str | None = Field(None, min_length=1, max_length=500)
    user: str | None = Field(None, min_length=1, max_length=500, description="Who did it (the `actor` column).")
    payload: dict[str, Any] = Field(default_factory=dict)


class Event(BaseModel):
    id: int
    event_type: str
    entity_type: str
    entity_id: str
    user: str | None
    payload: dict[str, Any]
    created_at: datetime


class TypeDay(BaseModel):
    day: date = Field(description="UTC day.")
    event_type: str
    events: int


class UserActivity(BaseModel):
    user: str | None = Field(description="The events' actor (null: events without one).")
    events: int
    active_days: int
    events_per_active_day: float
    first_at: datetime
    last_at: datetime


class SqlResult(BaseModel):
    columns: list[str]
    rows: list[list[Any]] = Field(description="At most max_rows rows, each a list in the order of columns.")
    truncated: bool = Field(description="More rows matched than max_rows.")


class SqlQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"sql": "SELECT event_type, count(*) FROM events GROUP BY 1"}]})
    sql: str = Field(min_length=1, max_length=100_000)
    max_rows: int = Field(10_000, ge=1, le=100_000)


@router.post("", status_code=201, response_model=Event, summary="Emit an app-defined event")
def emit_event(request: Request, body: NewEvent, ctx: Write, idem: IdemKey = None) -> JSONResponse:
    if (body.entity_type is None) != (body.entity_id is None):
        raise InvalidInput("give both entity_type and entity_id, or neither", field="entity_id")
    entity = (body.entity_type, body.entity_id) if body.entity_type is not None else None
    sc = ctx.scope
    return run_write(ctx, idem, request_hash("POST", request.url.path, sc.project, body),
                     lambda conn: _app.emit(conn, sc.tenant_id, sc.project_id, body.type, entity=entity,
                                            payload=body.payload, user=body.user))


@router.get("", response_model=EventList, summary="This tenant's events after an event id")
def list_events(
    ctx: Read,
    after: Annotated[int, Query(ge=0, le=2**62, description="Last event id seen (0 = from the start).")] = 0,
    entity_type: Annotated[list[str], Query()] = [],  # noqa: B006
    event_type: Annotated[list[str], Query()] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    items = ctx.client.events.list(after=after, entity_types=entity_type, event_types=event_type, limit=limit)
    for it in items:
        it.pop("tenant_id", None)
    return {"items": items, "last_event_id": items[-1]["id"] if items else after}


def _root(request: Request) -> str | None:
    return request.app.state.archive_root


@router.get("/by-type-day", response_model=list[TypeDay], summary="Events per type per UTC day (archive + live)")
def by_type_day(request: Request, ctx: Read,
                days: Annotated[int | None, Query(ge=1, le=3660)] = None) -> Any:
    return ctx.client.events.by_type_and_day(days=days, root=_root(request))


@router.get("/activity", response_model=list[UserActivity],
            summary="Per-user activity over the last N days (archive + live)")
def activity(request: Request, ctx: Read, days: Annotated[int, Query(ge=1, le=3660)] = 7) -> Any:
    return ctx.client.events.activity(days=days, root=_root(request))


@router.post("/sql", response_model=SqlResult, summary="Read-only SQL (DuckDB) over this tenant's `events`",
             responses={422: {"description": "Bad SQL, or past its time or memory limit"},
                        429: {"description": "This key already runs its share of queries"}})
def sql(request: Request, body: SqlQuery, ctx: Read) -> Any:
    return ctx.client.events.sql(body.sql, root=_root(request), max_rows=body.max_rows,
                                 caller=ctx.principal.key_id)
