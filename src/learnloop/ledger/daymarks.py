"""Day marks for the analytics rollup (ledger m007, learnloop.analytics.rollup).

Every statement that writes a generation's analytics row (``log``, ``bulk_log``,
``feedback``, ``bulk_feedback``, and the delete trigger) also appends the (project, UTC
day) it touched to ``learnloop.analytics_dirty``, in the same statement or transaction, so
the rollup never serves a day that changed after it was built. The table has no unique
key: an append never waits for another writer. The marks are written by the statements
themselves rather than by a trigger on ``verdicts``: a statement trigger's transition
table copies every changed row (JSON documents included), which cost single log and
feedback calls ~5% and bulk feedback ~8% (bench_logging).

On a Citus cluster no rollup is kept (see ledger m007), so nothing is marked.
"""

from __future__ import annotations

from ..store.database import Conn
from ..store.distribute import on_citus


def kept(conn: Conn) -> bool:
    """Whether this database keeps the analytics rollup (and so its day marks)."""
    return not on_citus(conn)


def mark_cte(source: str, time_column: str, tenant: str = "%(tenant_id)s") -> str:
    """A CTE arm (``mark AS (...)``, no comma) marking the days of ``source``, a CTE
    returning project_id and a timestamp. Called with this package's own names only."""
    return (f"mark AS (INSERT INTO learnloop.analytics_dirty (tenant_id, project_id, day) SELECT DISTINCT"  # noqa: S608
            f" {tenant}, project_id, ({time_column} AT TIME ZONE 'UTC')::date FROM {source})")
