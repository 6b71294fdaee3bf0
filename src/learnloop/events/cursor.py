"""Reading the outbox in commit-safe order: the one rule every consumer follows.

An event is *stable* once its writing transaction is older than the oldest transaction
still running in this database (``txid < learnloop.event_horizon()``): it has committed (and
is visible) or aborted (and never will be). Stable events are read in ``(txid, id)`` order,
so a position ``(txid, id)`` is a gap-free cursor: anything that becomes stable later sorts
after every position already handed out. A plain ``id > last`` cursor would skip an event
whose transaction took an id early and committed late.

Positions given by a client as a bare event id are turned into ``(txid, id)`` by looking
the event up (in the caller's tenant).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ..errors import InvalidInput, NotFound
from ..store.database import Conn

COLUMNS = (
    "e.tenant_id, e.id, e.project_id, e.entity_type, e.entity_id, e.event_type, e.payload,"
    " e.actor, e.txid::text::bigint AS txid, e.created_at"
)


@dataclass(frozen=True, order=True)
class Position:
    txid: int
    id: int

    @classmethod
    def start(cls) -> Position:
        return cls(0, 0)


def horizon(conn: Conn) -> int:
    """The xid below which every transaction has finished (this statement's snapshot)."""
    row = conn.execute("SELECT learnloop.event_horizon()::text::bigint AS x").fetchone()
    assert row is not None
    return int(row["x"] if isinstance(row, dict) else row[0])


def position_of(conn: Conn, tenant_id: UUID, event_id: int) -> Position:
    """The cursor position of one of this tenant's events (for "resume after id N")."""
    if isinstance(event_id, bool) or not isinstance(event_id, int) or event_id < 0:
        raise InvalidInput("last event id must be a whole number >= 0", field="last_event_id")
    if event_id == 0:
        return Position.start()
    row = conn.execute(
        "SELECT txid::text::bigint AS txid FROM learnloop.events WHERE tenant_id = %s AND id = %s",
        (tenant_id, event_id),
    ).fetchone()
    if row is None:
        raise NotFound(
            f"event {event_id} does not exist in this tenant (it may have been pruned after "
            "archiving); resume from the archive or start over"
        )
    return Position(int(row["txid"] if isinstance(row, dict) else row[0]), event_id)


def stable_events(
    conn: Conn,
    after: Position,
    *,
    tenant_id: UUID | None = None,
    entity_types: Sequence[str] = (),
    event_types: Sequence[str] = (),
    limit: int = 1000,
) -> tuple[list[dict[str, Any]], Position]:
    """Stable events after ``after``, oldest first, and the position to continue from.

    Filters do not move the cursor backwards: the returned position is that of the last
    *scanned* event, so filtered-out events are skipped once, not re-read forever.
    """
    # The horizon is computed first, in a statement of its own, and passed as a value: on
    # Citus a function in a multi-shard SELECT runs on the workers, whose snapshots know
    # nothing of the coordinator's transactions that stamped ``txid``. A horizon taken
    # before the read is still safe: what was final then is final (and visible) now.
    # Compare as xid8 (not a cast) so the (tenant_id, txid, id) / (txid, id) indexes apply.
    where = ["(e.txid, e.id) > (%s::text::xid8, %s)", "e.txid < %s::text::xid8"]
    params: list[Any] = [str(after.txid), after.id, str(horizon(conn))]
    if tenant_id is not None:
        where.insert(0, "e.tenant_id = %s")
        params.insert(0, tenant_id)
    # Only constant fragments are joined; every value is a parameter.
    q = ("SELECT " + COLUMNS + " FROM learnloop.events e WHERE "  # noqa: S608
         + " AND ".join(where) + " ORDER BY e.txid, e.id LIMIT %s")
    rows = conn.execute(q, [*params, limit]).fetchall()  # type: ignore[arg-type]
    if not rows:
        return [], after
    last = rows[-1]
    pos = Position(int(last["txid"]), int(last["id"]))
    if entity_types or event_types:
        rows = [r for r in rows
                if (not entity_types or r["entity_type"] in entity_types)
                and (not event_types or r["event_type"] in event_types)]
    return rows, pos
