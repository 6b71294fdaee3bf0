"""DuckDB over one tenant's events: the Parquet archive plus what is not archived yet.

``events`` is a DuckDB view of the tenant's archive files (a pyarrow dataset, so any file
system the archive supports) unioned with the tenant's outbox rows above the archive
watermark, minus those already in the archive (an archive pass may commit between the two
reads; the anti-join keeps each event once). Columns are ``archive.SCHEMA``.

User SQL runs with DuckDB's external access disabled and its configuration locked: it can
read ``events`` and nothing on the machine, and only the caller's tenant is in it. It is
bounded: ``sql_timeout`` seconds (then interrupted), ``sql_memory_limit`` of DuckDB memory
on ``sql_threads`` threads, at most ``max_rows`` rows back, and ``sql_concurrency`` queries
at once per caller (an API key, or the tenant for library calls) in one process; past a
limit the caller gets ``QueryLimitExceeded`` (422) or ``TooManyQueries`` (429).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from ..errors import InvalidInput, LearnloopError
from ..store.database import Database
from .archive import SCHEMA, STATE, ArchiveRoot, _table, tenant_dir

MAX_ROWS = 100_000


class QueryLimitExceeded(InvalidInput):
    """A user query ran past its time or memory limit."""

    code = "query_limit"


class TooManyQueries(LearnloopError):
    """The caller already runs as many user queries as it may at once."""

    status = 429
    code = "too_many_queries"
    retry_after = 1.0


class _Gate:
    """At most ``n`` queries at once per caller; a query past that is refused at once (not
    queued: a queue of slow queries would hold the server's threads all the same)."""

    def __init__(self) -> None:
        self._running: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, caller: Hashable, n: int) -> Iterator[None]:
        with self._lock:
            if self._running.get(caller, 0) >= n:
                raise TooManyQueries(f"{n} SQL {'query is' if n == 1 else 'queries are'} already running for this "
                                     "caller; wait for one to finish (LEARNLOOP_SQL_CONCURRENCY)")
            self._running[caller] = self._running.get(caller, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._running[caller] -= 1
                if not self._running[caller]:
                    del self._running[caller]


GATE = _Gate()

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
                *, live: bool = True, memory_limit: str | None = None,
                threads: int | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    try:
        if memory_limit is not None:
            con.execute("SET memory_limit = ?", [memory_limit])
        if threads is not None:
            con.execute("SET threads = ?", [threads])
    except duckdb.Error as exc:
        con.close()
        raise InvalidInput(f"invalid user SQL limits: {str(exc).splitlines()[0]}") from None
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


def run_sql(con: duckdb.DuckDBPyConnection, query: str, *, max_rows: int = MAX_ROWS,
            timeout: float | None = None) -> dict[str, Any]:
    """Run one user query; returns columns and rows (at most ``max_rows``). Past
    ``timeout`` seconds the query is interrupted (``QueryLimitExceeded``)."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("the SQL query is empty", field="sql")
    if "\x00" in query:
        raise InvalidInput("the SQL query contains a NUL character", field="sql")
    timer = threading.Timer(timeout, con.interrupt) if timeout is not None else None
    try:
        if timer is not None:
            timer.daemon = True
            timer.start()
        cur = con.execute(query)
        cols = [d[0] for d in cur.description] if cur.description else []
        rows = cur.fetchmany(max_rows + 1)
    except duckdb.InterruptException:
        raise QueryLimitExceeded(f"the SQL query ran longer than {timeout:g} s and was stopped "
                                 "(LEARNLOOP_SQL_TIMEOUT)", field="sql") from None
    except duckdb.OutOfMemoryException:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()
        raise QueryLimitExceeded(f"the SQL query needed more than its {limit[0] if limit else ''} of memory "
                                 "(LEARNLOOP_SQL_MEMORY_LIMIT)", field="sql") from None
    except duckdb.Error as exc:
        # Any DuckDB error here is the query's fault (syntax, unknown column, blocked access).
        raise InvalidInput(f"the SQL query failed: {str(exc).splitlines()[0]}", field="sql") from None
    finally:
        if timer is not None:
            timer.cancel()
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
