"""A generation's retrieved context with the documents it came from (the Generation page)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from ...knowledge.retrieved import RetrievedContext
from ..deps import Read

router = APIRouter(prefix="/v1", tags=["knowledge"])


@router.get("/generations/{generation_id}/retrieved", response_model=RetrievedContext,
            summary="Retrieved chunks of a generation, each with its document (title, file name)")
def retrieved(generation_id: UUID, ctx: Read) -> Any:
    return ctx.client.knowledge.retrieved(generation_id)
