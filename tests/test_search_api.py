"""Search modes, results by document and option validation over HTTP (the real app, the
real model, the real database)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import learnloop
from learnloop.api import create_app
from learnloop.config import get_settings
from tests.conftest import DATA


@pytest.fixture(scope="module")
def api(client: learnloop.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("api-search")
    a = client.scoped(tenant="search-api")
    _, key = a.events.create_key("a", ["admin"])
    app = create_app(get_settings(home=home, archive_root=str(home / "archive")), client=client, archive=False)
    with TestClient(app) as tc:
        hdr = {"Authorization": f"Bearer {key}", "X-Learnloop-Project": "default"}
        ids = {}
        for name in ("loan-policy.md", "collections-faq.txt", "payment-plans.html"):
            r = tc.post("/v1/documents", headers=hdr, files={"file": (name, (DATA / "docs" / name).read_bytes())})
            assert r.status_code == 201 and r.json()["status"] == "processed", r.text
            ids[name] = r.json()["document_id"]
        yield {"tc": tc, "hdr": hdr, "ids": ids}


def test_every_mode_over_http(api: dict[str, Any]) -> None:
    tc, hdr = api["tc"], api["hdr"]
    for mode in ("dense", "fulltext", "hybrid"):
        r = tc.post("/v1/search", headers=hdr, json={"query": "late payment fee", "k": 3, "mode": mode})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["mode"] == mode and len(body["items"]) == (3 if mode != "fulltext" else 2)  # 2 chunks have the words
        if mode == "hybrid":
            assert body["path"].startswith("hybrid/") and 0 <= body["trust"]["text_weight"] <= 1
            assert all("dense_rank" in h and "text_rank" in h for h in body["items"])
        if mode == "fulltext":
            assert body["path"] == "fulltext" and all(h["score"] > 0 for h in body["items"])
    fixed = tc.post("/v1/search", headers=hdr, json={"query": "late payment fee", "k": 3, "mode": "hybrid",
                                                     "text_weight": 2.5, "dense_weight": 0.5, "depth": 20,
                                                     "path": "exact"}).json()
    assert fixed["path"] == "hybrid/exact" and fixed["trust"]["text_weight"] == 2.5
    assert fixed["trust"]["dense_weight"] == 0.5


def test_results_by_document_over_http(api: dict[str, Any]) -> None:
    tc, hdr = api["tc"], api["hdr"]
    r = tc.post("/v1/search", headers=hdr, json={"query": "paying an overdue loan in instalments", "k": 3,
                                                 "group_by": "document", "chunks_per_document": 2})
    assert r.status_code == 200, r.text
    docs = r.json()["items"]
    assert sorted(d["document_id"] for d in docs) == sorted(api["ids"].values())  # all three, once each
    assert [d["rank"] for d in docs] == [1, 2, 3]
    sims = [d["similarity"] for d in docs]
    assert sims == sorted(sims, reverse=True)
    for d in docs:
        assert 1 <= len(d["chunks"]) <= 2 and all(c["document_id"] == d["document_id"] for c in d["chunks"])
        assert d["chunks"][0]["similarity"] == d["similarity"]


@pytest.mark.parametrize(("body", "field"), [
    ({"query": "x", "path": "bogus"}, "path"),
    ({"query": "x", "mode": "hybrid", "path": "bogus"}, "path"),
    ({"query": "x", "mode": "fulltext", "path": "exact"}, "path"),
    ({"query": "x", "mode": "semantic"}, "mode"),
    ({"query": "x", "mode": "dense", "hybrid": True}, "mode"),
    ({"query": "x", "mode": "hybrid", "text_weight": "sometimes"}, "text_weight"),
    ({"query": "x", "mode": "hybrid", "depth": 0}, "depth"),
    ({"query": "x", "group_by": "file"}, "group_by"),
    ({"query": "x", "group_by": "document", "owner_types": ["entity"]}, "owner_types"),
    ({"vector": [0.1] * 384, "mode": "fulltext"}, "query"),
])
def test_bad_options_are_422_naming_the_field(api: dict[str, Any], body: dict[str, Any], field: str) -> None:
    r = api["tc"].post("/v1/search", headers=api["hdr"], json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert field in str(problem), problem
