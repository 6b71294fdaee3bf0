"""Tenants (accounts) created by the installation, and each tenant's own settings.

``create_tenant`` makes the tenant, its ``default`` project and its first API key in one
transaction (a tenant without a key would be unreachable over HTTP). Settings are read on
the search path, so they are cached per process for ``SETTINGS_TTL`` seconds: a change
made through this process applies at once, one made elsewhere within that time.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any
from uuid import UUID

from ..errors import Conflict, InvalidInput, NotFound
from ..events import keys as _keys
from ..events.outbox import emit
from ..store.database import Conn, Database
from ..store.tenancy import ensure_project
from ..store.validation import check_name

SETTINGS_TTL = 10.0
MAX_SLOW_MS = 600_000.0


def create_tenant(conn: Conn, name: str, *, key_name: str = "admin",
                  scopes: Any = ("admin",)) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A new tenant with its first key; returns (tenant, key record, full key).
    An existing name is a Conflict (names identify tenants in keys, archive paths, logs)."""
    check_name(name, "tenant")
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO learnloop.tenants (name) VALUES (%s) ON CONFLICT (name) DO NOTHING"
            " RETURNING id, name, created_at", (name,)).fetchone()
        if row is None:
            raise Conflict(f"a tenant named {name!r} already exists")
        ensure_project(conn, row["id"], "default")
        emit(conn, row["id"], "tenant", row["id"], "tenant.created", {"name": name}, actor="installation")
        rec, key = _keys.create(conn, row["id"], key_name, scopes)
    return dict(row), rec, key


def list_tenants(conn: Conn) -> list[dict[str, Any]]:
    return conn.execute("SELECT id, name, created_at FROM learnloop.tenants ORDER BY created_at, name").fetchall()


def tenant_by_name(conn: Conn, name: str) -> dict[str, Any]:
    check_name(name, "tenant")
    row = conn.execute("SELECT id, name, created_at FROM learnloop.tenants WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no tenant named {name!r}")
    return dict(row)


# -- settings ------------------------------------------------------------------------------

def check_slow_ms(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 < value <= MAX_SLOW_MS:
        raise InvalidInput(f"slow_search_ms must be a number above 0 and at most {MAX_SLOW_MS:,.0f}",
                           field="slow_search_ms")
    return float(value)


def get_settings(conn: Conn, tenant_id: UUID) -> dict[str, Any]:
    row = conn.execute("SELECT slow_search_ms, updated_at FROM learnloop.tenant_settings WHERE tenant_id = %s",
                       (tenant_id,)).fetchone()
    return {"slow_search_ms": row["slow_search_ms"] if row else None, "updated_at": row["updated_at"] if row else None}


def set_settings(conn: Conn, tenant_id: UUID, *, slow_search_ms: Any) -> dict[str, Any]:
    ms = check_slow_ms(slow_search_ms)
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO learnloop.tenant_settings (tenant_id, slow_search_ms) VALUES (%s, %s)"
            " ON CONFLICT (tenant_id) DO UPDATE SET slow_search_ms = EXCLUDED.slow_search_ms, updated_at = EXCLUDED.updated_at"
            " RETURNING slow_search_ms, updated_at", (tenant_id, ms)).fetchone()
        emit(conn, tenant_id, "tenant", tenant_id, "tenant.settings_changed", {"slow_search_ms": ms})
    assert row is not None
    _CACHE.forget(tenant_id)
    return dict(row)


class _SlowThresholds:
    """tenant id -> (its slow_search_ms or None, when read): the search path's view."""

    def __init__(self) -> None:
        self._d: dict[UUID, tuple[float | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, db: Database, tenant_id: UUID) -> float | None:
        hit = self._d.get(tenant_id)
        now = time.monotonic()
        if hit is not None and now - hit[1] < SETTINGS_TTL:
            return hit[0]
        with db.connection() as conn:
            value = get_settings(conn, tenant_id)["slow_search_ms"]
        with self._lock:
            self._d[tenant_id] = (value, now)
        return value

    def forget(self, tenant_id: UUID) -> None:
        with self._lock:
            self._d.pop(tenant_id, None)


_CACHE = _SlowThresholds()


def slow_threshold(db: Database, tenant_id: UUID, default: float) -> float:
    """The tenant's slow-search threshold in ms (its setting, else ``default``)."""
    value = _CACHE.get(db, tenant_id)
    return default if value is None else value
