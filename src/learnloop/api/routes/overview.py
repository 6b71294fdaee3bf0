"""``/v1/overview``: one project at a glance (the console's first page)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ...analytics.overview import keys_present
from ...analytics.overview import overview as _overview
from ..deps import Read

router = APIRouter(prefix="/v1", tags=["analytics"])


class Day(BaseModel):
    day: datetime
    generations: int
    feedback: int
    negative: int
    positive: int
    failure_rate: float | None


class Totals(BaseModel):
    generations: int
    feedback: int
    waiting_review: int
    oldest_waiting: datetime | None


class SearchHealth(BaseModel):
    days: int
    searches: int
    slow_searches: int
    search_ms_mean: float | None
    search_ms_p50_at_most: float | None
    search_ms_p99_at_most: float | None
    cache_hits: int
    cache_misses: int
    cache_hit_rate: float | None


class ArchiveLag(BaseModel):
    unarchived_events: int = Field(description="Events not archived yet, counted up to 100,000.")
    unarchived_more: bool = Field(False, description="More than unarchived_events are waiting (the count stops there).")
    oldest_unarchived: datetime | None
    lag_seconds: float | None


class Overview(BaseModel):
    days: int
    daily: list[Day]
    totals: Totals
    search: SearchHealth | None
    archive: ArchiveLag


@router.get("/overview", response_model=Overview, summary="A project at a glance: activity, failures, review, search")
def overview(ctx: Read, days: Annotated[int, Query(ge=1, le=3660)] = 30) -> Any:
    with ctx.client.db.connection() as conn:
        return _overview(conn, ctx.scope, days=days)


class KeyCount(BaseModel):
    key: str
    count: int


@router.get("/analytics/keys", response_model=list[KeyCount],
            summary="JSON keys present in config/context/output_meta/links (latest 5000 generations)")
def keys(ctx: Read, source: Literal["config", "context", "output_meta", "links"] = "config") -> Any:
    with ctx.client.db.connection() as conn:
        return keys_present(conn, ctx.scope, source)
