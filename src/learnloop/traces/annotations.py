"""Span annotations (Phoenix / OpenInference style) in, as automatic feedback.

Phoenix's evaluators and its client log results with ``POST /v1/span_annotations``
(``{"data": [{"span_id", "name", "annotator_kind", "result": {"label", "score",
"explanation"}, "identifier"}]}``); learnloop takes the same body. An annotation is kept
in ``span_evaluations`` beside the ``gen_ai.evaluation.result`` events and becomes
feedback through the same path, on the annotated span's generation (or, on an evaluator
step, its parent's). It is idempotent by (span, name, identifier): the first one stays.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import NotFound
from ..store.database import Conn
from ..store.tenancy import Scope
from . import ingest

_HEX16 = r"^[0-9a-fA-F]{16}$"


class AnnotationResult(BaseModel):
    model_config = ConfigDict(extra="ignore")
    label: str | None = Field(None, max_length=500)
    score: float | None = Field(None, allow_inf_nan=False)
    explanation: str | None = Field(None, max_length=100_000)


class SpanAnnotation(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "span_id": "051581bf3cb55c13", "name": "relevance", "annotator_kind": "LLM",
        "result": {"label": "relevant", "score": 0.9, "explanation": "cites the refund policy"}}]})
    span_id: str = Field(pattern=_HEX16)
    name: str = Field(min_length=1, max_length=500)
    annotator_kind: Literal["LLM", "CODE", "HUMAN"] = "LLM"
    result: AnnotationResult = Field(default_factory=lambda: AnnotationResult.model_validate({}))
    identifier: str = Field("", max_length=500)
    metadata: dict[str, Any] = Field(default_factory=dict)


def _ordinal(name: str, identifier: str) -> int:
    # Above any event position (events are at most 1,000 a span), stable per (name, identifier).
    h = int.from_bytes(hashlib.sha256(f"{name}\x00{identifier}".encode()).digest()[:4], "big")
    return 1_000_000 + h % 2_000_000_000


def annotate(conn: Conn, scope: Scope, items: list[SpanAnnotation]) -> int:
    """Store annotations on this tenant's spans; returns the feedback rows created. Every
    span must exist in the tenant (NotFound otherwise, and nothing is written)."""
    if not items:
        return 0
    with conn.transaction():
        wanted = list({a.span_id.lower() for a in items})
        found = {r["span_id"]: r for r in conn.execute(
            "SELECT span_id, trace_id, parent_span_id, generation_id, kind FROM learnloop.spans"
            " WHERE tenant_id = %s AND span_id = ANY(%s)", (scope.tenant_id, wanted)).fetchall()}
        missing = [s for s in wanted if s not in found]
        if missing:
            raise NotFound(f"span {missing[0]} does not exist in this tenant ({len(missing)} unknown)")
        now = datetime.now(UTC)
        rows = []
        for a in items:
            sp = found[a.span_id.lower()]
            target = sp["span_id"] if sp["generation_id"] is not None or sp["kind"] in ("llm", "embedding") \
                else sp["parent_span_id"]
            rows.append((sp, {"ordinal": _ordinal(a.name, a.identifier), "name": a.name, "score": a.result.score,
                              "label": a.result.label, "explanation": a.result.explanation,
                              "target_span_id": target, "response_id": None}))
        conn.execute(ingest._INSERT_EVALUATIONS, {
            "tenant": scope.tenant_id, "project": scope.project_id,
            "trace": [sp["trace_id"] for sp, _ in rows], "span": [sp["span_id"] for sp, _ in rows],
            "ordinal": [e["ordinal"] for _, e in rows], "name": [e["name"] for _, e in rows],
            "score": [e["score"] for _, e in rows], "label": [e["label"] for _, e in rows],
            "explanation": [e["explanation"] for _, e in rows], "target": [e["target_span_id"] for _, e in rows],
            "response": [None for _ in rows], "at": [now for _ in rows]})
        return ingest._resolve_evaluations(conn, scope, list({sp["trace_id"] for sp, _ in rows}))
