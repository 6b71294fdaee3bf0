"""OTLP ingestion and the OpenAI wrapper's overhead.

1. Spans/s through ``POST /v1/traces`` (uvicorn, one worker, its own process) with 8
   concurrent exporters each sending 512-span protobuf batches (the bytes the OTLP/HTTP
   exporter sends, encoded before the clock starts so the senders' CPU stays out of the
   server's way on a 2-core box), p50/p99 per batch; against, in the same run and the same
   database, the library with the same 8 threads: ``ll.traces.ingest_otlp`` (same decoding
   and writes, no HTTP) and the ledger's bulk path alone (``ll.bulk_log`` of the
   generations those spans map to). Each trace is an agent turn of 4 spans: agent root,
   retriever (2 documents), model call (GenAI attributes, messages), tool. Two batch
   counts; the growth factor says whether throughput holds as the tables grow.
2. The wrapper's added latency per call: the official client against a local
   OpenAI-compatible server, bare and wrapped, calls alternating, p50 of each.

    python -m benchmarks otlp      (LEARNLOOP_BENCH_OTLP_BATCHES="64,256", LEARNLOOP_BENCH_CALLS=1000)
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

import httpx

from .common import MachineLoad, api_server, bench_client, percentiles, run_threads, save

EXPORTERS = 8
BATCH = 512
BATCH_COUNTS = [int(x) for x in os.environ.get("LEARNLOOP_BENCH_OTLP_BATCHES", "64,256").split(",")]
CALLS = int(os.environ.get("LEARNLOOP_BENCH_CALLS", "1000"))


def _batch(seq: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tsvc
    from opentelemetry.proto.common.v1 import common_pb2 as c
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2 as t

    def kv(k: str, v: Any) -> c.KeyValue:
        if isinstance(v, int):
            return c.KeyValue(key=k, value=c.AnyValue(int_value=v))
        if isinstance(v, float):
            return c.KeyValue(key=k, value=c.AnyValue(double_value=v))
        return c.KeyValue(key=k, value=c.AnyValue(string_value=v))

    now = time.time_ns() - 60 * 10**9
    spans = []
    for i in range(BATCH // 4):
        tid = uuid.uuid4().bytes
        root, ret, llm, tool = (uuid.uuid4().bytes[:8] for _ in range(4))
        n = seq * BATCH + i
        common = dict(trace_id=tid, kind=1, start_time_unix_nano=now, end_time_unix_nano=now + 900 * 10**6)
        spans += [
            t.Span(span_id=root, name="invoke_agent support", attributes=[
                kv("gen_ai.operation.name", "invoke_agent"), kv("gen_ai.conversation.id", f"conv-{n % 997}"),
                kv("user.id", f"user-{n % 211}")], **common),
            t.Span(span_id=ret, parent_span_id=root, name="retrieve", attributes=[
                kv("openinference.span.kind", "RETRIEVER"),
                kv("retrieval.documents.0.document.id", f"doc-{n % 50}"),
                kv("retrieval.documents.0.document.content", "Refunds are accepted within 30 days of purchase."),
                kv("retrieval.documents.0.document.score", 0.83),
                kv("retrieval.documents.1.document.id", f"doc-{(n + 7) % 50}"),
                kv("retrieval.documents.1.document.content", "Store credit is offered after 30 days."),
                kv("retrieval.documents.1.document.score", 0.61)],
                **{**common, "start_time_unix_nano": now + 10**6}),
            t.Span(span_id=llm, parent_span_id=root, name="chat gpt-4o-mini", attributes=[
                kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "openai"),
                kv("gen_ai.request.model", "gpt-4o-mini"), kv("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
                kv("gen_ai.request.temperature", 0.2), kv("gen_ai.request.max_tokens", 300),
                kv("gen_ai.usage.input_tokens", 412), kv("gen_ai.usage.output_tokens", 57),
                kv("gen_ai.response.id", f"chatcmpl-{n}"),
                kv("gen_ai.input.messages", '[{"role":"system","parts":[{"type":"text","content":"You are a '
                   'support agent."}]},{"role":"user","parts":[{"type":"text","content":"Can I return my order '
                   f'{n}?"}}]}}]'),
                kv("gen_ai.output.messages", '[{"role":"assistant","parts":[{"type":"text","content":"Yes, '
                   'within 30 days."}],"finish_reason":"stop"}]')],
                **{**common, "start_time_unix_nano": now + 2 * 10**7}),
            t.Span(span_id=tool, parent_span_id=root, name="execute_tool lookup_order", attributes=[
                kv("gen_ai.operation.name", "execute_tool"), kv("gen_ai.tool.name", "lookup_order")],
                **{**common, "start_time_unix_nano": now + 6 * 10**8}),
        ]
    req = tsvc.ExportTraceServiceRequest(resource_spans=[t.ResourceSpans(
        resource=resource_pb2.Resource(attributes=[kv("service.name", "support-bot"),
                                                   kv("deployment.environment.name", "bench")]),
        scope_spans=[t.ScopeSpans(spans=spans)])])
    return bytes(req.SerializeToString())


def _run(batches: list[bytes], send: Any) -> tuple[float, list[float]]:
    lat: list[float] = []
    lock = threading.Lock()
    it = iter(range(len(batches)))

    def worker() -> None:
        mine = []
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                break
            t0 = time.perf_counter()
            send(batches[i])
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=worker) for _ in range(EXPORTERS)]
    return run_threads(ts), lat


def _rows(body: bytes) -> list[dict[str, Any]]:
    """The generations a batch maps to, for the bare ledger bulk path."""
    from learnloop.traces import mapping, otlp
    from learnloop.traces.ingest import _drop_none

    out = []
    for s in otlp.flatten(otlp.parse_protobuf(body)).spans:
        k = mapping.span_kind(s.attributes)
        if k in mapping.GENERATION_KINDS:
            out.append(_drop_none(mapping.generation(s, k)))
    return out


class _Cpu:
    """CPU seconds used by the server process (or this one) and the database server: on a
    box shared with other work, spans per CPU-second is the figure load does not move."""

    def __init__(self, ll: Any) -> None:
        import psutil

        with ll.db.connection() as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        datadir = next(iter(row.values())) if isinstance(row, dict) else row[0]
        with open(os.path.join(datadir, "postmaster.pid")) as fh:
            self.pg = psutil.Process(int(fh.readline()))
        me = psutil.Process()
        self.server = next((c for c in me.children() if "uvicorn" in " ".join(c.cmdline())), me)

    def _pg(self) -> float:
        total = 0.0
        for p in [self.pg, *self.pg.children()]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except Exception:  # noqa: BLE001,S112 - a backend that just exited
                continue
        return total

    def read(self, server: bool) -> tuple[float, float]:
        t = self.server.cpu_times() if server else None
        own = (t.user + t.system) if t is not None else time.process_time()
        return own, self._pg()


def ingestion() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with bench_client(pool_max=20) as ll:
        _, key = ll.events.create_key("bench", ["admin"])
        with api_server(ll, LEARNLOOP_POOL_MAX="20", LEARNLOOP_API_PRELOAD_MODEL="false") as url:
            hdr = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-protobuf"}
            clients = threading.local()

            def http_send(body: bytes) -> None:
                c = getattr(clients, "c", None)
                if c is None:
                    c = clients.c = httpx.Client(base_url=url, headers=hdr, timeout=120)
                r = c.post("/v1/traces", content=body)
                assert r.status_code == 200 and r.content == b"", (r.status_code, r.content[:300])

            def lib_send(body: bytes) -> None:
                res = ll.traces.ingest_otlp(body)
                assert res.accepted == BATCH, res

            http_send(_batch(-1))  # warm-up: connections, plans
            cpu = _Cpu(ll)
            for n in BATCH_COUNTS:
                load = MachineLoad()
                row: dict[str, Any] = {"batches": n, "spans": n * BATCH}
                for name, send in (("http", http_send), ("library", lib_send)):
                    bodies = [_batch(i) for i in range(n)]
                    a0, p0 = cpu.read(server=name == "http")
                    el, lat = _run(bodies, send)
                    a1, p1 = cpu.read(server=name == "http")
                    row[name] = {"spans_per_s": n * BATCH / el, **percentiles(lat),
                                 "python_cpu_us_per_span": (a1 - a0) / (n * BATCH) * 1e6,
                                 "postgres_cpu_us_per_span": (p1 - p0) / (n * BATCH) * 1e6}
                rows = [_rows(_batch(i)) for i in range(n)]
                el, lat = _run(rows, ll.bulk_log)  # type: ignore[arg-type]
                gens = sum(len(r) for r in rows)
                row["ledger_bulk"] = {"generations_per_s": gens / el, **percentiles(lat)}
                row["http_vs_library"] = row["http"]["spans_per_s"] / row["library"]["spans_per_s"]
                row["load"] = load.summary()
                results[str(n)] = row
                h, lb, b = row["http"], row["library"], row["ledger_bulk"]
                print(f"{n} batches x {BATCH} spans, {EXPORTERS} exporters:"
                      f"\n  POST /v1/traces      {h['spans_per_s']:8.0f} spans/s  batch p50 {h['p50_ms']:.0f} ms,"
                      f" p99 {h['p99_ms']:.0f} ms"
                      f"\n  library ingest_otlp  {lb['spans_per_s']:8.0f} spans/s  batch p50 {lb['p50_ms']:.0f} ms,"
                      f" p99 {lb['p99_ms']:.0f} ms  (HTTP at {row['http_vs_library']:.2f}x)"
                      f"\n  CPU per span: HTTP server {h['python_cpu_us_per_span']:.0f} us + PostgreSQL"
                      f" {h['postgres_cpu_us_per_span']:.0f} us; library {lb['python_cpu_us_per_span']:.0f} us +"
                      f" {lb['postgres_cpu_us_per_span']:.0f} us"
                      f"\n  ledger bulk_log      {b['generations_per_s']:8.0f} generations/s (the {BATCH // 4}"
                      f" per batch alone)  p50 {b['p50_ms']:.0f} ms\n  [{row['load']}]", flush=True)
            if len(BATCH_COUNTS) > 1:
                a, z = results[str(BATCH_COUNTS[0])], results[str(BATCH_COUNTS[-1])]
                results["growth_http"] = z["http"]["spans_per_s"] / a["http"]["spans_per_s"]
                print(f"growth x{BATCH_COUNTS[-1] / BATCH_COUNTS[0]:.0f} in spans: HTTP throughput"
                      f" x{results['growth_http']:.2f}")
    return results


def wrapper_overhead() -> dict[str, Any]:
    import openai
    from tests.fake_openai_server import FakeOpenAI

    from learnloop.integrations.openai import wrap

    with bench_client() as ll, FakeOpenAI() as fake:
        raw = openai.OpenAI(base_url=fake.base_url, api_key="sk-bench", max_retries=0)
        wrapped = wrap(openai.OpenAI(base_url=fake.base_url, api_key="sk-bench", max_retries=0), ll)
        msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "what is a refund"}]
        for c in (raw, wrapped):  # warm-up
            for _ in range(20):
                c.chat.completions.create(model="gpt-4o-mini", messages=msgs)
        wrapped.learnloop.flush(30)
        t_raw: list[float] = []
        t_wrap: list[float] = []
        for i in range(CALLS):
            order = ((raw, t_raw), (wrapped, t_wrap)) if i % 2 else ((wrapped, t_wrap), (raw, t_raw))
            for c, acc in order:
                t0 = time.perf_counter()
                c.chat.completions.create(model="gpt-4o-mini", messages=msgs)
                acc.append(time.perf_counter() - t0)
        wrapped.learnloop.flush(60)
        # CPU per call, bare then wrapped, the recorder's writes included (flushed inside):
        # the figure the machine's load does not move.
        cpu = {}
        for name, c in (("raw", raw), ("wrapped", wrapped)):
            c0 = time.process_time()
            for _ in range(CALLS // 2):
                c.chat.completions.create(model="gpt-4o-mini", messages=msgs)
            if c is wrapped:
                wrapped.learnloop.flush(60)
            cpu[name] = (time.process_time() - c0) / (CALLS // 2) * 1000
        pr, pw = percentiles(t_raw), percentiles(t_wrap)
        out = {"calls": CALLS, "raw": pr, "wrapped": pw, "added_p50_ms": pw["p50_ms"] - pr["p50_ms"],
               "added_mean_ms": pw["mean_ms"] - pr["mean_ms"], "cpu_ms_per_call": cpu,
               "added_cpu_ms_per_call": cpu["wrapped"] - cpu["raw"], "logged": wrapped.learnloop.written,
               "failed": wrapped.learnloop.failed}
        print(f"wrapper, {CALLS} calls each: bare p50 {pr['p50_ms']:.2f} ms, wrapped p50 {pw['p50_ms']:.2f} ms"
              f" -> added p50 {out['added_p50_ms']:.3f} ms, mean {out['added_mean_ms']:.3f} ms;"
              f" CPU per call {cpu['raw']:.2f} -> {cpu['wrapped']:.2f} ms (+{out['added_cpu_ms_per_call']:.3f} ms,"
              f" the background write included); logged {out['logged']}, failed {out['failed']}")
    return out


def main() -> None:
    res = {"exporters": EXPORTERS, "batch": BATCH, "ingestion": ingestion(), "wrapper": wrapper_overhead()}
    save("otlp", res)
