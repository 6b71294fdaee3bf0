"""Links inside one request, in Python, before anything is written.

The same two rules as the SQL in ``ingest`` (which runs only for traces that already had
spans stored, so the spans of a trace arriving over several requests link too):

* a generation without session or user takes them from its nearest ancestor span;
* a generation's ``retrieved`` is the documents of the retriever spans under the same
  parent that started no later than the model call, and of retriever spans under it,
  ordered by start time, span id, position.
"""

from __future__ import annotations

from typing import Any

from .otlp import SpanRecord

_SESSION = ("gen_ai.conversation.id", "session.id")
_USER = ("user.id", "enduser.id")


def _attr(s: SpanRecord, keys: tuple[str, ...]) -> str | None:
    for k in keys:
        v = s.attributes.get(k)
        if isinstance(v, str) and v:
            return v[:500]
    return None


def link(spans: list[SpanRecord], docs: list[list[dict[str, Any]] | None],
         gens: dict[int, dict[str, Any]]) -> None:
    """Fill session_ref, user_ref and retrieved of ``gens`` (span index -> generation row)."""
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    retrievers: dict[tuple[str, str | None], list[int]] = {}
    for i, d in enumerate(docs):
        if d:
            s = spans[i]
            retrievers.setdefault((s.trace_id, s.parent_span_id), []).append(i)
    for i, g in gens.items():
        s = spans[i]
        if "session_ref" not in g or "user_ref" not in g:
            p, hops = s.parent_span_id, 0
            while p is not None and hops < 64 and ("session_ref" not in g or "user_ref" not in g):
                a = by_id.get((s.trace_id, p))
                if a is None:
                    break
                for field, keys in (("session_ref", _SESSION), ("user_ref", _USER)):
                    v = _attr(a, keys)
                    if v is not None and field not in g:
                        g[field] = v
                p, hops = a.parent_span_id, hops + 1
        found = [j for j in retrievers.get((s.trace_id, s.span_id), [])]
        if s.parent_span_id is not None:
            found += [j for j in retrievers.get((s.trace_id, s.parent_span_id), [])
                      if spans[j].start_ns <= s.start_ns]
        if found:
            found.sort(key=lambda j: (spans[j].start_ns, spans[j].span_id))
            g["retrieved"] = [doc for j in found for doc in docs[j] or []]
