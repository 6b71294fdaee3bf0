"""What drives failure (seed 000: "cruzar telemetría dura con feedback blando").

For every config and context key present, how far the failure rate moves across its values
(or, for numbers with many values, across equal-count bins), with counts and 95% Wilson
intervals, ranked. A key *differs* when two of its groups (each with at least
``min_rated`` ratings) have intervals that do not overlap; keys whose groups all overlap
are listed as making no difference.

Only **rated** generations are read (a failure rate has nothing to learn from the others),
so the scan extracts keys from ~30% of the rows instead of all, and each group's counts are
its ratings. Which keys there are, and whether a key holds numbers, is read from the newest
``SAMPLE_ROWS`` rated generations in scope (all of them on a small ledger): a key is
*numeric* when at least 90% of its sampled values are JSON numbers and it has more than
``MAX_VALUES`` distinct values; then it is cut in ``bins`` bins holding nearly equal numbers of
rated generations, at the grid floors (two significant digits, see rollup.py) of its
quantiles, which the rollup counts exactly. Other keys with at most ``MAX_CATEGORIES`` distinct sampled values are
compared value by value (missing keys as their own group); keys with more (ids, seeds) are
skipped. A key that only some kinds carry in the sample (an image's ``style_preset``, which
a chat never has) is compared among the generations of those kinds only: otherwise the
other kinds would form its "missing" group and a key would seem to matter only because
kinds fail at different rates. Counts are then exact, from one scan: a GROUPING SETS
aggregate with one set per key, given the memory to hash every set in one pass
(``WORK_MEM``) instead of sorting the rows once per key.
"""

from __future__ import annotations

import bisect
import copy
import math
from collections.abc import Sequence
from typing import Any

from psycopg import sql

from ..errors import InvalidInput
from ..ledger import verdicts
from ..store.database import Conn
from ..store.tenancy import Scope
from . import rollup
from .breakdown import Frag, Plan, band_label, over_ranges, rollup_days, snapshot, wilson
from .models import Bucket, Driver, DriverGroup, Drivers
from .spec import Dimension
from .spec import filters as make_filters

SAMPLE_ROWS = 2000
MAX_VALUES = 12
MAX_CATEGORIES = 50
MAX_KEYS = 30
NUMERIC_SHARE = 0.9
WORK_MEM = "64MB"  # per hash table; 12 keys at 1M generations hash in ~3 MB, sorting spilled

_KEYS_SQL = """
WITH s AS MATERIALIZED (SELECT g.config, g.context, g.kind FROM {from_} WHERE {where} ORDER BY {created} DESC LIMIT %s)
SELECT x.src, x.key, count(*) AS n, count(DISTINCT x.val) AS distinct_values,
       count(*) FILTER (WHERE jsonb_typeof(x.val) = 'number') AS numbers,
       array_agg(DISTINCT x.kind ORDER BY x.kind) AS kinds,
       (SELECT array_agg(DISTINCT s.kind ORDER BY s.kind) FROM s) AS all_kinds
FROM s,
     LATERAL (SELECT 'config' AS src, e.key, e.value AS val, s.kind FROM jsonb_each(s.config) e
              UNION ALL
              SELECT 'context', e.key, e.value, s.kind FROM jsonb_each(s.context) e) x
WHERE jsonb_typeof(x.val) <> 'null'
GROUP BY 1, 2
ORDER BY 1, 2
"""


def drivers(conn: Conn, scope: Scope, where: Any = None, *, filters: Any = None, bins: int = 4,
            min_rated: int = 10, **filter_args: Any) -> Drivers:
    """Every config/context key ranked by how much the failure rate moves across it.

    ``where``/``filters``/keyword fields select generations as in ``breakdown``.
    """
    f = make_filters(filters, where=where, **filter_args)
    if not isinstance(bins, int) or isinstance(bins, bool) or not 2 <= bins <= 20:
        raise InvalidInput("bins must be a whole number from 2 to 20", field="bins")
    if not isinstance(min_rated, int) or isinstance(min_rated, bool) or min_rated < 1:
        raise InvalidInput("min_rated must be a whole number >= 1", field="min_rated")
    verdicts.settle(conn, scope.tenant_id)
    plan = _rated(Plan(conn, scope, f, []))
    # The newest rated generations: through the judged rows' (project, time) index, or
    # with a filter on a ledger-only column through the ledger's. The same plan, its where
    # narrowed (a second Plan would look up the filter's bare keys again).
    newest = copy.copy(plan)
    if not newest.ledger:
        newest.where = Frag.join(" AND ", [newest.where, Frag("g.feedback_count > 0")])
    frm = newest.from_()
    keys_q = Frag(sql.SQL(_KEYS_SQL).format(from_=frm.sql, where=newest.where.sql, created=newest.created),
                  [*frm.params, *newest.where.params, SAMPLE_ROWS])
    found = plan.execute(keys_q).fetchall()
    frm = plan.from_()
    dims: list[Dimension] = []
    kinds: list[list[str] | None] = []  # per key: the kinds it is compared among (None: all)
    skipped: list[str] = []
    for r in found:
        numeric = r["numbers"] >= NUMERIC_SHARE * r["n"] and r["distinct_values"] > MAX_VALUES
        if numeric:
            dims.append(Dimension(kind="bins", key=r["key"], source=r["src"], bins=bins))
        elif r["distinct_values"] <= MAX_CATEGORIES:
            dims.append(Dimension(kind="key", key=r["key"], source=r["src"]))
        else:
            skipped.append(f"{r['src']}.{r['key']}")
            continue
        kinds.append(None if r["kinds"] == r["all_kinds"] else list(r["kinds"]))
    skipped += [f"{d.source}.{d.key}" for d in dims[MAX_KEYS:]]
    dims, kinds = dims[:MAX_KEYS], kinds[:MAX_KEYS]

    binned = [i for i, d in enumerate(dims) if d.kind == "bins"]
    counted = None
    if dims and rollup.eligible(f, [], False, plan.ledger) and rollup.available(conn):
        counted = _counts_via_rollup(plan, dims, kinds)
    if counted is None:
        edges = dict(zip(binned, plan.bin_edges([dims[i] for i in binned], grid=True), strict=True))
        counted = (*(_counts(plan, dims, edges, kinds) if dims else ([], None)), edges)
    per_key, total, edges = counted
    if total is None:
        total = plan.execute(Frag.join(" ", [
            Frag(sql.SQL("SELECT count({v}.verdict) AS rated, count(*) FILTER (WHERE {v}.verdict = 'NEGATIVE')"
                         " AS negative FROM").format(v=plan.v)),
            frm, Frag("WHERE"), plan.where])).fetchone() or {"rated": 0, "negative": 0}

    out: list[Driver] = []
    no_difference: list[str] = []
    for i, d in enumerate(dims):
        groups = [_group(d, edges.get(i), value, {"rated": n[0], "negative": n[1]})
                  for value, n in per_key[i].items() if n[0] > 0]
        groups.sort(key=lambda g: (g.bucket.value is None, g.bucket.band if g.bucket.band is not None else 0,
                                   -g.rated if g.bucket.band is None else 0, g.bucket.value or ""))
        enough = [g for g in groups if g.rated >= min_rated]
        spread = differs = None
        if len(enough) >= 2:
            rates = [g.failure_rate or 0.0 for g in enough]
            spread = max(rates) - min(rates)
            differs = max(g.failure_low or 0.0 for g in enough) > min(g.failure_high or 1.0 for g in enough)
        name = f"{d.source}.{d.key}"
        if not differs:
            no_difference.append(name)
        out.append(Driver(source=str(d.source), key=str(d.key), kind="bins" if d.kind == "bins" else "values",
                          edges=edges.get(i), groups=groups, spread=spread, differs=bool(differs)))
    out.sort(key=lambda x: (not x.differs, -(x.spread or 0.0), x.source, x.key))
    rated, neg = int(total["rated"]), int(total["negative"])
    return Drivers(rated=rated, failure_rate=neg / rated if rated else None, drivers=out,
                   no_difference=sorted(no_difference), skipped=sorted(skipped))


def _rated(plan: Plan) -> Plan:
    plan.where = Frag.join(" AND ", [plan.where, Frag(sql.SQL("{}.verdict IS NOT NULL").format(plan.v))])
    return plan


def _expr(plan: Plan, d: Dimension, edges: Sequence[float] | None) -> Frag:
    col = sql.Identifier(str(d.source))
    if d.kind == "key":
        return Frag(sql.SQL("g.{} ->> %s").format(col), [d.key])
    if not edges:
        return Frag("NULL::int")
    is_num, val = plan.number(d)
    return Frag.join(" ", [Frag("CASE WHEN"), is_num, Frag("THEN width_bucket("), val,
                           Frag(", %s::float8[]) END", [list(edges)])])


def _scan(plan: Plan, dims: Sequence[Dimension], edges: dict[int, list[float]],
          kinds: Sequence[list[str] | None]) -> list[dict[str, Any]]:
    """One GROUPING SETS pass, a set per key. A key only some kinds use (a chat has no style
    preset) is compared among those kinds: its set also groups by ``a{i}`` (the row is of
    one of them), and the groups where that is false are dropped, whatever their value."""
    names = [sql.Identifier(f"k{i}") for i in range(len(dims))]
    cols: list[Frag] = []
    sets: list[sql.Composable] = []
    for i, d in enumerate(dims):
        cols.append(Frag.join(" ", [_expr(plan, d, edges.get(i)), Frag(sql.SQL("AS {}").format(names[i]))]))
        if kinds[i] is None:
            sets.append(sql.SQL("({})").format(names[i]))
            continue
        a = sql.Identifier(f"a{i}")
        cols.append(Frag(sql.SQL("g.kind = ANY(%s) AS {}").format(a), [kinds[i]]))
        sets.append(sql.SQL("({}, {})").format(names[i], a))
    inner = Frag.join(", ", [*cols, Frag(sql.SQL("{}.verdict").format(plan.v))])
    extra = [sql.Identifier(f"a{i}") for i in range(len(dims)) if kinds[i] is not None]
    head = sql.SQL("SELECT {keys}, {groupings}, count(*) AS rated,"
                   " count(*) FILTER (WHERE verdict = 'NEGATIVE') AS negative FROM (").format(
        keys=sql.SQL(", ").join([*names, *extra]),
        groupings=sql.SQL(", ").join(sql.SQL("GROUPING({}) AS {}").format(n, sql.Identifier(f"g{i}"))
                                     for i, n in enumerate(names)))
    tail = sql.SQL(") x GROUP BY GROUPING SETS ({})").format(sql.SQL(", ").join(sets))
    q = Frag.join(" ", [Frag(head), Frag("SELECT"), inner, Frag("FROM"), plan.from_(), Frag("WHERE"), plan.where,
                        Frag(tail)])
    return plan.execute(q, work_mem=WORK_MEM).fetchall()


Counts = dict[Any, list[int]]  # group value -> [rated, negative]


def _counts(plan: Plan, dims: Sequence[Dimension], edges: dict[int, list[float]],
            kinds: Sequence[list[str] | None]) -> tuple[list[Counts], dict[str, int] | None]:
    """Per key, its groups' counts from one scan of the rated rows; and the total (the
    groups of any one key partition the rows: a missing key is a group too)."""
    rows = _scan(plan, dims, edges, kinds)
    per_key: list[Counts] = [{} for _ in dims]
    for i in range(len(dims)):
        for r in rows:
            if r[f"g{i}"] == 0 and r.get(f"a{i}") is not False:  # a{i} false: kinds without the key
                n = per_key[i].setdefault(r[f"k{i}"], [0, 0])
                n[0] += int(r["rated"])
                n[1] += int(r["negative"])
    first = [r for r in rows if r["g0"] == 0]
    return per_key, {"rated": sum(int(r["rated"]) for r in first), "negative": sum(int(r["negative"]) for r in first)}


def _add(into: list[Counts], more: list[Counts], at: Sequence[int]) -> None:
    for j, i in enumerate(at):
        for value, (rated, neg) in more[j].items():
            n = into[i].setdefault(value, [0, 0])
            n[0] += rated
            n[1] += neg


def _counts_via_rollup(plan: Plan, dims: Sequence[Dimension], kinds: Sequence[list[str] | None]
                       ) -> tuple[list[Counts], dict[str, int] | None, dict[int, list[float]]] | None:
    """The same counts, and the bins' edges, with the keys the daily rollup holds read from
    it for built, unchanged days (and from the ledger for the other days): values of the
    keys it rolls up one by one, grid cells of the wide numeric ones. A binned key's edges
    come from its cells' counts, exactly as ``bin_edges(grid=True)`` finds them. Keys the
    rollup does not hold come from one scan of the rated rows. One repeatable-read
    snapshot; None when the rollup has nothing built for this scope."""
    conn, tenant = plan.conn, plan.scope.tenant_id
    per_key: list[Counts] = [{} for _ in dims]
    edges: dict[int, list[float]] = {}
    with snapshot(conn):
        wide = rollup.wide_keys(conn, tenant)
        # A key rolled up value by value, or a wide one on the grid when it is binned (its
        # edges are grid floors by construction).
        grid = [wide.get((str(d.source), str(d.key))) for d in dims]
        held = [i for i, d in enumerate(dims) if grid[i] is None or (grid[i] and d.kind == "bins")]
        scanned = [i for i in range(len(dims)) if i not in held]
        days = rollup_days(plan) if held else None
        if days is None:
            return None
        days_p, days_d, ranges = days
        narrow = [c for c in ("kind", "model", "provider") if getattr(plan.f, c)]
        in_days, day_params = rollup.days_frag(days_p, days_d)
        q = sql.SQL(
            "SELECT r.dim, r.key, r.value, r.num, r.kind, sum(r.rated) AS rated, sum(r.negative) AS negative,"
            " CASE WHEN r.num IS NULL OR r.num = 'Infinity' THEN NULL WHEN r.value IS NULL THEN r.num"
            " ELSE {cell} END AS cell"
            " FROM learnloop.analytics_days r WHERE r.tenant_id = %s AND {in_days}"
            " AND (r.dim = '' OR (r.dim, r.key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))){narrow}"
            " GROUP BY 1, 2, 3, 4, 5").format(cell=sql.SQL(rollup.grid_sql("r.value::numeric")), in_days=in_days,
                                              narrow=sql.SQL("").join(
                sql.SQL(" AND r.{} = ANY(%s)").format(sql.Identifier(c)) for c in narrow))
        rows = conn.execute(q, [tenant, *day_params, [dims[i].source for i in held], [dims[i].key for i in held],
                                *(getattr(plan.f, c) for c in narrow)]).fetchall()
        totals = [r for r in rows if r["dim"] == ""]
        mine = {i: [r for r in rows if r["dim"] == dims[i].source and r["key"] == dims[i].key] for i in held}
        binned = [i for i in held if dims[i].kind == "bins"]
        if binned:
            cells = _ledger_cells(_rated(over_ranges(plan, ranges, judged=True)), [dims[i] for i in binned]) if ranges else \
                [{} for _ in binned]
            for j, i in enumerate(binned):
                hist = cells[j]
                for r in mine[i]:
                    if r["cell"] is not None:
                        hist[r["cell"]] = hist.get(r["cell"], 0) + int(r["rated"])
                edges[i] = grid_edges(hist, int(dims[i].bins or 0))
        for i in held:
            d, among = dims[i], kinds[i]
            present = [0, 0]
            for r in mine[i]:
                if among is not None and r["kind"] not in among:
                    continue
                value = r["value"] if d.kind == "key" else _bin(edges.get(i), r["cell"])
                if value is None:
                    continue  # a non-number under a binned key: with the missing ones below
                n = per_key[i].setdefault(value, [0, 0])
                n[0] += int(r["rated"])
                n[1] += int(r["negative"])
                present[0] += int(r["rated"])
                present[1] += int(r["negative"])
            base = [r for r in totals if among is None or r["kind"] in among]
            missing = [sum(int(r["rated"]) for r in base) - present[0], sum(int(r["negative"]) for r in base) - present[1]]
            if missing[0]:
                n = per_key[i].setdefault(None, [0, 0])
                n[0] += missing[0]
                n[1] += missing[1]
        total = {"rated": sum(int(r["rated"]) for r in totals), "negative": sum(int(r["negative"]) for r in totals)}
        if ranges:
            more, more_total = _counts(_rated(over_ranges(plan, ranges, judged=True)), [dims[i] for i in held],
                                       {j: edges[i] for j, i in enumerate(held) if i in edges},
                                       [kinds[i] for i in held])
            _add(per_key, more, held)
            assert more_total is not None
            total = {k: total[k] + more_total[k] for k in total}
        if scanned:
            scan_binned = [i for i in scanned if dims[i].kind == "bins"]
            edges.update(zip(scan_binned, plan.bin_edges([dims[i] for i in scan_binned], grid=True), strict=True))
            more, _ = _counts(plan, [dims[i] for i in scanned], {j: edges[i] for j, i in enumerate(scanned) if i in edges},
                              [kinds[i] for i in scanned])
            _add(per_key, more, scanned)
    return per_key, total, edges


def _ledger_cells(plan: Plan, dims: Sequence[Dimension]) -> list[dict[float, int]]:
    """Per binned key, its rated numbers' grid cells and how many fall in each, from the
    ledger rows the plan selects (one pass: each row gives one number per key)."""
    values = []
    for j, d in enumerate(dims):
        is_num, _ = plan.number(d)
        values.append(Frag.join(" ", [Frag("(%s::int, CASE WHEN", [j]), is_num, Frag(
            sql.SQL("THEN (g.{} -> %s)::numeric END)").format(sql.Identifier(str(d.source))), [d.key])]))
    q = Frag.join(" ", [
        Frag(sql.SQL("SELECT x.j, {} AS cell, count(*) AS n FROM").format(sql.SQL(rollup.grid_sql("x.v")))),
        plan.from_(), Frag("CROSS JOIN LATERAL (VALUES"), Frag.join(", ", values), Frag(") AS x(j, v) WHERE"),
        plan.where, Frag("AND x.v IS NOT NULL GROUP BY 1, 2")])
    out: list[dict[float, int]] = [{} for _ in dims]
    for r in plan.execute(q).fetchall():
        out[r["j"]][r["cell"]] = int(r["n"])
    return out


def grid_edges(hist: dict[float, int], bins: int) -> list[float]:
    """Edges of ``bins`` bins from grid cells' counts: for each quantile k/bins, the cell
    holding the value ``percentile_disc`` returns (position ceil(q * n), counted in the
    same doubles as PostgreSQL)."""
    cells = sorted(hist.items())
    n = sum(c for _, c in cells)
    out: set[float] = set()
    if n == 0:
        return []
    for k in range(1, bins):
        target = max(1, math.ceil((k / bins) * n))
        seen = 0
        for cell, c in cells:
            seen += c
            if seen >= target:
                out.add(cell)
                break
    return sorted(out)


def _bin(edges: Sequence[float] | None, num: float | None) -> int | None:
    """width_bucket(num, edges): how many edges are <= num."""
    if num is None or not edges:
        return None
    return bisect.bisect_right(list(edges), num)


def _group(d: Dimension, edges: Sequence[float] | None, raw: Any, r: dict[str, Any]) -> DriverGroup:
    if raw is None:
        bucket = Bucket(value=None)
    elif d.kind == "bins":
        label, low, high = band_label(edges or [], int(raw))
        bucket = Bucket(value=label, band=int(raw), low=low, high=high)
    else:
        bucket = Bucket(value=str(raw))
    rated, neg = int(r["rated"]), int(r["negative"])
    low_, high_ = wilson(neg, rated)
    return DriverGroup(bucket=bucket, rated=rated, negative=neg,
                       failure_rate=neg / rated if rated else None, failure_low=low_, failure_high=high_)
