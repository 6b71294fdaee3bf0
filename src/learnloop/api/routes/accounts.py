"""Per-account operations: tenants created with the installation key, each tenant's
settings, and its search metrics.

``/v1/installation/*`` accepts only an installation key (``lli_...``, created by
``learnloop keys create --installation``); a valid tenant key gets 403, an invalid one
401. ``/v1/settings`` and ``/v1/stats/search`` are the tenant's own (its key's tenant).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from ...accounts import installation as _inst
from ...accounts import tenants as _tenants
from ...client import Client
from ...errors import PermissionDenied
from ...events import keys as _keys
from ..deps import Admin, Read, bearer
from .keys import CreatedKey, NewKey

router = APIRouter(tags=["accounts"])


def installation(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
                 ) -> _inst.InstallationPrincipal:
    root: Client = request.app.state.client
    key = creds.credentials if creds else None
    with root.db.connection() as conn:
        if key and not _inst.is_installation_key(key):
            _keys.authenticate(conn, key)  # a bad tenant key is a 401 like anywhere else
            raise PermissionDenied("this route needs the installation key (lli_...); "
                                   "a tenant's key cannot create or list tenants")
        return _inst.authenticate(conn, key)


Installation = Annotated[_inst.InstallationPrincipal, Depends(installation)]


class NewTenant(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "acme-dental", "key_name": "acme backend", "scopes": ["admin"], "slow_search_ms": 100}]})
    name: str = Field(min_length=1, max_length=200, description="Unique tenant (account) name.")
    key_name: str = Field("admin", min_length=1, max_length=200, description="Name of its first API key.")
    scopes: list[Literal["ingest", "read", "admin"]] = Field(["admin"], min_length=1)
    slow_search_ms: float | None = Field(None, gt=0, le=_tenants.MAX_SLOW_MS,
                                         description="Emit search.slow above this latency (default: the server's).")


class Tenant(BaseModel):
    id: UUID
    name: str
    created_at: datetime


class CreatedTenant(BaseModel):
    tenant: Tenant
    key: CreatedKey = Field(description="The tenant's first key; its secret is shown once.")


class TenantSettings(BaseModel):
    slow_search_ms: float | None = Field(description="A search slower than this emits search.slow "
                                                     "(null: the server's LEARNLOOP_SLOW_SEARCH_MS).")
    effective_slow_search_ms: float
    updated_at: datetime | None = None


class SettingsChange(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"slow_search_ms": 200}]})
    slow_search_ms: float | None = Field(gt=0, le=_tenants.MAX_SLOW_MS)


class SearchStats(BaseModel):
    days: int
    searches: int
    slow_searches: int
    search_ms_mean: float | None
    search_ms_max: float | None
    search_ms_p50_at_most: float | None = Field(description="Upper bound of the p50 latency bucket.")
    search_ms_p99_at_most: float | None
    query_embeddings: int
    query_embed_ms_mean: float | None
    cache_hits: int
    cache_misses: int
    cache_hit_rate: float | None


# -- installation ----------------------------------------------------------------------------
@router.post("/v1/installation/tenants", status_code=201, response_model=CreatedTenant,
             summary="Create a tenant (account) and its first API key (installation key)")
def create_tenant(request: Request, body: NewTenant, who: Installation) -> Any:
    root: Client = request.app.state.client
    with root.db.connection() as conn:
        tenant, rec, key = _tenants.create_tenant(conn, body.name, key_name=body.key_name, scopes=list(body.scopes))
        if body.slow_search_ms is not None:
            _tenants.set_settings(conn, tenant["id"], slow_search_ms=body.slow_search_ms)
    return {"tenant": tenant, "key": {**rec, "key": key}}


@router.get("/v1/installation/tenants", response_model=list[Tenant], summary="Every tenant (installation key)")
def list_tenants(request: Request, who: Installation) -> Any:
    root: Client = request.app.state.client
    with root.db.connection() as conn:
        return _tenants.list_tenants(conn)


@router.post("/v1/installation/tenants/{tenant_name}/keys", status_code=201, response_model=CreatedKey,
             summary="Create an API key in a tenant (installation key)")
def create_tenant_key(request: Request, tenant_name: str, body: NewKey, who: Installation) -> Any:
    root: Client = request.app.state.client
    with root.db.connection() as conn:
        tenant = _tenants.tenant_by_name(conn, tenant_name)
        rec, key = _keys.create(conn, tenant["id"], body.name, list(body.scopes))
    return {**rec, "key": key}


# -- the tenant's own ------------------------------------------------------------------------
def _settings_out(ctx: Any, row: dict[str, Any]) -> dict[str, Any]:
    default = float(ctx.client.settings.slow_search_ms)
    ms = row["slow_search_ms"]
    return {**row, "effective_slow_search_ms": default if ms is None else ms}


@router.get("/v1/settings", response_model=TenantSettings, tags=["accounts"], summary="This tenant's settings")
def get_settings(ctx: Read) -> Any:
    with ctx.client.db.connection() as conn:
        return _settings_out(ctx, _tenants.get_settings(conn, ctx.principal.tenant_id))


@router.put("/v1/settings", response_model=TenantSettings, summary="Change this tenant's settings (admin)")
def put_settings(body: SettingsChange, ctx: Admin) -> Any:
    with ctx.client.db.connection() as conn:
        return _settings_out(ctx, _tenants.set_settings(conn, ctx.principal.tenant_id,
                                                        slow_search_ms=body.slow_search_ms))


@router.get("/v1/stats/search", response_model=SearchStats,
            summary="This tenant's search metrics (every process, per day), this project or all")
def search_stats(ctx: Read, days: Annotated[int, Query(ge=1, le=3660)] = 30,
                 all_projects: Annotated[bool, Query(description="Sum over every project of the tenant.")] = False
                 ) -> Any:
    return ctx.client.accounts.search_stats(days=days, all_projects=all_projects)
