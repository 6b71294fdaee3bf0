"""The console's overview of one project: activity by day, the failure trend, what waits
for review, search health (seed 002) and how far the event archive lags.

Days are counted back from the project's latest generation, not from today: imported or
paused projects still show their last stretch of activity.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import InvalidInput
from ..store.database import Conn
from ..store.tenancy import Scope

# UTC days by date_bin from a UTC midnight: plain arithmetic, where date_trunc with a time
# zone looks the zone up on every row (0.43 s of 1.2 s over 333k generations). Written as
# literals, the expressions match ledger m006's statistics objects: the planner then knows
# there are tens of days, not a group per row.
_DAILY_SQL = """
WITH last AS (
    SELECT max(created_at) AS at FROM learnloop.generations WHERE tenant_id = %(t)s AND project_id = %(p)s
),
g AS (
    SELECT date_bin('1 day'::interval, g.created_at, '2000-01-01 00:00:00+00'::timestamptz) AS day, count(*) AS generations
    FROM learnloop.generations g, last
    WHERE g.tenant_id = %(t)s AND g.project_id = %(p)s AND g.created_at > last.at - make_interval(days => %(days)s)
    GROUP BY 1
),
f AS (
    SELECT date_bin('1 day'::interval, f.created_at, '2000-01-01 00:00:00+00'::timestamptz) AS day, count(*) AS feedback,
           count(*) FILTER (WHERE f.sentiment = 'NEGATIVE') AS negative,
           count(*) FILTER (WHERE f.sentiment = 'POSITIVE') AS positive
    FROM learnloop.feedback f, last
    WHERE f.tenant_id = %(t)s AND f.project_id = %(p)s AND f.created_at > last.at - make_interval(days => %(days)s)
    GROUP BY 1
)
SELECT coalesce(g.day, f.day) AS day, coalesce(g.generations, 0) AS generations,
       coalesce(f.feedback, 0) AS feedback, coalesce(f.negative, 0) AS negative, coalesce(f.positive, 0) AS positive
FROM g FULL JOIN f ON f.day = g.day
ORDER BY 1
"""

_TOTALS_SQL = """
SELECT (SELECT count(*) FROM learnloop.generations WHERE tenant_id = %(t)s AND project_id = %(p)s) AS generations,
       (SELECT count(*) FROM learnloop.feedback WHERE tenant_id = %(t)s AND project_id = %(p)s) AS feedback,
       (SELECT count(*) FROM learnloop.feedback
         WHERE tenant_id = %(t)s AND project_id = %(p)s AND NOT processed AND sentiment = 'NEGATIVE') AS waiting_review,
       (SELECT min(created_at) FROM learnloop.feedback
         WHERE tenant_id = %(t)s AND project_id = %(p)s AND NOT processed AND sentiment = 'NEGATIVE') AS oldest_waiting
"""

# The lag is what matters, not an exact backlog: counting stops at ARCHIVE_COUNT_CAP (an
# unarchived million took a second to count), and the oldest unarchived event is the
# first one in commit order.
ARCHIVE_COUNT_CAP = 100_000
_ARCHIVE_SQL = """
WITH w AS (SELECT coalesce((SELECT watermark FROM learnloop.archive_state WHERE name = 'default'), '0'::xid8) AS at)
SELECT (SELECT count(*) FROM (SELECT 1 FROM learnloop.events e, w
                              WHERE e.tenant_id = %(t)s AND e.txid >= w.at LIMIT %(cap)s) x) AS unarchived,
       (SELECT e.created_at FROM learnloop.events e, w
        WHERE e.tenant_id = %(t)s AND e.txid >= w.at ORDER BY e.txid LIMIT 1) AS oldest_unarchived
"""


def overview(conn: Conn, scope: Scope, *, days: int = 30) -> dict[str, Any]:
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3660:
        raise InvalidInput("days must be a whole number from 1 to 3660", field="days")
    args = {"t": scope.tenant_id, "p": scope.project_id, "days": days}
    daily = []
    for r in conn.execute(_DAILY_SQL, args).fetchall():
        rated = r["negative"] + r["positive"]
        daily.append({**r, "failure_rate": r["negative"] / rated if rated else None})
    totals = conn.execute(_TOTALS_SQL, args).fetchone() or {}
    archive = conn.execute(_ARCHIVE_SQL, {**args, "cap": ARCHIVE_COUNT_CAP + 1}).fetchone() or {}
    unarchived = min(int(archive.get("unarchived") or 0), ARCHIVE_COUNT_CAP)
    oldest = archive.get("oldest_unarchived")
    search = _search(conn, scope)
    return {
        "days": days,
        "daily": daily,
        "totals": dict(totals),
        "search": search,
        "archive": {"unarchived_events": unarchived,
                    "unarchived_more": int(archive.get("unarchived") or 0) > ARCHIVE_COUNT_CAP,
                    "oldest_unarchived": oldest,
                    "lag_seconds": _age(conn, oldest)},
    }


def _age(conn: Conn, at: datetime | None) -> float | None:
    if at is None:
        return None
    row = conn.execute("SELECT extract(epoch FROM now() - %s::timestamptz)::float8 AS s", (at,)).fetchone()
    return float(row["s"]) if row else None


def _search(conn: Conn, scope: Scope) -> dict[str, Any] | None:
    try:
        from ..knowledge import metrics
    except ModuleNotFoundError:  # knowledge extra not installed
        return None
    return metrics.stored(conn, scope.tenant_id, scope.project_id)


_SOURCES = ("config", "context", "output_meta", "links")


def keys_present(conn: Conn, scope: Scope, source: str = "config", *, sample: int = 5000) -> list[dict[str, Any]]:
    """The JSON keys used in ``source`` by the project's latest ``sample`` generations, most
    used first (what the console offers to group by; a sample keeps it fast at any size).
    Keys that analytics cannot group by (see ``spec.check_analytics_key``) are left out."""
    from psycopg import sql

    from .spec import check_analytics_key

    if source not in _SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(_SOURCES)}", field="source")
    query = sql.SQL(
        "SELECT k AS key, count(*) AS count FROM ("
        "  SELECT {col} AS doc FROM learnloop.generations"
        "  WHERE tenant_id = %s AND project_id = %s ORDER BY created_at DESC LIMIT %s"
        ") s, jsonb_object_keys(s.doc) k GROUP BY k ORDER BY count DESC, k LIMIT 200"
    ).format(col=sql.Identifier(source))
    out = []
    for row in conn.execute(query, (scope.tenant_id, scope.project_id, sample)).fetchall():
        try:
            check_analytics_key(row["key"])
        except InvalidInput:
            continue
        out.append(row)
    return out
