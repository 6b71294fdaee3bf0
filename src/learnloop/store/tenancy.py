"""Tenants and projects: names in, ids out, created on first use.

A ``Scope`` is what every query is filtered by. Local use never names either: the
``default`` tenant and project are created the first time they are needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from ..errors import Conflict, InvalidInput, NotFound
from .database import Conn
from .validation import check_name


@dataclass(frozen=True)
class Scope:
    tenant_id: UUID
    tenant: str
    project_id: UUID
    project: str


def lock_key(tenant_id: UUID) -> int:
    """The tenant's half of a two-key advisory lock (``pg_advisory_lock(class, key)``): a
    per-tenant job takes turns with itself; two tenants whose ids share these 32 bits
    would only take turns with each other too."""
    return int.from_bytes(tenant_id.bytes[:4], "big", signed=True)


# ensure_tenant, ensure_project and resolve read ids with _first, which takes dict or tuple
# rows: any connection will do.
def ensure_tenant(conn: psycopg.Connection[Any], name: str, *, create: bool = True) -> UUID:
    check_name(name, "tenant")
    row = conn.execute("SELECT id FROM learnloop.tenants WHERE name = %s", (name,)).fetchone()
    if row is None:
        if not create:
            raise NotFound(f"no tenant named {name!r}")
        row = conn.execute(
            "INSERT INTO learnloop.tenants (name) VALUES (%s) "
            "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            (name,),
        ).fetchone()
    assert row is not None
    return _first(row)


def ensure_project(conn: psycopg.Connection[Any], tenant_id: UUID, name: str, *, create: bool = True) -> UUID:
    check_name(name, "project")
    row = conn.execute(
        "SELECT id FROM learnloop.projects WHERE tenant_id = %s AND name = %s", (tenant_id, name)
    ).fetchone()
    if row is None:
        if not create:
            raise NotFound(f"no project named {name!r} in this tenant")
        row = conn.execute(
            "INSERT INTO learnloop.projects (tenant_id, name) VALUES (%s, %s) "
            "ON CONFLICT (tenant_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            (tenant_id, name),
        ).fetchone()
    assert row is not None
    return _first(row)


def resolve(conn: psycopg.Connection[Any], tenant: str, project: str, *, create: bool = True) -> Scope:
    tid = ensure_tenant(conn, tenant, create=create)
    pid = ensure_project(conn, tid, project, create=create)
    return Scope(tid, tenant, pid, project)


def list_projects(conn: Conn, tenant_id: UUID) -> list[dict]:
    return conn.execute(
        "SELECT id, name, created_at FROM learnloop.projects WHERE tenant_id = %s ORDER BY name",
        (tenant_id,),
    ).fetchall()


def create_project(conn: Conn, tenant_id: UUID, name: str) -> dict:
    """A new, empty project of the tenant; ``Conflict`` when the name is taken (a project is
    otherwise created by its first write, which never says whether it was new)."""
    check_name(name, "project")
    if name != name.strip():
        raise InvalidInput("a project name cannot start or end with spaces", field="name")
    row = conn.execute(
        "INSERT INTO learnloop.projects (tenant_id, name) VALUES (%s, %s)"
        " ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id, name, created_at",
        (tenant_id, name),
    ).fetchone()
    if row is None:
        raise Conflict(f"a project named {name!r} already exists in this tenant")
    return row


def _first(row: object) -> UUID:
    if isinstance(row, dict):
        return next(iter(row.values()))
    if isinstance(row, tuple):
        return row[0]
    raise InvalidInput("unexpected row shape")
