"""Traces: OTLP spans in (``otlp`` decodes, ``mapping`` reads the GenAI and OpenInference
conventions, ``ingest`` writes), trees out (``tree``). See docs/otel.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from ..client import Client
    from .ingest import IngestResult
    from .tree import Trace, TraceSummary


class Traces:
    """``ll.traces``: the library face of the OTLP receiver."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def ingest_otlp(self, body: bytes, *, content_type: str = "application/x-protobuf",
                    max_bytes: int = 10_000_000) -> IngestResult:
        """One OTLP/HTTP ExportTraceServiceRequest body (protobuf or JSON), as POST /v1/traces takes it."""
        from . import otlp
        from .ingest import ingest

        if len(body) > max_bytes:
            raise otlp.TooLarge(f"the body is larger than {max_bytes} bytes")
        req = otlp.parse_json(body) if content_type.startswith("application/json") else otlp.parse_protobuf(body)
        decoded = otlp.flatten(req)
        with self._c.db.connection() as conn:
            return ingest(conn, self._c.scope, decoded)

    def trace(self, trace_id: str) -> Trace:
        from .tree import trace

        with self._c.db.connection() as conn:
            return trace(conn, self._c.scope, trace_id)

    def for_generation(self, generation_id: UUID | str) -> Trace:
        from .tree import generation_trace

        with self._c.db.connection() as conn:
            return generation_trace(conn, self._c.scope, generation_id)

    def annotate(self, items: list[Any]) -> int:
        """Phoenix-style span annotations (see ``annotations``); returns feedback rows made."""
        from .annotations import SpanAnnotation, annotate

        parsed = [i if isinstance(i, SpanAnnotation) else SpanAnnotation.model_validate(i) for i in items]
        with self._c.db.connection() as conn:
            return annotate(conn, self._c.scope, parsed)

    def recent(self, **options: Any) -> list[TraceSummary]:
        from .tree import recent

        with self._c.db.connection() as conn:
            return recent(conn, self._c.scope, **options)
