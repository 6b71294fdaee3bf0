"""Reading traces back: one trace as a tree of spans, the trace of a generation, recent traces.

The tree is built when read, from ``parent_span_id``: a span whose parent has not arrived
(yet) is a root until it does, and needs no update when it comes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from ..errors import InvalidInput, NotFound
from ..ledger.generations import as_uuid
from ..store.database import Conn
from ..store.tenancy import Scope


class SpanEvent(BaseModel):
    """An event inside a span (OTLP ``Span.Event``): a name, a time and attributes."""

    name: str
    time_unix_nano: int
    attributes: dict[str, Any]


class SpanNode(BaseModel):
    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str
    kind: str = Field(description="llm, embedding, chain, agent, tool, retriever, ... or span")
    started_at: datetime
    ended_at: datetime
    duration_ms: float
    status: str
    status_message: str | None = None
    attributes: dict[str, Any]
    events: list[SpanEvent]
    generation_id: UUID | None = Field(None, description="The generation this model-call span became.")
    generations: list[UUID] = Field(default_factory=list,
                                    description="Generations in this span's subtree, itself included.")
    children: list[SpanNode] = Field(default_factory=list)


class Trace(BaseModel):
    trace_id: str
    resource: dict[str, Any]
    span_count: int
    generations: list[UUID]
    roots: list[SpanNode] = Field(description="Spans without a (received) parent, oldest first.")


class TraceSummary(BaseModel):
    trace_id: str
    name: str
    started_at: datetime
    ended_at: datetime
    span_count: int
    generation_count: int
    error_count: int


def check_trace_id(trace_id: str) -> str:
    t = trace_id.strip().lower() if isinstance(trace_id, str) else ""
    if len(t) != 32 or any(c not in "0123456789abcdef" for c in t):
        raise InvalidInput(f"a trace id is 32 hex digits, got {str(trace_id)[:80]!r}", field="trace_id")
    return t


def trace(conn: Conn, scope: Scope, trace_id: str) -> Trace:
    tid = check_trace_id(trace_id)
    rows = conn.execute(
        "SELECT trace_id, span_id, parent_span_id, name, kind, started_at, ended_at, status, status_message,"
        " attributes, events, resource, generation_id FROM learnloop.spans"
        " WHERE tenant_id = %s AND project_id = %s AND trace_id = %s ORDER BY started_at, span_id",
        (scope.tenant_id, scope.project_id, tid)).fetchall()
    if not rows:
        raise NotFound(f"trace {tid} does not exist in this project")
    nodes = {r["span_id"]: SpanNode(
        **{k: v for k, v in r.items() if k != "resource"},
        duration_ms=(r["ended_at"] - r["started_at"]).total_seconds() * 1000) for r in rows}
    roots = []
    for n in nodes.values():
        parent = nodes.get(n.parent_span_id) if n.parent_span_id else None
        if parent is None or parent is n:
            roots.append(n)
        else:
            parent.children.append(n)
    for r in roots:
        _collect(r, set())
    gens = [n.generation_id for n in nodes.values() if n.generation_id]
    return Trace(trace_id=tid, resource=rows[0]["resource"], span_count=len(rows), generations=gens, roots=roots)


def _collect(n: SpanNode, seen: set[str]) -> list[UUID]:
    # ids are unique per trace, so a cycle needs a span claiming a descendant as parent: the
    # seen set keeps such a (hostile) trace from recursing forever.
    seen.add(n.span_id)
    out = [n.generation_id] if n.generation_id else []
    for c in n.children:
        if c.span_id not in seen:
            out.extend(_collect(c, seen))
    n.generations = out
    return out


def generation_trace(conn: Conn, scope: Scope, generation_id: UUID | str) -> Trace:
    gid = as_uuid(generation_id, "generation id")
    row = conn.execute("SELECT trace_id FROM learnloop.spans WHERE tenant_id = %s AND generation_id = %s",
                       (scope.tenant_id, gid)).fetchone()
    if row is None:
        raise NotFound(f"generation {gid} has no trace in this tenant (it was not received over OTLP)")
    return trace(conn, scope, row["trace_id"])


def recent(conn: Conn, scope: Scope, *, limit: int = 50, offset: int = 0) -> list[TraceSummary]:
    rows = conn.execute(
        """SELECT trace_id,
                  (array_agg(name ORDER BY (parent_span_id IS NOT NULL), started_at))[1] AS name,
                  min(started_at) AS started_at, max(ended_at) AS ended_at, count(*) AS span_count,
                  count(generation_id) AS generation_count,
                  count(*) FILTER (WHERE status = 'error') AS error_count
           FROM learnloop.spans WHERE tenant_id = %s AND project_id = %s
           GROUP BY trace_id ORDER BY min(started_at) DESC, trace_id LIMIT %s OFFSET %s""",
        (scope.tenant_id, scope.project_id, limit, offset)).fetchall()
    return [TraceSummary.model_validate(r) for r in rows]
