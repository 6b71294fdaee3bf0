"""Pieces every router uses: the page envelope, the Idempotency-Key header."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Header, Query
from pydantic import BaseModel

T = TypeVar("T")

IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                       description="Retry-safe writes: the same key replays the first response.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    next_offset: int | None


def page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    """``next_offset`` is set when the page is full (there may be more)."""
    return {"items": items, "limit": limit, "offset": offset,
            "next_offset": offset + limit if len(items) == limit else None}
