"""The one breakdown query behind every analytics call.

    SELECT <dimension 1>, <dimension 2>, <measures>
    FROM learnloop.verdicts g                 -- one analytics row per generation (m005)
    [LEFT JOIN LATERAL unnest(g.tags) tg]     -- only for a tag dimension
    WHERE <tenant, project, filters>
    GROUP BY 1, 2

Every generation has a row in ``learnloop.verdicts`` from the statement that logged it:
its analytic columns (kind, model, tokens, cost, latency, config, context, output_meta)
beside its feedback summary, kept current by every feedback write (ledger m004/m005). So
a breakdown scans one narrow table, in parallel, with no join; only a filter or dimension
on a column the analytics row does not copy (user, session, links) joins the ledger
(``learnloop.generations``). Every value the caller gives (keys, edges, zones, filter
values) is a bound parameter; the only SQL text is this module's own fragments and
psycopg.sql identifiers of a fixed set of columns. Every table is named with the tenant,
so each statement routes to one Citus shard.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ..errors import InvalidInput
from ..knowledge.filters import LOGIC_OPS, compile_filter
from ..ledger import verdicts
from ..ledger.models import GenerationIn, parse
from ..store.database import Conn
from ..store.tenancy import Scope
from . import rollup
from .models import Breakdown, Bucket, DimensionInfo, Group, Measures
from .spec import SOURCES, Dimension, Filters, check_analytics_key, dimensions, split_source
from .spec import filters as make_filters

Z95 = 1.959963984540054
MAX_GROUPS = 10_000
SAMPLE_ROWS = 2000  # newest generations read to learn which document holds a bare key
EDGE_SAMPLE = 50_000  # rows sampled for equal-count bin edges over a large table
EDGE_SAMPLE_MIN = 5_000  # numbers the sample must hold per key, else edges are exact
LATENCY_WORK_MEM = "64MB"  # the groups' collected latencies stay in the hash table (2.5M at 10M rows)


class Frag:
    """A piece of SQL and its positional parameters, composed in text order."""

    __slots__ = ("params", "sql")

    def __init__(self, text: sql.Composable | str, params: Iterable[Any] = ()) -> None:
        self.sql: sql.Composed = sql.Composed([sql.SQL(text) if isinstance(text, str) else text])
        self.params = list(params)

    @staticmethod
    def join(sep: str, frags: Sequence[Frag]) -> Frag:
        return Frag(sql.SQL(sep).join(f.sql for f in frags), [p for f in frags for p in f.params])

    def run(self, conn: Conn, *, binary: bool = False) -> psycopg.Cursor[Any]:
        return conn.execute(self.sql, self.params, binary=binary)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """95% Wilson score interval for k successes out of n (None, None when n is 0)."""
    if n <= 0:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 (or n) the bound is exactly 0 (or 1); rounding would leave 5e-17 above it.
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


# -- sources of bare keys ---------------------------------------------------------------

def resolve_sources(conn: Conn, scope: Scope, keys: Iterable[str], all_projects: bool) -> dict[str, str]:
    """For each bare key, the first of config, context, output_meta that holds it in the
    newest generations in scope (config when none does). A key found in two documents is
    ambiguous and must be named (``context.region``)."""
    bare = sorted({k for k in keys})
    if not bare:
        return {}
    cond = Frag("tenant_id = %s", [scope.tenant_id]) if all_projects else \
        Frag("tenant_id = %s AND project_id = %s", [scope.tenant_id, scope.project_id])
    rows = Frag.join(" ", [
        Frag("SELECT k, bool_or(s.config ? k) AS config, bool_or(s.context ? k) AS context,"
             " bool_or(s.output_meta ? k) AS output_meta"
             " FROM (SELECT config, context, output_meta FROM learnloop.generations WHERE"), cond,
        Frag("ORDER BY created_at DESC LIMIT %s) s, unnest(%s::text[]) AS k GROUP BY k", [SAMPLE_ROWS, bare]),
    ]).run(conn).fetchall()
    found = {r["k"]: [s for s in SOURCES if r[s]] for r in rows}
    out: dict[str, str] = {}
    for k in bare:
        where = found.get(k) or ["config"]
        if len(where) > 1:
            raise InvalidInput(f"key {k!r} is in both {where[0]} and {where[1]}: name one, e.g. {where[0]}.{k}",
                               field="by")
        out[k] = where[0]
    return out


def _filter_keys(where: Mapping[str, Any], out: list[str]) -> None:
    for key, value in where.items():
        if not isinstance(key, str):
            raise InvalidInput(f"filter keys must be strings, got {key!r}", field="where")
        logic = key[1:] if key.startswith("$") else key
        if logic in LOGIC_OPS and isinstance(value, list | tuple):
            for sub in value:
                if not isinstance(sub, Mapping):
                    raise InvalidInput(f"each item of {key!r} must be a filter object", field="where")
                _filter_keys(sub, out)
        else:
            out.append(check_analytics_key(key, "filter key"))


def _where_frag(where: Mapping[str, Any], sources: Mapping[str, str]) -> Frag | None:
    """The filter language over keys that may live in different documents."""
    parts: list[Frag] = []
    for key, value in where.items():
        logic = key[1:] if key.startswith("$") else key
        if logic in LOGIC_OPS and isinstance(value, list | tuple):
            subs = [f for f in (_where_frag(s, sources) for s in value) if f is not None]
            if not subs:
                raise InvalidInput(f"{key!r} needs at least one filter", field="where")
            j = Frag.join(" AND " if logic == "and" else " OR ", subs)
            parts.append(Frag(sql.SQL("({})").format(j.sql), j.params))
            continue
        src, bare = split_source(key)
        col = sql.SQL("g.{}").format(sql.Identifier(src or sources[bare]))
        c = compile_filter({bare: value}, col)
        if c is not None:
            parts.append(Frag(c.sql, c.params))
    return Frag.join(" AND ", parts) if parts else None


# -- scope and filters ------------------------------------------------------------------

# Columns only the ledger holds: a filter or dimension on one joins it.
LEDGER_ONLY = ("user_ref", "session_ref")


def needs_ledger(f: Filters, dims: Sequence[Dimension]) -> bool:
    return bool(f.user_ref or f.session_ref or f.links) or any(
        d.kind == "column" and d.key in LEDGER_ONLY for d in dims)


class Plan:
    """Validated inputs and the SQL pieces every analytics statement shares.

    ``g`` names the generation's columns and ``v`` its feedback summary: both the analytics
    row (``learnloop.verdicts g``) unless ``ledger`` (a filter or dimension on a ledger-only
    column, or a caller that reads the ledger's text), then the ledger joined to it."""

    def __init__(self, conn: Conn, scope: Scope, f: Filters, dims: Sequence[Dimension], *,
                 ledger: bool = False) -> None:
        self.conn, self.scope, self.f = conn, scope, f
        self.ledger = ledger or needs_ledger(f, dims)
        self.v = sql.Identifier("v" if self.ledger else "g")
        self.created = sql.SQL("g.created_at" if self.ledger else "g.generated_at")
        keys: list[str] = []
        for name in ("config", "context", "output_meta"):
            doc = getattr(f, name)
            if doc:
                _filter_keys(doc, [])
        if f.where:
            _filter_keys(f.where, keys)
        bare = [k for k in keys if split_source(k)[0] is None]
        bare += [d.key for d in dims if d.kind in ("key", "bands", "bins") and d.source is None and d.key]
        wide = f.all_projects or bool(f.projects)
        self.sources = resolve_sources(conn, scope, bare, wide)
        self.dims = [d if d.kind not in ("key", "bands", "bins") or d.source
                     else d.model_copy(update={"source": self.sources[d.key]}) for d in dims]  # type: ignore[index]
        self.where = self._where()

    def _where(self) -> Frag:
        f, s = self.f, self.scope
        parts = [Frag("g.tenant_id = %s", [s.tenant_id])]
        if f.projects:
            parts.append(Frag("g.project_id IN (SELECT id FROM learnloop.projects WHERE tenant_id = %s"
                              " AND name = ANY(%s))", [s.tenant_id, f.projects]))
        elif not f.all_projects:
            parts.append(Frag("g.project_id = %s", [s.project_id]))
        for col in ("kind", "model", "provider", "user_ref", "session_ref"):
            vals = getattr(f, col)
            if vals:
                parts.append(Frag(sql.SQL("g.{} = ANY(%s)").format(sql.Identifier(col)), [vals]))
        if f.links:
            parts.append(Frag("g.links @> %s", [Jsonb(parse(GenerationIn, {"links": f.links}).links)]))
        if f.since is not None:
            parts.append(Frag(sql.SQL("{} >= %s").format(self.created), [f.since]))
        if f.until is not None:
            parts.append(Frag(sql.SQL("{} < %s").format(self.created), [f.until]))
        for name in ("config", "context", "output_meta"):
            doc = getattr(f, name)
            c = compile_filter(doc, sql.SQL("g.{}").format(sql.Identifier(name))) if doc else None
            if c is not None:
                parts.append(Frag(c.sql, c.params))
        if f.where:
            w = _where_frag(f.where, self.sources)
            if w is not None:
                parts.append(w)
        v = self.v
        if f.verdict:
            judged = [x for x in f.verdict if x != "UNRATED"]
            if "UNRATED" in f.verdict:
                parts.append(Frag(sql.SQL("({v}.verdict IS NULL OR {v}.verdict = ANY(%s))").format(v=v), [judged]))
            else:
                parts.append(Frag(sql.SQL("{}.verdict = ANY(%s)").format(v), [judged]))
        if f.tags:
            parts.append(Frag(sql.SQL("{}.tags && %s::text[]").format(v), [f.tags]))
        if f.feedback_source:
            parts.append(Frag(sql.SQL("{}.sources && %s::text[]").format(v), [f.feedback_source]))
        return Frag.join(" AND ", parts)

    def from_(self, tags: bool = False) -> Frag:
        if self.ledger:
            frm = Frag("learnloop.generations g JOIN learnloop.verdicts v ON v.tenant_id = %s AND v.generation_id = g.id",
                       [self.scope.tenant_id])
        else:
            frm = Frag("learnloop.verdicts g")
        if tags:
            frm = Frag.join(" ", [frm, Frag(sql.SQL("LEFT JOIN LATERAL unnest({}.tags) AS tg(tag) ON true").format(self.v))])
        return frm

    def inner(self) -> Frag:
        """The columns the measures read, over the inner row set (see ``breakdown``)."""
        return Frag(sql.SQL("{v}.verdict, {v}.rating_sum, {v}.rating_count, g.tokens_in, g.tokens_out, g.cost,"
                            " g.latency_ms").format(v=self.v))

    def number(self, d: Dimension) -> tuple[Frag, Frag]:
        """(is a JSON number, its float8 value) for a bands/bins key."""
        col = sql.Identifier(d.source or "config")
        # jsonb's own cast of a number (not ->> and a parse of its text: a tenth of a 2-D
        # breakdown's scan); callers apply it only where the first part holds.
        return (Frag(sql.SQL("jsonb_typeof(g.{} -> %s) = 'number'").format(col), [d.key]),
                Frag(sql.SQL("(g.{} -> %s)::float8").format(col), [d.key]))

    def bin_edges(self, dims: Sequence[Dimension], *, grid: bool = False) -> list[list[float]]:
        """Quantile edges for N equal-count bins over the numbers in scope (ties kept
        together), for several keys in one scan. With ``grid``, each edge is the grid floor
        (rollup.grid_sql: two significant digits) of the value at that quantile
        (``percentile_disc``): the bins are then of nearly equal counts, with edges that
        read well and that the rollup's grid counts exactly.

        Quantiles sort every value (an ordered-set aggregate runs in one process): over a
        large table they come from a repeatable block sample of about ``EDGE_SAMPLE`` rows
        instead, bins then being of equal count to within the sample's error; a scope
        the sample holds fewer than ``EDGE_SAMPLE_MIN`` numbers of is cut exactly."""
        if not dims:
            return []
        aggs = []
        for i, d in enumerate(dims):
            assert d.bins is not None
            is_num, val = self.number(d)
            if grid:
                val = Frag(sql.SQL("(g.{} -> %s)::numeric").format(sql.Identifier(d.source or "config")), [d.key])
            fractions = [k / d.bins for k in range(1, d.bins)]
            fn = "percentile_disc" if grid else "percentile_cont"
            aggs.append(Frag.join(" ", [Frag(fn + "(%s::float8[]) WITHIN GROUP (ORDER BY", [fractions]),
                                        val, Frag(") FILTER (WHERE"), is_num,
                                        Frag(sql.SQL(") AS {}, count(*) FILTER (WHERE").format(sql.Identifier(f"e{i}"))),
                                        is_num, Frag(sql.SQL(") AS {}").format(sql.Identifier(f"n{i}")))]))

        def query(frm: Frag) -> Frag:
            q = Frag.join(" ", [Frag("SELECT"), Frag.join(", ", aggs), Frag("FROM"), frm, Frag("WHERE"), self.where])
            if not grid:
                return q
            cells = sql.SQL(", ").join(
                sql.SQL("ARRAY(SELECT {cell} FROM unnest(q.{e}) x) AS {e}, q.{n}").format(
                    cell=sql.SQL(rollup.grid_sql("x")), e=sql.Identifier(f"e{i}"), n=sql.Identifier(f"n{i}"))
                for i in range(len(dims)))
            return Frag.join(" ", [Frag(sql.SQL("SELECT {} FROM (").format(cells)), q, Frag(") q")])

        share = self._sample_share()
        if share is not None:
            frm = Frag("learnloop.verdicts g TABLESAMPLE SYSTEM (%s) REPEATABLE (0)", [share])
            row = self.execute(query(frm)).fetchone() or {}
            if all((row.get(f"n{i}") or 0) >= EDGE_SAMPLE_MIN for i in range(len(dims))):
                return [sorted(set(row.get(f"e{i}") or [])) for i in range(len(dims))]
        row = self.execute(query(self.from_())).fetchone() or {}
        return [sorted(set(row.get(f"e{i}") or [])) for i in range(len(dims))]

    def _sample_share(self) -> float | None:
        """The percentage of the analytics table's blocks that holds about EDGE_SAMPLE rows,
        or None when the table is small enough to read whole (or the ledger is joined)."""
        if self.ledger:
            return None
        row = self.conn.execute("SELECT reltuples::float8 AS n FROM pg_class"
                                " WHERE oid = 'learnloop.verdicts'::regclass").fetchone()
        rows = float(row["n"]) if row else 0.0
        return 100.0 * EDGE_SAMPLE / rows if rows > 4 * EDGE_SAMPLE else None

    def execute(self, q: Frag, *, work_mem: str | None = None, binary: bool = False) -> psycopg.Cursor[Any]:
        """Run an analytics statement. Plans may use parallel workers: a group-by over a JSON
        key is estimated at thousands of groups, which makes the planner's default costs
        shun the partial aggregates that halve these scans on two cores. ``work_mem`` (one
        of this package's constants) raises the memory for this statement only. Inside a
        caller's transaction neither is set: the caller's settings stand."""
        try:
            if self.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                with self.conn.transaction():
                    self.conn.execute(_PARALLEL)
                    if work_mem is not None:
                        self.conn.execute("SELECT set_config('work_mem', %s, true)", [work_mem])
                    return q.run(self.conn, binary=binary)
            return q.run(self.conn, binary=binary)
        except psycopg.errors.NumericValueOutOfRange:
            raise InvalidInput("a number under a banded key is too large to compare (beyond float8)",
                               field="by") from None


_PARALLEL = "SET LOCAL parallel_setup_cost = 100; SET LOCAL parallel_tuple_cost = 0.01"


# -- the breakdown ----------------------------------------------------------------------

_MEASURES = """count(*) AS attempts, count(verdict) AS rated,
    count(*) FILTER (WHERE verdict = 'NEGATIVE') AS negative,
    count(*) FILTER (WHERE verdict = 'POSITIVE') AS positive,
    coalesce(sum(rating_sum), 0) AS rating_sum, coalesce(sum(rating_count), 0) AS rating_count,
    coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out,
    sum(cost)::float8 AS cost"""


_UTC = ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Zulu", "Etc/Zulu", "Universal", "Etc/Universal")
# Buckets of fixed length in UTC: the length and a bucket start (2000-01-03 was a Monday).
_UTC_BINS = {"hour": ("1 hour", "2000-01-01 00:00+00"), "day": ("1 day", "2000-01-01 00:00+00"),
             "week": ("7 days", "2000-01-03 00:00+00")}


def _dim_expr(plan: Plan, d: Dimension, edges: list[float] | None) -> Frag:
    if d.kind == "key":
        return Frag(sql.SQL("g.{} ->> %s").format(sql.Identifier(d.source or "config")), [d.key])
    if d.kind == "column":
        return Frag(sql.SQL("g.{}").format(sql.Identifier("project_id" if d.key == "project" else str(d.key))))
    if d.kind == "tag":
        return Frag("tg.tag")
    if d.kind == "time":
        # UTC buckets are written as literals (from this module's fixed table, never the
        # caller's text) so that they match the statistics objects of ledger m006 in every
        # plan, generic ones included: with them the planner knows a day-by-day breakdown
        # has tens of groups, not a million, and lets each worker hash its part.
        if d.tz in _UTC and d.unit in _UTC_BINS:
            # The same buckets by arithmetic: date_trunc with a zone looks the zone up on
            # every row (1.3 us a row, most of a day-by-day count).
            step, origin = _UTC_BINS[d.unit]
            return Frag(sql.SQL("date_bin({}::interval, {}, {}::timestamptz)").format(
                sql.Literal(step), plan.created, sql.Literal(origin)))
        if d.tz in _UTC and d.unit == "month":
            return Frag(sql.SQL("date_trunc('month'::text, {}, 'UTC'::text)").format(plan.created))
        return Frag(sql.SQL("date_trunc(%s, {}, %s)").format(plan.created), [d.unit, d.tz])
    is_num, val = plan.number(d)
    if not edges:  # bins over no numbers at all: everything is "not a number"
        return Frag("NULL::int")
    return Frag.join(" ", [Frag("CASE WHEN"), is_num, Frag("THEN width_bucket("), val,
                           Frag(", %s::float8[]) END", [edges])])


def measures(row: Mapping[str, Any]) -> dict[str, Any]:
    rated, neg = int(row["rated"]), int(row["negative"])
    low, high = wilson(neg, rated)
    lat = row.get("latency") or [None, None]
    return {
        "attempts": int(row["attempts"]), "rated": rated, "negative": neg, "positive": int(row["positive"]),
        "failure_rate": neg / rated if rated else None, "failure_low": low, "failure_high": high,
        "avg_rating": row["rating_sum"] / row["rating_count"] if row["rating_count"] else None,
        "tokens_in": int(row["tokens_in"]), "tokens_out": int(row["tokens_out"]), "cost": row["cost"],
        "latency_p50_ms": lat[0], "latency_p95_ms": lat[1],
    }


_SUMMED = ("attempts", "rated", "negative", "positive", "rating_sum", "rating_count", "tokens_in", "tokens_out")


def _summed(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The total of groups that partition the rows (counts and sums add up exactly)."""
    out: dict[str, Any] = {k: sum(r[k] for r in rows) for k in _SUMMED}
    costs = [r["cost"] for r in rows if r["cost"] is not None]
    out["cost"] = sum(costs) if costs else None
    return out


def _empty() -> dict[str, Any]:
    return measures({"attempts": 0, "rated": 0, "negative": 0, "positive": 0, "rating_sum": 0, "rating_count": 0,
                     "tokens_in": 0, "tokens_out": 0, "cost": None})


def band_label(edges: Sequence[float], i: int) -> tuple[str, float | None, float | None]:
    low = edges[i - 1] if i > 0 else None
    high = edges[i] if i < len(edges) else None
    def num(x: float) -> str:
        return f"{x:g}"
    if low is None:
        return f"< {num(high)}", None, high  # type: ignore[arg-type]
    if high is None:
        return f">= {num(low)}", low, None
    return f"{num(low)} - {num(high)}", low, high


def _bucket(d: Dimension, edges: list[float] | None, raw: Any, projects: Mapping[UUID, str]) -> Bucket:
    if raw is None:
        return Bucket(value=None)
    if d.kind in ("bands", "bins"):
        label, low, high = band_label(edges or [], int(raw))
        return Bucket(value=label, band=int(raw), low=low, high=high)
    if d.kind == "time":
        assert isinstance(raw, datetime)
        return Bucket(value=raw.isoformat(), start=raw)
    if d.kind == "column" and d.key == "project":
        return Bucket(value=projects.get(raw, str(raw)))
    return Bucket(value=str(raw))


def breakdown(conn: Conn, scope: Scope, by: Any = (), where: Any = None, *, filters: Any = None,
              latency: bool = True, **filter_args: Any) -> Breakdown:
    """Measures for every combination of up to two dimensions over the filtered generations.

    ``by``: dimensions (text like ``"demand_kw:bands=0,100,500"``, dicts or Dimension).
    ``where``: the filter language over config/context/output_meta keys (a dict, or CLI
    conditions like ``"audience=INVESTOR"``); ``filters``: a Filters (or dict of its fields);
    any Filters field may also be a keyword argument (``kind="image"``, ``since=...``).
    Bands and bins list every band, empty ones included (for each value of the other
    dimension); other dimensions list the values present.
    """
    dims = dimensions(by)
    f = make_filters(filters, where=where, **filter_args)
    verdicts.settle(conn, scope.tenant_id)
    plan = Plan(conn, scope, f, dims)
    binned = iter(plan.bin_edges([d for d in plan.dims if d.kind == "bins"]))
    edges: list[list[float] | None] = [
        list(d.edges or ()) if d.kind == "bands" else next(binned) if d.kind == "bins" else None for d in plan.dims]
    rows: list[dict[str, Any]] | None = None
    total_row: Mapping[str, Any] | None = None
    if rollup.eligible(f, plan.dims, latency, plan.ledger) and rollup.available(conn):
        via = _from_rollup(plan, edges)
        if via is not None:
            rows, total_row = via
    if rows is None:
        rows, total_row = _grouped(plan, edges, latency)
    n = len(plan.dims)
    projects: dict[UUID, str] = {}
    if any(d.kind == "column" and d.key == "project" for d in plan.dims):
        projects = {r["id"]: r["name"] for r in conn.execute(
            "SELECT id, name FROM learnloop.projects WHERE tenant_id = %s", (scope.tenant_id,)).fetchall()}
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        found[tuple(r[f"d{i}"] for i in range(n))] = measures(r)
    keys = _with_empty_bands(plan.dims, edges, list(found))
    if len(keys) > MAX_GROUPS:
        keys = sorted(keys, key=lambda k: -(found[k]["attempts"] if k in found else 0))[:MAX_GROUPS]
    weight: list[dict[Any, int]] = [{} for _ in range(n)]
    for k, got in found.items():
        for i in range(n):
            weight[i][k[i]] = weight[i].get(k[i], 0) + got["attempts"]
    keys.sort(key=lambda k: tuple(_order(d, k[i], weight[i]) for i, d in enumerate(plan.dims)))
    groups = [Group(by=[_bucket(d, edges[i], k[i], projects) for i, d in enumerate(plan.dims)],
                    **(found.get(k) or _empty())) for k in keys]
    assert total_row is not None
    total = Measures(**measures(total_row))
    info = [DimensionInfo(label=d.label, kind=d.kind, key=d.key, source=d.source, edges=e,
                          unit=d.unit, tz=d.tz if d.kind == "time" else None) for d, e in zip(plan.dims, edges, strict=True)]
    return Breakdown(dimensions=info, groups=groups if n else [], total=total)


def _grouped(plan: Plan, edges: Sequence[list[float] | None], latency: bool) -> tuple[list[dict[str, Any]], Mapping[str, Any]]:
    """The groups (``d0``, ``d1`` and measures) and the total, read from the ledger."""
    has_tag = any(d.kind == "tag" for d in plan.dims)
    n = len(plan.dims)
    names = sql.SQL(", ").join(sql.Identifier(f"d{i}") for i in range(n))
    inner = Frag.join(", ", [*(Frag.join(" ", [_dim_expr(plan, d, e), Frag(f"AS d{i}")])
                               for i, (d, e) in enumerate(zip(plan.dims, edges, strict=True))), plan.inner()])
    q = Frag.join(" ", [Frag("SELECT"), inner, Frag("FROM"), plan.from_(has_tag), Frag("WHERE"), plan.where])
    # A tag dimension's total: every selected generation once, without the tags.
    plain = Frag.join(" ", [Frag("SELECT"), plan.inner(), Frag("FROM"), plan.from_(), Frag("WHERE"), plan.where])
    lat = sql.SQL(_LATENCIES if latency else "")
    if not n:
        total = plan.execute(Frag.join(" ", [Frag(sql.SQL("SELECT {}{} FROM (").format(sql.SQL(_MEASURES), lat)), q,
                                             Frag(") x")]), binary=latency).fetchone()
        assert total is not None  # an aggregate over no GROUP BY returns one row
        return [], _with_percentiles(total, [total]) if latency else total
    # Each worker aggregates its part of the scan; the total of groups that partition the
    # rows is their sum, else (a tag dimension) its own statement.
    rows = plan.execute(Frag.join(" ", [Frag(sql.SQL("SELECT {}, {}{} FROM (").format(names, sql.SQL(_MEASURES), lat)), q,
                                        Frag(sql.SQL(") x GROUP BY {}").format(names))]),
                        binary=latency, work_mem=LATENCY_WORK_MEM if latency else None).fetchall()
    if has_tag:
        total = plan.execute(Frag.join(" ", [Frag(sql.SQL("SELECT {}{} FROM (").format(sql.SQL(_MEASURES), lat)), plain,
                                             Frag(") x")]), binary=latency).fetchone()
        assert total is not None
    else:
        total = _summed(rows)
    if not latency:
        return rows, total
    return [_with_percentiles(r, [r]) for r in rows], _with_percentiles(total, [total] if has_tag else rows)


# Latency percentiles in this process, not in SQL: PostgreSQL cannot split an ordered-set
# aggregate across parallel workers, so ``percentile_cont`` over the scan sent every
# filtered row through one process, and over collected arrays it still sorted each group's
# latencies and then all of them again for the total in the leader (~1.3 s of a 2-D
# breakdown at 10M). Each worker appends its groups' latencies to a bytea of big-endian
# float8 (``string_agg``, combined across workers; NULLs skipped, as percentile_cont
# skips them), fetched in binary; numpy takes the exact p50/p95 of each group and of all
# of them with linear interpolation, percentile_cont's definition.
_LATENCIES = ", string_agg(float8send(latency_ms), ''::bytea) AS lat"


def _with_percentiles(row: Mapping[str, Any], parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``row`` with ``latency``: [p50, p95] of the latencies collected in ``parts``."""
    arrays = [np.frombuffer(p["lat"], dtype=">f8") for p in parts if p.get("lat")]
    out = {k: v for k, v in row.items() if k != "lat"}
    out["latency"] = [float(x) for x in np.percentile(np.concatenate(arrays), (50, 95))] if arrays else None
    return out


def _project_ids(plan: Plan) -> list[UUID]:
    f, s = plan.f, plan.scope
    if f.projects:
        rows = plan.conn.execute("SELECT id FROM learnloop.projects WHERE tenant_id = %s AND name = ANY(%s)",
                                 (s.tenant_id, f.projects)).fetchall()
    elif f.all_projects:
        rows = plan.conn.execute("SELECT id FROM learnloop.projects WHERE tenant_id = %s", (s.tenant_id,)).fetchall()
    else:
        return [s.project_id]
    return [r["id"] for r in rows]


@contextmanager
def snapshot(conn: Conn) -> Iterator[None]:
    """One repeatable-read transaction for a call's rollup and ledger reads, so a row is
    counted once (in a caller's transaction, the caller's isolation stands)."""
    own = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        if own:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            conn.execute(_PARALLEL)
        yield


def rollup_days(plan: Plan) -> tuple[list[UUID], list[date], list[rollup.Range]] | None:
    """The (projects, days) the rollup answers for in the plan's period and the stretches
    the ledger must read (see ``rollup.plan_days``); None when nothing is built (a ledger
    never refreshed: the ordinary scan of the analytics rows beats reading the whole period
    through the ledger's time index) or the stretches are too many."""
    return rollup.readable_days(plan.conn, plan.scope.tenant_id, _project_ids(plan), plan.f.since, plan.f.until)


def over_ranges(plan: Plan, ranges: Sequence[rollup.Range], *, judged: bool = False) -> Plan:
    """The plan over the ledger (through its (project, time) index), limited to ``ranges``.

    ``judged``: the caller reads only generations with feedback. Unless a filter needs the
    ledger, the plan then stays on the analytics rows and finds the stretches' judged rows
    through their own (project, time) index (``verdicts_judged_idx``), not by probing the
    summary of every generation the ledger's index gives (a changed day at 1M: ~3k rows
    instead of ~11k probes, ~100 ms of a drivers call)."""
    raw = copy.copy(plan)
    if judged and not plan.ledger:
        text, params = rollup.ranges_frag(ranges, time="generated_at")
        raw.where = Frag.join(" AND ", [raw._where(), Frag("g.feedback_count > 0"), Frag(text, params)])
        return raw
    raw.ledger, raw.v, raw.created = True, sql.Identifier("v"), sql.SQL("g.created_at")
    text, params = rollup.ranges_frag(ranges)
    raw.where = Frag.join(" AND ", [raw._where(), Frag(text, params)])
    return raw


def _from_rollup(plan: Plan, edges: Sequence[list[float] | None]
                 ) -> tuple[list[dict[str, Any]], Mapping[str, Any]] | None:
    """The breakdown from the daily rollup for built, unchanged days and from the ledger for
    the rest of the period, in one snapshot; None when the rollup cannot help."""
    conn, tenant = plan.conn, plan.scope.tenant_id
    with snapshot(conn):
        wide = rollup.wide_keys(conn, tenant)
        if not all(rollup.holds(d, e, wide) for d, e in zip(plan.dims, edges, strict=True)):
            return None
        days = rollup_days(plan)
        if days is None:
            return None
        days_p, days_d, ranges = days
        groups, total = rollup.read(conn, tenant, plan.f, plan.dims, edges, days_p, days_d)
        if ranges:
            more, more_total = _grouped(over_ranges(plan, ranges), edges, latency=False)
            groups = [*groups, *more]
            total = rollup.add_up([total, more_total])
    n = len(plan.dims)
    merged: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for g in groups:
        merged.setdefault(tuple(g[f"d{i}"] for i in range(n)), []).append(g)
    rows = [{**{f"d{i}": k[i] for i in range(n)}, **rollup.add_up(gs)} for k, gs in merged.items()]
    return rows, total


def _with_empty_bands(dims: Sequence[Dimension], edges: Sequence[list[float] | None],
                      keys: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Every band of a banded dimension, for each value of the other dimension present,
    its null band (missing or not a number) included when that occurs: two banded keys
    give the whole grid, and a row of each's nulls against the other's bands."""
    banded = [d.kind in ("bands", "bins") and bool(edges[i]) for i, d in enumerate(dims)]
    if not any(banded):
        return keys
    domains: list[list[Any]] = []
    for i in range(len(dims)):
        present = list(dict.fromkeys(k[i] for k in keys))
        if banded[i]:
            domains.append(list(range(len(edges[i]) + 1)) + ([None] if None in present else []))  # type: ignore[arg-type]
        else:
            domains.append(present)
    out: list[tuple[Any, ...]] = [()]
    for dom in domains:
        out = [k + (v,) for k in out for v in dom]
    # The null band is listed only where it occurs, never as a group of nothing but nulls.
    found = set(keys)
    out = [k for k in out if k in found or any(banded[i] and v is not None for i, v in enumerate(k))]
    return list(dict.fromkeys(out + keys))


def _order(d: Dimension, value: Any, weight: Mapping[Any, int]) -> tuple[Any, ...]:
    if value is None:
        return (1, 0, "")
    if d.kind in ("bands", "bins", "time"):
        return (0, 0, value)
    # Other values: most attempts first (summed over the other dimension), then by text.
    return (0, -weight.get(value, 0), str(value))
