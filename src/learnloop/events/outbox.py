"""Write outbox events in the caller's transaction.

Every change in learnloop calls ``emit`` (or ``emit_many`` for bulk paths) on the same
connection, inside the same transaction, as the change itself: an event exists if and only
if its change committed. Payloads carry identifiers and small metadata, not large texts;
the row they describe is the source of truth.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from ..store.database import database_key

# Both functions only write, so any row factory will do: they take ``psycopg.Connection[Any]``
# (the pool's dict-row connections and plain tuple-row ones alike).

COLUMNS = ("tenant_id", "project_id", "entity_type", "entity_id", "event_type", "payload", "actor")


def emit(
    conn: psycopg.Connection[Any],
    tenant_id: UUID,
    entity_type: str,
    entity_id: Any,
    event_type: str,
    payload: dict[str, Any] | None = None,
    *,
    project_id: UUID | None = None,
    actor: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO learnloop.events"
        " (tenant_id, project_id, entity_type, entity_id, event_type, payload, actor)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (tenant_id, project_id, entity_type, str(entity_id), event_type, Jsonb(payload or {}), actor),
    )
    notify_written(conn, (tenant_id,))


def emit_many(conn: psycopg.Connection[Any], rows: Iterable[Sequence[Any]]) -> int:
    """Bulk variant: rows are tuples in ``COLUMNS`` order (payload a dict). Binary COPY."""
    n = 0
    tenants: set[UUID] = set()
    with conn.cursor() as cur, cur.copy(
        "COPY learnloop.events (tenant_id, project_id, entity_type, entity_id, event_type, payload, actor)"
        " FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["uuid", "uuid", "text", "text", "text", "jsonb", "text"])
        for r in rows:
            copy.write_row((r[0], r[1], r[2], str(r[3]), r[4], Jsonb(r[5]), r[6]))
            n += 1
            tenants.add(r[0])
    notify_written(conn, tenants)
    return n


# database -> whether the writing client must notify (no events_notify trigger: a Citus
# cluster, where the trigger would fire on the workers, far from any listener).
_client_notifies: dict[tuple[str, str, int], bool] = {}
_lock = threading.Lock()


def notify_written(conn: psycopg.Connection[Any], tenant_ids: Iterable[UUID]) -> None:
    """Wake live readers of these tenants after events were written, where no trigger does.

    On one server the statement trigger on ``learnloop.events`` notifies and this does
    nothing (one dict lookup). After ``learnloop distribute`` the trigger is gone and this
    sends the NOTIFY from the coordinator session (gated, like the trigger, on a reader
    having heartbeated in the last minute). Readers poll as well: a wake-up only makes
    them faster. A process that was running while the database was distributed keeps the
    old answer until restarted (docs/scaling.md).
    """
    key = database_key(conn)
    client = _client_notifies.get(key)
    if client is None:
        with conn.cursor(row_factory=tuple_row) as cur:
            row = cur.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'events_notify'"
                " AND tgrelid = 'learnloop.events'::regclass)").fetchone()
        client = bool(row and row[0])
        with _lock:
            _client_notifies[key] = client
    if client:
        for t in set(tenant_ids):
            conn.execute("SELECT learnloop.notify_written(%s)", (t,))


def forget_notify_mode() -> None:
    """Forget which databases need client notification (after ``distribute`` in-process)."""
    with _lock:
        _client_notifies.clear()
