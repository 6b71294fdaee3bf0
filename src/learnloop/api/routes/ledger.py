"""Ledger routes: log, bulk log, get, find by links, lineage, feedback, review queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ...errors import InvalidInput
from ...ledger import feedback as _feedback
from ...ledger import generations as _gen
from ...ledger.models import (
    Feedback,
    FeedbackIn,
    Generation,
    GenerationIn,
    LineageNode,
    ReviewItem,
    Source,
)
from ..deps import Read, Write
from ..idempotency import request_hash, run_write
from ._shared import IdemKey, Limit, Offset, Page, page

router = APIRouter(prefix="/v1", tags=["ledger"])
MAX_BULK = 10_000


class BulkGenerations(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[GenerationIn] = Field(max_length=MAX_BULK)
    skip_existing: bool = Field(False, description="Skip rows whose external_id is already stored.")


class BulkIds(BaseModel):
    ids: list[UUID]


class FeedbackBody(BaseModel):
    """Feedback on the generation named in the path (same fields as the library's)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"sentiment": "NEGATIVE", "tags": ["TOO_DARK"], "comment": "too dark for investors"}]})
    id: UUID | None = None
    sentiment: str | None = Field(None, examples=["NEGATIVE"])
    rating: int | None = Field(None, ge=1, le=5)
    thumbs: int | str | None = Field(None, description="1/-1 or up/down")
    tags: list[str] = Field(default_factory=list, max_length=100)
    comment: str | None = None
    instruction: str | None = None
    corrected_output: str | None = None
    source: str = "user"
    author_ref: str | None = Field(None, max_length=500)


class BulkFeedback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[FeedbackIn] = Field(max_length=MAX_BULK)


class Count(BaseModel):
    count: int


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notes: str | None = Field(None, max_length=100_000)
    improved: bool | None = None
    by: str | None = Field(None, max_length=500)


def _rhash(request: Request, ctx: Any, body: Any) -> str:
    return request_hash(request.method, request.url.path, ctx.scope.project, body)


@router.post("/generations", status_code=201, response_model=Generation, summary="Log one generation")
def log_generation(request: Request, body: GenerationIn, ctx: Write, idem: IdemKey = None) -> JSONResponse:
    return run_write(ctx, idem, _rhash(request, ctx, body),
                     lambda conn: _gen.log(conn, ctx.scope, body))


@router.post("/generations/bulk", status_code=201, response_model=BulkIds, summary="Log many generations atomically")
def bulk_log(request: Request, body: BulkGenerations, ctx: Write, idem: IdemKey = None) -> JSONResponse:
    return run_write(ctx, idem, _rhash(request, ctx, body),
                     lambda conn: {"ids": _gen.bulk_log(conn, ctx.scope, body.items,
                                                        skip_existing=body.skip_existing)})


class GenerationPage(Page[Generation]):
    next_after: UUID | None = Field(None, description="Pass as after= for the next page (keyset paging).")


@router.get("/generations", response_model=GenerationPage, summary="Find generations (newest first)")
def find_generations(
    ctx: Read,
    link: Annotated[list[str], Query(description="Business entity TYPE:ID, repeatable: link=loan:456")] = [],  # noqa: B006
    where: Annotated[list[str], Query(max_length=50, description="Config/context condition, repeatable: "
                                      "audience=INVESTOR, demand_kw>500, region~ES-AN,ES-CT")] = [],  # noqa: B006
    kind: Annotated[str | None, Query(max_length=50)] = None,
    user_ref: Annotated[str | None, Query(max_length=500)] = None,
    session_ref: Annotated[str | None, Query(max_length=500)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    verdict: Annotated[list[Literal["POSITIVE", "NEGATIVE", "NEUTRAL", "UNRATED"]] | None, Query(max_length=4)] = None,
    tag: Annotated[list[str] | None, Query(max_length=50, description="Feedback tag, any of")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: Annotated[UUID | None, Query(description="Last id of the previous page (keyset paging).")] = None,
    text: Annotated[str | None, Query(max_length=500, description="Substring of the prompt or output.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Any:
    links: dict[str, str] = {}
    for item in link:
        k, sep, v = item.partition(":")
        if not sep or not k or not v:
            raise InvalidInput(f"link must be TYPE:ID, got {item!r}", field="link")
        links[k] = v
    rows = ctx.client.find(where or None, links=links or None, kind=kind, user_ref=user_ref,
                           session_ref=session_ref, model=model, after=after, text=text, limit=limit, offset=offset,
                           filters={"verdict": verdict, "tags": tag, "since": since, "until": until})
    return {**page(rows, limit, offset), "next_after": rows[-1].id if len(rows) == limit else None}


@router.get("/generations/{generation_id}", response_model=Generation, summary="Get one generation")
def get_generation(generation_id: UUID, ctx: Read) -> Any:
    return ctx.client.get(generation_id)


@router.get("/generations/{generation_id}/tree", response_model=LineageNode,
            summary="Lineage tree from the root of this generation")
def lineage_tree(generation_id: UUID, ctx: Read) -> Any:
    return ctx.client.tree(generation_id)


@router.get("/generations/{generation_id}/path", response_model=list[Generation],
            summary="Lineage path from the root to this generation")
def lineage_path(generation_id: UUID, ctx: Read) -> Any:
    return ctx.client.path(generation_id)


@router.post("/generations/{generation_id}/feedback", status_code=201, response_model=Feedback,
             summary="Attach feedback to a generation")
def add_feedback(request: Request, generation_id: UUID, body: FeedbackBody, ctx: Write,
                 idem: IdemKey = None) -> JSONResponse:
    data = {**body.model_dump(exclude_none=True), "generation_id": str(generation_id)}
    return run_write(ctx, idem, _rhash(request, ctx, data),
                     lambda conn: _feedback.add(conn, ctx.scope, data))


@router.get("/generations/{generation_id}/feedback", response_model=list[Feedback],
            summary="Feedback on a generation")
def list_feedback(generation_id: UUID, ctx: Read) -> Any:
    ctx.client.get(generation_id)  # 404 for an id that is not this tenant's
    return ctx.client.feedback_for(generation_id)


@router.post("/feedback/bulk", status_code=201, response_model=Count, summary="Attach many feedback rows atomically")
def bulk_feedback(request: Request, body: BulkFeedback, ctx: Write, idem: IdemKey = None) -> JSONResponse:
    return run_write(ctx, idem, _rhash(request, ctx, body),
                     lambda conn: {"count": _feedback.bulk_add(conn, ctx.scope, body.items)})


@router.get("/review-queue", response_model=Page[ReviewItem], summary="Feedback waiting for an admin")
def review_queue(
    ctx: Read,
    sentiment: Annotated[str | None, Query(description="POSITIVE, NEGATIVE (default) or NEUTRAL")] = "NEGATIVE",
    include_processed: bool = False,
    tag: Annotated[str | None, Query(max_length=200, description="Only feedback carrying this tag.")] = None,
    source: Annotated[Source | None, Query()] = None,
    older_than_days: Annotated[float | None, Query(ge=0, le=36500, description="Waiting at least this long.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Any:
    rows = ctx.client.review_queue(sentiment=sentiment, include_processed=include_processed, tag=tag, source=source,
                                   older_than_days=older_than_days, limit=limit, offset=offset)
    return page(rows, limit, offset)


@router.post("/feedback/{feedback_id}/review", status_code=200, response_model=Feedback,
             summary="Mark feedback as reviewed")
def mark_reviewed(request: Request, feedback_id: UUID, body: Review, ctx: Write, idem: IdemKey = None) -> JSONResponse:
    return run_write(ctx, idem, _rhash(request, ctx, {"id": str(feedback_id), **body.model_dump()}),
                     lambda conn: _feedback.mark_processed(conn, ctx.scope, feedback_id, notes=body.notes,
                                                           improved=body.improved, by=body.by),
                     status=200)
