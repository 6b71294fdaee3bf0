"""Review several feedback rows at once (the console's bulk actions in the review queue)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ...ledger import feedback as _feedback
from ...ledger.models import Feedback
from ..deps import Write
from ..idempotency import request_hash, run_write
from ._shared import IdemKey

router = APIRouter(prefix="/v1", tags=["ledger"])


class BulkReview(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"ids": ["0193a1f0-0000-7000-8000-000000000001"], "notes": "answered by a new term", "improved": True}]})
    ids: list[UUID] = Field(min_length=1, max_length=_feedback.MAX_REVIEW_BATCH,
                            description="Feedback ids; duplicates count once.")
    notes: str | None = Field(None, max_length=100_000)
    improved: bool | None = None
    by: str | None = Field(None, max_length=500)


class BulkReviewResult(BaseModel):
    reviewed: int = Field(description="How many feedback rows were marked (all of the distinct ids).")
    items: list[Feedback] = Field(description="The marked rows, in the order asked.")


@router.post("/feedback/review", response_model=BulkReviewResult, status_code=200,
             summary="Mark several feedback rows reviewed, all or nothing",
             description="Every id must be feedback of the caller's tenant; when one is not, the answer is 404 "
                         "naming it and nothing is marked. One `feedback.reviewed` event per row.")
def mark_reviewed_many(request: Request, body: BulkReview, ctx: Write, idem: IdemKey = None) -> JSONResponse:
    def write(conn: Any) -> dict[str, Any]:
        rows = _feedback.mark_processed_many(conn, ctx.scope, body.ids, notes=body.notes,
                                             improved=body.improved, by=body.by)
        return {"reviewed": len(rows), "items": [r.model_dump(mode="json") for r in rows]}

    h = request_hash(request.method, request.url.path, ctx.scope.project, body)
    return run_write(ctx, idem, h, write, status=200)
