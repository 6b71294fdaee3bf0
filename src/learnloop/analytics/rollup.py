"""Daily rollups behind the breakdowns that need only counts (ledger m007).

``learnloop.analytics_days`` holds, per tenant, project and UTC day, one row per (kind,
model, provider) with the day's totals (``dim = ''``), one per value of every JSON key of
config/context/output_meta (``dim`` = the document, ``key``, ``value`` as ``->>`` text and
``num`` when it is a JSON number), and one per feedback tag (``dim = 'tag'``, NULL for
generations without tags). Each row carries the breakdown's additive measures: attempts,
rated, negative, positive, rating sums, tokens, cost.

**Exact whatever its state.** A day is read from the rollup only when it was built
(``analytics_built``) and not changed since (no mark in ``analytics_dirty``); every other
day in the period is read from the ledger by the ordinary breakdown, restricted to those
days' time ranges through the ledger's (project, time) index, and the two parts are added
up. Both reads share one repeatable-read snapshot, so a row is counted once. A key whose
values a day exceed ``MAX_VALUES_A_DAY`` (ids, seeds, measurements) is *wide*: its values
are not rolled up one by one and a breakdown by its values reads the ledger. Its numbers
are kept on a grid instead: one row per cell of two significant digits (``value`` NULL,
``num`` the cell's floor: 270 holds [270, 280), 0.065 holds [0.065, 0.066)). Any edge of
at most two significant digits (0, 100, 500, 0.08) falls between cells, so counts by such
bands are exact from the grid; what drives failure cuts its bins there. A key whose
numbers need more than ``MAX_CELLS_A_DAY`` cells a day, or lie beyond 1e±300, is not held
at all (``grid`` false) and is read from the ledger.

**Writers never wait for it.** Each statement that writes an analytics row appends the
(project, day) pairs it touched to ``analytics_dirty`` (ledger/daymarks.py), which has no
unique key.
``refresh`` rebuilds marked days in repeatable-read transactions and deletes only the
marks its snapshot saw: a write that commits meanwhile leaves its mark, and its day is read
from the ledger until the next refresh. Refreshers of one tenant take turns (an advisory
lock, never held by writers).

Who refreshes: ``learnloop serve`` every ``REFRESH_EVERY`` seconds, ``learnloop stats
refresh``, ``ll.analytics.refresh()`` and the demo. Nothing is wrong without a refresh, only
slower: every day then comes from the ledger as before the rollup existed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from pydantic import BaseModel, Field

from ..errors import InvalidInput
from ..ledger import daymarks, verdicts
from ..store.database import Conn
from ..store.tenancy import Scope, lock_key

MAX_VALUES_A_DAY = 100  # distinct values of one key in one project-day, else the key is wide
MAX_CELLS_A_DAY = 1000  # grid cells of a wide key in one project-day, else it is not held
BATCH_DAYS = 14  # project-days rebuilt per transaction
MAX_RANGES = 200  # unbuilt stretches a read may fetch from the ledger, else it reads all of it
REFRESH_EVERY = 30.0  # seconds between the server's refresh passes
LOCK_CLASS = 7007  # advisory lock (class, tenant hash): one refresher per tenant
ROLLUP_COLUMNS = ("kind", "model", "provider", "project")
MEASURES = ("attempts", "rated", "negative", "positive", "rating_sum", "rating_count", "tokens_in",
            "tokens_out", "cost", "costs", "reviewed", "feedback_rows", "regenerated", "fixed")


class RefreshReport(BaseModel):
    """What one refresh did."""

    days: int = Field(default=0, description="Project-days rebuilt.")
    rows: int = Field(default=0, description="Rollup rows written.")
    wide_keys: list[str] = Field(default_factory=list, description="Keys found too varied to roll up value by value, this pass: their numbers are kept on a grid of two significant digits, or the key is left to the ledger.")
    pending: int = Field(default=0, description="Project-days still marked changed after this pass.")
    seconds: float = 0.0
    busy: bool = Field(default=False, description="Another refresher held this tenant: nothing done.")
    available: bool = Field(default=True, description="False on a Citus cluster, where no rollup is kept.")


def available(conn: Conn) -> bool:
    return daymarks.kept(conn)


def grid_sql(x: str) -> str:
    """SQL for the floor of the numeric ``x`` (this module's own expression text) on the
    grid of two significant digits, as float8: 276 -> 270, 0.0654 -> 0.065, -0.305 -> -0.31,
    0 -> 0; 'Infinity' beyond 1e±300. ``trunc`` keeps two digits (the exponent from a float
    log biased down, so near a power of ten it may keep three, whose floor is that power:
    the same cell); a negative number truncated up steps one unit down."""
    s = f"(1 - floor(log(abs(({x})::float8)) - 1e-12)::int)"
    t = f"trunc({x}, {s})"
    return (f"CASE WHEN {x} = 0 THEN 0::float8 WHEN abs({x}) >= 1e300 OR abs({x}) < 1e-300 THEN 'Infinity'::float8"
            f" WHEN {t} <= {x} THEN {t}::float8 ELSE ({t} - power(10::numeric, -{s}))::float8 END")


# Per generation (``v``, its analytics row), what "did corrections fix it" counts over all
# time (ledger m010): a NEGATIVE generation is regenerated when a child of it exists and
# fixed when a child is judged POSITIVE; a root gives its tree's first iteration judged
# POSITIVE (1 is the root itself), -1 when the tree has judged nodes but no positive one,
# NULL when nothing in it is judged. Children and tree nodes through their indexes (the
# judged rows by tree: ``verdicts_tree_idx``), wherever they were logged. A CASE, not AND:
# for an unrated row ``verdict = 'NEGATIVE'`` is NULL, and NULL AND EXISTS(...) still runs
# the probe (70% of the rows: ~7 s of a 1M build).
def regenerated_sql(tenant: str, v: str = "v") -> str:
    """SQL: the analytics row ``v`` is NEGATIVE and has a child. ``tenant`` is the tenant's
    parameter placeholder (this package's own text only)."""
    return (f"CASE WHEN {v}.verdict = 'NEGATIVE' THEN EXISTS (SELECT 1 FROM learnloop.generations c"  # noqa: S608 (placeholder text)
            f" WHERE c.tenant_id = {tenant} AND c.parent_id = {v}.generation_id) ELSE false END")


def fixed_sql(tenant: str, v: str = "v") -> str:
    """SQL: the analytics row ``v`` is NEGATIVE and has a child judged POSITIVE."""
    return (f"CASE WHEN {v}.verdict = 'NEGATIVE' THEN EXISTS (SELECT 1 FROM learnloop.verdicts k"  # noqa: S608 (placeholder text)
            f" WHERE k.tenant_id = {tenant} AND k.root_id = {v}.root_id AND k.feedback_count > 0"
            f" AND k.parent_id = {v}.generation_id AND k.verdict = 'POSITIVE') ELSE false END")


def first_positive_sql(tenant: str, gid: str, parent: str) -> str:
    """SQL: for a root (``parent`` NULL), its tree's first iteration judged POSITIVE, -1 when
    nodes are judged but none POSITIVE, NULL when none is judged or for a non-root."""
    return (f"CASE WHEN {parent} IS NULL THEN (SELECT CASE WHEN count(k.verdict) > 0 THEN"  # noqa: S608 (placeholder text)
            " coalesce(min(k.iteration) FILTER (WHERE k.verdict = 'POSITIVE'), -1) END"
            f" FROM learnloop.verdicts k WHERE k.tenant_id = {tenant} AND k.root_id = {gid}"
            " AND k.feedback_count > 0)::float8 END")


# One row per (project, day, kind, model, provider) and dimension value. The ledger's
# (project, created_at) index finds each day's generations, one day at a time (a lateral
# kept apart by OFFSET 0: flattened into a join on project, the planner misjudged the
# time ranges and hashed a scan of every generation against the batch's days, once per
# batch: a full build grew with the square of the ledger, 45x from 1M to 10M); their
# analytics rows come by primary key. JSON nulls are left out: a breakdown puts them with the missing keys, which
# a read derives as the day's total less the values present. A wide key held on the grid
# gives its numbers' cells (value NULL); a wide key not held gives nothing.
_AGGREGATE = """
INSERT INTO pg_temp.rollup_batch
WITH days AS (SELECT * FROM unnest(%(projects)s::uuid[], %(days)s::date[]) AS d(project_id, day)),
src AS (
    SELECT v.project_id, (v.generated_at AT TIME ZONE 'UTC')::date AS day, v.kind, v.model, v.provider, v.verdict,
           v.rating_sum, v.rating_count, v.tokens_in, v.tokens_out, v.cost, v.config, v.context, v.output_meta,
           v.tags, v.generation_id, v.feedback_count, v.parent_id, v.root_id
    FROM days d
    CROSS JOIN LATERAL (SELECT v.* FROM learnloop.generations g
         JOIN learnloop.verdicts v ON v.tenant_id = %(tenant)s AND v.generation_id = g.id
         WHERE g.tenant_id = %(tenant)s AND g.project_id = d.project_id
         AND g.created_at >= (d.day::timestamp AT TIME ZONE 'UTC')
         AND g.created_at < ((d.day + 1)::timestamp AT TIME ZONE 'UTC') OFFSET 0) v
)
SELECT s.project_id, s.day, s.kind, s.model, s.provider, x.dim, x.key, x.value, x.num,
       count(*), count(s.verdict), count(*) FILTER (WHERE s.verdict = 'NEGATIVE'),
       count(*) FILTER (WHERE s.verdict = 'POSITIVE'), coalesce(sum(s.rating_sum), 0),
       coalesce(sum(s.rating_count), 0), sum(s.tokens_in), sum(s.tokens_out), sum(s.cost), count(s.cost),
       count(*) FILTER (WHERE s.feedback_count > 0), sum(x.fb), count(*) FILTER (WHERE z.regenerated),
       count(*) FILTER (WHERE z.fixed)
FROM src s CROSS JOIN LATERAL (
    -- Once per generation (OFFSET 0 keeps it from being pulled up into the aggregate, where
    -- each of the generation's ~17 dimension rows ran the probes again).
    SELECT REGENERATED AS regenerated, FIXED AS fixed, FIRST_POSITIVE AS first_positive OFFSET 0
) AS z CROSS JOIN LATERAL (
    SELECT ''::text AS dim, ''::text AS key, NULL::text AS value, NULL::float8 AS num, s.feedback_count AS fb
    UNION ALL
    SELECT y.dim, y.key, CASE WHEN NOT y.grid THEN y.value #>> '{}' END,
           CASE WHEN jsonb_typeof(y.value) <> 'number' THEN NULL
                WHEN y.grid THEN GRID
                WHEN abs(y.value::numeric) < 1e300 THEN (y.value #>> '{}')::float8 ELSE 'Infinity' END,
           s.feedback_count
    FROM (SELECT d.dim, e.key, e.value, d.dim || '.' || e.key = ANY(%(grid)s::text[]) AS grid
          FROM (VALUES ('config', s.config), ('context', s.context), ('output_meta', s.output_meta)) AS d(dim, doc),
               jsonb_each(d.doc) AS e
          WHERE jsonb_typeof(e.value) <> 'null' AND NOT (d.dim || '.' || e.key = ANY(%(off)s::text[]))) y
    WHERE NOT y.grid OR jsonb_typeof(y.value) = 'number'
    UNION ALL
    SELECT 'tag', '', NULL, NULL, s.feedback_count WHERE s.tags = '{}' AND NOT ('tag.' = ANY(%(off)s::text[]))
    UNION ALL
    SELECT 'tag', '', t.tag, NULL, t.n FROM (
        SELECT x.tag, count(*) AS n FROM learnloop.feedback f, unnest(f.tags) AS x(tag)
        WHERE f.tenant_id = %(tenant)s AND f.generation_id = s.generation_id GROUP BY x.tag) t
    WHERE s.tags <> '{}' AND NOT ('tag.' = ANY(%(off)s::text[]))
    UNION ALL
    SELECT 'tree', '', NULL, z.first_positive, 0 WHERE z.first_positive IS NOT NULL
) AS x
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
""".replace("GRID", grid_sql("y.value::numeric")).replace("REGENERATED", regenerated_sql("%(tenant)s", "s")).replace(
    "FIXED", fixed_sql("%(tenant)s", "s")).replace("FIRST_POSITIVE", first_positive_sql("%(tenant)s", "s.generation_id",
                                                                                        "s.parent_id"))

_SUMS = ("sum(attempts), sum(rated), sum(negative), sum(positive), sum(rating_sum), sum(rating_count),"
         " sum(tokens_in), sum(tokens_out), sum(cost), sum(costs), sum(reviewed), sum(feedback_rows),"
         " sum(regenerated), sum(fixed)")
_COLUMNS = ("attempts, rated, negative, positive, rating_sum, rating_count, tokens_in, tokens_out, cost, costs,"
            " reviewed, feedback_rows, regenerated, fixed")

_BATCH_TABLE = """
CREATE TEMP TABLE rollup_batch (
    project_id uuid, day date, kind text, model text, provider text, dim text, key text, value text,
    num float8, attempts bigint, rated bigint, negative bigint, positive bigint, rating_sum bigint,
    rating_count bigint, tokens_in bigint, tokens_out bigint, cost numeric, costs bigint, reviewed bigint,
    feedback_rows bigint, regenerated bigint, fixed bigint
) ON COMMIT DROP
"""


def tenants_to_refresh(conn: Conn) -> list[UUID]:
    """Tenants with changed days or verdicts to settle (the server's refresher walks them)."""
    if not available(conn):
        return []
    return [r["id"] for r in conn.execute(
        "SELECT t.id FROM learnloop.tenants t"
        " WHERE EXISTS (SELECT 1 FROM learnloop.analytics_dirty d WHERE d.tenant_id = t.id)"
        " OR EXISTS (SELECT 1 FROM learnloop.verdicts_pending p WHERE p.tenant_id = t.id) ORDER BY t.id").fetchall()]


def refresh(conn: Conn, scope: Scope, *, max_days: int | None = None) -> RefreshReport:
    """Rebuild the tenant's changed days (all projects), ``BATCH_DAYS`` per transaction;
    ``max_days`` stops after about that many. Returns at once (``busy``) when another
    refresher holds the tenant."""
    return refresh_tenant(conn, scope.tenant_id, max_days=max_days)


def refresh_tenant(conn: Conn, tenant: UUID, *, max_days: int | None = None) -> RefreshReport:
    t0 = time.perf_counter()
    if max_days is not None and (not isinstance(max_days, int) or isinstance(max_days, bool) or max_days < 0):
        raise InvalidInput("max_days must be a whole number >= 0", field="max_days")
    if not available(conn):
        return RefreshReport(available=False)
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise InvalidInput("refresh runs its own transactions: call it outside a transaction")
    verdicts.settle(conn, tenant)  # its days are marked changed, then rebuilt below
    key = lock_key(tenant)
    got = conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS ok", (LOCK_CLASS, key)).fetchone()
    if not got or not got["ok"]:
        return RefreshReport(busy=True, seconds=time.perf_counter() - t0)
    report = RefreshReport()
    wide_found: list[str] = []
    try:
        while max_days is None or report.days < max_days:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                marked = conn.execute(
                    "SELECT DISTINCT project_id, day FROM learnloop.analytics_dirty WHERE tenant_id = %s"
                    " ORDER BY day, project_id LIMIT %s", (tenant, BATCH_DAYS)).fetchall()
                if not marked:
                    break
                rows, wide = _build(conn, tenant, [r["project_id"] for r in marked], [r["day"] for r in marked])
            report.days += len(marked)
            report.rows += rows
            wide_found += wide
        if report.days:
            # Days between built days that hold no generations are built too (as empty):
            # a write to one later marks it changed like any other, and a read then finds
            # one unbuilt stretch per changed day instead of one per empty day.
            conn.execute(
                "INSERT INTO learnloop.analytics_built (tenant_id, project_id, day)"
                " SELECT %s, b.project_id, s.day::date FROM (SELECT project_id, min(day) AS lo, max(day) AS hi"
                " FROM learnloop.analytics_built WHERE tenant_id = %s GROUP BY project_id) b,"
                " generate_series(b.lo, b.hi, interval '1 day') AS s(day) ON CONFLICT DO NOTHING", (tenant, tenant))
        row = conn.execute("SELECT count(*) AS n FROM (SELECT DISTINCT project_id, day FROM learnloop.analytics_dirty"
                           " WHERE tenant_id = %s) x", (tenant,)).fetchone()
        report.pending = int(row["n"]) if row else 0
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, key))
    report.wide_keys = sorted(set(wide_found))
    report.seconds = time.perf_counter() - t0
    return report


def _build(conn: Conn, tenant: UUID, projects: list[UUID], days: list[date]) -> tuple[int, list[str]]:
    """Rebuild these project-days (inside the caller's repeatable-read transaction)."""
    held = wide_keys(conn, tenant)
    conn.execute(_BATCH_TABLE)
    conn.execute("SET LOCAL work_mem = '64MB'")
    # Each generation's probes have their own keys: a memo of them never hits (155k misses
    # a batch, ~15% of the aggregate's time at 10M).
    conn.execute("SET LOCAL enable_memoize = off")
    conn.execute(_AGGREGATE, {"tenant": tenant, "projects": projects, "days": days,
                              "grid": [f"{d}.{k}" for (d, k), g in held.items() if g],
                              "off": [f"{d}.{k}" for (d, k), g in held.items() if not g]})
    # Keys too varied to roll up value by value: wide from now on, in every project. Their
    # numbers go on the grid, here and in the days built before, unless some are beyond
    # float8 (a banded read must then refuse them, as the ledger read does).
    new = conn.execute(
        "SELECT dim, key, bool_or(inf) AS inf FROM (SELECT dim, key, bool_or(num = 'Infinity') AS inf"
        " FROM pg_temp.rollup_batch WHERE dim <> '' AND value IS NOT NULL GROUP BY project_id, day, dim, key"
        " HAVING count(DISTINCT value) > %s OR bool_or(num = 'Infinity')) x GROUP BY dim, key",
        (MAX_VALUES_A_DAY,)).fetchall()
    to_grid = [(r["dim"], r["key"]) for r in new if not r["inf"] and r["dim"] != "tag"]
    if to_grid:
        _to_grid(conn, tenant, to_grid)
    # Grid keys the grid cannot hold: too many cells a day, or numbers beyond 1e±300.
    off = [(r["dim"], r["key"]) for r in new if r["inf"] or r["dim"] == "tag"] + [(r["dim"], r["key"]) for r in conn.execute(
        "SELECT DISTINCT dim, key FROM (SELECT dim, key FROM pg_temp.rollup_batch WHERE dim <> '' AND value IS NULL"
        " AND dim NOT IN ('tag', 'tree') GROUP BY project_id, day, dim, key HAVING count(*) > %s OR bool_or(num = 'Infinity')) x",
        (MAX_CELLS_A_DAY,)).fetchall()]
    # A key can turn wide and overflow the grid in one batch: it is off, once.
    to_grid = [k for k in to_grid if k not in off]
    off = list(dict.fromkeys(off))
    if new or off:
        conn.execute("INSERT INTO learnloop.analytics_wide_keys (tenant_id, dim, key, grid)"
                     " SELECT %s, d, k, g FROM unnest(%s::text[], %s::text[], %s::bool[]) AS w(d, k, g)"
                     " ON CONFLICT (tenant_id, dim, key) DO UPDATE SET grid = excluded.grid",
                     (tenant, [d for d, _ in [*to_grid, *off]], [k for _, k in [*to_grid, *off]],
                      [True] * len(to_grid) + [False] * len(off)))
    if off:
        dims, keys = [d for d, _ in off], [k for _, k in off]
        conn.execute("DELETE FROM learnloop.analytics_days r USING unnest(%s::text[], %s::text[]) AS w(d, k)"
                     " WHERE r.tenant_id = %s AND r.dim = w.d AND r.key = w.k", (dims, keys, tenant))
        conn.execute("DELETE FROM pg_temp.rollup_batch b USING unnest(%s::text[], %s::text[]) AS w(d, k)"
                     " WHERE b.dim = w.d AND b.key = w.k", (dims, keys))
    conn.execute("DELETE FROM learnloop.analytics_days r USING unnest(%s::uuid[], %s::date[]) AS x(p, d)"
                 " WHERE r.tenant_id = %s AND r.project_id = x.p AND r.day = x.d", (projects, days, tenant))
    cur = conn.execute("INSERT INTO learnloop.analytics_days (tenant_id, project_id, day, kind, model, provider, dim,"  # noqa: S608 (constants)
                       f" key, value, num, {_COLUMNS}) SELECT %s, b.* FROM pg_temp.rollup_batch b", (tenant,))
    written = cur.rowcount
    conn.execute("INSERT INTO learnloop.analytics_built (tenant_id, project_id, day)"
                 " SELECT %s, p, d FROM unnest(%s::uuid[], %s::date[]) AS x(p, d)"
                 " ON CONFLICT (tenant_id, project_id, day) DO UPDATE SET built_at = excluded.built_at",
                 (tenant, projects, days))
    # Only the marks this snapshot sees: a later write's mark stays, and so does its day.
    conn.execute("DELETE FROM learnloop.analytics_dirty x USING unnest(%s::uuid[], %s::date[]) AS y(p, d)"
                 " WHERE x.tenant_id = %s AND x.project_id = y.p AND x.day = y.d", (projects, days, tenant))
    return written, [f"{d}.{k}" for d, k in [*to_grid, *off]]


def _to_grid(conn: Conn, tenant: UUID, keys: list[tuple[str, str]]) -> None:
    """Replace these keys' value rows by grid rows, in the batch and in every built day."""
    dims, names = [d for d, _ in keys], [k for _, k in keys]
    cols = "project_id, day, kind, model, provider, dim, key"
    cell = grid_sql("value::numeric")
    for table, scope_sql, params in (
            ("pg_temp.rollup_batch", "TRUE", []),
            ("learnloop.analytics_days", "tenant_id = %s", [tenant])):
        extra = "tenant_id, " if table.startswith("learnloop") else ""
        conn.execute(
            f"INSERT INTO {table} ({extra}{cols}, value, num, {_COLUMNS})"  # noqa: S608 (constants)
            f" SELECT {extra}{cols}, NULL, {cell}, {_SUMS} FROM {table}"
            f" WHERE {scope_sql} AND (dim, key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
            f" AND value IS NOT NULL AND num IS NOT NULL GROUP BY {extra}{cols}, {cell}",
            [*params, dims, names])
        conn.execute(f"DELETE FROM {table} WHERE {scope_sql} AND value IS NOT NULL"  # noqa: S608 (constants)
                     f" AND (dim, key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))", [*params, dims, names])


# -- reading ----------------------------------------------------------------------------

def _day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _first_full_day(t: datetime) -> date:
    t = t.astimezone(UTC)
    d = t.date()
    return d if t == _day_start(d) else d + timedelta(days=1)


Range = tuple[UUID, datetime | None, datetime | None]  # a project's stretch [from, to) read from the ledger


def plan_days(conn: Conn, tenant: UUID, projects: Sequence[UUID], since: datetime | None,
              until: datetime | None) -> tuple[list[UUID], list[date], list[Range]]:
    """(projects, days) read from the rollup, and the time ranges per project read from the
    ledger: everything in [since, until) that is not a built, unchanged whole day."""
    lo = _first_full_day(since) if since is not None else None
    hi = until.astimezone(UTC).date() if until is not None else None  # days before hi are whole
    q = ("SELECT b.project_id, b.day FROM learnloop.analytics_built b WHERE b.tenant_id = %s"
         " AND b.project_id = ANY(%s)"
         " AND NOT EXISTS (SELECT 1 FROM learnloop.analytics_dirty x WHERE x.tenant_id = %s"
         " AND x.project_id = b.project_id AND x.day = b.day)")
    params: list[Any] = [tenant, list(projects), tenant]
    if lo is not None:
        q += " AND b.day >= %s"
        params.append(lo)
    if hi is not None:
        q += " AND b.day < %s"
        params.append(hi)
    rows = conn.execute(q + " ORDER BY b.project_id, b.day", params).fetchall()
    clean: dict[UUID, list[date]] = {p: [] for p in projects}
    for r in rows:
        clean[r["project_id"]].append(r["day"])
    ranges: list[Range] = []
    for p, ds in clean.items():
        start: datetime | None = since
        for d in ds:  # ascending: each built day closes the stretch before it
            if start is None or start < _day_start(d):
                ranges.append((p, start, _day_start(d)))
            start = _day_start(d + timedelta(days=1))
        if until is None or start is None or start < until:
            ranges.append((p, start, until))
    return [r["project_id"] for r in rows], [r["day"] for r in rows], ranges


def readable_days(conn: Conn, tenant: UUID, projects: Sequence[UUID], since: datetime | None,
                  until: datetime | None) -> tuple[list[UUID], list[date], list[Range]] | None:
    """``plan_days``, or None when nothing is built (a ledger never refreshed: reading the
    whole period through the ledger's time index is slower than its ordinary scan) or the
    ledger's stretches are more than ``MAX_RANGES``."""
    days_p, days_d, ranges = plan_days(conn, tenant, projects, since, until)
    if not days_p or len(ranges) > MAX_RANGES:
        return None
    return days_p, days_d, ranges


def eligible(f: Any, dims: Sequence[Any], latency: bool, ledger: bool) -> bool:
    """Whether the rollup can answer: additive measures, no per-generation filter, at
    most one dimension that splits a document (key, bands, bins, tag), the others columns
    or UTC days, weeks or months."""
    if latency or ledger:
        return False
    if f.where or f.config or f.context or f.output_meta or f.verdict or f.tags or f.feedback_source or f.links:
        return False
    if f.user_ref or f.session_ref:
        return False
    split = 0
    for d in dims:
        if d.kind in ("key", "bands", "bins", "tag"):
            split += 1
        elif d.kind == "column":
            if d.key not in ROLLUP_COLUMNS:
                return False
        elif d.kind == "time":
            if d.tz not in ("UTC", "Etc/UTC") or d.unit not in ("day", "week", "month"):
                return False
        else:
            return False
    return split <= 1


def wide_keys(conn: Conn, tenant: UUID) -> dict[tuple[str, str], bool]:
    """(dim, key) of the tenant's keys too varied to roll up value by value (``("tag", "")``
    for tags), each with whether the rollup holds its numbers on the grid."""
    return {(r["dim"], r["key"]): bool(r["grid"]) for r in conn.execute(
        "SELECT dim, key, grid FROM learnloop.analytics_wide_keys WHERE tenant_id = %s", (tenant,)).fetchall()}


def on_grid(edges: Sequence[float]) -> bool:
    """Whether every edge has at most two significant digits (so none splits a grid cell)."""
    for e in edges:
        if not math.isfinite(e):
            return False
        digits = Decimal(repr(float(e))).normalize().as_tuple().digits
        if len(digits) > 2:
            return False
    return True


def holds(d: Any, edges: Sequence[float] | None, wide: Mapping[tuple[str, str], bool]) -> bool:
    """Whether the rollup holds what dimension ``d`` splits by: any key it rolls up value
    by value; a wide key only in bands whose edges all lie on its grid."""
    if d.kind not in ("key", "bands", "bins", "tag"):
        return True
    name = ("tag", "") if d.kind == "tag" else (str(d.source), str(d.key))
    if name not in wide:
        return True
    return wide[name] and d.kind == "bands" and edges is not None and on_grid(edges)


_DAY_TS = "(r.day::timestamp AT TIME ZONE 'UTC')"


def _expr(d: Any, edges: list[float] | None) -> tuple[sql.Composable, list[Any]]:
    if d.kind in ("key", "tag"):
        return sql.SQL("r.value"), []
    if d.kind in ("bands", "bins"):
        if not edges:
            return sql.SQL("NULL::int"), []
        return sql.SQL("CASE WHEN r.num IS NOT NULL THEN width_bucket(r.num, %s::float8[]) END"), [edges]
    if d.kind == "column":
        return sql.SQL("r.{}").format(sql.Identifier("project_id" if d.key == "project" else str(d.key))), []
    if d.unit == "day":
        return sql.SQL(_DAY_TS), []
    if d.unit == "week":
        return sql.SQL("date_bin('7 days'::interval, " + _DAY_TS + ", '2000-01-03 00:00+00'::timestamptz)"), []
    return sql.SQL("date_trunc('month'::text, " + _DAY_TS + ", 'UTC'::text)"), []


def read(conn: Conn, tenant: UUID, f: Any, dims: Sequence[Any], edges: Sequence[list[float] | None],
         projects: list[UUID], days: list[date]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rollup's groups (as the ledger breakdown's rows: d0, d1 and measures) and total
    over the given project-days."""
    split = next((i for i, d in enumerate(dims) if d.kind in ("key", "bands", "bins", "tag")), None)
    cols: list[sql.Composable] = []
    params: list[Any] = []
    for i, (d, e) in enumerate(zip(dims, edges, strict=True)):
        expr, p = _expr(d, e)
        cols.append(sql.SQL("{} AS {}").format(expr, sql.Identifier(f"d{i}")))
        params += p
    in_days, day_params = days_frag(projects, days)
    conds: list[sql.Composable] = [sql.SQL("r.tenant_id = %s"), in_days]
    params += [tenant, *day_params]
    for col in ("kind", "model", "provider"):
        vals = getattr(f, col)
        if vals:
            conds.append(sql.SQL("r.{} = ANY(%s)").format(sql.Identifier(col)))
            params.append(vals)
    if split is None:
        conds.append(sql.SQL("r.dim = ''"))
    elif dims[split].kind == "tag":
        conds.append(sql.SQL("(r.dim = '' OR r.dim = 'tag')"))
    else:
        conds.append(sql.SQL("(r.dim = '' OR (r.dim = %s AND r.key = %s))"))
        params += [dims[split].source, dims[split].key]
    names = [sql.Identifier(f"d{i}") for i in range(len(dims))]
    q = sql.SQL("SELECT {cols}{comma} r.dim = '' AS tot, sum(r.attempts) AS attempts, sum(r.rated) AS rated,"
                " sum(r.negative) AS negative, sum(r.positive) AS positive, sum(r.rating_sum) AS rating_sum,"
                " sum(r.rating_count) AS rating_count, sum(r.tokens_in) AS tokens_in,"
                " sum(r.tokens_out) AS tokens_out, sum(r.cost) AS cost, sum(r.costs) AS costs"
                " FROM learnloop.analytics_days r WHERE {conds} GROUP BY {groups}").format(
        cols=sql.SQL(", ").join(cols), comma=sql.SQL(",") if cols else sql.SQL(""),
        conds=sql.SQL(" AND ").join(conds),
        groups=sql.SQL(", ").join([*names, sql.SQL("r.dim = ''")]))
    rows = conn.execute(q, params).fetchall()
    tot = [r for r in rows if r["tot"]]
    total = add_up(tot)
    if split is None:
        return [dict(r) for r in tot], total
    groups = [dict(r) for r in rows if not r["tot"]]
    if dims[split].kind != "tag":
        # Missing keys (and non-numbers under a band): the day's totals less the values present.
        key = f"d{split}"
        other = [f"d{i}" for i in range(len(dims)) if i != split]
        present: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
        for g in groups:
            if g[key] is not None:
                present.setdefault(tuple(g[o] for o in other), []).append(g)
        by_other: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
        for t in tot:
            by_other.setdefault(tuple(t[o] for o in other), []).append(t)
        out = [g for g in groups if g[key] is not None]
        for o, ts in by_other.items():
            missing = subtract(add_up(ts), add_up(present.get(o, [])))
            if missing["attempts"]:
                out.append({**missing, key: None, **dict(zip(other, o, strict=True))})
        groups = out
    return groups, total


def add_up(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Measures of groups taken together. ``cost`` is None when no generation had one
    (``costs``, the number that had, is 0), as a SQL sum over no values."""
    out: dict[str, Any] = {m: sum(int(r.get(m) or 0) for r in rows) for m in MEASURES if m != "cost"}
    costs = [float(r["cost"]) for r in rows if r.get("cost") is not None]
    out["cost"] = sum(costs) if costs else None
    return out


def subtract(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {m: int(a.get(m) or 0) - int(b.get(m) or 0) for m in MEASURES if m != "cost"}
    out["cost"] = float(a.get("cost") or 0) - float(b.get("cost") or 0) if out["costs"] else None
    return out


MAX_DAY_SPANS = 50  # projects whose read days are written as spans, else as a list of pairs


def days_frag(projects: Sequence[UUID], days: Sequence[date], table: str = "r") -> tuple[sql.Composable, list[Any]]:
    """The rollup rows of these (project, day) pairs, written per project as the span of its
    days less the days missing from it: ``project = p AND day BETWEEN a AND b AND day <>
    ALL(holes)``. The same rows as ``(project, day) IN (SELECT * FROM unnest(...))``, but the
    planner estimates a span from the day column's statistics, where it took ~900 unnested
    pairs at 10M generations for 200 and read the all-time rollup through a serial index
    loop (drivers: 1.45 s of a 2.0 s call). Many projects keep the list of pairs."""
    project, day = sql.Identifier(table, "project_id"), sql.Identifier(table, "day")
    by: dict[UUID, set[date]] = {}
    for p, d in zip(projects, days, strict=True):
        by.setdefault(p, set()).add(d)
    if not by:
        return sql.SQL("false"), []
    if len(by) > MAX_DAY_SPANS:
        return (sql.SQL("({}, {}) IN (SELECT * FROM unnest(%s::uuid[], %s::date[]))").format(project, day),
                [list(projects), list(days)])
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for p, ds in by.items():
        lo, hi = min(ds), max(ds)
        holes = [d for d in (lo + timedelta(days=k) for k in range((hi - lo).days + 1)) if d not in ds]
        text = "({p} = %s AND {d} BETWEEN %s AND %s" + (" AND {d} <> ALL(%s::date[]))" if holes else ")")
        parts.append(sql.SQL(text).format(p=project, d=day))
        params += [p, lo, hi, *([holes] if holes else [])]
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts)), params


def ranges_frag(ranges: Sequence[Range], table: str = "g", time: str = "created_at") -> tuple[sql.Composable, list[Any]]:
    """``(project = p AND created_at >= a AND created_at < b) OR ...`` over the ledger
    (``g``), or over the analytics rows ``table`` with their copy of the time, ``time``."""
    parts: list[sql.Composable] = []
    params: list[Any] = []
    project, at = sql.Identifier(table, "project_id"), sql.Identifier(table, time)
    for p, a, b in ranges:
        conds = [sql.SQL("{} = %s").format(project)]
        params.append(p)
        if a is not None:
            conds.append(sql.SQL("{} >= %s").format(at))
            params.append(a)
        if b is not None:
            conds.append(sql.SQL("{} < %s").format(at))
            params.append(b)
        parts.append(sql.SQL("({})").format(sql.SQL(" AND ").join(conds)))
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts)), params

