"""An app instrumented the way users instrument theirs, run as its own process by
tests/test_otel_instrumented.py: the official ``openai`` client, a real instrumentation
(``genai``: opentelemetry-instrumentation-openai-v2; ``openinference``:
openinference-instrumentation-openai), the real OTLP/HTTP protobuf exporter configured
only through the standard environment variables (OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_HEADERS), and a local OpenAI-compatible server (argv[2]).

It prints one JSON line: the trace id and the span ids of what it did, for the test to
compare with what learnloop stored.
"""

from __future__ import annotations

import json
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

convention, base_url = sys.argv[1], sys.argv[2]

provider = TracerProvider(resource=Resource.create({"service.name": "otel-test-app",
                                                    "deployment.environment": "test"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)

if convention == "genai":
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)
else:
    from openinference.instrumentation.openai import OpenAIInstrumentor as OIInstrumentor

    OIInstrumentor().instrument(tracer_provider=provider)

import openai  # noqa: E402 - after instrumenting, as the instrumentations' docs do

client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
tracer = trace.get_tracer("otel-test-app")
out: dict[str, object] = {}

# The request's root span carries the session and user, as an app sets them once.
with tracer.start_as_current_span("answer-question", attributes={
        "gen_ai.conversation.id": "conv-42", "session.id": "conv-42", "user.id": "user-7"}) as root:
    out["trace_id"] = format(root.get_span_context().trace_id, "032x")
    out["root"] = format(root.get_span_context().span_id, "016x")
    with tracer.start_as_current_span("retrieve-docs", attributes={
            "openinference.span.kind": "RETRIEVER",
            "retrieval.documents.0.document.id": "doc-1",
            "retrieval.documents.0.document.content": "pgvector adds vector similarity search to PostgreSQL",
            "retrieval.documents.0.document.score": 0.91,
            "retrieval.documents.1.document.id": "doc-2",
            "retrieval.documents.1.document.content": "HNSW indexes trade recall for speed",
            "retrieval.documents.1.document.score": 0.55}) as r:
        out["retriever"] = format(r.get_span_context().span_id, "016x")
    chat = client.chat.completions.create(
        model="gpt-4o-mini", temperature=0.2, max_tokens=50,
        messages=[{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "what is pgvector"}])
    out["chat_text"] = chat.choices[0].message.content
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "and what is hnsw"}])
    out["stream_text"] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    try:
        client.chat.completions.create(model="fail-model", messages=[{"role": "user", "content": "hi"}])
    except openai.BadRequestError:
        out["failed"] = True

provider.shutdown()  # flushes the batch processor: every span is exported before exit
print(json.dumps(out))
