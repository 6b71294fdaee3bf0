"""Analytics routes: failure rate by a config key, golden examples, tags, corrections."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from ...analytics.ledger import parse_condition
from ...analytics.models import Corrections, FailureRateRow, GoldenRow, TagRow
from ..deps import Read

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])
Source = Literal["config", "context", "output_meta", "links"]


@router.get("/failure-rate", summary="Failure rate grouped by a JSON key (e.g. style_preset)")
def failure_rate(
    ctx: Read,
    by: Annotated[str, Query(min_length=1, max_length=200, examples=["style_preset"])],
    source: Source = "config",
    min_rated: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[FailureRateRow]:
    return ctx.client.analytics.failure_rate(by, source=source, min_rated=min_rated)


@router.get("/golden", summary="Positively judged generations meeting numeric conditions")
def golden(
    ctx: Read,
    where: Annotated[list[str], Query(description="KEY<NUMBER, repeatable", examples=["efficiency<0.08"])] = [],  # noqa: B006
    source: Source = "context",
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> list[GoldenRow]:
    return ctx.client.analytics.golden([parse_condition(w) for w in where], source=source, limit=limit)


@router.get("/tags", summary="Feedback tag frequencies")
def tags(ctx: Read, sentiment: Literal["POSITIVE", "NEGATIVE", "NEUTRAL"] | None = None) -> list[TagRow]:
    return ctx.client.analytics.tags(sentiment=sentiment)


@router.get("/corrections", summary="Did corrections fix it?")
def corrections(ctx: Read) -> Corrections:
    return ctx.client.analytics.corrections()
