"""API key administration inside the caller's tenant (admin scope)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ...events import keys as _keys
from ..deps import Admin

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["ingest from the image engine"])
    scopes: list[Literal["ingest", "read", "admin"]] = Field(min_length=1, examples=[["ingest", "read"]])


class KeyInfo(BaseModel):
    id: UUID
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class CreatedKey(KeyInfo):
    key: str = Field(description="The secret. Shown once; store it now.")


@router.post("", status_code=201, response_model=CreatedKey, summary="Create a key (shown once)")
def create_key(body: NewKey, ctx: Admin) -> Any:
    with ctx.client.db.connection() as conn:
        rec, key = _keys.create(conn, ctx.principal.tenant_id, body.name, list(body.scopes))
    return {**rec, "key": key}


@router.get("", response_model=list[KeyInfo], summary="Keys of this tenant (never their secrets)")
def list_keys(ctx: Admin) -> Any:
    with ctx.client.db.connection() as conn:
        return _keys.list_keys(conn, ctx.principal.tenant_id)


@router.delete("/{key_id}", response_model=KeyInfo, summary="Revoke a key, effective immediately")
def revoke_key(key_id: UUID, ctx: Admin) -> Any:
    with ctx.client.db.connection() as conn:
        return _keys.revoke(conn, ctx.principal.tenant_id, key_id)
