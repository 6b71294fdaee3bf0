"""Tags and corrections over all time from the daily rollup (ledger m010).

Both named calls read only the judged rows, but every one of them: at a million generations
``tags`` took two passes over the judged index and one over the feedback (~160 ms) and
``corrections`` three hash joins over 300k judged rows (~280 ms), growing with the ledger.
Asked over all time (the console's default, the benchmark's call), they now add up the
rollup's rows for the built, unchanged days and read only the other days from the ledger,
as the breakdowns do (analytics/rollup.py), in one repeatable-read snapshot:

* tags: per tag, the generations carrying it (``attempts`` of its tag rows) and the feedback
  rows carrying it (``feedback_rows``); the share's denominator is the generations with any
  feedback (``reviewed`` of the day totals).
* corrections: ``negative``, ``regenerated`` and ``fixed`` of the day totals; the trees from
  the ``dim = 'tree'`` rows (one per first positive iteration, -1 for never) of their roots'
  days.

A tree's answer sits on its root's day and a regeneration's on its parent's, so the writes
that change them mark those days (the child's ``log``, a settle, the delete trigger).
Counted wherever a child was logged, as over all time no child is out of the period.

A period (``since``/``until``) keeps the ledger queries of analytics/ledger.py: tags are
counted by feedback time and corrections by each node's own time, which no day of the
generations' rollup can split.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any
from uuid import UUID

from psycopg import sql

from ..store.database import Conn
from ..store.tenancy import Scope
from . import rollup
from .breakdown import snapshot
from .models import Corrections, TagRow

Days = tuple[list[UUID], list[date], list[rollup.Range]]


def _projects(conn: Conn, scope: Scope, all_projects: bool) -> list[UUID]:
    if not all_projects:
        return [scope.project_id]
    return [r["id"] for r in conn.execute("SELECT id FROM learnloop.projects WHERE tenant_id = %s",
                                          (scope.tenant_id,)).fetchall()]


def _days(conn: Conn, scope: Scope, all_projects: bool) -> Days | None:
    """Built, unchanged (project, day)s and the ledger's other stretches over all time."""
    return rollup.readable_days(conn, scope.tenant_id, _projects(conn, scope, all_projects), None, None)


def _judged_in(ranges: list[rollup.Range]) -> tuple[sql.Composable, list[Any]]:
    """The stretches over the analytics rows ``v``: with ``v.feedback_count > 0``, the
    judged rows' own (project, time) index finds them, and it holds every column these
    readers use (an index-only scan, where a join from the ledger's index probed the
    summary of each of the stretches' generations)."""
    return rollup.ranges_frag(ranges, table="v", time="generated_at")


def _rollup_rows(conn: Conn, tenant: UUID, days: Days, dims: list[str], value: str) -> list[dict[str, Any]]:
    in_days, day_params = rollup.days_frag(days[0], days[1])
    q = sql.SQL("SELECT r.dim, {value} AS v, sum(r.attempts) AS attempts, sum(r.negative) AS negative,"
                " sum(r.regenerated) AS regenerated, sum(r.fixed) AS fixed, sum(r.reviewed) AS reviewed,"
                " sum(r.feedback_rows) AS feedback_rows FROM learnloop.analytics_days r WHERE r.tenant_id = %s"
                " AND {in_days} AND r.dim = ANY(%s) GROUP BY 1, 2").format(value=sql.SQL(value), in_days=in_days)
    return [dict(r) for r in conn.execute(q, [tenant, *day_params, dims]).fetchall()]


def all_time_tags(conn: Conn, scope: Scope, all_projects: bool) -> list[TagRow] | None:
    """Tags over all time from the rollup and the unbuilt or changed days; None when the
    rollup cannot answer (nothing built, or tags too varied to roll up)."""
    tenant = scope.tenant_id
    with snapshot(conn):
        wide = rollup.wide_keys(conn, tenant)
        if ("tag", "") in wide:
            return None
        days = _days(conn, scope, all_projects)
        if days is None:
            return None
        rows = _rollup_rows(conn, tenant, days, ["", "tag"], "r.value")
        reviewed = sum(int(r["reviewed"]) for r in rows if r["dim"] == "")
        count: Counter[str] = Counter()
        gens: Counter[str] = Counter()
        for r in rows:
            if r["dim"] == "tag" and r["v"] is not None:
                count[r["v"]] += int(r["feedback_rows"])
                gens[r["v"]] += int(r["attempts"])
        if days[2]:
            where, params = _judged_in(days[2])
            # The stretches' rated generations, then their feedback rows' tags.
            q = sql.SQL(
                "WITH v AS MATERIALIZED (SELECT v.generation_id, v.tags FROM learnloop.verdicts v"
                " WHERE v.tenant_id = %s AND {where} AND v.feedback_count > 0)"
                " SELECT NULL AS tag, count(*) AS n, count(*) AS gens FROM v"
                " UNION ALL SELECT x.tag, count(*), count(DISTINCT f.generation_id) FROM v"
                " JOIN learnloop.feedback f ON f.tenant_id = %s AND f.generation_id = v.generation_id"
                " CROSS JOIN unnest(f.tags) AS x(tag) WHERE v.tags <> '{{}}' GROUP BY x.tag").format(where=where)
            for r in conn.execute(q, [tenant, *params, tenant]).fetchall():
                if r["tag"] is None:
                    reviewed += int(r["n"])
                else:
                    count[r["tag"]] += int(r["n"])
                    gens[r["tag"]] += int(r["gens"])
    out = [TagRow(tag=t, count=n, generations=gens[t], share=gens[t] / reviewed if reviewed else None)
           for t, n in count.items() if n]
    return sorted(out, key=lambda r: (-r.count, r.tag))


def all_time_corrections(conn: Conn, scope: Scope, all_projects: bool) -> Corrections | None:
    """Corrections over all time from the rollup and the unbuilt or changed days; None when
    nothing is built."""
    tenant = scope.tenant_id
    with snapshot(conn):
        days = _days(conn, scope, all_projects)
        if days is None:
            return None
        rows = _rollup_rows(conn, tenant, days, ["", "tree"], "r.num")
        totals = {m: sum(int(r[m]) for r in rows if r["dim"] == "") for m in ("negative", "regenerated", "fixed")}
        trees: Counter[int] = Counter()
        for r in rows:
            if r["dim"] == "tree":
                trees[int(r["v"])] += int(r["attempts"])
        if days[2]:
            where, params = _judged_in(days[2])
            q = sql.SQL(
                "SELECT count(*) FILTER (WHERE v.verdict = 'NEGATIVE') AS negative,"
                " count(*) FILTER (WHERE {regenerated}) AS regenerated, count(*) FILTER (WHERE {fixed}) AS fixed"
                " FROM learnloop.verdicts v WHERE v.tenant_id = %s AND {where} AND v.feedback_count > 0").format(
                regenerated=sql.SQL(rollup.regenerated_sql("%s")), fixed=sql.SQL(rollup.fixed_sql("%s")), where=where)
            more = conn.execute(q, [tenant, tenant, tenant, *params]).fetchone() or {}
            for m in totals:
                totals[m] += int(more.get(m) or 0)
            where, params = rollup.ranges_frag(days[2])  # g in the stretches, by its time index
            q = sql.SQL(
                "SELECT fp, count(*) AS n FROM (SELECT {fp} AS fp FROM learnloop.generations g"
                " WHERE g.tenant_id = %s AND {where} AND g.parent_id IS NULL OFFSET 0) x"  # once a root, not
                " WHERE fp IS NOT NULL GROUP BY fp"  # again for this filter (OFFSET 0: not pulled up)
            ).format(fp=sql.SQL(rollup.first_positive_sql("%s", "g.id", "g.parent_id")), where=where)
            for r in conn.execute(q, [tenant, tenant, *params]).fetchall():
                trees[int(r["fp"])] += int(r["n"])
    regenerated, fixed = totals["regenerated"], totals["fixed"]
    return Corrections(
        negative=totals["negative"], regenerated=regenerated, fixed=fixed,
        fix_rate=fixed / regenerated if regenerated else None,
        iterations={k: n for k, n in sorted(trees.items()) if k >= 1 and n},
        never=trees.get(-1, 0),
    )


__all__ = ["all_time_corrections", "all_time_tags"]
