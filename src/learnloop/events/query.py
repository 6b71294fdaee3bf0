"""DuckDB over one tenant's events: the Parquet archive plus what is not archived yet.

``events`` is a DuckDB view of the tenant's archive files (a pyarrow dataset, so any file
system the archive supports) unioned with the tenant's outbox rows above the archive
watermark, minus those already in the archive (an archive pass may commit between the two
reads; the anti-join keeps each event once). Columns are ``archive.SCHEMA``.

User SQL runs with DuckDB's external access disabled and its configuration locked: it can
read ``events`` and nothing on the machine, and only the caller's tenant is in it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from ..errors import InvalidInput
from ..store.database import Database
from .archive import SCHEMA, STATE, ArchiveRoot, _table, tenant_dir

MAX_ROWS = 100_000

_LIVE_SQL = """
SELECT t.name AS tenant, e.tenant_id::text AS tenant_id, e.id, p.name AS project,
       e.project_id::text AS project_id, e.entity_type, e.entity_id, e.event_type,
       e.payload::text AS payload, e.actor, e.txid::text::bigint AS txid, e.created_at
FROM learnloop.events e
JOIN learnloop.tenants t ON t.id = e.tenant_id
LEFT JOIN learnloop.projects p ON p.tenant_id = e.tenant_id AND p.id = e.project_id
WHERE e.tenant_id = %s
  AND e.txid >= coalesce((SELECT watermark FROM learnloop.archive_state WHERE name = %s), '0'::xid8)
ORDER BY e.id
"""


def open_duckdb(db: Database, root: str | None, tenant_id: UUID, tenant: str,
                *, live: bool = True) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    archived: Any = pa.Table.from_pylist([], schema=SCHEMA)
    if root is not None:
        ar = ArchiveRoot.open(root)
        files = [f.path for f in ar.files(tenant_dir(tenant, tenant_id))]
        if files:
            archived = pads.dataset(files, schema=SCHEMA, format="parquet", filesystem=ar.fs)
    con.register("archived_events", archived)
    live_rows: pa.Table = pa.Table.from_pylist([], schema=SCHEMA)
    if live:
        with db.connection() as conn:
            rows = conn.execute(_LIVE_SQL, (tenant_id, STATE)).fetchall()
        if rows:
            live_rows = _table(tuple(r.values()) for r in rows)
    con.register("live_events", live_rows)
    con.execute(
        "CREATE VIEW events AS SELECT * FROM archived_events"
        " UNION ALL SELECT l.* FROM live_events l ANTI JOIN archived_events a ON a.id = l.id"
    )
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def run_sql(con: duckdb.DuckDBPyConnection, query: str, *, max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """Run one user query; returns columns and rows (at most ``max_rows``)."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("the SQL query is empty", field="sql")
    if "\x00" in query:
        raise InvalidInput("the SQL query contains a NUL character", field="sql")
    try:
        cur = con.execute(query)
        cols = [d[0] for d in cur.description] if cur.description else []
        rows = cur.fetchmany(max_rows + 1)
    except duckdb.Error as exc:
        # Any DuckDB error here is the query's fault (syntax, unknown column, blocked access).
        raise InvalidInput(f"the SQL query failed: {str(exc).splitlines()[0]}", field="sql") from None
    truncated = len(rows) > max_rows
    return {"columns": cols, "rows": [list(r) for r in rows[:max_rows]], "truncated": truncated}


def by_type_and_day(con: duckdb.DuckDBPyConnection, days: int | None = None) -> list[dict[str, Any]]:
    """Events per type per UTC day (newest day first)."""
    where, params = _since(days)
    # ``where`` is a constant fragment; ``days`` is a bound parameter.
    q = ("SELECT CAST(timezone('UTC', created_at) AS DATE) AS day, event_type, count(*) AS events"  # noqa: S608
         f" FROM events {where} GROUP BY 1, 2 ORDER BY day DESC, events DESC, event_type")
    return _dicts(con.execute(q, params))


def activity(con: duckdb.DuckDBPyConnection, days: int) -> list[dict[str, Any]]:
    """Seed 003's productivity report: per user (event actor) over the last N days, how many
    events, on how many distinct days, events per active day, first and last activity."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3660:
        raise InvalidInput("days must be a whole number from 1 to 3660", field="days")
    where, params = _since(days)
    q = ("SELECT actor AS user, count(*) AS events,"  # noqa: S608 - constant fragments, bound days
         " count(DISTINCT CAST(timezone('UTC', created_at) AS DATE)) AS active_days,"
         " count(*) / count(DISTINCT CAST(timezone('UTC', created_at) AS DATE)) AS events_per_active_day,"
         " min(created_at) AS first_at, max(created_at) AS last_at"
         f" FROM events {where} {'AND' if where else 'WHERE'} actor IS NOT NULL"
         " GROUP BY actor ORDER BY events DESC, user")
    return _dicts(con.execute(q, params))


def _since(days: int | None) -> tuple[str, list[Any]]:
    if days is None:
        return "", []
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3660:
        raise InvalidInput("days must be a whole number from 1 to 3660", field="days")
    return "WHERE created_at >= now() - to_days(CAST(? AS INTEGER))", [days]


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
