"""Acceptance: a real instrumented app (official openai client + the OTel GenAI or the
OpenInference instrumentation + the real OTLP/HTTP protobuf exporter) sends its spans to a
live learnloop server; the generations, tokens, messages, sessions and trace tree stored
match what the app did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import learnloop
from tests.fake_openai_server import CACHED, REASONING, FakeOpenAI
from tests.otel_support import live_server

APP = Path(__file__).with_name("otel_instrumented_app.py")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def env(client: learnloop.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    a = client.scoped(tenant="otel-acme", project="assistant")
    _, key = a.events.create_key("otel-exporter", ["ingest", "read"])
    with FakeOpenAI() as fake, live_server(client, tmp_path_factory.mktemp("otel")) as url:
        yield {"a": a, "key": key, "fake": fake, "url": url}


def _run_app(env: dict[str, Any], convention: str) -> dict[str, Any]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    e.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": env["url"],
        # What a user puts in their deployment: the key and the project, nothing else.
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{env['key']},X-Learnloop-Project=assistant",
        "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only",
        "PYTHONPATH": str(ROOT),
    })
    p = subprocess.run([sys.executable, str(APP), convention, env["fake"].base_url], env=e, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Failed to export" not in p.stderr, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("convention", ["genai", "openinference"])
def test_instrumented_openai_app_lands_as_generations_and_a_trace(env: dict[str, Any], convention: str) -> None:
    a: learnloop.Client = env["a"]
    out = _run_app(env, convention)
    assert out["chat_text"] == "echo: what is pgvector" and out["failed"]

    tr = a.traces.trace(out["trace_id"])
    assert tr.resource["service.name"] == "otel-test-app"
    (root,) = tr.roots  # every span hangs under the app's root span
    assert root.span_id == out["root"] and root.name == "answer-question"
    kids = {c.span_id: c for c in root.children}
    assert out["retriever"] in kids and kids[out["retriever"]].kind == "retriever"
    llm = [c for c in root.children if c.kind == "llm"]
    assert len(llm) == 3 and all(c.generation_id for c in llm)
    assert sorted(root.generations) == sorted(c.generation_id for c in llm)  # the tree links what it contains
    assert sorted(tr.generations) == sorted(root.generations)

    gens = sorted((a.get(c.generation_id) for c in llm), key=lambda g: g.created_at)
    chat, streamed, failed = gens
    # What the app sent and got, as the model-call spans recorded it
    assert chat.messages is not None
    assert [(m["role"], m["content"]) for m in chat.messages] == [
        ("system", "Answer briefly."), ("user", "what is pgvector")]
    assert chat.output_text == "echo: what is pgvector"
    assert chat.model == "gpt-4o-mini-2025-01-01" and chat.config["model"] == "gpt-4o-mini"
    assert chat.config["temperature"] == 0.2 and chat.config["max_tokens"] == 50
    assert chat.provider == "openai"
    assert chat.tokens_in == 5 and chat.tokens_out == 4  # the fake server's word counts
    if convention == "openinference":  # openai-v2 2.4b0 records neither (the JSON tests cover gen_ai.usage.*)
        assert chat.output_meta["usage"]["cached_input_tokens"] == CACHED
        assert chat.output_meta["usage"]["reasoning_tokens"] == REASONING
    assert chat.latency_ms is not None and chat.latency_ms > 0
    assert chat.session_ref == "conv-42" and chat.user_ref == "user-7"  # inherited from the root span
    assert chat.context["service.name"] == "otel-test-app" and chat.context["deployment.environment"] == "test"
    assert chat.output_meta["otel"] == {"trace_id": out["trace_id"], "span_id": llm[0].span_id} or \
        chat.output_meta["otel"]["trace_id"] == out["trace_id"]
    # The retriever ran before the call under the same parent: its documents are the context.
    assert [d["id"] for d in chat.retrieved] == ["doc-1", "doc-2"]
    assert chat.retrieved[0]["content"].startswith("pgvector adds")

    assert streamed.output_text == "echo: and what is hnsw"
    assert streamed.tokens_in == 4 and streamed.tokens_out == 5
    assert streamed.output_meta["status"] == "ok"

    assert failed.output_meta["status"] == "error" and failed.output_text is None
    assert failed.config.get("model") == "fail-model" or failed.model == "fail-model"

    # Same tree through the API, and from a generation
    assert a.traces.for_generation(chat.id).trace_id == out["trace_id"]


def test_exporter_retry_never_duplicates(env: dict[str, Any]) -> None:
    a: learnloop.Client = env["a"]
    out = _run_app(env, "openinference")
    before = len(a.find(session_ref="conv-42", limit=1000))
    tr = a.traces.trace(out["trace_id"])
    # Re-send the very spans that were stored, as an exporter retrying after a lost reply would.
    from tests.test_otel_receiver import request_from_trace

    body = request_from_trace(tr)
    r1 = a.traces.ingest_otlp(body)
    assert r1.accepted == 0 and r1.duplicates == tr.span_count and r1.rejected == 0
    assert len(a.find(session_ref="conv-42", limit=1000)) == before
