"""Trace tables: every OTLP span received, kept as a tree, and the evaluations it carried.

Invariants kept by the tables themselves:

* a span is stored once per (tenant, trace id, span id): the primary key is the
  idempotence key, so an exporter's retry (or the same span in two requests at once)
  can never write a second row, and tenant B's ids never touch tenant A's rows;
* ids are lower-case hex of the OTLP lengths (16 and 8 bytes), so a tree is read by
  joining ``parent_span_id`` to ``span_id`` in the same tenant and trace, whatever order
  the spans arrived in (a child stored before its parent is linked by that join);
* a span points at most one generation (the model call it recorded), and a generation is
  pointed at by at most one span.
"""

from ..store.migrations import Migration, MigrationSet, young_table_statistics

M001_SPANS = """
CREATE TABLE learnloop.spans (
    tenant_id       uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    trace_id        text NOT NULL CHECK (trace_id ~ '^[0-9a-f]{32}$'),
    span_id         text NOT NULL CHECK (span_id ~ '^[0-9a-f]{16}$'),
    project_id      uuid NOT NULL,
    parent_span_id  text CHECK (parent_span_id ~ '^[0-9a-f]{16}$'),
    name            text NOT NULL CHECK (length(name) <= 1000),
    kind            text NOT NULL CHECK (length(kind) BETWEEN 1 AND 50),
    span_kind       smallint NOT NULL DEFAULT 0,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'unset' CHECK (status IN ('unset', 'ok', 'error')),
    status_message  text,
    attributes      jsonb NOT NULL DEFAULT '{}'::jsonb,
    events          jsonb NOT NULL DEFAULT '[]'::jsonb,
    resource        jsonb NOT NULL DEFAULT '{}'::jsonb,
    documents       jsonb,
    generation_id   uuid,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, trace_id, span_id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES learnloop.projects (tenant_id, id),
    -- Deferred: a span row is written first (its primary key decides whether the span is
    -- new) and its generation right after, through the ledger's bulk path.
    FOREIGN KEY (tenant_id, generation_id) REFERENCES learnloop.generations (tenant_id, id)
        ON DELETE SET NULL (generation_id) DEFERRABLE INITIALLY DEFERRED,
    CHECK (jsonb_typeof(attributes) = 'object'),
    CHECK (jsonb_typeof(events) = 'array'),
    CHECK (jsonb_typeof(resource) = 'object'),
    CHECK (documents IS NULL OR jsonb_typeof(documents) = 'array'),
    CHECK (ended_at >= started_at)
);
COMMENT ON TABLE learnloop.spans IS 'Every span received over OTLP; a trace is the tree of its spans.';
COMMENT ON COLUMN learnloop.spans.trace_id IS 'OTLP trace id, 32 lower-case hex digits.';
COMMENT ON COLUMN learnloop.spans.span_id IS 'OTLP span id, 16 lower-case hex digits.';
COMMENT ON COLUMN learnloop.spans.parent_span_id IS 'Parent in the same trace; may arrive after this span.';
COMMENT ON COLUMN learnloop.spans.kind IS 'llm, embedding, chain, agent, tool, retriever, reranker, evaluator, guardrail or span.';
COMMENT ON COLUMN learnloop.spans.span_kind IS 'OTLP SpanKind enum (0 unspecified, 1 internal, 2 server, 3 client, ...).';
COMMENT ON COLUMN learnloop.spans.attributes IS 'Span attributes, flattened to JSON values.';
COMMENT ON COLUMN learnloop.spans.events IS 'Span events [{"name", "time", "attributes"}].';
COMMENT ON COLUMN learnloop.spans.resource IS 'Resource attributes of the process that sent it (service.name...).';
COMMENT ON COLUMN learnloop.spans.documents IS 'Retriever spans: documents returned, [{"id", "content", "score", "metadata"}].';
COMMENT ON COLUMN learnloop.spans.generation_id IS 'The generation this model-call span became.';

-- No index on parent_span_id: every read of a tree or a link is inside one trace, which
-- the primary key's (tenant_id, trace_id) prefix finds; one index less per span written.
CREATE UNIQUE INDEX spans_generation_idx ON learnloop.spans (tenant_id, generation_id)
    WHERE generation_id IS NOT NULL;
CREATE INDEX spans_project_started_idx ON learnloop.spans (tenant_id, project_id, started_at);
-- Span annotations name a span by its id alone (Phoenix's API has no trace id).
CREATE INDEX spans_span_id_idx ON learnloop.spans (tenant_id, span_id);

CREATE TABLE learnloop.span_evaluations (
    tenant_id       uuid NOT NULL REFERENCES learnloop.tenants (id) ON DELETE CASCADE,
    trace_id        text NOT NULL,
    span_id         text NOT NULL,
    ordinal         integer NOT NULL CHECK (ordinal >= 0),
    project_id      uuid NOT NULL,
    name            text CHECK (length(name) <= 500),
    score           double precision,
    label           text CHECK (length(label) <= 500),
    explanation     text,
    target_span_id  text CHECK (target_span_id ~ '^[0-9a-f]{16}$'),
    response_id     text,
    feedback_id     uuid,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, trace_id, span_id, ordinal),
    FOREIGN KEY (tenant_id, trace_id, span_id) REFERENCES learnloop.spans (tenant_id, trace_id, span_id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, feedback_id) REFERENCES learnloop.feedback (tenant_id, id)
        ON DELETE SET NULL (feedback_id)
);
COMMENT ON TABLE learnloop.span_evaluations IS
    'gen_ai.evaluation.result events and span annotations; each becomes an automatic feedback row once its generation is known.';
COMMENT ON COLUMN learnloop.span_evaluations.ordinal IS 'Position of the event in its span (the idempotence key with the span).';
COMMENT ON COLUMN learnloop.span_evaluations.target_span_id IS 'The evaluated span (the carrying span, or its parent when that one is not a model call).';
COMMENT ON COLUMN learnloop.span_evaluations.feedback_id IS 'NULL until the evaluated generation has arrived.';
CREATE INDEX span_evaluations_pending_idx ON learnloop.span_evaluations (tenant_id, trace_id)
    WHERE feedback_id IS NULL;
"""

MIGRATIONS = MigrationSet(
    "traces",
    [
        Migration("m001_spans_evaluations", M001_SPANS),
        Migration("m002_young_table_statistics", young_table_statistics(["spans", "span_evaluations"])),
    ],
)
