"""Event routes: the outbox (paged by event id), DuckDB analytics, SQL over the archive."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ..deps import Read

router = APIRouter(prefix="/v1/events", tags=["events"])


class EventList(BaseModel):
    items: list[dict[str, Any]]
    last_event_id: int = Field(description="Pass as `after` to continue (commit-safe, no gaps).")


class SqlQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"sql": "SELECT event_type, count(*) FROM events GROUP BY 1"}]})
    sql: str = Field(min_length=1, max_length=100_000)
    max_rows: int = Field(10_000, ge=1, le=100_000)


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


@router.get("/by-type-day", summary="Events per type per UTC day (archive + live)")
def by_type_day(request: Request, ctx: Read,
                days: Annotated[int | None, Query(ge=1, le=3660)] = None) -> list[dict[str, Any]]:
    return ctx.client.events.by_type_and_day(days=days, root=_root(request))


@router.get("/activity", summary="Per-user activity over the last N days (archive + live)")
def activity(request: Request, ctx: Read, days: Annotated[int, Query(ge=1, le=3660)] = 7) -> list[dict[str, Any]]:
    return ctx.client.events.activity(days=days, root=_root(request))


@router.post("/sql", summary="Read-only SQL (DuckDB) over this tenant's `events`",
             responses={422: {"description": "Bad SQL, or past its time or memory limit"},
                        429: {"description": "This key already runs its share of queries"}})
def sql(request: Request, body: SqlQuery, ctx: Read) -> dict[str, Any]:
    return ctx.client.events.sql(body.sql, root=_root(request), max_rows=body.max_rows,
                                 caller=ctx.principal.key_id)
