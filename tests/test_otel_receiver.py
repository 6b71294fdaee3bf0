"""POST /v1/traces on a live server: the OTLP/HTTP protocol (encodings, gzip, statuses,
partial_success), OTLP/JSON per the protocol's JSON mapping, the GenAI mapping, evaluation
events as feedback, idempotence, out-of-order spans, lineage, tenancy and bad input."""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tsvc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

import learnloop
from tests.otel_support import live_server

NOW = time.time_ns()


@pytest.fixture(scope="module")
def env(client: learnloop.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    a = client.scoped(tenant="otlp-a", project="app")
    b = client.scoped(tenant="otlp-b", project="app")
    _, key_a = a.events.create_key("exporter", ["ingest", "read"])
    _, key_b = b.events.create_key("exporter", ["ingest", "read"])
    _, key_read = a.events.create_key("reader", ["read"])
    with live_server(client, tmp_path_factory.mktemp("otlp"), api_max_body_bytes=3_000_000) as url, \
            httpx.Client(base_url=url, timeout=60) as http:
        yield {"a": a, "b": b, "key_a": key_a, "key_b": key_b, "key_read": key_read, "http": http}


def tid() -> str:
    return uuid.uuid4().hex


def sid() -> str:
    return uuid.uuid4().hex[:16]


def jattr(key: str, v: Any) -> dict[str, Any]:
    """One OTLP/JSON KeyValue (64-bit integers as strings, as the mapping allows)."""
    if isinstance(v, bool):
        return {"key": key, "value": {"boolValue": v}}
    if isinstance(v, int):
        return {"key": key, "value": {"intValue": str(v)}}
    if isinstance(v, float):
        return {"key": key, "value": {"doubleValue": v}}
    if isinstance(v, list):
        return {"key": key, "value": {"arrayValue": {"values": [jattr("", x)["value"] for x in v]}}}
    return {"key": key, "value": {"stringValue": v}}


def jspan(trace_id: str, span_id: str, name: str, attrs: dict[str, Any], *, parent: str = "",
          start: int = 0, dur_ms: int = 120, status: int = 0, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    start = start or NOW - 10**9
    return {"traceId": trace_id, "spanId": span_id, "parentSpanId": parent, "name": name, "kind": 3,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + dur_ms * 10**6),
            "attributes": [jattr(k, v) for k, v in attrs.items()],
            "events": [{"timeUnixNano": str(start + 10**6), "name": e["name"],
                        "attributes": [jattr(k, v) for k, v in e.get("attributes", {}).items()]} for e in events or []],
            "status": {"code": status, "message": "boom" if status == 2 else ""}}


def jrequest(*spans: dict[str, Any], service: str = "checkout") -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": [jattr("service.name", service),
                                                           jattr("deployment.environment.name", "prod")]},
                               "scopeSpans": [{"scope": {"name": "my.instrumentation"}, "spans": list(spans)}]}]}


def post(env: dict[str, Any], body: bytes | dict[str, Any], *, key: str | None = None, ctype: str | None = None,
         **headers: str) -> httpx.Response:
    h = {"Authorization": f"Bearer {key or env['key_a']}", "X-Learnloop-Project": "app", **headers}
    if isinstance(body, dict):
        import orjson

        body = orjson.dumps(body)
        h["Content-Type"] = ctype or "application/json"
    else:
        h["Content-Type"] = ctype or "application/x-protobuf"
    return env["http"].post("/v1/traces", content=body, headers=h)


CHAT_ATTRS = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.request.temperature": 0.7,
    "gen_ai.request.max_tokens": 200, "gen_ai.request.top_p": 0.9, "gen_ai.usage.input_tokens": 120,
    "gen_ai.usage.output_tokens": 42, "gen_ai.usage.cache_read.input_tokens": 100,
    "gen_ai.usage.reasoning.output_tokens": 30, "gen_ai.conversation.id": "conv-1", "enduser.id": "alice",
    "gen_ai.response.id": "chatcmpl-77", "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.input.messages": '[{"role":"system","parts":[{"type":"text","content":"be terse"}]},'
                             '{"role":"user","parts":[{"type":"text","content":"refund policy?"}]}]',
    "gen_ai.output.messages": '[{"role":"assistant","parts":[{"type":"text","content":"30 days."}],'
                              '"finish_reason":"stop"}]',
    "learnloop.link.order": "A-1001",
}


def test_otlp_json_mapping_and_genai_attributes(env: dict[str, Any]) -> None:
    a: learnloop.Client = env["a"]
    t, s = tid(), sid()
    r = post(env, jrequest(jspan(t, s, "chat gpt-4o", CHAT_ATTRS)))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {}  # full success: no partial_success
    tr = a.traces.trace(t)
    (node,) = tr.roots
    assert node.span_id == s and node.kind == "llm" and node.duration_ms == pytest.approx(120, abs=0.002)  # timestamptz keeps microseconds
    assert node.attributes["gen_ai.request.max_tokens"] == 200  # intValue sent as a string
    g = a.get(node.generation_id)
    assert g.kind == "chat" and g.provider == "openai" and g.model == "gpt-4o-2024-08-06"
    assert g.config == {"model": "gpt-4o", "temperature": 0.7, "max_tokens": 200, "top_p": 0.9}
    assert g.tokens_in == 120 and g.tokens_out == 42
    assert g.output_meta["usage"] == {"cached_input_tokens": 100, "reasoning_tokens": 30}
    assert g.output_meta["finish_reasons"] == ["stop"] and g.output_meta["response_id"] == "chatcmpl-77"
    assert g.messages == [{"role": "system", "content": "be terse"}, {"role": "user", "content": "refund policy?"}]
    assert g.output_text == "30 days."
    assert g.session_ref == "conv-1" and g.user_ref == "alice" and g.links == {"order": "A-1001"}
    assert g.context["service.name"] == "checkout" and g.context["deployment.environment.name"] == "prod"
    assert g.latency_ms == pytest.approx(120)
    assert g.created_at.timestamp() == pytest.approx((NOW - 10**9) / 1e9, abs=1e-3)


def test_older_conventions_and_errors(env: dict[str, Any]) -> None:
    a: learnloop.Client = env["a"]
    t, s1, s2 = tid(), sid(), sid()
    old = {"gen_ai.system": "anthropic", "gen_ai.operation.name": "text_completion",
           "gen_ai.request.model": "claude-x", "gen_ai.usage.prompt_tokens": 9, "gen_ai.usage.completion_tokens": 3,
           "session.id": "sess-9", "user.id": "bob"}
    events = [{"name": "gen_ai.content.prompt", "attributes": {"gen_ai.prompt": "Say hi"}},
              {"name": "gen_ai.content.completion", "attributes": {"gen_ai.completion": "hi"}}]
    failed = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
              "error.type": "RateLimitError"}
    r = post(env, jrequest(jspan(t, s1, "completion", old, events=events),
                           jspan(t, s2, "chat", failed, status=2)))
    assert r.status_code == 200 and r.json() == {}
    by_span = {n.span_id: n for n in a.traces.trace(t).roots}
    g1 = a.get(by_span[s1].generation_id)
    assert g1.kind == "completion" and g1.provider == "anthropic" and g1.model == "claude-x"
    assert (g1.tokens_in, g1.tokens_out) == (9, 3)
    assert g1.messages == [{"role": "user", "content": "Say hi"}] and g1.output_text == "hi"
    assert (g1.session_ref, g1.user_ref) == ("sess-9", "bob")
    g2 = a.get(by_span[s2].generation_id)
    assert g2.output_meta["status"] == "error"
    assert g2.output_meta["error"] == {"type": "RateLimitError", "message": "boom"}
    assert by_span[s2].status == "error"


def test_gzip_json(env: dict[str, Any]) -> None:
    import orjson

    t = tid()
    body = gzip.compress(orjson.dumps(jrequest(jspan(t, sid(), "chat", CHAT_ATTRS))))
    r = post(env, body, ctype="application/json", **{"Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json() == {}, r.text
    assert env["a"].traces.trace(t).span_count == 1


def test_protobuf_gzip_and_response_in_the_request_encoding(env: dict[str, Any]) -> None:
    a: learnloop.Client = env["a"]
    t = tid()
    good = pb_span(t, sid(), {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small",
                              "gen_ai.usage.input_tokens": 8})
    bad = pb_span(t, sid(), {"x": "y"})
    bad.trace_id = b"\x01" * 15  # one byte short
    body = pb_request([good, bad]).SerializeToString()
    r = post(env, gzip.compress(body), **{"Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    resp = tsvc.ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 1
    assert "16 bytes" in resp.partial_success.error_message
    (node,) = a.traces.trace(t).roots
    g = a.get(node.generation_id)
    assert node.kind == "embedding" and g.kind == "embedding" and g.tokens_in == 8


def test_evaluation_event_becomes_feedback_that_analytics_count(env: dict[str, Any]) -> None:
    a: learnloop.Client = env["a"]
    t, llm, judge = tid(), sid(), sid()
    service = f"svc-{uuid.uuid4().hex[:6]}"
    attrs = {**CHAT_ATTRS, "gen_ai.response.id": f"resp-{t}"}
    ev = {"name": "gen_ai.evaluation.result", "attributes": {
        "gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.2,
        "gen_ai.evaluation.score.label": "irrelevant", "gen_ai.evaluation.explanation": "answers another question"}}
    # The evaluator's span (a child of the model call) arrives first, in its own request.
    r = post(env, jrequest(jspan(t, judge, "evaluate", {"openinference.span.kind": "EVALUATOR"}, parent=llm,
                                 events=[ev]), service=service))
    assert r.status_code == 200
    r = post(env, jrequest(jspan(t, llm, "chat", attrs), service=service))
    assert r.status_code == 200
    tr = a.traces.trace(t)
    (root,) = tr.roots
    assert root.span_id == llm and [c.span_id for c in root.children] == [judge]  # linked when the parent came
    (fb,) = a.feedback_for(root.generation_id)
    assert fb.source == "automatic" and fb.sentiment == "NEGATIVE" and fb.author_ref == "relevance"
    assert fb.tags == ["relevance", "relevance:irrelevant"]
    assert fb.comment == "score 0.2: answers another question"
    rows = a.analytics.failure_rate(by="service.name", source="context")
    mine = [x for x in rows if x["value"] == service]
    assert mine and mine[0]["negative"] == 1 and mine[0]["rated"] == 1, rows
    # Sent again (an exporter retry): still one feedback row.
    post(env, jrequest(jspan(t, judge, "evaluate", {"openinference.span.kind": "EVALUATOR"}, parent=llm,
                             events=[ev]), service=service))
    assert len(a.feedback_for(root.generation_id)) == 1


def test_idempotent_lineage_and_retrieval(env: dict[str, Any]) -> None:
    a: learnloop.Client = env["a"]
    first = a.log(kind="chat", prompt="first try")
    t, chain, ret, llm = tid(), sid(), sid(), sid()
    docs = {"openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.id": "kb-7",
            "retrieval.documents.0.document.content": "Refunds within 30 days", "retrieval.documents.0.document.score": 0.8}
    model = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "openai",
             "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "refunds?",
             "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "30 days",
             "llm.token_count.prompt": 11, "llm.token_count.completion": 2, "llm.invocation_parameters": '{"temperature": 0}',
             "learnloop.parent_generation": str(first.id)}
    start = NOW - 5 * 10**9
    req = jrequest(jspan(t, chain, "rag", {"openinference.span.kind": "CHAIN", "session.id": "s-rag"}, start=start,
                         dur_ms=900),
                   jspan(t, ret, "retrieve", docs, parent=chain, start=start + 10**6, dur_ms=5),
                   jspan(t, llm, "llm", model, parent=chain, start=start + 10**7, dur_ms=500))
    assert post(env, req).json() == {}
    assert post(env, req).json() == {}  # the retry
    tr = a.traces.trace(t)
    assert tr.span_count == 3 and len(tr.generations) == 1
    g = a.get(tr.generations[0])
    assert g.parent_id == first.id and g.iteration == 2 and g.root_id == first.id
    assert [d["id"] for d in g.retrieved] == ["kb-7"] and g.retrieved[0]["score"] == 0.8
    assert g.config == {"temperature": 0} and g.session_ref == "s-rag"
    assert g.messages == [{"role": "user", "content": "refunds?"}] and g.output_text == "30 days"
    assert len(a.find(session_ref="s-rag")) == 1


def test_unknown_parent_generation_keeps_the_generation_with_a_warning(env: dict[str, Any]) -> None:
    t = tid()
    stranger = env["b"].log(kind="chat", prompt="tenant b")  # exists, but in another tenant
    r = post(env, jrequest(jspan(t, sid(), "chat", {**CHAT_ATTRS, "learnloop.parent_generation": str(stranger.id)})))
    body = r.json()
    assert body["partialSuccess"]["rejectedSpans"] == 0
    assert "not a generation of this tenant" in body["partialSuccess"]["errorMessage"]
    g = env["a"].get(env["a"].traces.trace(t).generations[0])
    assert g.parent_id is None and g.iteration == 1


def test_tenant_b_key_on_tenant_a_trace_ids_stays_in_b(env: dict[str, Any]) -> None:
    a, b = env["a"], env["b"]
    t, s = tid(), sid()
    assert post(env, jrequest(jspan(t, s, "chat", CHAT_ATTRS))).json() == {}
    before = a.traces.trace(t)
    evil = {**CHAT_ATTRS, "gen_ai.output.messages": '[{"role":"assistant","parts":[{"type":"text","content":"B!"}]}]'}
    r = post(env, jrequest(jspan(t, s, "chat", evil), jspan(t, sid(), "extra", {}, parent=s)), key=env["key_b"])
    assert r.status_code == 200 and r.json() == {}
    after = a.traces.trace(t)
    assert after.model_dump() == before.model_dump()
    assert a.get(after.generations[0]).output_text == "30 days."
    bt = b.traces.trace(t)
    assert bt.span_count == 2 and b.get(bt.generations[0]).output_text == "B!"
    with pytest.raises(learnloop.errors.NotFound):
        b.get(after.generations[0])
    # and over HTTP, A cannot read B's copy of the ids beyond its own
    got = env["http"].get(f"/v1/traces/{t}", headers={"Authorization": f"Bearer {env['key_a']}",
                                                       "X-Learnloop-Project": "app"}).json()
    assert got["span_count"] == 1


def count_spans(a: learnloop.Client) -> int:
    with a.db.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM learnloop.spans WHERE tenant_id = %s",
                           (a.scope.tenant_id,)).fetchone()
    assert row is not None
    return int(row["n"])


def _status(r: httpx.Response) -> str:
    if r.headers["content-type"].startswith("application/json"):
        return str(r.json()["message"])
    return str(status_pb2.Status.FromString(r.content).message)


@pytest.mark.parametrize(("name", "body", "ctype", "status", "says"), [
    ("malformed protobuf", b"\x0a\xff\xff\xff\xff\x0f garbage", "application/x-protobuf", 400, "protobuf"),
    ("JSON that is not OTLP", b'{"spans": []}', "application/json", 400, "resourceSpans"),
    ("not JSON", b"{nope", "application/json", 400, "not JSON"),
    ("invalid UTF-8 in JSON", b'{"resourceSpans": [{"resource": {"attributes": [{"key": "\xff\xfe"}]}}]}',
     "application/json", 400, "UTF-8"),
    ("invalid UTF-8 in a protobuf string", None, "application/x-protobuf", 400, "protobuf"),
    ("wrong media type", b"{}", "text/plain", 415, "Content-Type"),
])
def test_undecodable_requests_get_the_spec_status(env: dict[str, Any], name: str, body: bytes | None, ctype: str,
                                                  status: int, says: str) -> None:
    if body is None:  # a span name holding bytes that are not UTF-8
        ok = pb_request([pb_span(tid(), sid(), {})]).SerializeToString()
        body = ok.replace(b"span-name", b"span\xff\xfeme")
    before = count_spans(env["a"])
    r = post(env, body, ctype=ctype)
    assert r.status_code == status, r.text
    assert says in _status(r), _status(r)
    assert count_spans(env["a"]) == before


def test_size_limits(env: dict[str, Any]) -> None:
    before = count_spans(env["a"])
    r = post(env, b"\x00" * 3_100_000)
    assert r.status_code == 413
    bomb = gzip.compress(b"\x00" * 50_000_000)  # 50 MB inflated from ~50 kB
    r = post(env, bomb, **{"Content-Encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in _status(r)
    r = post(env, b"x", **{"Content-Encoding": "br"})
    assert r.status_code == 415
    assert count_spans(env["a"]) == before


def test_hostile_spans_are_counted_in_partial_success(env: dict[str, Any]) -> None:
    a = env["a"]
    t = tid()
    ok = jspan(t, sid(), "fine", {"k": "v"})
    hostile = [
        jspan(t, sid(), "many", {f"a{i}": i for i in range(10_000)}),
        jspan(t, sid(), "huge", {"gen_ai.input.messages": "x" * 1_048_576}),
        jspan(t, sid(), "nul", {"k": "a\x00b"}),
        {**jspan(t, sid(), "short id", {}), "spanId": "abcd"},
        {**jspan(t, sid(), "not hex", {}), "traceId": "z" * 32},
        jspan(t, sid(), "future", {}, start=NOW + 400 * 24 * 3600 * 10**9),
        jspan(t, sid(), "seconds", {}, start=1_700_000_000),
    ]
    r = post(env, jrequest(ok, *hostile))
    assert r.status_code == 200
    ps = r.json()["partialSuccess"]
    assert ps["rejectedSpans"] == len(hostile)
    msg = ps["errorMessage"]
    for words in ("more than 1000 attributes", "over the 1000000 limit", "NUL", "span id must be 8 bytes"):
        assert words in msg, msg
    tr = a.traces.trace(t)
    assert [n.name for n in tr.roots] == ["fine"]


def test_auth_and_scopes(env: dict[str, Any]) -> None:
    body = jrequest(jspan(tid(), sid(), "x", {}))
    import orjson

    r = env["http"].post("/v1/traces", content=orjson.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and "API key" in r.json()["message"]
    r = post(env, body, key=env["key_read"])
    assert r.status_code == 403 and "ingest" in r.json()["message"]


def test_too_many_concurrent_exports_get_429_with_retry_after(client: learnloop.Client, env: dict[str, Any],
                                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import asyncio

    from fastapi.testclient import TestClient

    from learnloop.api import create_app
    from learnloop.api.routes import otlp as route
    from learnloop.config import get_settings

    app = create_app(get_settings(home=tmp_path, api_preload_model=False), client=client, archive=False)
    app.state.otlp_gate = asyncio.Semaphore(0)  # every slot taken
    monkeypatch.setattr(route, "QUEUE_WAIT", 0.05)
    with TestClient(app) as tc:
        r = tc.post("/v1/traces", content=pb_request([pb_span(tid(), sid(), {})]).SerializeToString(),
                    headers={"Authorization": f"Bearer {env['key_a']}", "Content-Type": "application/x-protobuf"})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert "too many" in status_pb2.Status.FromString(r.content).message


# -- protobuf builders (also used by test_otel_instrumented) ------------------------------

def any_value(v: Any) -> common_pb2.AnyValue:
    if isinstance(v, bool):
        return common_pb2.AnyValue(bool_value=v)
    if isinstance(v, int):
        return common_pb2.AnyValue(int_value=v)
    if isinstance(v, float):
        return common_pb2.AnyValue(double_value=v)
    if isinstance(v, list):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[any_value(x) for x in v]))
    if isinstance(v, dict):
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=kvs(v)))
    return common_pb2.AnyValue(string_value=str(v))


def kvs(d: dict[str, Any]) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=any_value(v)) for k, v in d.items() if v is not None]


def pb_span(trace_id: str, span_id: str, attrs: dict[str, Any], parent: str | None = None,
            name: str = "span-name", start: int | None = None, end: int | None = None) -> trace_pb2.Span:
    start = start or NOW - 10**9
    return trace_pb2.Span(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(span_id),
                          parent_span_id=bytes.fromhex(parent) if parent else b"", name=name, kind=3,
                          start_time_unix_nano=start, end_time_unix_nano=end or start + 5 * 10**7,
                          attributes=kvs(attrs))


def pb_request(spans: list[trace_pb2.Span], resource: dict[str, Any] | None = None) -> tsvc.ExportTraceServiceRequest:
    from opentelemetry.proto.resource.v1 import resource_pb2

    return tsvc.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        resource=resource_pb2.Resource(attributes=kvs(resource or {"service.name": "pb-app"})),
        scope_spans=[trace_pb2.ScopeSpans(spans=spans)])])


def request_from_trace(tr: Any) -> bytes:
    """The protobuf request that carries a stored trace's spans again (an exporter retry)."""
    spans = []

    def walk(n: Any) -> None:
        spans.append(pb_span(n.trace_id, n.span_id, n.attributes, n.parent_span_id, n.name,
                             int(n.started_at.timestamp() * 1e9), int(n.ended_at.timestamp() * 1e9)))
        for c in n.children:
            walk(c)

    for r in tr.roots:
        walk(r)
    return bytes(pb_request(spans, tr.resource).SerializeToString())


def test_database_saturated_gets_503_with_retry_after(db_url: str, env: dict[str, Any], tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from learnloop.api import create_app
    from learnloop.config import get_settings

    # A server whose only database connection is busy: the export waits api_db_timeout, then 503.
    ll = learnloop.connect(db_url, pool_min=1, pool_max=1)
    try:
        app = create_app(get_settings(home=tmp_path, api_db_timeout=0.3, api_preload_model=False), client=ll,
                         archive=False)
        with TestClient(app) as tc, ll.db.connection():
            r = tc.post("/v1/traces", content=pb_request([pb_span(tid(), sid(), {})]).SerializeToString(),
                        headers={"Authorization": f"Bearer {env['key_a']}", "Content-Type": "application/x-protobuf"})
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert "available" in status_pb2.Status.FromString(r.content).message
    finally:
        ll.close()


def test_phoenix_span_annotations_become_feedback(env: dict[str, Any]) -> None:
    a: learnloop.Client = env["a"]
    t, llm, chain = tid(), sid(), sid()
    post(env, jrequest(jspan(t, chain, "rag", {"openinference.span.kind": "CHAIN"}),
                       jspan(t, llm, "llm", {"openinference.span.kind": "LLM", "llm.model_name": "m"}, parent=chain)))
    h = {"Authorization": f"Bearer {env['key_a']}", "X-Learnloop-Project": "app"}
    body = {"data": [{"span_id": llm, "name": "correctness", "annotator_kind": "LLM",
                      "result": {"label": "correct", "score": 1.0, "explanation": "matches the policy"}}]}
    r = env["http"].post("/v1/span_annotations", json=body, headers=h)
    assert r.status_code == 200 and r.json() == {"feedback": 1}, r.text
    r = env["http"].post("/v1/span_annotations", json=body, headers=h)  # the same annotation again
    assert r.json() == {"feedback": 0}
    (fb,) = a.feedback_for(a.traces.trace(t).generations[0])
    assert fb.source == "automatic" and fb.sentiment == "POSITIVE" and fb.tags == ["correctness", "correctness:correct"]
    # an unknown span (or another tenant's) is a 404 problem, and nothing is written
    r = env["http"].post("/v1/span_annotations", json={"data": [{"span_id": "f" * 16, "name": "x"}]}, headers=h)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
