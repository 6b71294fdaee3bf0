"""Writing a decoded OTLP request: spans, their generations, evaluations as feedback.

One request is one transaction, in this order:

1. every span goes in with one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO
   NOTHING``; the rows it returns are the spans that are new. An exporter's retry, or the
   same span in two requests at once, returns nothing the second time, so nothing below
   runs twice for one span (the primary key is the lock);
2. the new model-call spans become generations through the ledger's bulk path
   (``ledger.bulk.bulk_log``: binary COPY, one outbox event each); the span rows point at
   them through a deferred foreign key;
3. their ``gen_ai.evaluation.result`` events are stored, then every evaluation of the
   touched traces whose generation is now known becomes an automatic feedback row
   (``ledger.feedback.bulk_add``) -- whichever of the two arrived first;
4. a generation without session or user takes them from its nearest ancestor span, and
   retriever spans' documents become the ``retrieved`` of the generations they fed
   (a sibling retriever that started before the model call, or a child of it), again
   whichever arrived first: in Python for the spans of this request (``link``), in SQL
   only for traces that already had spans stored. Requests touching the same trace take
   a transaction-scoped advisory lock per trace, so two of them never miss each other.

A failure anywhere rolls the whole request back: nothing is half-written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from ..ledger import feedback as _feedback
from ..ledger.bulk import bulk_log
from ..store.database import Conn
from ..store.ids import uuid7, uuid7s
from ..store.tenancy import Scope
from . import mapping
from .link import link
from .otlp import Decoded, SpanRecord


@dataclass
class IngestResult:
    """What one request did; ``rejected`` and ``message`` go back as OTLP partial_success."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    generations: list[UUID] = field(default_factory=list)
    feedback: int = 0
    warnings: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        parts = []
        if self.rejected:
            parts.append(f"{self.rejected} span(s) rejected: " + "; ".join(self.reasons))
        parts.extend(self.warnings[:5])
        return " | ".join(parts)


_INSERT_SPANS = """
INSERT INTO learnloop.spans (tenant_id, project_id, trace_id, span_id, parent_span_id, name, kind, span_kind,
    started_at, ended_at, status, status_message, attributes, events, resource, documents, generation_id)
SELECT %(tenant)b, %(project)b, u.trace_id, u.span_id, u.parent, u.name, u.kind, u.span_kind, u.started_at,
    u.ended_at, u.status, u.msg, u.attrs::jsonb, u.events::jsonb, u.resource::jsonb, u.docs::jsonb, u.gen
FROM unnest(%(trace)b::text[], %(span)b::text[], %(parent)b::text[], %(name)b::text[], %(kind)b::text[],
            %(span_kind)b::int2[], %(started)b::timestamptz[], %(ended)b::timestamptz[], %(status)b::text[],
            %(msg)b::text[], %(attrs)b::text[], %(events)b::text[], %(resource)b::text[], %(docs)b::text[],
            %(gen)b::uuid[])
     AS u(trace_id, span_id, parent, name, kind, span_kind, started_at, ended_at, status, msg, attrs, events,
          resource, docs, gen)
ON CONFLICT (tenant_id, trace_id, span_id) DO NOTHING
RETURNING trace_id, span_id
"""

_INSERT_EVALUATIONS = """
INSERT INTO learnloop.span_evaluations (tenant_id, project_id, trace_id, span_id, ordinal, name, score, label,
    explanation, target_span_id, response_id, created_at)
SELECT %(tenant)s, %(project)s, u.* FROM unnest(%(trace)s::text[], %(span)s::text[], %(ordinal)s::int4[],
    %(name)s::text[], %(score)s::float8[], %(label)s::text[], %(explanation)s::text[], %(target)s::text[],
    %(response)s::text[], %(at)s::timestamptz[]) AS u
ON CONFLICT DO NOTHING
"""

# Evaluations of these traces still waiting for their generation, with it when it is
# there now: the span judged, else (by gen_ai.response.id) the model call that answered.
# Rows are locked, so two requests never turn one evaluation into two feedback rows.
_PENDING_EVALUATIONS = """
SELECT e.trace_id, e.span_id, e.ordinal, e.name, e.score, e.label, e.explanation, e.created_at,
       coalesce(t.generation_id, r.generation_id) AS generation_id
FROM learnloop.span_evaluations e
LEFT JOIN learnloop.spans t
       ON t.tenant_id = e.tenant_id AND t.trace_id = e.trace_id AND t.span_id = e.target_span_id
LEFT JOIN LATERAL (
    SELECT s.generation_id FROM learnloop.spans s
    WHERE s.tenant_id = %(tenant)s AND s.trace_id = e.trace_id AND e.response_id IS NOT NULL
      AND s.generation_id IS NOT NULL AND s.attributes ->> 'gen_ai.response.id' = e.response_id
    LIMIT 1) r ON true
WHERE e.tenant_id = %(tenant)s AND e.trace_id = ANY(%(traces)s) AND e.feedback_id IS NULL
FOR UPDATE OF e
"""

_SET_FEEDBACK = """
UPDATE learnloop.span_evaluations e SET feedback_id = u.fid
FROM unnest(%(trace)s::text[], %(span)s::text[], %(ordinal)s::int4[], %(fid)s::uuid[]) AS u(trace_id, span_id, ordinal, fid)
WHERE e.tenant_id = %(tenant)s AND e.trace_id = u.trace_id AND e.span_id = u.span_id AND e.ordinal = u.ordinal
"""

# The documents a generation was given: retriever spans under the same parent that started
# before the model call, and retriever spans under the model call itself.
_LINK_RETRIEVED = """
WITH llm AS (
    SELECT s.trace_id, s.span_id, s.parent_span_id, s.started_at, s.generation_id
    FROM learnloop.spans s
    WHERE s.tenant_id = %(tenant)s AND s.trace_id = ANY(%(traces)s) AND s.generation_id IS NOT NULL
), docs AS (
    SELECT l.generation_id, jsonb_agg(d.doc ORDER BY r.started_at, r.span_id, d.ord) AS retrieved
    FROM llm l
    JOIN learnloop.spans r
      ON r.tenant_id = %(tenant)s AND r.trace_id = l.trace_id AND r.documents IS NOT NULL
     AND (r.parent_span_id = l.span_id
          OR (r.parent_span_id = l.parent_span_id AND r.started_at <= l.started_at))
    CROSS JOIN LATERAL jsonb_array_elements(r.documents) WITH ORDINALITY AS d(doc, ord)
    WHERE r.trace_id = ANY(%(traces)s)
    GROUP BY l.generation_id
)
UPDATE learnloop.generations g SET retrieved = docs.retrieved
FROM docs
WHERE g.tenant_id = %(tenant)s AND g.id = docs.generation_id AND g.retrieved IS DISTINCT FROM docs.retrieved
"""

# A generation without a session or user takes them from its nearest ancestor span that has
# them (apps set them once on the request's root span; OpenInference's using_session sets
# them on every span). The root usually ends, so arrives, last: this runs for every batch.
_INHERIT_SESSION_USER = """
WITH RECURSIVE up(generation_id, trace_id, at, depth, session, usr) AS (
    SELECT s.generation_id, s.trace_id, s.parent_span_id, 0, NULL::text, NULL::text
    FROM learnloop.spans s
    JOIN learnloop.generations g ON g.tenant_id = %(tenant)s AND g.id = s.generation_id
    WHERE s.tenant_id = %(tenant)s AND s.trace_id = ANY(%(traces)s) AND s.generation_id IS NOT NULL
      AND (g.session_ref IS NULL OR g.user_ref IS NULL)
  UNION ALL
    SELECT up.generation_id, up.trace_id, p.parent_span_id, up.depth + 1,
           coalesce(up.session, p.attributes ->> 'gen_ai.conversation.id', p.attributes ->> 'session.id'),
           coalesce(up.usr, p.attributes ->> 'user.id', p.attributes ->> 'enduser.id')
    FROM up
    JOIN learnloop.spans p ON p.tenant_id = %(tenant)s AND p.trace_id = up.trace_id AND p.span_id = up.at
    WHERE up.depth < 64 AND (up.session IS NULL OR up.usr IS NULL)
), found AS (
    SELECT generation_id, max(session) AS session, max(usr) AS usr FROM up GROUP BY generation_id
)
UPDATE learnloop.generations g
SET session_ref = coalesce(g.session_ref, left(found.session, 500)),
    user_ref = coalesce(g.user_ref, left(found.usr, 500))
FROM found
WHERE g.tenant_id = %(tenant)s AND g.id = found.generation_id
  AND ((g.session_ref IS NULL AND found.session IS NOT NULL) OR (g.user_ref IS NULL AND found.usr IS NOT NULL))
"""


def _ts(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _dumps(v: Any) -> str:
    return orjson.dumps(v).decode()


def _drop_none(v: Any) -> Any:
    """JSON without nulls: the ledger's fast path takes such rows as they are."""
    if isinstance(v, dict):
        return {k: _drop_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_drop_none(x) for x in v if x is not None]
    return v


def ingest(conn: Conn, scope: Scope, decoded: Decoded) -> IngestResult:
    """Store a decoded request (see the module docstring for the order and guarantees)."""
    res = IngestResult(rejected=decoded.rejected, reasons=list(decoded.reasons))
    seen: dict[tuple[str, str], SpanRecord] = {}
    for s in decoded.spans:  # the same span twice in one request counts once
        seen.setdefault((s.trace_id, s.span_id), s)
    spans = list(seen.values())
    res.duplicates = len(decoded.spans) - len(spans)
    if not spans:
        return res

    kinds = [mapping.span_kind(s.attributes) for s in spans]
    fresh = uuid7s(len(spans))
    gen_ids = [next(fresh) if k in mapping.GENERATION_KINDS else None for k in kinds]
    docs = [mapping.documents(s) if k == "retriever" else None for s, k in zip(spans, kinds, strict=True)]
    resource_json: dict[int, str] = {}
    for s in spans:
        if id(s.resource) not in resource_json:
            resource_json[id(s.resource)] = _dumps(s.resource)

    traces = sorted({s.trace_id for s in spans})
    with conn.transaction():
        # One request at a time per trace (sorted: no deadlock), so the spans of a trace that
        # come in two concurrent requests still link; and which traces had spans before.
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(t, 7162024)) FROM unnest(%s::text[]) AS t",
                     (traces,))
        old = [r["trace_id"] for r in conn.execute(
            "SELECT DISTINCT trace_id FROM learnloop.spans WHERE tenant_id = %s AND trace_id = ANY(%s)",
            (scope.tenant_id, traces)).fetchall()]
        # %b (binary) parameters: psycopg's text array format escapes every JSON document
        # with a regex (70% of a batch's time); binary arrays pass the bytes through.
        new = {(r["trace_id"], r["span_id"]) for r in conn.execute(_INSERT_SPANS, {
            "tenant": scope.tenant_id, "project": scope.project_id,
            "trace": [s.trace_id for s in spans], "span": [s.span_id for s in spans],
            "parent": [s.parent_span_id for s in spans], "name": [s.name for s in spans], "kind": kinds,
            "span_kind": [s.span_kind for s in spans], "started": [_ts(s.start_ns) for s in spans],
            "ended": [_ts(s.end_ns) for s in spans], "status": [s.status for s in spans],
            "msg": [s.status_message for s in spans], "attrs": [_dumps(s.attributes) for s in spans],
            "events": [_dumps(s.events) for s in spans],
            "resource": [resource_json[id(s.resource)] for s in spans],
            "docs": [None if d is None else _dumps(d) for d in docs], "gen": gen_ids,
        }).fetchall()}
        res.accepted = len(new)
        res.duplicates += len(spans) - len(new)

        gens: dict[int, dict[str, Any]] = {}
        evals: list[tuple[SpanRecord, dict[str, Any]]] = []
        for i, (s, k, gid) in enumerate(zip(spans, kinds, gen_ids, strict=True)):
            if (s.trace_id, s.span_id) not in new:
                continue
            if gid is not None:
                g = _drop_none(mapping.generation(s, k))
                g["id"] = gid
                parent = mapping.parent_generation(s.attributes)
                if parent is not None:
                    g["parent_id"] = parent
                gens[i] = g
            evals.extend((s, e) for e in mapping.evaluations(s, k))
        link(spans, docs, gens)
        rows = list(gens.values())
        if rows:
            rows = _with_known_parents(conn, scope, rows, res)
            res.generations = bulk_log(conn, scope, rows)
        if evals:
            _store_evaluations(conn, scope, evals)
        if old:  # a trace continued from earlier requests: link across them in SQL
            conn.execute(_LINK_RETRIEVED, {"tenant": scope.tenant_id, "traces": old})
            conn.execute(_INHERIT_SESSION_USER, {"tenant": scope.tenant_id, "traces": old})
        if rows or evals:
            res.feedback = _resolve_evaluations(conn, scope, traces)
    return res


def _with_known_parents(conn: Conn, scope: Scope, rows: list[dict[str, Any]], res: IngestResult) -> list[dict[str, Any]]:
    """Rows ordered parents first; a learnloop.parent_generation that is not this tenant's
    is dropped with a warning (the generation is kept, without lineage)."""
    wanted = {r["parent_id"] for r in rows if "parent_id" in r}
    if not wanted:
        return rows
    in_batch = {r["id"] for r in rows}
    stored = {r["id"] for r in conn.execute(
        "SELECT id FROM learnloop.generations WHERE tenant_id = %s AND id = ANY(%s)",
        (scope.tenant_id, list(wanted - in_batch))).fetchall()}
    for r in rows:
        p = r.get("parent_id")
        if p is not None and p not in stored and p not in in_batch:
            del r["parent_id"]
            res.warnings.append(f"{mapping.PARENT_GENERATION} {p} is not a generation of this tenant; "
                                "the generation was kept without lineage")
    # parents inside the request before their children (bulk_log's rule)
    placed: set[UUID] = set()
    out: list[dict[str, Any]] = []
    pending = rows
    while pending:
        later = []
        for r in pending:
            p = r.get("parent_id")
            if p is None or p not in in_batch or p in placed:
                out.append(r)
                placed.add(r["id"])
            else:
                later.append(r)
        if len(later) == len(pending):  # a cycle of parents: keep them, without lineage
            for r in later:
                r.pop("parent_id", None)
        pending = later
    return out


def _store_evaluations(conn: Conn, scope: Scope, evals: list[tuple[SpanRecord, dict[str, Any]]]) -> None:
    def col(key: str) -> list[Any]:
        return [e[key] for _, e in evals]

    conn.execute(_INSERT_EVALUATIONS, {
        "tenant": scope.tenant_id, "project": scope.project_id,
        "trace": [s.trace_id for s, _ in evals], "span": [s.span_id for s, _ in evals],
        "ordinal": col("ordinal"), "name": [(n or None) and n[:500] for n in col("name")], "score": col("score"),
        "label": [(x or None) and x[:500] for x in col("label")], "explanation": col("explanation"),
        "target": col("target_span_id"), "response": col("response_id"),
        "at": [_ts(e["time_ns"]) for _, e in evals],
    })


def _resolve_evaluations(conn: Conn, scope: Scope, traces: list[str]) -> int:
    ready = [r for r in conn.execute(_PENDING_EVALUATIONS, {"tenant": scope.tenant_id, "traces": traces}).fetchall()
             if r["generation_id"] is not None]
    if not ready:
        return 0
    items, fids = [], []
    for r in ready:
        fid = uuid7()
        fids.append(fid)
        e = {"name": r["name"], "label": r["label"], "score": r["score"], "explanation": r["explanation"]}
        items.append({"id": fid, "generation_id": r["generation_id"], "created_at": r["created_at"],
                      **mapping.feedback_fields(e)})
    n = _feedback.bulk_add(conn, scope, items)
    conn.execute(_SET_FEEDBACK, {"tenant": scope.tenant_id, "trace": [r["trace_id"] for r in ready],
                                 "span": [r["span_id"] for r in ready], "ordinal": [r["ordinal"] for r in ready],
                                 "fid": fids})
    return n
