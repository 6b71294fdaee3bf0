"""HTTP knowledge routes against the real database, the real model and real files: uploads
(hostile ones become failed documents), search by text and vector with filters, hybrid,
entities, embedding generations and learning from success, tenant isolation, metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import learnloop
from learnloop.api import create_app
from learnloop.config import get_settings
from learnloop.embeddings.metrics import METRICS as EMB
from tests.conftest import DATA
from tests.files import hostile
from tests.test_documents import FILES, REAL_PDF

DOCS = DATA / "docs"
UPLOAD_LIMIT = 400_000


@pytest.fixture(scope="module")
def env(client: learnloop.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("api-knowledge")
    s = get_settings(home=home, archive_root=str(home / "archive"), api_max_body_bytes=1_000_000,
                     api_max_upload_bytes=UPLOAD_LIMIT)
    a = client.scoped(tenant="kn-a")
    b = client.scoped(tenant="kn-b")
    _, key_a = a.events.create_key("a", ["admin"])
    _, key_a_read = a.events.create_key("a-read", ["read"])
    _, key_b = b.events.create_key("b", ["admin"])
    app = create_app(s, client=client, archive=False)
    with TestClient(app) as tc:
        yield {"tc": tc, "a": a, "b": b, "key_a": key_a, "key_a_read": key_a_read, "key_b": key_b}


def H(key: str, project: str = "default", **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "X-Learnloop-Project": project, **extra}


def _upload(tc: TestClient, key: str, name: str, data: bytes, project: str = "default", **form: str) -> Any:
    return tc.post("/v1/documents", headers=H(key, project), files={"file": (name, data)}, data=form)


def test_upload_search_deactivate_delete_roundtrip(env: dict[str, Any]) -> None:
    tc, k = env["tc"], env["key_a"]
    policy = (DOCS / "loan-policy.md").read_bytes()
    r = _upload(tc, k, "loan-policy.md", policy, title="Loan policy", metadata='{"team": "credit"}')
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["status"] == "processed" and doc["chunks"] >= 1 and doc["file_type"] == "md"
    faq = _upload(tc, k, "collections-faq.txt", (DOCS / "collections-faq.txt").read_bytes()).json()
    assert faq["status"] == "processed"
    # Same bytes from the same source: nothing re-done, same document.
    again = _upload(tc, k, "loan-policy.md", policy)
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    assert again.json()["document_id"] == doc["document_id"]

    listed = tc.get("/v1/documents", headers=H(k)).json()
    assert {d["id"] for d in listed["items"]} == {doc["document_id"], faq["document_id"]}
    got = tc.get(f"/v1/documents/{doc['document_id']}", headers=H(k), params={"chunks": True}).json()
    assert got["title"] == "Loan policy" and got["metadata"] == {"team": "credit"}
    assert len(got["chunks"]) == doc["chunks"] and "35%" in got["extracted_text"]

    q = {"query": "What is the maximum monthly instalment relative to income?", "k": 3, "owner_types": ["chunk"]}
    hits = tc.post("/v1/search", headers=H(k), json=q).json()
    assert hits["items"][0]["document_id"] == doc["document_id"] and "35%" in hits["items"][0]["content"]
    assert hits["path"] in ("exact", "hnsw", "hnsw+exact") and len(hits["items"]) == min(3, doc["chunks"] + faq["chunks"])
    sims = [h["similarity"] for h in hits["items"]]
    assert sims == sorted(sims, reverse=True)
    fee = tc.post("/v1/search", headers=H(k), json={"query": "late fee missed payment", "k": 2, "hybrid": True}).json()
    assert fee["path"].startswith("hybrid/") and fee["items"][0]["document_id"] == faq["document_id"]
    only_faq = tc.post("/v1/search", headers=H(k), json={**q, "document_ids": [faq["document_id"]]}).json()
    assert {h["document_id"] for h in only_faq["items"]} == {faq["document_id"]}

    off = tc.post(f"/v1/documents/{doc['document_id']}/activate", headers=H(k), json={"active": False})
    assert off.status_code == 200 and off.json()["active"] is False
    hidden = tc.post("/v1/search", headers=H(k), json=q).json()
    assert doc["document_id"] not in {h["document_id"] for h in hidden["items"]}
    tc.post(f"/v1/documents/{doc['document_id']}/activate", headers=H(k), json={"active": True})
    assert tc.post("/v1/search", headers=H(k), json=q).json()["items"][0]["document_id"] == doc["document_id"]

    assert tc.delete(f"/v1/documents/{faq['document_id']}", headers=H(k)).status_code == 200
    assert tc.get(f"/v1/documents/{faq['document_id']}", headers=H(k)).status_code == 404
    assert tc.delete(f"/v1/documents/{faq['document_id']}", headers=H(k)).status_code == 404
    left = tc.post("/v1/search", headers=H(k), json={"query": "late fee", "k": 50, "owner_types": ["chunk"]}).json()
    assert faq["document_id"] not in {h["document_id"] for h in left["items"]}


def test_hostile_uploads_become_failed_documents(env: dict[str, Any], tmp_path: Any) -> None:
    tc, k = env["tc"], env["key_a"]
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-API-UPLOAD")
    cases = [
        ("bomb.docx", hostile.zip_bomb(60), "zip bomb"),
        ("xxe.docx", hostile.docx_with_xxe(str(secret)), "XXE"),
        ("aes256.pdf", (FILES / "crazyones-encrypted-256.pdf").read_bytes(), "encrypted with a password"),
        ("truncated.pdf", hostile.truncated_pdf(REAL_PDF), "corrupt PDF"),
        ("program.exe", b"MZ\x90\x00" + b"\x00" * 100, "unsupported file type"),
        ("empty.txt", b"", "empty"),
    ]
    for name, data, why in cases:
        r = _upload(tc, k, name, data, project="hostile")
        assert r.status_code == 201, (name, r.status_code, r.text)
        body = r.json()
        assert body["status"] == "failed" and body["error"] and body["chunks"] == 0, (name, why, body)
        doc = tc.get(f"/v1/documents/{body['document_id']}", headers=H(k, "hostile")).json()
        assert doc["status"] == "failed" and doc["error"] == body["error"]
    failed = tc.get("/v1/documents", headers=H(k, "hostile"), params={"status": "failed"}).json()["items"]
    assert len(failed) == len(cases)
    assert "TOP-SECRET" not in tc.get("/v1/documents", headers=H(k, "hostile")).text


def test_upload_limits_and_bad_forms(env: dict[str, Any]) -> None:
    tc, k = env["tc"], env["key_a"]
    r = _upload(tc, k, "big.txt", b"a" * (UPLOAD_LIMIT + 1), project="limits")
    assert r.status_code == 413 and str(UPLOAD_LIMIT) in r.json()["detail"]
    r = tc.post("/v1/documents", headers=H(k, "limits"), files={"file": ("huge.txt", b"a" * 1_100_000)})
    assert r.status_code == 413  # the whole request is over api_max_body_bytes
    assert _upload(tc, k, "a.txt", b"hello", project="limits", metadata="[1, 2]").status_code == 422
    assert _upload(tc, k, "a.txt", b"hello", project="limits", metadata="{nope").status_code == 422
    assert tc.post("/v1/documents", headers=H(k, "limits"), json={"file": "x"}).status_code == 422
    # A client's path is reduced to its file name; nothing is written under that path.
    r = _upload(tc, k, "../../etc/notes.txt", b"Quarterly notes about the harbour.", project="limits")
    assert r.status_code == 201 and r.json()["file_name"] == "notes.txt"
    assert tc.get("/v1/documents", headers=H(k, "nope-project")).status_code == 404
    # Nothing half-written by the refused requests: only the good upload is stored.
    assert [d["file_name"] for d in tc.get("/v1/documents", headers=H(k, "limits")).json()["items"]] == ["notes.txt"]


def test_entities_upsert_search_with_filters_delete(env: dict[str, Any]) -> None:
    tc, k = env["tc"], env["key_a"]
    hdr = H(k, "goals")
    goals = [("g-1", "Learn Python in three months", "completed", 0.92, "python"),
             ("g-2", "Learn Go for backend services", "completed", 0.55, "go"),
             ("g-3", "Practise Python data analysis", "active", 0.97, "python"),
             ("g-4", "Run a marathon", "completed", 0.99, None)]
    for gid, text, status, score, lang in goals:
        meta = {"status": status, "validation_score": score, **({"language": lang} if lang else {})}
        r = tc.put(f"/v1/entities/goal/{gid}", headers=hdr, json={"text": text, "user_ref": "u-7", "metadata": meta})
        assert r.status_code == 200 and r.json()["created"] is True, r.text
    r = tc.put("/v1/entities/goal/g-4", headers=hdr, json={"text": "Run a half marathon", "metadata": {"status": "active"}})
    assert r.json()["created"] is False and r.json()["text"] == "Run a half marathon" and r.json()["user_ref"] is None
    assert tc.get("/v1/entities/goal/g-4", headers=hdr).json()["metadata"] == {"status": "active"}

    body = {"query": "programming languages", "k": 10, "entity_types": ["goal"],
            "where": {"status": "completed", "validation_score": {"gt": 0.8}}}
    hits = tc.post("/v1/search", headers=hdr, json=body).json()["items"]
    # Computed by hand from the rows above: completed and score > 0.8 -> g-1 only (g-4 is active now).
    assert [h["entity_id"] for h in hits] == ["g-1"]
    both = tc.post("/v1/search", headers=hdr, json={"query": "python", "k": 10,
                                                    "where": {"language": {"in": ["python", "go"]}}}).json()["items"]
    assert {h["entity_id"] for h in both} == {"g-1", "g-2", "g-3"}
    assert both[0]["entity_id"] in ("g-1", "g-3")

    # A vector query finds the same rows as the text it was made from.
    vec = env["a"].knowledge.embed(["programming languages"])[0].tolist()
    by_vec = tc.post("/v1/search", headers=hdr, json={**body, "query": None, "vector": vec}).json()["items"]
    assert [h["entity_id"] for h in by_vec] == ["g-1"]
    assert abs(by_vec[0]["similarity"] - hits[0]["similarity"]) < 1e-5

    assert tc.delete("/v1/entities/goal/g-2", headers=hdr).status_code == 200
    assert tc.get("/v1/entities/goal/g-2", headers=hdr).status_code == 404
    assert tc.delete("/v1/entities/goal/g-2", headers=hdr).status_code == 404
    left = tc.post("/v1/search", headers=hdr, json={"query": "Go backend", "k": 10}).json()["items"]
    assert "g-2" not in {h["entity_id"] for h in left}


def test_idempotent_entity_upsert(env: dict[str, Any]) -> None:
    tc, k = env["tc"], env["key_a"]
    hdr = H(k, "idem-kn", **{"Idempotency-Key": "put-1"})
    r1 = tc.put("/v1/entities/note/n1", headers=hdr, json={"text": "first"})
    r2 = tc.put("/v1/entities/note/n1", headers=hdr, json={"text": "first"})
    assert r1.json() == r2.json() and r2.headers.get("Idempotent-Replayed") == "true"
    assert tc.put("/v1/entities/note/n1", headers=hdr, json={"text": "second"}).status_code == 409
    events = env["a"].events.list(event_types=["entity.upserted"], limit=10_000)
    assert len([e for e in events if e["payload"]["entity_type"] == "note"]) == 1


@pytest.mark.parametrize("body", [
    {"k": 3},
    {"query": "x", "vector": [0.1, 0.2]},
    {"vector": [0.1, 0.2, 0.3]},
    {"query": "x", "k": 0},
    {"query": "x", "k": 1001},
    {"query": "a\u0000b"},
    {"query": "   "},
    {"query": "x", "where": {"status": {"regex": ".*"}}},
    {"query": "x", "where": {"or": []}},
    {"query": "x", "owner_types": ["table"]},
    {"query": "x", "unknown": 1},
    {"query": "x", "document_ids": ["not-a-uuid"]},
    {"vector": [0.1] * 384, "hybrid": True},
])
def test_bad_searches_are_422(env: dict[str, Any], body: dict[str, Any]) -> None:
    r = env["tc"].post("/v1/search", headers=H(env["key_a"]), json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json") and r.json()["detail"]


def test_nan_vector_and_unknown_document_filter(env: dict[str, Any]) -> None:
    tc, k = env["tc"], env["key_a"]
    r = tc.post("/v1/search", headers={**H(k), "Content-Type": "application/json"},
                content=b'{"vector": [NaN' + b", 0.1" * 383 + b"]}")
    assert r.status_code == 422
    r = tc.post("/v1/search", headers=H(k), json={"query": "x", "document_ids": ["6f1c1d3e-0000-4000-8000-000000000001"]})
    assert r.status_code == 404


def test_embed_generations_and_learn_from_success(env: dict[str, Any]) -> None:
    tc, k = env["tc"], env["key_a"]
    hdr = H(k, "success")
    a = env["a"].scoped(project="success")
    good = a.log(kind="chat", prompt="How do I reverse a list in Python?", output_text="Use reversed() or slicing.")
    bad = a.log(kind="chat", prompt="How to reverse a Python list quickly?", output_text="You cannot.")
    meh = a.log(kind="chat", prompt="How can I reverse list order in Python?", output_text="list.reverse()")
    other = a.log(kind="chat", prompt="Best pasta recipe?", output_text="Carbonara.")
    a.feedback(good.id, sentiment="POSITIVE", rating=5)
    a.feedback(bad.id, sentiment="NEGATIVE", rating=1, tags=["WRONG"])
    a.feedback(meh.id, sentiment="POSITIVE", rating=3)
    a.feedback(other.id, sentiment="POSITIVE", rating=5)
    r = tc.post("/v1/generations/embed", headers=hdr, json={"what": "both"})
    assert r.status_code == 201 and r.json()["embedded"] == 4, r.text
    assert tc.post("/v1/generations/embed", headers=hdr, json={}).json()["embedded"] == 0

    q = {"query": "reverse a list in python", "k": 2}
    hits = tc.post("/v1/search/similar-successes", headers=hdr, json=q).json()["items"]
    assert {h["owner_id"] for h in hits} == {str(good.id), str(meh.id)}  # bad is NEGATIVE, pasta is far
    assert all(h["positives"] == 1 and h["negatives"] == 0 for h in hits)
    rated = tc.post("/v1/search/similar-successes", headers=hdr, json={**q, "min_rating": 4}).json()["items"]
    assert [h["owner_id"] for h in rated][0] == str(good.id) and str(meh.id) not in {h["owner_id"] for h in rated}
    shots = tc.post("/v1/search/similar-successes", headers=hdr,
                    json={**q, "k": 1, "min_rating": 4, "style": "messages"}).json()["few_shot"]
    assert shots == [{"role": "user", "content": good.prompt}, {"role": "assistant", "content": good.output_text}]
    # Feedback given now changes the answer now.
    a.feedback(good.id, sentiment="NEGATIVE")
    a.feedback(good.id, sentiment="NEGATIVE")
    now = tc.post("/v1/search/similar-successes", headers=hdr, json=q).json()["items"]
    assert str(good.id) not in {h["owner_id"] for h in now}
    assert tc.post("/v1/search/similar-successes", headers=hdr, json={**q, "positive": False}).status_code == 422


def test_tenant_isolation_of_knowledge(env: dict[str, Any]) -> None:
    tc, ka, kb = env["tc"], env["key_a"], env["key_b"]
    mine = _upload(tc, ka, "iso.txt", b"The lighthouse keeper logs every passing ship.", project="iso").json()
    tc.put("/v1/entities/goal/iso-1", headers=H(ka, "iso"), json={"text": "Paint the lighthouse red"})
    did = mine["document_id"]
    # B uses the same project name: a different project of a different tenant.
    tc.put("/v1/entities/goal/other", headers=H(kb, "iso"), json={"text": "Something of B's own"})
    for method, url, kw in [("GET", f"/v1/documents/{did}", {}), ("DELETE", f"/v1/documents/{did}", {}),
                            ("POST", f"/v1/documents/{did}/activate", {"json": {"active": False}}),
                            ("GET", "/v1/entities/goal/iso-1", {}), ("DELETE", "/v1/entities/goal/iso-1", {})]:
        r = tc.request(method, url, headers=H(kb, "iso"), **kw)
        assert r.status_code == 404, (method, url, r.status_code)
    r = tc.post("/v1/search", headers=H(kb, "iso"), json={"query": "lighthouse", "k": 50, "all_projects": True})
    assert "lighthouse" not in r.text.lower()
    assert tc.post("/v1/search", headers=H(kb, "iso"), json={"query": "x", "document_ids": [did]}).status_code == 404
    assert [d["id"] for d in tc.get("/v1/documents", headers=H(kb, "iso")).json()["items"]] == []
    # A's data is untouched.
    assert tc.get(f"/v1/documents/{did}", headers=H(ka, "iso")).json()["active"] is True
    assert tc.get("/v1/entities/goal/iso-1", headers=H(ka, "iso")).json()["text"] == "Paint the lighthouse red"


def test_scopes(env: dict[str, Any]) -> None:
    tc, kr = env["tc"], env["key_a_read"]
    assert tc.post("/v1/search", headers=H(kr), json={"query": "loan", "k": 1}).status_code == 200
    assert _upload(tc, kr, "x.txt", b"hello").status_code == 403
    assert tc.put("/v1/entities/goal/x", headers=H(kr), json={"text": "x"}).status_code == 403
    assert tc.post("/v1/generations/embed", headers=H(kr), json={}).status_code == 403
    assert tc.post("/v1/search", json={"query": "loan"}).status_code == 401


def test_search_metrics_are_exported(env: dict[str, Any]) -> None:
    tc, k = env["tc"], env["key_a"]
    for _ in range(3):
        assert tc.post("/v1/search", headers=H(k), json={"query": "interest rate for high risk", "k": 1}).status_code == 200
    text = tc.get("/metrics").text
    count = float(re.search(r"^learnloop_search_duration_seconds_count (\S+)$", text, re.M).group(1))
    assert count >= 3
    rate = float(re.search(r"^learnloop_embedding_cache_hit_rate (\S+)$", text, re.M).group(1))
    assert rate == pytest.approx(EMB.snapshot()["cache_hit_rate"], abs=1e-9)
    assert 0 < rate <= 1  # the repeated query text was served from the cache
    assert np.isfinite(rate)
