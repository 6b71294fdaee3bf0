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
``MAX_VALUES`` distinct values; then it is cut in ``bins`` bins holding equal numbers of
rated generations. Other keys with at most ``MAX_CATEGORIES`` distinct sampled values are
compared value by value (missing keys as their own group); keys with more (ids, seeds) are
skipped. A key that only some kinds carry in the sample (an image's ``style_preset``, which
a chat never has) is compared among the generations of those kinds only: otherwise the
other kinds would form its "missing" group and a key would seem to matter only because
kinds fail at different rates. Counts are then exact, from one scan: a GROUPING SETS
aggregate with one set per key, given the memory to hash every set in one pass
(``WORK_MEM``) instead of sorting the rows once per key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from ..errors import InvalidInput
from ..store.database import Conn
from ..store.tenancy import Scope
from .breakdown import Frag, Plan, band_label, wilson
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
    plan = _rated(Plan(conn, scope, f, []))
    # The newest rated generations, read through the ledger's (project, time) index.
    newest = _rated(Plan(conn, scope, f, [], ledger=True))
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
    edges = dict(zip(binned, plan.bin_edges([dims[i] for i in binned]), strict=True))
    rows = _scan(plan, dims, edges, kinds) if dims else []
    if dims:  # the groups of any one key partition the rows (a missing key is a group too)
        first = [r for r in rows if r["g0"] == 0]
        total = {"rated": sum(r["rated"] for r in first), "negative": sum(r["negative"] for r in first)}
    else:
        total = plan.execute(Frag.join(" ", [
            Frag(sql.SQL("SELECT count({v}.verdict) AS rated, count(*) FILTER (WHERE {v}.verdict = 'NEGATIVE')"
                         " AS negative FROM").format(v=plan.v)),
            frm, Frag("WHERE"), plan.where])).fetchone() or {"rated": 0, "negative": 0}

    out: list[Driver] = []
    no_difference: list[str] = []
    for i, d in enumerate(dims):
        groups = [_group(d, edges.get(i), r[f"k{i}"], r) for r in rows
                  if r[f"g{i}"] == 0 and r.get(f"a{i}") is not False]  # a{i} false: kinds without the key
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
