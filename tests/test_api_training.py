"""HTTP training routes against the real database and model, and a local server speaking the
OpenAI files + fine-tuning API: datasets and their streamed export (byte-identical to the
library's file), jobs (idempotent start, sync, provenance), dictionary, catalog,
predictions (report checked by hand), tenant isolation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import learnloop
from learnloop.api import create_app
from learnloop.config import get_settings
from tests.fake_openai_server import FakeOpenAI


@pytest.fixture(scope="module")
def env(client: learnloop.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("api-training")
    with FakeOpenAI() as fake:
        s = get_settings(home=home, archive_root=str(home / "archive"), finetune_base_url=fake.base_url,
                         finetune_api_key="sk-test", finetune_timeout=5)
        a = client.scoped(tenant="tr-a")
        b = client.scoped(tenant="tr-b")
        _, key_a = a.events.create_key("a", ["admin"])
        _, key_a_ingest = a.events.create_key("a-ingest", ["ingest", "read"])
        _, key_b = b.events.create_key("b", ["admin"])
        gens = []
        for i in range(12):
            g = a.log(kind="chat", prompt=f"¿Cuál es el saldo del préstamo {i}?",
                      output_text=f"El saldo del préstamo {i} es {i * 1000} COP.", model="gpt-4o-mini",
                      links={"loan": str(i)})
            a.feedback(g.id, thumbs=1)
            gens.append(g)
        bad = a.log(kind="chat", prompt="¿Fecha de la cuota?", output_text="No sé.", model="gpt-4o-mini")
        a.feedback(bad.id, thumbs=-1)
        app = create_app(s, client=client, archive=False)
        with TestClient(app) as tc:
            yield {"tc": tc, "a": a, "b": b, "key_a": key_a, "key_a_ingest": key_a_ingest, "key_b": key_b,
                   "gens": gens, "bad": bad, "fake": fake}


def H(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


@pytest.fixture(scope="module")
def ds(env: dict[str, Any]) -> dict[str, Any]:
    r = env["tc"].post("/v1/datasets", headers=H(env["key_a"]), json={
        "name": "good", "filter": {"verdict": "POSITIVE"}, "options": {"validation": 0.25, "seed": 1}})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_dataset_create_is_versioned_and_reused(env: dict[str, Any], ds: dict[str, Any]) -> None:
    tc, k = env["tc"], env["key_a"]
    assert ds["version"] == 1 and ds["counts"]["examples"] == 12 and ds["reused"] is False
    assert ds["counts"]["train"] + ds["counts"]["validation"] == 12
    same = tc.post("/v1/datasets", headers=H(k), json={
        "name": "good", "filter": {"verdict": "POSITIVE"}, "options": {"validation": 0.25, "seed": 1}}).json()
    assert same["id"] == ds["id"] and same["reused"] is True
    for ref in (ds["id"], "good", "good@1"):
        assert tc.get(f"/v1/datasets/{ref}", headers=H(k)).json()["content_hash"] == ds["content_hash"]
    assert [d["id"] for d in tc.get("/v1/datasets", headers=H(k)).json()["items"]] == [ds["id"]]
    assert tc.get("/v1/datasets/good@9", headers=H(k)).status_code == 404
    assert tc.get("/v1/datasets/good@x", headers=H(k)).status_code == 422


@pytest.mark.parametrize("body,where", [
    ({"name": "x", "filter": {"verdict": "MEH"}}, "verdict"),
    ({"name": "x", "filter": {"links": {"loan": "nope"}}}, "matched no generations"),
    ({"name": "x", "kind": "preference", "filter": {"verdict": "POSITIVE"}}, "preference"),
    ({"name": "x", "filter": {"colour": "red"}}, "colour"),
    ({"name": "a@b"}, "name"),
    ({"name": "x", "options": {"validation": 1.5}}, "validation"),
])
def test_bad_datasets_are_422_and_write_nothing(env: dict[str, Any], body: dict[str, Any], where: str) -> None:
    r = env["tc"].post("/v1/datasets", headers=H(env["key_a"]), json=body)
    assert r.status_code == 422 and where in r.text, r.text
    assert env["tc"].get("/v1/datasets", headers=H(env["key_a"]), params={"name": body["name"]}).json()["items"] == []


@pytest.mark.parametrize("fmt,split", [("chat", None), ("completion", None), ("chat", "train"), ("chat", "validation")])
def test_export_stream_equals_the_library_file(env: dict[str, Any], ds: dict[str, Any], tmp_path: Path,
                                              fmt: str, split: str | None) -> None:
    params = {"format": fmt, **({"split": split} if split else {})}
    r = env["tc"].get(f"/v1/datasets/{ds['id']}/export", headers=H(env["key_a"]), params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/jsonl")
    assert r.headers["content-disposition"] == f'attachment; filename="good-1-{fmt}{"-" + split if split else ""}.jsonl"'
    assert r.headers["x-learnloop-content-hash"] == ds["content_hash"]
    target = tmp_path / "lib.jsonl"
    report = env["a"].training.export(ds["id"], target, fmt=fmt, split=split)
    assert r.content == target.read_bytes()
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert len(lines) == report["examples"] == (ds["counts"][split] if split else 12)


def test_export_errors_are_4xx_before_any_byte(env: dict[str, Any], ds: dict[str, Any]) -> None:
    tc, k = env["tc"], env["key_a"]
    url = f"/v1/datasets/{ds['id']}/export"
    r = tc.get(url, headers=H(k), params={"format": "preference"})
    assert r.status_code == 422 and "preference dataset" in r.json()["detail"]
    assert tc.get(url, headers=H(k), params={"format": "yaml"}).status_code == 422
    assert tc.get(url, headers=H(k), params={"split": "test"}).status_code == 422
    assert tc.get("/v1/datasets/nope/export", headers=H(k)).status_code == 404
    # An exhausted pool would make this hang then 503: each refused export gave its connection back.
    for _ in range(3 * env["a"].db.pool.max_size):
        assert tc.get(url, headers=H(k), params={"format": "preference"}).status_code == 422
    assert tc.get(url, headers=H(k)).status_code == 200


def test_job_start_is_idempotent_sync_and_provenance(env: dict[str, Any], ds: dict[str, Any]) -> None:
    tc, k, fake = env["tc"], env["key_a"], env["fake"]
    body = {"dataset": "good@1", "base_model": "gpt-4o-mini-2024-07-18", "hyperparameters": {"epochs": 2}}
    hdr = H(k, **{"Idempotency-Key": "start-1"})
    before = len(fake.jobs)
    r1 = tc.post("/v1/training/jobs", headers=hdr, json=body)
    assert r1.status_code == 201, r1.text
    r2 = tc.post("/v1/training/jobs", headers=hdr, json=body)
    assert r2.json() == r1.json() and r2.headers.get("Idempotent-Replayed") == "true"
    assert len(fake.jobs) == before + 1  # the retry did not start a second remote job
    job = r1.json()
    assert job["status"] == "pending" and job["example_count"] == 12
    assert len(fake.file_lines[job["training_file_id"]]) == ds["counts"]["train"]

    for _ in range(10):
        job = tc.post(f"/v1/training/jobs/{job['id']}/sync", headers=H(k)).json()
        if job["status"] == "succeeded":
            break
    assert job["status"] == "succeeded" and job["result_model"]
    assert tc.get(f"/v1/training/jobs/{job['id']}", headers=H(k)).json()["result_model"] == job["result_model"]
    assert job["id"] in [j["id"] for j in tc.get("/v1/training/jobs", headers=H(k)).json()["items"]]
    assert tc.get(f"/v1/training/jobs/{job['id']}/events", headers=H(k)).json()

    trained = tc.get(f"/v1/training/models/{job['result_model']}/generations", headers=H(k)).json()
    assert {t["generation_id"] for t in trained} == {str(g.id) for g in env["gens"]}
    assert str(env["bad"].id) not in {t["generation_id"] for t in trained}
    trace = tc.get(f"/v1/generations/{env['gens'][0].id}/training", headers=H(k)).json()
    assert job["result_model"] in json.dumps(trace) and ds["id"] in json.dumps(trace)
    assert tc.get("/v1/training/models/ft:unknown/generations", headers=H(k)).status_code == 404


def test_job_start_failures(env: dict[str, Any], ds: dict[str, Any]) -> None:
    tc, k, fake = env["tc"], env["key_a"], env["fake"]
    body = {"dataset": ds["id"], "base_model": "gpt-nope"}
    assert tc.post("/v1/training/jobs", headers=H(env["key_a_ingest"]), json=body).status_code == 403
    assert tc.post("/v1/training/jobs", headers=H(k), json={**body, "dataset": "nope"}).status_code == 404
    assert tc.post("/v1/training/jobs", headers=H(k), json={**body, "hyperparameters": {"lr": -1}}).status_code == 422
    jobs_before = len(tc.get("/v1/training/jobs", headers=H(k)).json()["items"])
    fake.fail_create = 400
    try:
        hdr = H(k, **{"Idempotency-Key": "start-fails"})
        r = tc.post("/v1/training/jobs", headers=hdr, json=body)
        assert r.status_code == 502 and "not available for fine-tuning" in r.json()["detail"]
        assert len(tc.get("/v1/training/jobs", headers=H(k)).json()["items"]) == jobs_before
    finally:
        fake.fail_create = None
    # The failed attempt did not use the key up.
    r = tc.post("/v1/training/jobs", headers=hdr, json=body)
    assert r.status_code == 201 and r.headers.get("Idempotent-Replayed") is None


def test_dictionary_terms_and_lookup(env: dict[str, Any]) -> None:
    tc, k = env["tc"], env["key_a"]
    hdr = H(k, **{"X-Learnloop-Project": "dict"})
    term = {"word": "cédula", "table_name": "clientes", "field_name": "cedula", "synonyms": ["documento", "DNI"],
            "definition": "número de identidad del cliente"}
    r = tc.post("/v1/dictionary/terms", headers=hdr, json=term)
    assert r.status_code == 201 and r.json()["word"] == "cédula", r.text
    tc.post("/v1/dictionary/terms", headers=hdr, json={"word": "saldo", "table_name": "prestamos",
                                                        "field_name": "saldo_pendiente", "synonyms": ["deuda"]})
    assert tc.post("/v1/dictionary/terms", headers=hdr, json={**term, "word": "CEDULA"}).status_code == 409
    assert [t["word"] for t in tc.get("/v1/dictionary/terms", headers=hdr).json()["items"]] == ["cédula", "saldo"]
    exact = tc.get("/v1/dictionary/lookup", headers=hdr, params={"phrase": "la Cedula del cliente"}).json()
    assert (exact[0]["table"], exact[0]["field"], exact[0]["score"], exact[0]["match"]) == ("clientes", "cedula", 1.0, "exact")
    syn = tc.get("/v1/dictionary/lookup", headers=hdr, params={"phrase": "DNI"}).json()
    assert syn[0]["field"] == "cedula" and syn[0]["score"] == 0.95 and syn[0]["match"] == "synonym"
    sem = tc.get("/v1/dictionary/lookup", headers=hdr, params={"phrase": "cuánto debe el cliente", "min_score": 0}).json()
    assert sem and sem[0]["match"] == "semantic" and sem[0]["score"] < 0.95
    assert tc.get("/v1/dictionary/lookup", headers=hdr, params={"phrase": ""}).status_code == 422
    assert tc.post("/v1/dictionary/terms", headers=hdr, json={"word": "a\u0000"}).status_code == 422


def test_catalog_describe_and_list(env: dict[str, Any]) -> None:
    tc, k = env["tc"], env["key_a"]
    url = "/v1/catalog/fields/public/prestamos/estado"
    assert tc.put(url, headers=H(k), json={"definition": "loan state"}).status_code == 404  # never introspected
    r = tc.put(url, headers=H(k), json={"definition": "loan state", "allowed_values": ["ACTIVE", "PAID"], "create": True})
    assert r.status_code == 200 and r.json()["allowed_values"] == ["ACTIVE", "PAID"], r.text
    r = tc.put(url, headers=H(k), json={"notes": "PAID is final"})
    assert r.json()["definition"] == "loan state" and r.json()["notes"] == "PAID is final"
    assert tc.get(url, headers=H(k)).json()["notes"] == "PAID is final"
    listed = tc.get("/v1/catalog/fields", headers=H(k), params={"include_missing": True}).json()["items"]
    assert [(f["table_name"], f["field_name"]) for f in listed] == [("prestamos", "estado")]
    assert tc.put(url, headers=H(k), json={"colour": "red"}).status_code == 422
    assert tc.put(url, headers=H(k), json={}).status_code == 422
    assert tc.get("/v1/catalog/fields/public/prestamos/nope", headers=H(k)).status_code == 404


def test_predictions_outcomes_and_report(env: dict[str, Any]) -> None:
    tc, k = env["tc"], env["key_a"]
    hdr = H(k, **{"X-Learnloop-Project": "risk"})
    rows = [(0.9, True), (0.8, False), (0.3, False), (0.2, True), (0.6, True)]
    ids = []
    for i, (score, _) in enumerate(rows):
        r = tc.post("/v1/predictions", headers=hdr, json={"model_name": "impago", "model_version": "v1", "score": score,
                                                         "subject": {"loan": str(i)}, "factors": {"mora": i}})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    assert tc.post("/v1/predictions", headers=hdr, json={"model_name": "impago", "model_version": "v1",
                                                        "score": 1.5}).status_code == 422
    assert [p["id"] for p in tc.get("/v1/predictions", headers=hdr, params={"link": "loan:3"}).json()] == [ids[3]]
    for pid, (_, outcome) in zip(ids[:4], rows[:4], strict=True):
        r = tc.post(f"/v1/predictions/{pid}/outcome", headers=hdr, json={"outcome": outcome})
        assert r.status_code == 200 and r.json()["outcome"] is outcome
    assert tc.post(f"/v1/predictions/{ids[0]}/outcome", headers=hdr, json={"outcome": False}).status_code == 409
    assert tc.get(f"/v1/predictions/{ids[0]}", headers=hdr).json()["outcome"] is True

    rep = tc.get("/v1/predictions/models/impago/versions/v1/report", headers=hdr, params={"threshold": 0.5}).json()
    done = rows[:4]  # the fifth has no outcome yet
    tp = sum(1 for s, o in done if s >= 0.5 and o)
    fp = sum(1 for s, o in done if s >= 0.5 and not o)
    tn = sum(1 for s, o in done if s < 0.5 and not o)
    pos = [s for s, o in done if o]
    neg = [s for s, o in done if not o]
    auc = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    brier = sum((s - o) ** 2 for s, o in done) / len(done)
    assert rep["predictions"] == 5 and rep["with_outcome"] == 4 and rep["awaiting_outcome"] == 1
    assert rep["accuracy"] == pytest.approx((tp + tn) / 4)
    assert rep["precision"] == pytest.approx(tp / (tp + fp))
    assert rep["roc_auc"] == pytest.approx(auc) and rep["brier"] == pytest.approx(brier)
    assert tc.get("/v1/predictions/models/impago/versions/v9/report", headers=hdr).status_code == 404
    vers = tc.get("/v1/predictions/versions", headers=hdr).json()
    assert [(v["model_name"], v["model_version"]) for v in vers] == [("impago", "v1")]


def test_tenant_isolation_of_training(env: dict[str, Any], ds: dict[str, Any]) -> None:
    tc, ka, kb = env["tc"], env["key_a"], env["key_b"]
    job = next(j for j in env["a"].training.jobs() if j.result_model)  # the one trained above
    pred = tc.post("/v1/predictions", headers=H(ka), json={"model_name": "m", "model_version": "1", "score": 0.5}).json()
    tc.put("/v1/catalog/fields/public/t/f", headers=H(ka), json={"definition": "A's", "create": True})
    gid = env["gens"][0].id
    for method, url, body in [
        ("GET", f"/v1/datasets/{ds['id']}", None), ("GET", "/v1/datasets/good", None),
        ("GET", f"/v1/datasets/{ds['id']}/export", None),
        ("POST", "/v1/datasets", {"name": "steal", "filter": {"project": "default"}}),
        ("GET", f"/v1/training/jobs/{job.id}", None), ("GET", f"/v1/training/jobs/{job.id}/events", None),
        ("POST", f"/v1/training/jobs/{job.id}/sync", None),
        ("POST", "/v1/training/jobs", {"dataset": ds["id"], "base_model": "gpt-4o-mini-2024-07-18"}),
        ("GET", f"/v1/generations/{gid}/training", None),
        ("GET", f"/v1/predictions/{pred['id']}", None),
        ("POST", f"/v1/predictions/{pred['id']}/outcome", {"outcome": True}),
        ("GET", "/v1/predictions/models/m/versions/1/report", None),
        ("GET", "/v1/catalog/fields/public/t/f", None),
        ("PUT", "/v1/catalog/fields/public/t/f", {"definition": "B's"}),
    ]:
        r = tc.request(method, url, headers=H(kb), json=body)
        assert r.status_code in (404, 422) and "saldo" not in r.text, (method, url, r.status_code, r.text)
    assert tc.get(f"/v1/training/models/{job.result_model}/generations", headers=H(kb)).status_code == 404
    for url in ("/v1/datasets", "/v1/training/jobs", "/v1/dictionary/terms", "/v1/catalog/fields"):
        assert tc.get(url, headers=H(kb)).json()["items"] == [], url
    assert tc.get("/v1/predictions", headers=H(kb)).json() == []
    # A's data is untouched.
    assert tc.get(f"/v1/predictions/{pred['id']}", headers=H(ka)).json()["outcome"] is None
    assert tc.get("/v1/catalog/fields/public/t/f", headers=H(ka)).json()["definition"] == "A's"


def test_fine_tuning_without_a_provider_key_is_503(client: learnloop.Client, env: dict[str, Any],
                                                    ds: dict[str, Any], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    s = get_settings(home=tmp_path, finetune_base_url=env["fake"].base_url)
    with TestClient(create_app(s, client=client, archive=False)) as tc:
        r = tc.post("/v1/training/jobs", headers=H(env["key_a"]), json={"dataset": ds["id"], "base_model": "m"})
    assert r.status_code == 503 and "LEARNLOOP_FINETUNE_API_KEY" in r.json()["detail"]
