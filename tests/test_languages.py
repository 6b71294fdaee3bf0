"""A language per project (full-text stemming, hybrid search) and an embedding model per
project. Acceptance: in a Spanish collection "préstamos" finds "préstamo" in full-text and
hybrid mode; an English project of the same texts does not stem Spanish; a language
PostgreSQL lacks and a model whose dimensions differ from stored vectors are refused."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

import learnloop
from learnloop.embeddings.remote import OpenAIProvider
from learnloop.errors import InvalidInput
from tests.test_embeddings import FAKE_DIMS, FakeOpenAI

DOCS = {
    "prestamo.txt": "Condiciones del préstamo personal: el préstamo se aprueba en 24 horas y se paga en 36 cuotas.",
    "tarjeta.txt": "La tarjeta de crédito no cobra comisión de apertura durante el primer año.",
    "mora.txt": "Un pago atrasado genera intereses moratorios desde el primer día de retraso.",
}


def _ingest(ll: learnloop.Client) -> None:
    for name, text in DOCS.items():
        assert ll.knowledge.ingest_bytes(text.encode(), file_name=name).status == "processed"


def _files(hits: Any) -> list[str]:
    return [h["file_name"] for h in hits]


def test_spanish_collection_finds_plural_and_singular(client: learnloop.Client) -> None:
    es = client.scoped(tenant="lang", project="politicas-es")
    assert es.knowledge.language() == "english"
    es.knowledge.set_language("spanish")
    _ingest(es)
    kn = es.knowledge
    assert kn.language() == "spanish"
    for query in ("préstamos", "Préstamos personales", "préstamo"):
        ft = kn.search(query, 3, mode="fulltext")
        assert _files(ft)[:1] == ["prestamo.txt"], (query, _files(ft))
        hy = kn.search(query, 3, mode="hybrid")
        assert _files(hy)[0] == "prestamo.txt" and hy[0]["text_rank"] == 1, (query, _files(hy))
    # Other words of the language stem too: "tarjetas" / "comisiones" find the singulars.
    assert _files(kn.search("tarjetas comisiones", 3, mode="fulltext"))[:1] == ["tarjeta.txt"]
    # The Spanish stop word "de" matches nothing on its own.
    assert _files(kn.search("de", 3, mode="fulltext")) == []


def test_english_project_does_not_stem_spanish(client: learnloop.Client) -> None:
    en = client.scoped(tenant="lang", project="politicas-en")
    _ingest(en)
    # "aprueban" and "aprueba" share a Spanish stem; English Snowball keeps them apart.
    es_hits = client.scoped(tenant="lang", project="politicas-es").knowledge.search("aprueban", 3, mode="fulltext")
    en_hits = en.knowledge.search("aprueban", 3, mode="fulltext")
    assert _files(es_hits)[:1] == ["prestamo.txt"] and en_hits == []


def test_changing_the_language_restems_stored_rows(client: learnloop.Client) -> None:
    p = client.scoped(tenant="lang", project="switch")
    _ingest(p)
    assert p.knowledge.search("aprueban", 3, mode="fulltext") == []  # English stems do not meet
    assert p.knowledge.set_language("spanish") == 3
    assert _files(p.knowledge.search("aprueban", 3, mode="fulltext"))[:1] == ["prestamo.txt"]


@pytest.mark.parametrize("bad", ["klingon", "", "spanish; DROP TABLE x", "Spanish", 7])
def test_a_language_postgresql_does_not_have_is_refused(client: learnloop.Client, bad: Any) -> None:
    p = client.scoped(tenant="lang", project="bad-language")
    with pytest.raises(InvalidInput) as exc:
        p.knowledge.set_language(bad)
    assert exc.value.field == "language"
    if isinstance(bad, str) and bad:
        assert "spanish" in exc.value.message  # the sentence lists what the server has
    assert p.knowledge.language() == "english"


@pytest.fixture(scope="module")
def openai_url() -> Any:
    """A local server speaking OpenAI's POST /v1/embeddings (tests.test_embeddings.FakeOpenAI)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_model_per_project_never_mixes_and_refuses_other_dimensions(db_url: str, openai_url: str) -> None:
    with learnloop.connect(db_url, tenant="lang-model", openai_base_url=openai_url, openai_api_key="sk-test") as ll:
        a, b = ll.scoped(project="model-a"), ll.scoped(project="model-b")
        a.knowledge.set_model("openai", model="fake-8")  # an OpenAI-compatible model: 8 dimensions
        assert a.knowledge.provider.model_id == "fake-8" and a.knowledge.provider.dimensions == FAKE_DIMS
        a.knowledge.upsert_entity("note", "n1", "refund within thirty days")
        b.knowledge.upsert_entity("note", "n1", "refund within thirty days")  # the server's default model
        with ll.db.connection() as conn:
            models = {(r["model"], r["project_id"]) for r in conn.execute(
                "SELECT model, project_id FROM learnloop.embeddings WHERE tenant_id = %s",
                (a.scope.tenant_id,)).fetchall()}
        assert models == {("fake-8", a.scope.project_id), (b.knowledge.provider.model_id, b.scope.project_id)}
        hits = a.knowledge.search("refund within thirty days", 5, all_projects=True)
        assert [h["entity_id"] for h in hits] == ["n1"]  # one model per search: b's vector never joins
        # A query vector of another model's size is refused, naming both sizes.
        with pytest.raises(InvalidInput, match="384 dimensions but model 'fake-8' stores 8"):
            a.knowledge.search(np.ones(384, dtype=np.float32), 3)
        # The same model name with other dimensions: refused before anything changes.
        with pytest.raises(InvalidInput, match="8-dimension vectors are stored"):
            b.knowledge.set_model(OpenAIProvider("fake-8", base_url=openai_url, api_key="sk-test", dimensions=16))
        assert b.knowledge.provider.model_id != "fake-8"


def test_project_language_and_model_over_http(db_url: str, openai_url: str, tmp_path: Any) -> None:
    """GET/PUT /v1/project/settings: the header's project; bad values are 422 problems
    naming the field and change nothing; a read key cannot change them."""
    from fastapi.testclient import TestClient

    from learnloop.api import create_app
    from learnloop.config import get_settings

    s = get_settings(home=tmp_path, archive_root=str(tmp_path / "archive"))
    with learnloop.connect(db_url, tenant="lang-http", openai_base_url=openai_url, openai_api_key="sk-test") as ll, \
            TestClient(create_app(s, client=ll, archive=False)) as tc:
        _, admin = ll.events.create_key("admin", ["admin"])
        _, reader = ll.events.create_key("reader", ["read"])
        h = {"Authorization": f"Bearer {admin}", "X-Learnloop-Project": "es-http"}
        ll.scoped(project="es-http").knowledge.upsert_entity("politica", "p1", "el préstamo se aprueba en 24 horas")
        got = tc.get("/v1/project/settings", headers=h).json()
        assert got["project"] == "es-http" and got["language"] == "english" and got["embedding_model"] is None
        assert "spanish" in got["available_languages"]
        assert got["model_in_use"] == ll.knowledge.provider.model_id

        r = tc.put("/v1/project/settings", json={"language": "spanish"}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["language"] == "spanish" and r.json()["restemmed"] == 1
        hits = tc.post("/v1/search", json={"query": "préstamos", "mode": "fulltext"}, headers=h).json()["items"]
        assert [x["entity_id"] for x in hits] == ["p1"]  # the plural finds the singular once Spanish

        for body, field in (({"language": "klingon"}, "language"), ({}, "language"),
                            ({"embedding_model": "fake-8"}, "embedding_provider"),
                            ({"embedding_provider": "local", "embedding_model": str(tmp_path / "no-model")},
                             "embedding_model"),
                            ({"language": "spanish", "embedding_provider": "cohere", "embedding_model": "x"},
                             "embedding_provider")):
            r = tc.put("/v1/project/settings", json=body, headers=h)
            assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), body
            assert field in r.text, (body, r.text)
        r = tc.put("/v1/project/settings", json={"language": "german"},
                   headers={**h, "Authorization": f"Bearer {reader}"})
        assert r.status_code == 403
        got = tc.get("/v1/project/settings", headers=h).json()
        assert (got["language"], got["embedding_provider"], got["embedding_model"]) == ("spanish", None, None)

        r = tc.put("/v1/project/settings", json={"embedding_provider": "openai", "embedding_model": "fake-8"},
                   headers=h)
        assert r.status_code == 200, r.text
        assert (r.json()["embedding_provider"], r.json()["model_in_use"]) == ("openai", "fake-8")
        assert r.json()["restemmed"] is None and r.json()["language"] == "spanish"
        other = tc.get("/v1/project/settings", headers={**h, "X-Learnloop-Project": "default"}).json()
        assert other["model_in_use"] != "fake-8"  # the other project keeps the server's model
