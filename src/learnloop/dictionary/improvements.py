"""Improvements: a dictionary/catalog change linked to the rating that asked for it.

Seed 001's flow, steps 4-6: an admin reviews a negative rating, fixes a word or a field
definition, and the rating is closed as "improved". ``record`` does the last two in the
caller's transaction: it writes the improvement row (feedback id, target, before/after)
and marks the feedback processed with ``improved = true`` through the ledger's own
function, so the review queue and the change can never disagree.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from ..errors import NotFound
from ..events.outbox import emit
from ..ledger import feedback as _feedback
from ..ledger.generations import as_uuid
from ..store.database import Conn
from ..store.ids import uuid7
from ..store.tenancy import Scope


def check_feedback(conn: Conn, scope: Scope, feedback_id: UUID | str) -> UUID:
    fid = as_uuid(feedback_id, "feedback id")
    if conn.execute("SELECT 1 FROM learnloop.feedback WHERE tenant_id = %s AND id = %s",
                    (scope.tenant_id, fid)).fetchone() is None:
        raise NotFound(f"feedback {fid} does not exist in this tenant")
    return fid


def record(conn: Conn, scope: Scope, feedback_id: UUID, target_type: str, target_id: UUID,
           action: str, before: dict[str, Any] | None, after: dict[str, Any], *, note: str | None = None,
           by: str | None = None) -> UUID:
    """Call inside the transaction that made the change."""
    iid = uuid7()
    conn.execute(
        "INSERT INTO learnloop.improvements (tenant_id, id, project_id, feedback_id, target_type, target_id,"
        " action, before, after, note, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (scope.tenant_id, iid, scope.project_id, feedback_id, target_type, target_id, action,
         Jsonb(before) if before is not None else None, Jsonb(after), note, by),
    )
    emit(conn, scope.tenant_id, "improvement", iid, "improvement.recorded",
         {"feedback_id": str(feedback_id), "target_type": target_type, "target_id": str(target_id),
          "action": action}, project_id=scope.project_id, actor=by)
    _feedback.mark_processed(conn, scope, feedback_id, notes=note or f"{target_type} {action}", improved=True, by=by)
    return iid


def for_feedback(conn: Conn, scope: Scope, feedback_id: UUID | str) -> list[dict[str, Any]]:
    fid = as_uuid(feedback_id, "feedback id")
    return conn.execute(
        "SELECT * FROM learnloop.improvements WHERE tenant_id = %s AND feedback_id = %s ORDER BY created_at, id",
        (scope.tenant_id, fid),
    ).fetchall()


def for_target(conn: Conn, scope: Scope, target_type: str, target_id: UUID) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT * FROM learnloop.improvements WHERE tenant_id = %s AND target_type = %s AND target_id = %s"
        " ORDER BY created_at, id",
        (scope.tenant_id, target_type, target_id),
    ).fetchall()


def list_all(conn: Conn, scope: Scope, limit: int = 100) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT i.*, f.sentiment, f.comment AS feedback_comment FROM learnloop.improvements i"
        " JOIN learnloop.feedback f ON f.tenant_id = i.tenant_id AND f.id = i.feedback_id"
        " WHERE i.tenant_id = %s AND i.project_id = %s ORDER BY i.created_at DESC, i.id DESC LIMIT %s",
        (scope.tenant_id, scope.project_id, limit),
    ).fetchall()
