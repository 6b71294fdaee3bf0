"""Search: filtered vector search, hybrid (full-text + vector), learn from success.

One call answers "the k nearest rows of this scope that pass this filter", always scoped by
tenant (and by project unless ``all_projects``). Invariants:

* **k rows whenever k rows match.** A capped count of the matching rows picks the path per
  query: few matches (< ``exact_threshold``) are read through B-tree indexes and ordered by
  exact distance; otherwise the model's HNSW index is walked with pgvector's iterative scan
  (``hnsw.iterative_scan = relaxed_order``, the results re-sorted). Count and search are one
  statement; the verdict per filter is remembered for a minute (a stale one costs speed,
  never rows). If the graph walk gives
  up early (``hnsw.max_scan_tuples``), the exact path finishes the job: a filtered search
  never silently returns fewer rows than it could.
* The HNSW query repeats the index contract of ``knowledge.vectors`` exactly:
  ``(embedding::vector(DIM)) <=> %s::vector(DIM)`` with ``model = '<model>'``: the model
  id is written into the statement (quoted by psycopg) like the index's own predicate, so
  a prepared statement's generic plan can use the partial index and repeated searches are
  not planned again. Every other value is a bound parameter. The exact path uses the
  untyped column so the planner cannot pick the graph index there.
* HNSW settings (``hnsw.ef_search``, ``hnsw.iterative_scan``, ``hnsw.max_scan_tuples``)
  are set on the pooled session and re-sent only when they change (tracked on the
  connection object): only HNSW scans read them, and only search runs those. Planner
  settings (``enable_sort``, ``join_collapse_limit``), which would change other queries,
  are only ever transaction-local: a metadata-filtered ("guarded") HNSW query pipelines
  them with the query into one implicit transaction. Inside a caller's transaction all
  settings are local to it.
* The distance is computed once per row and ordered by its alias; the hits carry their
  similarity out of the scan (no second distance computation).
* Filters are data: see ``knowledge.filters``.

Three modes (``mode=``): dense (the vector ranking above), fulltext (a BM25 ranking of
PostgreSQL full-text matches: English stemming, the query's words OR-ed;
``knowledge.fulltext``) and hybrid (both fused by weighted reciprocal rank fusion, the
text side's weight decided per query; ``knowledge.fusion``). ``group_by="document"``
returns the k best documents, each with its best chunks. Learn-from-success restricts a search to past
generations whose *current* feedback says they worked, then formats them as few-shot
examples.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from ..errors import InvalidInput
from ..ledger import verdicts as summaries
from ..store.database import database_key
from ..store.distribute import on_citus
from ..store.tenancy import Scope
from ..store.validation import check_key, check_text
from . import fusion as _fusion
from . import languages as _languages
from . import metrics as _metrics
from .filters import Compiled, compile_filter
from .fusion import DEFAULT_CHUNKS_PER_DOCUMENT, DEFAULT_DEPTH, RRF_K  # noqa: F401 - RRF_K re-exported

log = logging.getLogger(__name__)

OWNER_TYPES = ("chunk", "entity", "generation", "term")
OWNER_TYPES_SET = frozenset(OWNER_TYPES)
MAX_K = 1000
DEFAULT_EF_SEARCH = 64
DEFAULT_EXACT_THRESHOLD = 2000
DEFAULT_MAX_SCAN_TUPLES = 20000
MAX_EF = 1000  # pgvector's ceiling for hnsw.ef_search; larger k relies on the iterative scan


class Results(list):  # type: ignore[type-arg]
    """The hits, best first, plus how they were found (``path``, ``matching``, ``ms``)."""

    path: str = ""
    matching: int | None = None
    ms: float = 0.0
    mode: str = ""
    trust: dict[str, Any] | None = None  # hybrid: the text side's signals and weights


@dataclass
class Query:
    """A resolved search: vector, model, scope conditions. Built by ``prepare``."""

    vector: np.ndarray
    model: str
    k: int
    conds: list[sql.Composable]
    params: list[Any]
    text: str | None = None
    base_conds: int = 2  # conds[:base_conds] are the scope: tenant, model (and project)
    base_params: int = 1  # ... and params[:base_params] their values (the model is a literal)
    # A condition the planner cannot estimate well (metadata filter, custom condition):
    # the HNSW path then forbids sorting for the query (see ``_apply_settings``).
    guard: bool = False
    owner_data: bool = True  # False: hits carry ids and similarity only
    doc_cond: int | None = None  # index of the active-document condition (not counted)
    doc_param: int | None = None  # ... and of its parameter (the tenant, again)
    # Owner types the scope can return (see ``reachable_owner_types``): the statement only
    # carries the owner lookups and the active-document check these need.
    reachable: frozenset[str] = frozenset(OWNER_TYPES_SET)
    # The statement's shape without its values: one token per condition. Keys the
    # statement cache and the path verdicts, so neither renders the SQL again per search.
    shape: tuple[str, ...] = ()
    # A hashable stand-in for ``params`` (see ``_value_key``): keys the path verdicts.
    values_key: tuple[Any, ...] = ()

    @property
    def dims(self) -> int:
        return int(self.vector.shape[0])

    def with_vector(self, vector: Any, dimensions: int | None = None) -> Query:
        """This scope searched with ``vector`` (validated): a new Query, this one untouched."""
        vec = np.asarray(vector, dtype=np.float32)
        if vec.ndim != 1 or vec.shape[0] == 0:
            raise InvalidInput(f"the query vector must be a flat list of numbers, got shape {vec.shape}",
                               field="vector")
        if dimensions is not None and vec.shape[0] != dimensions:
            raise InvalidInput(
                f"the query vector has {vec.shape[0]} dimensions but model {self.model!r} stores {dimensions}",
                field="vector")
        if not np.isfinite(vec).all():
            raise InvalidInput("the query vector contains NaN or infinity", field="vector")
        q = object.__new__(Query)  # a shallow copy (copy.copy costs 5x more); the lists are never mutated
        q.__dict__.update(self.__dict__)
        q.vector = vec
        return q


def _as_list(value: Any, what: str) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes | UUID):
        value = [value]
    out = list(value)
    if not out:
        raise InvalidInput(f"{what} is empty; leave it out to search everything", field=what)
    return out


def _check_model(model: Any) -> str:
    if not isinstance(model, str) or not model.strip():
        raise InvalidInput("model must be a non-empty model id", field="model")
    return check_text(model, "model")


def prepare(scope: Scope, vector: Any, model: str, *, dimensions: int | None = None, **options: Any) -> Query:
    """Validate everything and build the WHERE clause; nothing touches the database.

    ``options``: those of ``prepare_scope`` (k, owner_types, entity_types, user,
    document_ids, where, all_projects, extra); ``dimensions``: the model's, checked
    against the vector's.
    """
    return prepare_scope(scope, model, **options).with_vector(vector, dimensions)


_NO_VECTOR = np.zeros(0, dtype=np.float32)


def prepare_scope(
    scope: Scope,
    model: str,
    *,
    k: int = 10,
    owner_types: str | Sequence[str] | None = None,
    entity_types: str | Sequence[str] | None = None,
    user: str | None = None,
    document_ids: Any = None,
    where: Mapping[str, Any] | None = None,
    all_projects: bool = False,
    extra: Compiled | None = None,
) -> Query:
    """Everything of a search but its vector, validated (``Query.with_vector`` adds it).

    Depends on nothing but its arguments, so the search facade keeps it per call shape.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be an integer from 1 to {MAX_K}, got {k!r}", field="k")
    _check_model(model)
    # The model id is written into the statement, quoted by psycopg (sql.Literal), like the
    # predicate of the model's partial HNSW index (knowledge.vectors). As a bound parameter
    # it kept PostgreSQL from proving that predicate in a generic plan, so every search was
    # planned afresh: ~0.3 ms of a 1.7 ms search at 117k. The model names an index, much as
    # an identifier would; every other value stays a parameter.
    conds: list[sql.Composable] = [_TENANT_COND, _model_cond(model)]
    shape: list[str] = ["tenant", f"model={model!r}"]
    params: list[Any] = [scope.tenant_id]
    if not all_projects:
        conds.append(_PROJECT_COND)
        shape.append("project")
        params.append(scope.project_id)
    types = _as_list(owner_types, "owner_types")
    if types is not None:
        bad = [t for t in types if t not in OWNER_TYPES]
        if bad:
            raise InvalidInput(f"unknown owner type {bad[0]!r}; use {', '.join(OWNER_TYPES)}", field="owner_types")
        _add_in(conds, shape, params, "owner_type", list(dict.fromkeys(types)))
    etypes = _as_list(entity_types, "entity_types")
    if etypes is not None:
        _add_in(conds, shape, params, "entity_type", list(dict.fromkeys(check_key(t, "entity type") for t in etypes)))
    if user is not None:
        conds.append(_USER_COND)
        shape.append("user")
        params.append(check_key(str(user), "user"))
    docs = _as_list(document_ids, "document_ids")
    if docs is not None:
        try:
            doc_ids = [d if isinstance(d, UUID) else UUID(str(d)) for d in docs]
        except ValueError:
            raise InvalidInput("document_ids must be document UUIDs", field="document_ids") from None
        _add_in(conds, shape, params, "document_id", list(dict.fromkeys(doc_ids)))
    reachable = reachable_owner_types(types, etypes is not None, docs is not None)
    # Chunks of a deactivated document stay stored but are not searched. Only chunks have
    # a document (a CHECK constraint says so), so scopes without chunks skip the check.
    doc_cond = doc_param = None
    if "chunk" in reachable:
        doc_cond, doc_param = len(conds), len(params)
        conds.append(_ACTIVE_DOCUMENT_COND)
        shape.append("active_document")
        params.append(scope.tenant_id)
    guard = False
    for extra_cond in (compile_filter(where), extra):
        if extra_cond is not None:
            conds.append(extra_cond.sql)
            shape.append(extra_cond.sql.as_string(None))
            params.extend(extra_cond.params)
            guard = True
    return Query(_NO_VECTOR, model, k, conds, params, base_conds=2 if all_projects else 3,
                 base_params=1 if all_projects else 2, doc_cond=doc_cond, doc_param=doc_param, guard=guard,
                 reachable=reachable, shape=tuple(shape), values_key=tuple(_value_key(p) for p in params))


@functools.lru_cache(maxsize=64)
def _model_cond(model: str) -> sql.Composed:
    return sql.SQL("e.model = {}").format(sql.Literal(model))


_TENANT_COND = sql.SQL("e.tenant_id = %s")
_PROJECT_COND = sql.SQL("e.project_id = %s")
_USER_COND = sql.SQL("e.user_ref = %s")
# column -> (condition for one value, for several). One value is written as "=": planning
# "= ANY(array)" cost the exact path (planned every search) ~3% more at 117k / 1%.
_IN_CONDS = {col: (sql.SQL(f"e.{col} = %s"), sql.SQL(f"e.{col} = ANY(%s)"))
             for col in ("owner_type", "entity_type", "document_id")}


def _add_in(conds: list[sql.Composable], shape: list[str], params: list[Any], column: str,
            values: list[Any]) -> None:
    """``column`` is one of ``values`` (duplicates already dropped)."""
    one, many = _IN_CONDS[column]
    if len(values) == 1:
        conds.append(one)
        shape.append(f"{column}=")
        params.append(values[0])
    else:
        conds.append(many)
        shape.append(f"{column} in")
        params.append(values)
_ACTIVE_DOCUMENT_COND = sql.SQL(
    "(e.document_id IS NULL OR EXISTS (SELECT 1 FROM learnloop.documents d"
    " WHERE d.tenant_id = %s AND d.id = e.document_id AND d.active))")


def reachable_owner_types(owner_types: Sequence[str] | None, by_entity_type: bool,
                          by_document: bool) -> frozenset[str]:
    """The owner types a scope can return, by the embeddings table's CHECK constraints.

    Only chunks have a document (``embeddings_document_is_chunk``) and chunks never have an
    entity type (``embeddings_chunk_has_no_entity_type``): a search by document reaches
    chunks only, a search by entity type never reaches them. Each owner lookup and the
    active-document check cost the planner ~20 us per search on the exact path (which is
    planned per search), so a statement carries only the ones its scope needs.
    """
    reachable = set(OWNER_TYPES if owner_types is None else owner_types)
    if by_entity_type:
        reachable.discard("chunk")
    if by_document:
        reachable &= {"chunk"}
    return frozenset(reachable)


def _where(q: Query) -> sql.Composable:
    return sql.SQL(" AND ").join(q.conds)


def _count_where(q: Query) -> sql.Composable:
    """The filter without the active-document check: the count only picks a path, and
    leaving the check out lets a filter on indexed columns count from the index alone."""
    return sql.SQL(" AND ").join(c for i, c in enumerate(q.conds) if i != q.doc_cond)


def _count_params(q: Query) -> list[Any]:
    """The parameters of ``_count_where``: those of the active-document check left out."""
    if q.doc_param is None:
        return q.params
    return [p for i, p in enumerate(q.params) if i != q.doc_param]


def count_matching(conn: psycopg.Connection[Any], q: Query, cap: int) -> int:
    """How many rows pass the filter, counting no further than ``cap``."""
    row = conn.execute(
        sql.SQL("SELECT count(*) AS n FROM (SELECT 1 FROM learnloop.embeddings e WHERE {} LIMIT %s) s").format(
            _count_where(q)),
        [*_count_params(q), cap],
    ).fetchone()
    return int(row["n"] if isinstance(row, dict) else row[0])  # type: ignore[index]


# What a hit returns, read in the candidate scan itself (one statement level, no CTE):
# the embedding columns are in the heap row the scan already holds, and the owner data
# comes from correlated scalar subqueries behind a CASE on the owner type. PostgreSQL
# evaluates such expensive output expressions after the sort and limit (they are
# "postponed" past the Sort when there is a LIMIT; an index scan produces only the rows
# the LIMIT pulls), so each runs for the k hits only, never for every matching row. Four
# LEFT JOINs in an outer query over a CTE cost ~0.3 ms more planning per search (their
# join order is searched) plus a materialisation and a second sort.
_BASE_OWNER_COLS = ("e.owner_type, e.owner_id, e.content, e.entity_type, e.user_ref, e.document_id, e.metadata,"
                    " e.id AS embedding_id")
# Fields read from one owner row come back as one jsonb object (``_JSON_OWNERS``, expanded
# by ``_Layout.hits``): each scalar subquery is a subplan the planner builds on every exact-path
# search (~15 us each), and the four generation fields as four subqueries cost 0.06 ms
# more planning than one.
_OWNER_LOOKUPS = {
    "entity": ("""CASE WHEN e.owner_type = 'entity' THEN (SELECT en.entity_id FROM learnloop.entities en
            WHERE en.tenant_id = %s AND en.id = e.owner_id) END AS entity_id""",),
    "chunk": ("""CASE WHEN e.document_id IS NOT NULL THEN (SELECT jsonb_build_object('title', d.title,
            'file_name', d.file_name) FROM learnloop.documents d
            WHERE d.tenant_id = %s AND d.id = e.document_id) END AS owner_document""",
              """CASE WHEN e.owner_type = 'chunk' THEN (SELECT c.chunk_index FROM learnloop.chunks c
            WHERE c.tenant_id = %s AND c.id = e.owner_id) END AS chunk_index"""),
    "generation": ("""CASE WHEN e.owner_type = 'generation' THEN (SELECT jsonb_build_object('prompt', g.prompt,
            'output_text', g.output_text, 'kind', g.kind, 'generation_created_at', g.created_at)
            FROM learnloop.generations g WHERE g.tenant_id = %s AND g.id = e.owner_id) END
            AS owner_generation""",),
    "term": (),
}
# owner type -> (its jsonb owner column, the hit keys it expands to; None each if the row is gone).
_JSON_OWNERS = {
    "chunk": ("owner_document", ("title", "file_name")),
    "generation": ("owner_generation", ("prompt", "output_text", "kind", "generation_created_at")),
}


@functools.lru_cache(maxsize=64)
def _owner_cols(reachable: frozenset[str]) -> sql.SQL:
    """The hit columns plus the owner lookups of the owner types the scope can return."""
    lookups = [c for t in OWNER_TYPES if t in reachable for c in _OWNER_LOOKUPS[t]]
    return sql.SQL(",\n       ".join([_BASE_OWNER_COLS, *lookups]))


# Only ids and similarity (``owner_data=False``): no owner lookups at all.
_IDS_COLS = sql.SQL("e.owner_type, e.owner_id, e.id AS embedding_id")


def _cols(q: Query) -> sql.Composable:
    return _owner_cols(q.reachable) if q.owner_data else _IDS_COLS


def _owner_params(q: Query, owner_data: bool) -> list[Any]:
    """The parameters of ``_owner_cols``: the tenant, once per owner lookup (each subquery
    names it: Citus routes a subquery to one shard only on a constant tenant)."""
    if not owner_data:
        return []
    return [q.params[0]] * sum(len(_OWNER_LOOKUPS[t]) for t in OWNER_TYPES if t in q.reachable)


def _candidates_sql(q: Query, path: str, gate: sql.Composable | None = None, *, limit: int | None = None,
                    cols: sql.Composable | None = None) -> tuple[sql.Composed, list[Any]]:
    """SELECT cols, distance ... ORDER BY distance LIMIT n, by the chosen path.

    The distance is written once and ordered by its alias: written twice with two
    parameters, PostgreSQL computes it twice per row, which doubled the cost of the exact
    path (one distance per matching row). ``gate`` is an extra condition that does not
    depend on the row (a one-time filter): the auto path puts both paths in one statement
    and lets the count open one of them. The limit is a literal (a validated int).
    """
    dist: sql.Composable
    if path == "hnsw":
        dist = sql.SQL("(e.embedding::vector({d})) <=> %s::vector({d})").format(d=sql.Literal(q.dims))
    else:
        # Untyped column: cannot match the HNSW index expression, so the planner filters first.
        dist = sql.SQL("e.embedding <=> %s::vector")
    where = _where(q) if gate is None else sql.SQL("{} AND {}").format(_where(q), gate)
    query = sql.SQL("SELECT {cols}, {dist} AS distance FROM learnloop.embeddings e WHERE {w}"
                    " ORDER BY distance LIMIT {n}").format(
        cols=cols if cols is not None else _cols(q), dist=dist, w=where,
        n=sql.Literal(int(limit if limit is not None else q.k)))
    return query, [*_owner_params(q, cols is None and q.owner_data), q.vector, *q.params]


_OWNER_KEYS = {
    "chunk": frozenset(("document_id", "title", "file_name", "chunk_index")),
    "entity": frozenset(("entity_id", "entity_type", "user_ref")),
    "generation": frozenset(("prompt", "output_text", "kind", "user_ref", "generation_created_at")),
}
_EVERY_OWNER_KEY = frozenset().union(*_OWNER_KEYS.values())
# What a row may carry beyond the hit keys: the owner keys and the jsonb owner columns.
_EVERY_OWNER_COLUMN = tuple(sorted(_EVERY_OWNER_KEY | {col for col, _ in _JSON_OWNERS.values()}))
# Per owner type, the columns of other owner types (dropped from its hits, jsonb ones unread).
_FOREIGN_KEYS = {t: tuple(sorted((_EVERY_OWNER_KEY - _OWNER_KEYS.get(t, frozenset()))
                                 | {col for owner, (col, _) in _JSON_OWNERS.items() if owner != t}))
                 for t in OWNER_TYPES}


class _Layout:
    """Where each hit key sits in a statement's result rows, per owner type.

    Search reads tuple rows and builds each hit from this once-computed map: with dict rows
    and ``_tidy`` popping the keys foreign to each owner, decoding and tidying ten hits
    cost ~100 us of a ~3 ms search. Computed once per statement (``_layout``).
    """

    __slots__ = ("owner_type", "owner_id", "distance", "similarity", "embedding_id", "matching", "per_type")

    def __init__(self, names: Sequence[str]) -> None:
        pos = {n: i for i, n in enumerate(names)}
        self.owner_type, self.owner_id = pos["owner_type"], pos["owner_id"]
        self.distance, self.similarity = pos.get("distance"), pos.get("similarity")
        self.embedding_id, self.matching = pos.get("embedding_id"), pos.get("matching")
        # owner type -> (hit keys, a getter of their values from a row, (jsonb column
        # position, its keys) or None)
        self.per_type: dict[str, tuple[tuple[str, ...], Any, tuple[int, tuple[str, ...]] | None]] = {}
        own = [n for n in names if n not in _NOT_HIT_KEYS]
        for owner_type in (*OWNER_TYPES, ""):  # "": an owner type this code does not know
            foreign = _FOREIGN_KEYS.get(owner_type, _EVERY_OWNER_COLUMN)
            json_col, json_keys = _JSON_OWNERS.get(owner_type) or ("", ())
            # This owner's own jsonb column is expanded into its keys, not returned as is.
            expand = (pos[json_col], json_keys) if json_col in pos else None
            keys = tuple(n for n in own if n not in foreign and n != json_col)
            self.per_type[owner_type] = (keys, _getter([pos[k] for k in keys]), expand)

    def hits(self, rows: list[tuple[Any, ...]], *, by_distance: bool = True) -> list[dict[str, Any]]:
        """Hits best first, ``similarity`` third, without owner columns foreign to each hit.

        ``by_distance``: order by (distance, embedding id) here: the HNSW path's
        relaxed-order scan may hand rows over slightly out of order and the exact path
        reads its winners back unordered; sorting ten rows in Python costs less than a
        second sort level in SQL.
        """
        if by_distance and self.distance is not None:
            rows.sort(key=operator.itemgetter(self.distance, self.embedding_id))  # type: ignore[arg-type]
        ot, oid, sim, dist, per_type = self.owner_type, self.owner_id, self.similarity, self.distance, self.per_type
        out = []
        for r in rows:
            owner_type = r[ot]
            keys, values, expand = per_type.get(owner_type) or per_type[""]
            hit = {"owner_type": owner_type, "owner_id": r[oid],
                   "similarity": r[sim] if sim is not None else 1.0 - r[dist]}  # type: ignore[index]
            hit.update(zip(keys, values(r), strict=False))  # equal lengths by construction
            if expand is not None:
                fields = r[expand[0]] or {}
                for key in expand[1]:
                    hit[key] = fields.get(key)
                if hit.get("generation_created_at") is not None:  # a JSON string; the column is timestamptz
                    hit["generation_created_at"] = datetime.fromisoformat(hit["generation_created_at"])
            out.append(hit)
        return out


def _getter(positions: list[int]) -> Any:
    """row -> the tuple of its values at ``positions`` (itemgetter returns a bare value for one)."""
    if len(positions) == 1:
        return lambda row, i=positions[0]: (row[i],)
    return operator.itemgetter(*positions) if positions else lambda row: ()


# Result columns that are not hit keys as such (they shape the hit, or pick the path).
_NOT_HIT_KEYS = frozenset(("owner_type", "owner_id", "distance", "similarity", "matching"))
_LAYOUTS: dict[bytes, _Layout] = {}


def _layout(cur: psycopg.Cursor[Any], statement: bytes | sql.Composed) -> _Layout:
    """The layout of ``cur``'s result, kept per rendered statement (reading the column
    names builds a Column object per column: ~15 us a search)."""
    if isinstance(statement, bytes):
        layout = _LAYOUTS.get(statement)
        if layout is None:
            if len(_LAYOUTS) >= MAX_STATEMENTS:
                _LAYOUTS.clear()
            layout = _LAYOUTS[statement] = _Layout([c.name for c in cur.description or ()])
        return layout
    return _Layout([c.name for c in cur.description or ()])


def _fetch(conn: psycopg.Connection[Any], query: bytes | sql.Composed,
           params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], _Layout]:
    """Run a search statement; its rows as tuples and their layout."""
    cur = conn.cursor(row_factory=tuple_row)
    cur.execute(query, params)
    return cur.fetchall(), _layout(cur, query)


def _apply_settings(conn: psycopg.Connection[Any], ef_search: int, max_scan: int) -> None:
    """Transaction-local HNSW settings, as one statement (it pipelines with the query).

    enable_sort = off: our capped count already established that plenty of rows match;
    the planner's guess for a jsonb filter is often far lower (it would then sort a seq
    scan of the whole table). Without sorts the only plan left is the HNSW scan.
    join_collapse_limit = 1: the owner joins are written in the order they should run (the
    k hits first); searching join orders cost more planning time than the whole scan.
    """
    if on_citus(conn):
        # set_config() stays on the coordinator; the HNSW scans run on the workers. Citus
        # forwards SET LOCAL (only in a transaction block, only when told to) to every
        # worker it opens in this transaction, before the search reaches it.
        conn.execute(sql.SQL(_CITUS_SETTINGS).format(ef=sql.Literal(int(ef_search)), scan=sql.Literal(int(max_scan))))
        return
    conn.execute(_SETTINGS_SQL, (str(int(ef_search)), str(int(max_scan))))


_CITUS_SETTINGS = (
    "SET LOCAL citus.propagate_set_commands = 'local'; SET LOCAL hnsw.ef_search = {ef};"
    " SET LOCAL hnsw.iterative_scan = 'relaxed_order'; SET LOCAL hnsw.max_scan_tuples = {scan};"
    " SET LOCAL enable_sort = off; SET LOCAL join_collapse_limit = 1")


_SETTINGS_SQL = (
    "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true),"
    " set_config('hnsw.max_scan_tuples', %s, true), set_config('enable_sort', 'off', true),"
    " set_config('join_collapse_limit', '1', true)")


# Session-level HNSW settings: (ef_search, max_scan_tuples) last set on a connection,
# kept on the connection object itself so a replaced connection starts unknown.
_SESSION_ATTR = "_learnloop_hnsw"
_SESSION_SQL = (
    "SELECT set_config('hnsw.ef_search', %s, false), set_config('hnsw.iterative_scan', 'relaxed_order', false),"
    " set_config('hnsw.max_scan_tuples', %s, false)")


def _session_settings(conn: psycopg.Connection[Any], ef_search: int, max_scan: int) -> None:
    """Set the hnsw.* settings for the session, only when they differ from the last ones.

    They are read by nothing but HNSW index scans, which only search issues, and every
    search sets the values it needs, so leaving them on a pooled connection changes no
    other query; re-sending them per query cost a statement (and a transaction) each time.
    If something resets the session behind our back, the defaults (ef_search 40,
    iterative scan off) can only make the graph walk return fewer rows, and a short HNSW
    result is finished by the exact path: never fewer than k rows.
    """
    want = (int(ef_search), int(max_scan))
    if getattr(conn, _SESSION_ATTR, None) != want:
        conn.execute(_SESSION_SQL, (str(want[0]), str(want[1])))
        setattr(conn, _SESSION_ATTR, want)


def _with_settings(conn: psycopg.Connection[Any], ef_search: int, max_scan: int,
                   query: sql.Composed | bytes, params: Sequence[Any], *, guard: bool,
                   ) -> tuple[list[tuple[Any, ...]], _Layout]:
    """Run an HNSW-path ``query`` with its settings, in one round trip when possible.

    Unguarded (no metadata or custom filter): session-level hnsw.* settings, then the
    query alone. Guarded: transaction-local settings that also stop the planner from
    sorting (see ``_apply_settings``), sent with the query in one pipeline. No BEGIN/COMMIT
    there: in the extended query protocol everything up to a Sync is one implicit
    transaction, so ``set_config(..., true)`` ends with the query and nothing leaks to the
    next user of the pooled connection.
    """
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if not idle or on_citus(conn):  # on Citus the settings need a transaction block
        # Inside a caller's transaction the settings must end with ours, not theirs.
        with conn.transaction():
            _apply_settings(conn, ef_search, max_scan)
            return _fetch(conn, query, params)
    if not guard:
        _session_settings(conn, ef_search, max_scan)
        return _fetch(conn, query, params)
    with conn.pipeline() as pipe:
        _apply_settings(conn, ef_search, max_scan)
        cur = conn.cursor(row_factory=tuple_row)
        cur.execute(query, params)
        pipe.sync()  # Sync, not Flush: results and the implicit commit arrive together
        return cur.fetchall(), _layout(cur, query)


def _check_int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInput(f"{name} must be an integer from {lo} to {hi}, got {value!r}", field=name)
    return value


def run(
    conn: psycopg.Connection[Any],
    q: Query,
    *,
    ef_search: int = DEFAULT_EF_SEARCH,
    exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
    max_scan_tuples: int = DEFAULT_MAX_SCAN_TUPLES,
    path: str = "auto",
) -> Results:
    """Vector search over a prepared query: the k best hits with their owners."""
    _check_int(ef_search, "ef_search", 1, 1000)
    _check_int(exact_threshold, "exact_threshold", 0, 10_000_000)
    _check_int(max_scan_tuples, "max_scan_tuples", 1, 100_000_000)
    if path not in ("auto", "hnsw", "exact"):
        raise InvalidInput("path must be auto, hnsw or exact", field="path")
    t0 = time.perf_counter()
    matching: int | None = None
    chosen = path
    if path == "auto":
        chosen = _known_path(conn, q, exact_threshold) or "auto"
    if chosen == "exact":
        # No index settings to scope: one plain statement, one round trip.
        rows, layout = _fetch(conn, *_statement(conn, q, "exact"))
    else:
        rows, layout = _with_settings(conn, min(MAX_EF, max(ef_search, q.k)), max_scan_tuples,
                                      *_statement(conn, q, chosen, exact_threshold), guard=q.guard)
    if chosen == "auto":
        matching = rows[0][layout.matching] if rows and layout.matching is not None else None
        chosen = "exact" if matching is not None and matching < exact_threshold else "hnsw"
        if matching is not None:
            _remember_path(conn, q, exact_threshold, chosen)
    if chosen == "hnsw" and len(rows) < q.k and path == "auto":
        # The graph walk hit max_scan_tuples before finding k matches: finish exactly.
        chosen = "hnsw+exact"
        rows, layout = _fetch(conn, *_statement(conn, q, "exact"))
    res = Results(layout.hits(rows))
    res.path, res.matching, res.ms = chosen, matching, (time.perf_counter() - t0) * 1000
    return res


# The exact path costs about one distance per matching row (M); the graph walk visits
# about k * N / M tuples to find k matches among N. They cross where M^2 = r * k * N; r = 12
# was measured on WordNet glosses (117k and 1M rows: exact 10,000 rows ~ 19 ms, the same
# filter through HNSW ~ 22 ms p50). N is the whole table: the graph is shared by tenants.
EXACT_COST_RATIO = 12.0
MIN_EXACT_THRESHOLD = 1000
MAX_EXACT_THRESHOLD = 50_000
_table_rows: dict[tuple[Any, ...], tuple[float, float]] = {}


def _table_size(conn: psycopg.Connection[Any]) -> float:
    """Rows in learnloop.embeddings as the planner knows them (re-read once a minute)."""
    key = database_key(conn)
    seen = _table_rows.get(key)
    if seen is None or time.monotonic() - seen[0] > VERDICT_TTL:
        row = conn.execute(
            "SELECT greatest(reltuples, 0)::float8 AS n FROM pg_class WHERE oid = 'learnloop.embeddings'::regclass"
        ).fetchone()
        seen = (time.monotonic(), float(row["n"] if isinstance(row, dict) else row[0]))  # type: ignore[index]
        _table_rows[key] = seen
    return seen[1]


# A graph walk with a fixed candidate list finds fewer of the true neighbours as the graph
# grows. Measured on the WordNet benchmark (m 16, ef_construction 64, k 10, held-out
# glosses): at 117k vectors ef_search 64 gave recall@10 0.979-0.986 over nine builds (the
# 0.98 target inside the spread), 80 gave 0.9835-0.9875 over three builds and 96-100
# 0.984-0.990, each step of 16 costing ~0.15-0.3 ms of p50 (~12%); at 1M (the glosses
# plus perturbed copies) 64 gives 0.961, 128 0.974, 200 0.979, 300 0.982, 400 0.982, p99
# 6.9 ms at 300. So the default keeps 64 up to EF_BASE_ROWS and grows as
# (N / EF_BASE_ROWS) ** EF_GROWTH beyond: 80 at 117k (the smallest step whose worst build
# cleared 0.98 with room; stop 9's 96 cost the p50 target its margin), 296 at 1M, capped
# at MAX_AUTO_EF where recall stopped improving. N is the whole table, like the exact
# threshold's. An explicit ef_search (argument or LEARNLOOP_SEARCH_EF_SEARCH) always wins.
EF_BASE_ROWS = 81_500
EF_GROWTH = 0.611
MAX_AUTO_EF = 400


def ef_for_rows(n: float) -> int:
    """The default hnsw.ef_search for a table of ``n`` vectors (a multiple of 8)."""
    if n <= EF_BASE_ROWS:
        return DEFAULT_EF_SEARCH
    ef = DEFAULT_EF_SEARCH * (n / EF_BASE_ROWS) ** EF_GROWTH
    return int(min(MAX_AUTO_EF, 8 * round(ef / 8)))


def adaptive_ef_search(conn: psycopg.Connection[Any]) -> int:
    return ef_for_rows(_table_size(conn))


def adaptive_knobs(conn: psycopg.Connection[Any], k: int) -> tuple[int, int]:
    """(default ef_search, default exact threshold) for this table and k: one table-size
    read for both, the arithmetic remembered per (size, k)."""
    return _knobs_for(_table_size(conn), k)


@functools.lru_cache(maxsize=256)
def _knobs_for(rows: float, k: int) -> tuple[int, int]:
    threshold = int(min(MAX_EXACT_THRESHOLD, max(MIN_EXACT_THRESHOLD, math.sqrt(EXACT_COST_RATIO * k * rows))))
    return ef_for_rows(rows), threshold


# Path verdicts: (db, threshold, filter text, filter values) -> (when, path). A filter
# that matched >= threshold rows a minute ago almost surely still does, and the other way
# round; a stale verdict only costs speed, never rows: the exact path is exact, and the
# HNSW path falls back to it when it comes up short. So the count is skipped for a minute.
_VERDICTS: dict[tuple[Any, ...], tuple[float, str]] = {}
VERDICT_TTL = 60.0
MAX_VERDICTS = 4096


def _verdict_key(conn: psycopg.Connection[Any], q: Query, threshold: int) -> tuple[Any, ...]:
    return (database_key(conn), threshold, q.shape, q.values_key)


def _value_key(value: Any) -> Any:
    """A hashable stand-in for a parameter value, equal for equal values."""
    if isinstance(value, str | int | float | UUID) or value is None:
        return value
    if isinstance(value, list | tuple):
        return tuple(_value_key(v) for v in value)
    return repr(value)  # e.g. a Jsonb filter value: its repr shows the wrapped value


def _known_path(conn: psycopg.Connection[Any], q: Query, threshold: int) -> str | None:
    if threshold == 0:
        return "hnsw"
    seen = _VERDICTS.get(_verdict_key(conn, q, threshold))
    if seen is not None and time.monotonic() - seen[0] < VERDICT_TTL:
        return seen[1]
    return None


def _remember_path(conn: psycopg.Connection[Any], q: Query, threshold: int, path: str) -> None:
    if len(_VERDICTS) >= MAX_VERDICTS:
        _VERDICTS.clear()
    _VERDICTS[_verdict_key(conn, q, threshold)] = (time.monotonic(), path)


def _choose(conn: psycopg.Connection[Any], q: Query, threshold: int) -> tuple[int | None, str]:
    """(rows counted up to threshold, path): exact below the threshold, else HNSW."""
    known = _known_path(conn, q, threshold)
    if known is not None:
        return None, known
    matching = count_matching(conn, q, threshold)
    path = "exact" if matching < threshold else "hnsw"
    _remember_path(conn, q, threshold, path)
    return matching, path


# Rendered statements by shape: composing a statement with psycopg.sql and encoding it cost
# ~60 us per search (1.2 ms in all at 117k / 1%), every time for the same text. The key is
# everything the text depends on; the values stay bound parameters.
_STATEMENTS: dict[tuple[Any, ...], bytes] = {}
MAX_STATEMENTS = 1024


def _statement(conn: psycopg.Connection[Any], q: Query, path: str, threshold: int = 0) -> tuple[bytes, list[Any]]:
    """(statement, parameters) for ``path`` ("exact", "hnsw" or "auto"), rendered once per shape."""
    key = (q.shape, path, q.k, q.dims, q.owner_data, q.reachable, threshold if path == "auto" else 0,
           conn.info.encoding)
    text = _STATEMENTS.get(key)
    if text is None:
        query, params = _auto_sql(q, threshold) if path == "auto" else _fetch_sql(q, path)
        if len(_STATEMENTS) >= MAX_STATEMENTS:
            _STATEMENTS.clear()
        text = _STATEMENTS[key] = query.as_bytes(conn)
        return text, params
    return text, _params(q, path)


def _params(q: Query, path: str) -> list[Any]:
    """The parameters of ``_fetch_sql`` (one candidate scan) or ``_auto_sql`` (count + both)."""
    if path == "auto":
        return [*_count_params(q), q.vector, *q.params, q.vector, *q.params, *_owner_params(q, q.owner_data),
                q.params[0]]
    if path == "exact" and q.owner_data:
        return [*_owner_params(q, True), q.vector, q.params[0], *q.params, q.vector]
    return [*_owner_params(q, q.owner_data), q.vector, *q.params]


def _fetch_sql(q: Query, path: str) -> tuple[sql.Composed, list[Any]]:
    if path == "hnsw" or not q.owner_data:
        return _candidates_sql(q, path)
    # Exact with owner data: every matching row flows into the top-k sort, which copies
    # each row it is handed; wide rows (content, metadata) cost ~1.4 ms more per 10,000
    # rows. So the sort sees ids only, and the k winners are read afterwards by primary
    # key, their distance computed again (k distances: nothing). ``id = ANY(ARRAY(...))``
    # rather than a join back: the exact path is planned on every search, and the join
    # cost ~0.18 ms more planning than the array (0.36 vs 0.54 ms under EXPLAIN; the
    # search 6% faster at 117k / 1%). The rows come unordered; ``_Layout.hits`` orders them.
    query = sql.SQL(
        "SELECT {cols}, e.embedding <=> %s::vector AS distance FROM learnloop.embeddings e"
        " WHERE e.tenant_id = %s AND e.id = ANY(ARRAY("
        "SELECT e.id FROM learnloop.embeddings e WHERE {w} ORDER BY e.embedding <=> %s::vector LIMIT {n}))"
    ).format(cols=_cols(q), w=_where(q), n=sql.Literal(int(q.k)))
    return query, _params(q, path)


def _auto_sql(q: Query, threshold: int) -> tuple[sql.Composed, list[Any]]:
    """Count, choose and search in one statement: the count gates which path runs.

    Both paths are UNION ALL branches behind one-time filters on the capped count, so the
    server runs exactly one of them, and the client pays one round trip, not two. The
    branches return ids (every matching row of the exact branch flows into its sort);
    the outer query reads the k winners' columns.
    """
    gate = sql.Literal(int(threshold))
    ids = sql.SQL("e.id, e.tenant_id")
    exact, _ = _candidates_sql(q, "exact", sql.SQL("(SELECT c FROM n) < {}").format(gate), cols=ids)
    hnsw, _ = _candidates_sql(q, "hnsw", sql.SQL("(SELECT c FROM n) >= {}").format(gate), cols=ids)
    query = sql.SQL(
        "WITH n AS MATERIALIZED (SELECT count(*) AS c FROM"
        " (SELECT 1 FROM learnloop.embeddings e WHERE {w} LIMIT {t}) s),"
        " hits AS MATERIALIZED (({exact}) UNION ALL ({hnsw}))"
        " SELECT {cols}, h.distance, (SELECT c FROM n) AS matching"
        " FROM hits h JOIN learnloop.embeddings e ON e.tenant_id = %s AND e.id = h.id"
    ).format(w=_count_where(q), t=gate, exact=exact, hnsw=hnsw, cols=_cols(q))
    # The count's parameters, then each branch's (_params(q, "exact"), _params(q, "hnsw")).
    return query, _params(q, "auto")


# -- modes: dense, full text, hybrid -------------------------------------------------------
MODES = ("dense", "fulltext", "hybrid")
# The mode of a search that names none. Dense until a hybrid is measured never below it
# (docs/retrieval.md, "Which mode by default").
DEFAULT_MODE = "dense"
PATHS = ("auto", "hnsw", "exact")


def check_mode(mode: Any, hybrid: bool = False) -> str:
    """The validated mode; ``hybrid=True`` is the older spelling of ``mode="hybrid"``;
    None is ``DEFAULT_MODE`` (``search`` makes it dense for a bare vector)."""
    if hybrid:
        if mode not in (None, "hybrid"):
            raise InvalidInput(f"hybrid=True contradicts mode={mode!r}; give one of them", field="mode")
        return "hybrid"
    if mode is None:
        return DEFAULT_MODE
    if mode not in MODES:
        raise InvalidInput(f"unknown search mode {mode!r}; use {', '.join(MODES)}", field="mode")
    return str(mode)


def check_path(path: Any, mode: str = "dense") -> str:
    """The validated dense path; full text has none, so only "auto" goes with it."""
    if path not in PATHS:
        raise InvalidInput(f"unknown path {path!r}; use {', '.join(PATHS)}", field="path")
    if mode == "fulltext" and path != "auto":
        raise InvalidInput("path chooses how the dense side is searched; full-text search has none",
                           field="path")
    return str(path)


def check_weights(dense_weight: Any, text_weight: Any, depth: Any) -> None:
    _check_int(depth, "depth", 1, MAX_K)
    weights = (("dense_weight", dense_weight),) if text_weight == "auto" else (
        ("dense_weight", dense_weight), ("text_weight", text_weight))
    for name, w in weights:
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w <= 100 or w != w:
            raise InvalidInput(f"{name} must be a number from 0 to 100" + (' or "auto"' if name == "text_weight"
                                                                            else ""), field=name)


def _dense_ranking(conn: psycopg.Connection[Any], q: Query, n: int, *, path: str, ef_search: int,
                   exact_threshold: int, max_scan_tuples: int) -> tuple[list[Any], int | None, str]:
    """The ``n`` nearest row ids (best first), rows counted, path taken; in the caller's
    transaction (HNSW settings are local to it)."""
    matching: int | None = None
    chosen = path
    if path == "auto":
        matching, chosen = _choose(conn, q, exact_threshold)
    if chosen == "hnsw":
        _apply_settings(conn, min(MAX_EF, max(ef_search, n)), max_scan_tuples)
    ids = _nearest_ids(conn, q, chosen, n)
    if chosen == "hnsw" and len(ids) < n and path == "auto":
        chosen = "hnsw+exact"  # the walk gave up early: finish exactly (k rows whenever k match)
        ids = _nearest_ids(conn, q, "exact", n)
    return ids, matching, chosen


def _nearest_ids(conn: psycopg.Connection[Any], q: Query, path: str, n: int) -> list[Any]:
    """Ids by (distance, id), as ``run`` orders its hits: equal distances (the same text in
    two documents) fall in one order in every mode."""
    query, params = _candidates_sql(q, path, limit=n, cols=sql.SQL("e.id"))
    rows = conn.execute(query, params).fetchall()
    return [r["id"] for r in sorted(rows, key=lambda r: (r["distance"], r["id"]))]


def _rows_by_id(conn: psycopg.Connection[Any], q: Query, ids: list[Any]) -> dict[Any, dict[str, Any]]:
    """The hits (owner data per ``q.owner_data``) of these embedding ids, with similarity to
    ``q.vector`` when the query has one (None in a full-text search by text)."""
    if not ids:
        return {}
    with_vector = q.vector.shape[0] > 0
    sim = sql.SQL("1 - (e.embedding <=> %s::vector)") if with_vector else sql.SQL("NULL::float8")
    query = sql.SQL("SELECT {cols}, {sim} AS similarity FROM learnloop.embeddings e"
                    " WHERE e.tenant_id = %s AND e.id = ANY(%s)").format(
        cols=_cols(q) if q.owner_data else sql.SQL("e.owner_type, e.owner_id, e.id AS embedding_id"), sim=sim)
    rows, layout = _fetch(conn, query, [*_owner_params(q, q.owner_data), *([q.vector] if with_vector else []),
                                        q.params[0], ids])
    return {h["embedding_id"]: h for h in layout.hits(rows, by_distance=False)}


def run_fulltext(conn: psycopg.Connection[Any], q: Query, *, language: str | None = None) -> Results:
    """Full-text search alone: the ``k`` best rows of the scope by BM25 (``knowledge.fulltext``),
    each with ``score`` (BM25) and ``text_rank``; rows matching no query word never appear."""
    from . import fulltext

    if not q.text or not q.text.strip():
        raise InvalidInput("full-text search needs a text query (or text= beside a vector)", field="query")
    t0 = time.perf_counter()
    ranked, _ = fulltext.rank(conn, q, q.text, q.k, language=language or fulltext.LANGUAGE)
    found = _rows_by_id(conn, q, [i for i, _ in ranked])
    res = Results()
    for r, (row_id, score) in enumerate(ranked, 1):
        hit = found.get(row_id)
        if hit is not None:  # deleted between the two statements: skipped, not invented
            hit.update(score=score, text_rank=r)
            res.append(hit)
    res.path, res.matching, res.ms = "fulltext", None, (time.perf_counter() - t0) * 1000
    return res


def run_hybrid(
    conn: psycopg.Connection[Any],
    q: Query,
    *,
    depth: int = DEFAULT_DEPTH,
    dense_weight: float = 1.0,
    text_weight: float | str = "auto",
    ef_search: int = DEFAULT_EF_SEARCH,
    exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
    max_scan_tuples: int = DEFAULT_MAX_SCAN_TUPLES,
    path: str = "auto",
    language: str | None = None,
) -> Results:
    """Vector and full-text rankings of the same scope fused by weighted reciprocal rank
    fusion (``knowledge.fusion``).

    Each list contributes ``weight / (60 + rank)`` for its top ``max(depth, k)`` rows. The
    text side is BM25 (``knowledge.fulltext``) over the rows matching any query word after
    stemming and stop-word removal, so a long natural-language question is not reduced to
    the documents holding every word. ``text_weight="auto"`` decides the text side's weight
    per query (``fusion.trust``); a number fixes it. ``path`` picks the dense side's path.
    """
    from . import fulltext

    if q.text is None or not q.text.strip():
        raise InvalidInput("hybrid search needs a text query (full-text cannot use a bare vector)", field="query")
    check_weights(dense_weight, text_weight, depth)
    check_path(path, "hybrid")
    t0 = time.perf_counter()
    n = max(depth, q.k)
    with conn.transaction():
        text, terms = fulltext.rank(conn, q, q.text, n, language=language or fulltext.LANGUAGE)
        dense, matching, chosen = _dense_ranking(conn, q, n, path=path, ef_search=ef_search,
                                                 exact_threshold=exact_threshold, max_scan_tuples=max_scan_tuples)
    signals = _fusion.trust(text, dense, terms.idf, terms.df, terms.n_docs)
    weight = signals.weight if text_weight == "auto" else float(text_weight)
    fused = _fusion.fuse(dense, text, float(dense_weight), weight)[:q.k]
    found = _rows_by_id(conn, q, [f.id for f in fused])
    res = Results()
    for f in fused:
        hit = found.get(f.id)
        if hit is not None:
            hit.update(score=f.score, dense_rank=f.dense_rank, text_rank=f.text_rank, text_score=f.text_score)
            res.append(hit)
    res.path, res.matching, res.ms = f"hybrid/{chosen}", matching, (time.perf_counter() - t0) * 1000
    res.trust = {**signals.to_dict(), "text_weight": round(weight, 4), "dense_weight": float(dense_weight)}
    return res


# -- learn from success --------------------------------------------------------------------
def success_filter(tenant_id: UUID, *, positive: bool = True, min_rating: float | None = None,
                   exclude_tags: Sequence[str] = ()) -> Compiled:
    """Generations whose current feedback says they worked.

    ``positive`` uses the ledger's verdict rule (``generation_verdicts``: more positive
    than negative feedback); ``min_rating`` the average star rating; ``exclude_tags`` drops
    any generation that received one of those tags. Evaluated per candidate through the
    feedback index, so it works inside the HNSW scan and sees feedback given a second ago.
    """
    having: list[sql.Composable] = []
    params: list[Any] = [tenant_id]
    if positive:
        having.append(sql.SQL(
            "count(*) FILTER (WHERE f.sentiment = 'POSITIVE') > count(*) FILTER (WHERE f.sentiment = 'NEGATIVE')"))
    if min_rating is not None:
        if isinstance(min_rating, bool) or not isinstance(min_rating, int | float) or not 1 <= min_rating <= 5:
            raise InvalidInput("min_rating must be a number from 1 to 5", field="min_rating")
        having.append(sql.SQL("avg(f.rating) >= %s"))
        params.append(float(min_rating))
    tags = [check_key(t, "tag") for t in ([exclude_tags] if isinstance(exclude_tags, str) else exclude_tags)]
    if tags:
        having.append(sql.SQL("NOT coalesce(bool_or(f.tags && %s::text[]), false)"))
        params.append(tags)
    if not having:
        raise InvalidInput("say what success means: positive, min_rating or exclude_tags", field="positive")
    cond = sql.SQL(
        "(e.owner_type = 'generation' AND EXISTS (SELECT 1 FROM learnloop.feedback f"
        " WHERE f.tenant_id = %s AND f.generation_id = e.owner_id HAVING {}))"
    ).format(sql.SQL(" AND ").join(having))
    return Compiled(cond, params)


def verdicts(conn: psycopg.Connection[Any], scope: Scope, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
    summaries.settle(conn, scope.tenant_id)
    rows = conn.execute(
        "SELECT generation_id, positives, negatives, avg_rating, verdict,"
        " (SELECT array_agg(DISTINCT t) FROM learnloop.feedback f, unnest(f.tags) t"
        "   WHERE f.tenant_id = %s AND f.generation_id = v.generation_id) AS tags"
        " FROM learnloop.generation_verdicts v WHERE tenant_id = %s AND generation_id = ANY(%s)",
        (scope.tenant_id, scope.tenant_id, ids),
    ).fetchall()
    return {r["generation_id"]: r for r in rows}


def format_examples(hits: Sequence[Mapping[str, Any]], *, style: str = "text",
                    max_chars: int = 2000) -> Any:
    """Hits of ``similar_successes`` as few-shot examples.

    ``style="text"``: one string, "Example 1 / User: ... / Assistant: ..." blocks;
    ``style="messages"``: a chat list of alternating user/assistant messages.
    """
    if style not in ("text", "messages"):
        raise InvalidInput("style must be 'text' or 'messages'", field="style")
    pairs = []
    for h in hits:
        prompt = (h.get("prompt") or h.get("content") or "").strip()
        answer = (h.get("output_text") or "").strip()
        pairs.append((prompt[:max_chars], answer[:max_chars]))
    if style == "messages":
        msgs: list[dict[str, str]] = []
        for p, a in pairs:
            msgs += [{"role": "user", "content": p}, {"role": "assistant", "content": a}]
        return msgs
    return "\n\n".join(f"Example {i}\nUser: {p}\nAssistant: {a}" for i, (p, a) in enumerate(pairs, 1))


# -- the public facade ---------------------------------------------------------------------
_DIMS: dict[tuple[Any, ...], int] = {}


def _recorded_dims(conn: psycopg.Connection[Any], model: str) -> int | None:
    """The dimensions stored for ``model``, remembered once recorded (they never change)."""
    from .vectors import recorded_dimensions

    key = (database_key(conn), model)
    dims = _DIMS.get(key)
    if dims is None:
        dims = recorded_dimensions(conn, model)
        if dims is not None:
            _DIMS[key] = dims
    return dims


# Validated scopes by call shape (``prepare_scope`` depends on its arguments only): an app
# repeats a handful of search shapes, and validating and composing one cost ~60 us of a
# ~3 ms search (its code runs cache-cold right after waiting on the server). Only plain
# values key it: str/UUID scalars and tuples of them, an int k, a bool all_projects; a
# metadata filter or a custom condition is prepared every time.
_SCOPES: dict[tuple[Any, ...], Query] = {}
MAX_SCOPES = 1024
# Results by document fetch chunk hits in growing rounds; this many chunks at most.
MAX_GROUP_FETCH = 100_000


def _scope_template(conn: psycopg.Connection[Any], scope: Scope, model: str, args: dict[str, Any]) -> Query:
    key = _scope_key(scope, model, args)
    if key is not None:
        q = _SCOPES.get(key)
        if q is not None:
            return q
    q = prepare_scope(scope, model, **args)
    if key is not None:
        if len(_SCOPES) >= MAX_SCOPES:
            _SCOPES.clear()
        _SCOPES[key] = q
    return q


def _scope_key(scope: Scope, model: str, args: dict[str, Any]) -> tuple[Any, ...] | None:
    """A key equal only for calls ``prepare_scope`` answers alike, or None (not kept).

    Exact types, not equality: 1 == True == 1.0 would share a key, and prepare_scope
    accepts only some of them (k=True and k=10.0 are refused, user=1 and user=True differ).
    """
    if args["where"] is not None or args["extra"] is not None or type(model) is not str:
        return None
    if type(args["k"]) is not int or type(args["all_projects"]) is not bool:
        return None
    key: list[Any] = [scope.tenant_id, scope.project_id, model, args["k"], args["all_projects"]]
    for name in ("owner_types", "entity_types", "user", "document_ids"):
        value = args[name]
        if value is None or type(value) is str or type(value) is UUID:
            key.append(value)
        elif type(value) in (list, tuple) and all(type(v) is str or type(v) is UUID for v in value):
            key.append(tuple(value))
        else:
            return None
    return tuple(key)


class SearchMixin:
    """Search methods of ``client.knowledge`` (mixed into ``knowledge.client.Knowledge``)."""

    _c: Any

    def _provider(self, model: str | None) -> Any:
        from ..embeddings import get_provider

        if model is None and getattr(self, "provider", None) is not None:
            return self.provider  # type: ignore[attr-defined]  # the facade's configured provider
        return get_provider(model=model)

    def _model(self, query: Any, model: str | None) -> tuple[Any, str]:
        """(the provider that embeds a text query, or None for a vector; the model id)."""
        if isinstance(query, str):
            check_text(query, "query")
            if not query.strip():
                raise InvalidInput("the search query is empty", field="query")
            provider = self._provider(model)
            return provider, provider.model_id
        if query is None:
            raise InvalidInput("give a query text or a query vector", field="query")
        return None, _check_model(model) if model else self._provider(None).model_id

    def _query(self, conn: psycopg.Connection[Any], query: Any, model: str | None, scope_args: dict[str, Any],
               *, embed: bool = True) -> tuple[Query, float | None, bool | None]:
        """The validated Query for a text or vector ``query`` and, for text, its embed ms and
        whether its vector came from the embedding cache.
        ``embed=False`` (full text by a text query): the text is kept, nothing is embedded."""
        provider, mid = self._model(query, model)
        template = _scope_template(conn, self._c.scope, mid, scope_args)
        if provider is None:
            return template.with_vector(query, _recorded_dims(conn, mid)), None, None
        if not embed:
            q = object.__new__(Query)
            q.__dict__.update(template.__dict__)
            q.text = query
            return q, None, None
        from ..embeddings import embed_with_cache

        t0 = time.perf_counter()
        lookups: dict[str, int] = {}
        vec = embed_with_cache(conn, self._c.scope.tenant_id, provider, [query], lookups=lookups)[0]
        q = template.with_vector(vec)
        q.text = query
        return q, (time.perf_counter() - t0) * 1000, lookups.get("hits", 0) > 0

    def search(
        self,
        query: str | Sequence[float] | np.ndarray,
        k: int = 10,
        *,
        mode: str | None = None,
        text: str | None = None,
        model: str | None = None,
        owner_types: str | Sequence[str] | None = None,
        entity_types: str | Sequence[str] | None = None,
        user: str | None = None,
        document_ids: Any = None,
        where: Mapping[str, Any] | None = None,
        all_projects: bool = False,
        hybrid: bool = False,
        dense_weight: float = 1.0,
        text_weight: float | str = "auto",
        depth: int = DEFAULT_DEPTH,
        group_by: str | None = None,
        chunks_per_document: int = DEFAULT_CHUNKS_PER_DOCUMENT,
        ef_search: int | None = None,
        exact_threshold: int | None = None,
        max_scan_tuples: int | None = None,
        path: str = "auto",
        owner_data: bool = True,
        _extra: Compiled | None = None,
        _fetch_k: int | None = None,
    ) -> Results:
        """The ``k`` best rows for ``query`` (text, or a vector of the model's dimensions).

        Scope: always this client's tenant; its project unless ``all_projects``; narrowed by
        ``owner_types`` (chunk/entity/generation/term), ``entity_types``, ``user``,
        ``document_ids`` and ``where`` (see ``knowledge.filters``). Returns min(k, matching)
        hits, best first, each with its owner's data.

        ``mode``: "dense" (cosine ``similarity``, 1 = same direction), "fulltext" (BM25
        ``score``; needs a text query, or ``text=`` beside a vector) or "hybrid" (both
        fused: ``score``, ``dense_rank``, ``text_rank``; ``dense_weight``, ``text_weight``
        (a number, or "auto": decided per query, see ``knowledge.fusion``) and ``depth``, the
        rows taken from each ranking); None: ``DEFAULT_MODE``. ``hybrid=True`` means
        ``mode="hybrid"``. ``group_by="document"``: the ``k`` best documents (each ranked
        by its best chunk) with up to ``chunks_per_document`` chunks each, k whenever k
        documents match. ``ef_search``, ``exact_threshold``, ``max_scan_tuples`` override
        the ``LEARNLOOP_SEARCH_*`` settings; ``path`` ("auto", "exact", "hnsw") forces the
        dense side's path (dense and hybrid; full text has none). ``owner_data=False``
        returns only ``owner_type``, ``owner_id``, ``similarity`` and ``embedding_id``
        per hit (plus the scores of fulltext/hybrid).
        """
        if mode is None and not hybrid and DEFAULT_MODE != "dense" and not isinstance(query, str) and text is None:
            mode = "dense"  # the default needs words for its text side; a bare vector has none
        mode = check_mode(mode, hybrid)
        check_path(path, mode)
        if mode != "dense":
            check_weights(dense_weight, text_weight, depth)
        if group_by is not None:
            return self._search_documents(
                query, k, group_by=group_by, chunks_per_document=chunks_per_document, mode=mode, text=text,
                model=model, owner_types=owner_types, entity_types=entity_types, user=user,
                document_ids=document_ids, where=where, all_projects=all_projects, dense_weight=dense_weight,
                text_weight=text_weight, depth=depth, ef_search=ef_search, exact_threshold=exact_threshold,
                max_scan_tuples=max_scan_tuples, path=path, _extra=_extra)
        settings = self._c.settings
        t0 = time.perf_counter()
        with self._c.db.connection() as conn:
            q, embed_ms, cache_hit = self._query(conn, query, model, {
                "k": k, "owner_types": owner_types, "entity_types": entity_types, "user": user,
                "document_ids": document_ids, "where": where, "all_projects": all_projects, "extra": _extra},
                embed=mode != "fulltext")
            if text is not None:
                q.text = text
            q.owner_data = bool(owner_data)
            if _fetch_k is not None:
                q.k = _fetch_k
            ef = ef_search if ef_search is not None else settings.search_ef_search
            threshold = exact_threshold if exact_threshold is not None else settings.search_exact_threshold
            if ef is None or threshold is None:
                auto_ef, auto_threshold = adaptive_knobs(conn, min(q.k, MAX_K))
                ef = auto_ef if ef is None else ef
                threshold = auto_threshold if threshold is None else threshold
            max_scan = max_scan_tuples if max_scan_tuples is not None else settings.search_max_scan_tuples
            if mode != "dense":  # the project's language parses the query (knowledge.languages)
                lang = _languages.language(self._c.db, self._c.scope, conn)
                q.text = _languages.prepare_query(conn, lang, q.text)
            if mode == "hybrid":
                res = run_hybrid(conn, q, depth=depth, dense_weight=dense_weight, text_weight=text_weight,
                                 ef_search=ef, exact_threshold=threshold, max_scan_tuples=max_scan, path=path,
                                 language=lang)
            elif mode == "fulltext":
                res = run_fulltext(conn, q, language=lang)
            else:
                res = run(conn, q, ef_search=ef, exact_threshold=threshold, max_scan_tuples=max_scan, path=path)
        total_ms = (time.perf_counter() - t0) * 1000
        res.ms, res.mode = total_ms, mode
        _metrics.record_search(self._c, total_ms, embed_ms=embed_ms, rows=len(res), path=res.path,
                               cache_hit=cache_hit)
        return res

    def _search_documents(self, query: Any, k: int, *, group_by: str, chunks_per_document: int,
                          owner_types: Any, **options: Any) -> Results:
        """``search(..., group_by="document")``: fetch chunk hits, more each round, until
        they hold ``k`` documents or every matching chunk is in (``fusion.group_by_document``)."""
        if group_by != "document":
            raise InvalidInput(f"unknown group_by {group_by!r}; use \"document\"", field="group_by")
        _check_int(k, "k", 1, MAX_K)
        _check_int(chunks_per_document, "chunks_per_document", 1, 100)
        types = _as_list(owner_types, "owner_types")
        if types is not None and set(types) != {"chunk"}:
            raise InvalidInput("results by document come from document chunks: leave owner_types out or use chunk",
                               field="owner_types")
        t0 = time.perf_counter()
        n = max(k * chunks_per_document, 2 * k)
        while True:
            hits = self.search(query, min(n, MAX_K), owner_types="chunk", _fetch_k=n, **options)
            docs = _fusion.group_by_document(hits, k, chunks_per_document)
            if len(docs) >= k or len(hits) < n or n >= MAX_GROUP_FETCH:
                break
            n = min(MAX_GROUP_FETCH, n * 4)
        short = [d for d in docs if len(d["chunks"]) < chunks_per_document]
        if short and len(hits) >= n:
            self._fill_chunks(query, short, chunks_per_document, options)
        res = Results(docs)
        res.path, res.matching, res.mode, res.trust = hits.path, hits.matching, hits.mode, hits.trust
        res.ms = (time.perf_counter() - t0) * 1000
        return res

    def _fill_chunks(self, query: Any, docs: list[dict[str, Any]], per_document: int,
                     options: dict[str, Any]) -> None:
        """Give documents whose next-best chunks ranked beyond the chunks fetched their best
        ``per_document`` chunks: the same search restricted to them, every chunk of theirs
        ranked. The chunks already attached (the best, in the global order) stay first."""
        ids = [d["document_id"] for d in docs]
        with self._c.db.connection() as conn:
            row = conn.execute("SELECT coalesce(sum(chunk_count), 0)::int AS n FROM learnloop.documents"
                               " WHERE tenant_id = %s AND id = ANY(%s)", (self._c.scope.tenant_id, ids)).fetchone()
        n = min(MAX_GROUP_FETCH, max(1, int(row["n"] if isinstance(row, dict) else row[0])))  # type: ignore[index]
        more = self.search(query, min(n, MAX_K), owner_types="chunk", _fetch_k=n,
                           **{**options, "document_ids": ids})
        by_doc = {d["document_id"]: d for d in docs}
        for h in more:
            d = by_doc.get(h.get("document_id"))
            if d is not None and len(d["chunks"]) < per_document and \
                    all(c["owner_id"] != h["owner_id"] for c in d["chunks"]):
                d["chunks"].append(h)

    def similar_successes(
        self,
        query: str | Sequence[float] | np.ndarray,
        k: int = 3,
        *,
        positive: bool = True,
        min_rating: float | None = None,
        exclude_tags: Sequence[str] = (),
        kind: str | None = None,
        user: str | None = None,
        where: Mapping[str, Any] | None = None,
        all_projects: bool = False,
        model: str | None = None,
        mode: str | None = None,
    ) -> Results:
        """Past generations similar to ``query`` that worked: learn from success.

        "Worked" is read from the feedback as it is now: ``positive`` (more positive than
        negative feedback), ``min_rating`` (average stars >= this), ``exclude_tags`` (never
        tagged any of these). Each hit carries the generation's prompt and output plus its
        ``positives``, ``negatives``, ``avg_rating``, ``tags``; pass the hits to
        ``format_examples`` to paste them into a prompt.
        """
        extra = success_filter(self._c.scope.tenant_id, positive=positive, min_rating=min_rating, exclude_tags=exclude_tags)
        if kind is not None:
            check_key(kind, "kind")
            extra = Compiled(
                sql.SQL("({} AND EXISTS (SELECT 1 FROM learnloop.generations g2 WHERE g2.tenant_id = %s"
                        " AND g2.id = e.owner_id AND g2.kind = %s))").format(extra.sql),
                [*extra.params, self._c.scope.tenant_id, kind])
        hits = self.search(query, k, owner_types="generation", user=user, where=where,
                           all_projects=all_projects, model=model, mode=mode, _extra=extra)
        if hits:
            with self._c.db.connection() as conn:
                v = verdicts(conn, self._c.scope, [h["owner_id"] for h in hits])
            for h in hits:
                info = v.get(h["owner_id"], {})
                h.update(positives=info.get("positives", 0), negatives=info.get("negatives", 0),
                         avg_rating=info.get("avg_rating"), tags=sorted(info.get("tags") or []))
        return hits

    def few_shot(self, query: str, k: int = 3, *, style: str = "text", **options: Any) -> Any:
        """``similar_successes`` formatted for a prompt (a string, or chat messages)."""
        return format_examples(self.similar_successes(query, k, **options), style=style)

    def search_metrics(self) -> dict[str, Any]:
        """This process's search and embedding figures (latency percentiles, cache hit rate)."""
        return _metrics.snapshot()
