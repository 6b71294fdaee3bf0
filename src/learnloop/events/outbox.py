"""Write outbox events in the caller's transaction.

Every change in learnloop calls ``emit`` (or ``emit_many`` for bulk paths) on the same
connection, inside the same transaction, as the change itself: an event exists if and only
if its change committed. Payloads carry identifiers and small metadata, not large texts;
the row they describe is the source of truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

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


def emit_many(conn: psycopg.Connection[Any], rows: Iterable[Sequence[Any]]) -> int:
    """Bulk variant: rows are tuples in ``COLUMNS`` order (payload a dict). Binary COPY."""
    n = 0
    with conn.cursor() as cur, cur.copy(
        "COPY learnloop.events (tenant_id, project_id, entity_type, entity_id, event_type, payload, actor)"
        " FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["uuid", "uuid", "text", "text", "text", "jsonb", "text"])
        for r in rows:
            copy.write_row((r[0], r[1], r[2], str(r[3]), r[4], Jsonb(r[5]), r[6]))
            n += 1
    return n
