"""Embedding providers, the cache, per-model indexes and re-embedding, on the real model and DB."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import psycopg
import pytest

import learnloop
from learnloop.embeddings import METRICS, content_hash, embed_with_cache, get_provider
from learnloop.embeddings.local import LocalProvider
from learnloop.embeddings.remote import OpenAIProvider
from learnloop.errors import ConfigurationError, InvalidInput, ProviderError
from learnloop.knowledge import vectors
from learnloop.knowledge.vectors import EmbeddingRow

FAKE_DIMS = 8


def fake_vector(text: str) -> list[float]:
    d = hashlib.sha256(text.encode()).digest()
    return [b - 128.0 for b in d[:FAKE_DIMS]]


class FakeOpenAI(BaseHTTPRequestHandler):
    """Speaks POST /v1/embeddings like api.openai.com; behaviour switched by model name."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        model, texts = body["model"], body["input"]
        if model == "slow":
            time.sleep(2)
        if model == "broken":
            return self._send(500, {"error": {"message": "the model is overloaded", "type": "server_error"}})
        if model == "denied":
            return self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        data = [{"object": "embedding", "index": i, "embedding": fake_vector(t)} for i, t in enumerate(texts)]
        if model == "short":
            data = data[:-1]
        data.reverse()  # the protocol carries an index; a client must not rely on order
        self._send(200, {"object": "list", "data": data, "model": model,
                         "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    def _send(self, status: int, payload: dict) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        try:
            self.wfile.write(raw)
        except BrokenPipeError:  # the client gave up (the timeout case)
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def openai_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
def local() -> LocalProvider:
    return get_provider("local")  # loads once per process


class Counting:
    """Wraps a provider and counts the texts that reach it."""

    def __init__(self, inner):
        self.inner, self.model_id, self.dimensions, self.seen = inner, inner.model_id, inner.dimensions, []

    def embed(self, texts):
        self.seen.extend(texts)
        return self.inner.embed(texts)


def test_local_model_is_normalised_and_semantic(local):
    v = local.embed(["The cat sits on the mat.", "A kitten is sitting on a rug.", "Quarterly tax filing deadlines."])
    assert v.dtype == np.float32 and v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    assert np.allclose(local.embed(["The cat sits on the mat."])[0], v[0], atol=1e-5)


def test_importing_and_non_embedding_commands_do_not_load_torch(cli_env):
    code = (
        "import sys, learnloop, learnloop.embeddings, learnloop.knowledge.client, learnloop.cli.knowledge\n"
        "from learnloop.cli.main import cli\n"
        "try:\n    cli(['documents', '--json'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'torch loaded'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=cli_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr


def test_cache_embeds_each_text_once(client, local):
    counting = Counting(local)
    texts = ["refund policy", "late fee", "refund policy", "interest rate"]
    before = METRICS.snapshot()
    with client.db.connection() as conn:
        first = embed_with_cache(conn, client.scope.tenant_id, counting, texts)
        assert counting.seen == ["refund policy", "late fee", "interest rate"]  # repeat in a batch: once
        second = embed_with_cache(conn, client.scope.tenant_id, counting, list(reversed(texts)))
        assert len(counting.seen) == 3  # all hits: the provider is not called again
        cached = conn.execute(
            "SELECT content_hash FROM learnloop.embedding_cache WHERE tenant_id = %s AND model = %s"
            " AND content_hash = ANY(%s)", (client.scope.tenant_id, local.model_id, [content_hash(t) for t in texts]),
        ).fetchall()
    assert {r["content_hash"] for r in cached} == {content_hash(t) for t in texts}
    assert all(r["content_hash"].startswith("sha256:") for r in cached)
    assert np.allclose(second, first[::-1], atol=1e-6)
    assert np.allclose(first, local.embed(texts), atol=1e-5)  # the cache returns what the model says
    after = METRICS.snapshot()
    assert after["cache_misses"] - before["cache_misses"] == 3
    assert after["cache_hits"] - before["cache_hits"] == 1 + 4
    assert after["texts_embedded"] - before["texts_embedded"] == 3
    assert after["embed_seconds"] > before["embed_seconds"]


def test_cache_is_per_tenant_and_rejects_nul(client, local):
    other = client.scoped(tenant="cache-other")
    counting = Counting(local)
    with client.db.connection() as conn:
        embed_with_cache(conn, client.scope.tenant_id, counting, ["tenant scoped text"])
        embed_with_cache(conn, other.scope.tenant_id, counting, ["tenant scoped text"])
        assert len(counting.seen) == 2
        with pytest.raises(InvalidInput, match="NUL"):
            embed_with_cache(conn, client.scope.tenant_id, counting, ["bad\x00text"])


def test_openai_provider_against_a_local_server(openai_url):
    FakeOpenAI.requests.clear()
    p = OpenAIProvider("fake-8", base_url=openai_url, api_key="sk-test", dimensions=FAKE_DIMS, batch_size=3,
                       max_retries=0)
    texts = [f"text {i}" for i in range(7)]
    v = p.embed(texts)
    assert v.shape == (7, FAKE_DIMS) and v.dtype == np.float32
    expected = np.array([fake_vector(t) for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(v, expected, atol=1e-6)  # order restored from "index", normalised
    assert [len(r["body"]["input"]) for r in FakeOpenAI.requests] == [3, 3, 1]
    assert {r["path"] for r in FakeOpenAI.requests} == {"/v1/embeddings"}
    assert FakeOpenAI.requests[0]["auth"] == "Bearer sk-test"
    # Unknown model, no dimensions given: asked once.
    probe = OpenAIProvider("fake-probe", base_url=openai_url, max_retries=0)
    assert probe.dimensions == FAKE_DIMS


@pytest.mark.parametrize(("model", "message"), [
    ("broken", "HTTP 500: the model is overloaded"),
    ("denied", "HTTP 401: Incorrect API key provided"),
    ("short", "returned 1 vectors for 2 texts"),
    ("slow", "timed out after 0.5 s"),
])
def test_openai_provider_failures_become_provider_errors(openai_url, model, message):
    # only "slow" should time out: the others get a timeout a busy box cannot miss
    p = OpenAIProvider(model, base_url=openai_url, api_key="k", dimensions=FAKE_DIMS,
                       timeout=0.5 if model == "slow" else 10, max_retries=0)
    with pytest.raises(ProviderError, match=message):
        p.embed(["a", "b"])


def test_unreachable_provider_and_settings(monkeypatch):
    p = OpenAIProvider("m", base_url="http://127.0.0.1:9/v1", api_key="k", dimensions=4, max_retries=0, timeout=2)
    with pytest.raises(ProviderError, match="cannot reach"):
        p.embed(["x"])
    with pytest.raises(ConfigurationError, match="unknown embedding provider"):
        get_provider("word2vec")
    monkeypatch.delenv("LEARNLOOP_OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("LEARNLOOP_OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="LEARNLOOP_OPENAI_API_KEY"):
        get_provider("openai", model="needs-a-key")
    monkeypatch.setenv("LEARNLOOP_EMBEDDING_PROVIDER", "openai")
    monkeypatch.setenv("LEARNLOOP_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LEARNLOOP_EMBEDDING_DIMENSIONS", "12")
    q = get_provider(model="from-env")
    assert isinstance(q, OpenAIProvider) and q.base_url == "http://127.0.0.1:9/v1" and q.dimensions == 12


def _indexdef(client, model):
    with client.db.connection() as conn:
        row = conn.execute(
            "SELECT i.indexdef, c.reloptions FROM learnloop.vector_indexes v"
            " JOIN pg_indexes i ON i.schemaname = 'learnloop' AND i.indexname = v.index_name"
            " JOIN pg_class c ON c.relname = v.index_name WHERE v.model = %s", (model,),
        ).fetchone()
    return row


def test_one_partial_hnsw_index_per_model_and_two_models_coexist(client, local, openai_url):
    kn = client.knowledge
    kn.upsert_entity("goal", "g1", "Learn to write Python unit tests", user_ref="u1")
    row = _indexdef(client, local.model_id)
    assert "USING hnsw (((embedding)::vector(384)) vector_cosine_ops)" in row["indexdef"]
    assert "WHERE (model = 'all-MiniLM-L6-v2'::text)" in row["indexdef"]
    assert sorted(row["reloptions"]) == ["ef_construction=64", "m=16"]
    # The search contract uses the index (cast + model predicate).
    q = local.embed(["unit testing in python"])[0]
    with client.db.transaction() as conn:
        # On a Citus cluster the shard's plan is the worker's: the setting must reach it
        # (a mere placeholder on plain PostgreSQL), and the values are inlined (a client
        # cursor) because Citus cannot show a remote plan with $n parameters.
        conn.execute("SET LOCAL citus.propagate_set_commands = 'local'")
        conn.execute("SET LOCAL enable_seqscan = off")
        cur = psycopg.ClientCursor(conn)
        plan = "\n".join(r["QUERY PLAN"] for r in cur.execute(
            "EXPLAIN SELECT owner_id FROM learnloop.embeddings WHERE tenant_id = %s AND model = %s"
            " ORDER BY (embedding::vector(384)) <=> %s::vector(384) LIMIT 5",
            (client.scope.tenant_id, local.model_id, q)).fetchall())
    assert vectors.index_name(local.model_id) in plan
    # A second model: its own index, with its own dimensions and settings.
    fake = OpenAIProvider("fake/embed 8", base_url=openai_url, api_key="k", dimensions=FAKE_DIMS, max_retries=0)
    with client.db.connection() as conn:
        name = vectors.ensure_index(conn, fake.model_id, FAKE_DIMS, m=8, ef_construction=32)
        assert name == vectors.index_name(fake.model_id) and name.isidentifier()
        with pytest.raises(InvalidInput, match="stored with 8 dimensions"):
            vectors.ensure_index(conn, fake.model_id, 16)
        with pytest.raises(InvalidInput, match="ef_construction"):
            vectors.ensure_index(conn, "other-model", 8, m=16, ef_construction=8)
    row = _indexdef(client, fake.model_id)
    assert "vector(8)" in row["indexdef"] and "WHERE (model = 'fake/embed 8'::text)" in row["indexdef"]
    assert sorted(row["reloptions"]) == ["ef_construction=32", "m=8"]
    assert {i["model"] for i in kn.indexes()} >= {local.model_id, fake.model_id}


def test_wrong_dimension_vector_writes_nothing(client, local):
    with client.db.connection() as conn:
        vectors.ensure_index(conn, local.model_id, local.dimensions)
        from learnloop.store.ids import uuid7

        good = EmbeddingRow("term", uuid7(), "fine", np.ones(384))
        bad = EmbeddingRow("term", uuid7(), "wrong", np.ones(383))
        with pytest.raises(InvalidInput, match="vector #1 has 383 dimensions; this model stores 384"):
            vectors.upsert_embeddings(conn, client.scope, local.model_id, [good, bad])
        n = conn.execute("SELECT count(*) AS n FROM learnloop.embeddings WHERE owner_id = ANY(%s)",
                         ([good.owner_id, bad.owner_id],)).fetchone()["n"]
        assert n == 0
        with pytest.raises(InvalidInput, match="NaN"):
            vectors.upsert_embeddings(conn, client.scope, local.model_id,
                                      [EmbeddingRow("term", uuid7(), "nan", np.full(384, np.nan))])
        with pytest.raises(InvalidInput, match="owner_type"):
            vectors.upsert_embeddings(conn, client.scope, local.model_id,
                                      [EmbeddingRow("bogus", uuid7(), "x", np.ones(384))])


def test_reembed_with_a_second_model_is_one_call_and_resumable(client, local, openai_url):
    scoped = client.scoped(project="reembed")
    kn = scoped.knowledge
    kn.upsert_entities([{"entity_type": "task", "entity_id": str(i), "text": f"task number {i}"} for i in range(5)])
    fake = OpenAIProvider("fake-reembed", base_url=openai_url, api_key="k", dimensions=FAKE_DIMS, max_retries=0)
    out = kn.with_provider(fake).reembed(batch_size=2)
    assert out["reembedded"] == 5
    counts = {(r["model"], r["owner_type"]): r["vectors"] for r in kn.model_counts()}
    assert counts[("fake-reembed", "entity")] == counts[(local.model_id, "entity")] >= 5
    with scoped.db.connection() as conn:
        rows = conn.execute(
            "SELECT content, embedding, entity_type FROM learnloop.embeddings WHERE tenant_id = %s"
            " AND project_id = %s AND model = 'fake-reembed'", (scoped.scope.tenant_id, scoped.scope.project_id),
        ).fetchall()
    for r in rows:  # the new vectors are the new model's vectors of the stored text
        expect = np.array(fake_vector(r["content"]), dtype=np.float32)
        assert np.allclose(r["embedding"].to_numpy(), expect / np.linalg.norm(expect), atol=1e-6)
        assert r["entity_type"] == "task"
    assert kn.with_provider(fake).reembed()["reembedded"] == 0  # nothing left: resumable, idempotent
    assert kn.drop_model("fake-reembed") == 5
    with pytest.raises(learnloop.NotFound):
        kn.drop_model("fake-reembed")
