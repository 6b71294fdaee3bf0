"""Analytics routes: the breakdown (GET for links and charts, POST for the full filter
language), what drives failure, and the named calls (failure rate, golden, tags,
corrections). Every response is a typed model; bad input is a 422 problem+json naming the
field (an unknown dimension kind, bands that do not increase, a third dimension, an
unknown time zone, a key with SQL in it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from ...analytics.models import Breakdown, Corrections, Drivers, FailureRateRow, GoldenRow, TagRow
from ...analytics.rollup import RefreshReport
from ...analytics.spec import Dimension, Filters
from ..deps import Read, Write

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])
Source = Literal["config", "context", "output_meta"]
Verdict = Literal["POSITIVE", "NEGATIVE", "NEUTRAL", "UNRATED"]

By = Annotated[list[str], Query(max_length=2, description="Dimension, repeatable (at most 2): style_preset, "
                                "context.region, model, tag, day, week:tz=Europe/Madrid, demand_kw:bands=0,100,500, "
                                "efficiency:bins=4", examples=["style_preset"])]
Where = Annotated[list[str], Query(max_length=50, description="Condition on a config/context key, repeatable "
                                   "(all must hold): audience=INVESTOR, demand_kw>500, region~ES-AN,ES-CT, seed?",
                                   examples=["audience=INVESTOR"])]


def query_filters(
    kind: Annotated[list[str] | None, Query(max_length=50)] = None,
    model: Annotated[list[str] | None, Query(max_length=50)] = None,
    provider: Annotated[list[str] | None, Query(max_length=50)] = None,
    user_ref: Annotated[list[str] | None, Query(max_length=50)] = None,
    verdict: Annotated[list[Verdict] | None, Query(max_length=4)] = None,
    tag: Annotated[list[str] | None, Query(max_length=50, description="Feedback tag, any of")] = None,
    feedback_source: Annotated[list[Literal["user", "admin", "automatic"]] | None, Query(max_length=3)] = None,
    project: Annotated[list[str] | None, Query(max_length=50, description="Project names (default: the key's)")] = None,
    all_projects: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """The Filters fields a query string can carry (the filter language itself is ``where``)."""
    return {"kind": kind, "model": model, "provider": provider, "user_ref": user_ref, "verdict": verdict,
            "tags": tag, "feedback_source": feedback_source, "projects": project,
            "all_projects": all_projects or None, "since": since, "until": until}


QueryFilters = Annotated[dict[str, Any], Depends(query_filters)]


class BreakdownRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"by": ["style_preset", "demand_kw:bands=0,100,500"], "where": {"audience": "INVESTOR"}}]})
    by: list[str | Dimension] = Field(default_factory=list, description="0-2 dimensions (text or object form).")
    where: dict[str, Any] | list[str] | None = Field(
        default=None, description="Filter language over config/context/output_meta keys, or CLI conditions.")
    filters: Filters | None = None
    latency: bool = Field(default=True, description="Compute latency p50/p95 (a sort per group).")


class DriversRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    where: dict[str, Any] | list[str] | None = None
    filters: Filters | None = None
    bins: int = Field(default=4, ge=2, le=20)
    min_rated: int = Field(default=10, ge=1, le=1_000_000)


@router.get("/breakdown", response_model=Breakdown, summary="Measures grouped by up to two dimensions")
def breakdown_get(ctx: Read, f: QueryFilters, by: By = [], where: Where = [],  # noqa: B006
                  latency: bool = True) -> Any:
    return ctx.client.analytics.breakdown(by, where or None, latency=latency, **f)


@router.post("/breakdown", response_model=Breakdown, summary="Measures grouped by up to two dimensions")
def breakdown_post(ctx: Read, body: BreakdownRequest) -> Any:
    return ctx.client.analytics.breakdown(body.by, body.where, filters=body.filters, latency=body.latency)


@router.get("/drivers", response_model=Drivers, summary="Which config/context keys move the failure rate")
def drivers_get(ctx: Read, f: QueryFilters, where: Where = [],  # noqa: B006
                bins: Annotated[int, Query(ge=2, le=20)] = 4,
                min_rated: Annotated[int, Query(ge=1, le=1_000_000)] = 10) -> Any:
    return ctx.client.analytics.drivers(where or None, bins=bins, min_rated=min_rated, **f)


@router.post("/drivers", response_model=Drivers, summary="Which config/context keys move the failure rate")
def drivers_post(ctx: Read, body: DriversRequest) -> Any:
    return ctx.client.analytics.drivers(body.where, filters=body.filters, bins=body.bins, min_rated=body.min_rated)


@router.get("/failure-rate", response_model=list[FailureRateRow],
            summary="Failure rate grouped by a JSON key (e.g. style_preset)")
def failure_rate(
    ctx: Read,
    by: Annotated[str, Query(min_length=1, max_length=200, examples=["style_preset"])],
    source: Source = "config",
    min_rated: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    where: Where = [],  # noqa: B006
) -> Any:
    return ctx.client.analytics.failure_rate(by, source=source, min_rated=min_rated, where=where or None)


@router.get("/golden", response_model=list[GoldenRow],
            summary="Positively judged generations meeting numeric conditions")
def golden(
    ctx: Read,
    where: Annotated[list[str], Query(description="KEY<NUMBER, repeatable", examples=["efficiency<0.08"])] = [],  # noqa: B006
    source: Source = "context",
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> Any:
    return ctx.client.analytics.golden(where, source=source, limit=limit)


@router.get("/tags", response_model=list[TagRow], summary="Feedback tag frequencies")
def tags(ctx: Read, sentiment: Literal["POSITIVE", "NEGATIVE", "NEUTRAL"] | None = None,
         since: datetime | None = None, until: datetime | None = None) -> Any:
    return ctx.client.analytics.tags(sentiment=sentiment, since=since, until=until)


@router.get("/corrections", response_model=Corrections, summary="Did corrections fix it?")
def corrections(ctx: Read, since: datetime | None = None, until: datetime | None = None) -> Any:
    return ctx.client.analytics.corrections(since=since, until=until)


@router.post("/refresh", response_model=RefreshReport, summary="Rebuild the analytics rollup's changed days")
def refresh(ctx: Write, max_days: Annotated[int | None, Query(ge=0, description="Stop after about this many "
                                                               "project-days (default: all)")] = None) -> Any:
    """Breakdowns by a key, tag, column or UTC day read built days from the daily rollup and
    every other day from the ledger: answers are exact either way, this makes them fast.
    The server also runs it every ``rollup_interval`` seconds."""
    return ctx.client.analytics.refresh(max_days=max_days)
