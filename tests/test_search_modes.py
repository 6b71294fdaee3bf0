"""Every public search mode, results by document, path validation, and the docs kept in
step with the ranking's constants. Real documents through the real model and database."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from learnloop.errors import InvalidInput
from learnloop.knowledge import fulltext, fusion
from learnloop.knowledge import metrics as search_metrics
from learnloop.knowledge import search as s

ROOT = Path(__file__).resolve().parent.parent

LOAN = [
    "Loan approval takes two business days for loans under the limit.",
    "A loan above the limit is reviewed by an analyst before approval.",
    "The loan instalment is due on the fifth day of each month.",
    "Early repayment of a loan carries no penalty at all.",
]
BAKING = [
    "Sourdough bread needs a starter, flour, water and salt.",
    "Knead the dough for ten minutes until it is smooth and elastic.",
    "Let the dough rise overnight in a cool place, covered.",
    "Bake the bread at a high temperature with steam for a crisp crust.",
]


@pytest.fixture(scope="module")
def kn(client: Any) -> Any:
    c = client.scoped(project="modes")
    c.settings.chunk_tokens, c.settings.chunk_overlap = 16, 0  # one sentence, one chunk
    kn = c.knowledge
    docs = {}
    for i in range(4):  # four loan documents and four baking ones, four chunks each
        for topic, lines in (("loan", LOAN), ("baking", BAKING)):
            body = "\n\n".join(lines[(i + j) % 4] for j in range(4))
            r = kn.ingest_bytes(body.encode(), file_name=f"{topic}-{i}.txt", source=f"{topic}-{i}")
            assert r.status == "processed" and r.chunks == 4, r
            docs[f"{topic}-{i}"] = r.document_id
    kn.docs = docs
    return kn


def _doc_names(kn: Any, hits: list[dict[str, Any]]) -> list[str]:
    names = {v: k for k, v in kn.docs.items()}
    return [names[d["document_id"]] for d in hits]


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_by_document_returns_k_documents_even_when_the_best_chunks_crowd_few(kn: Any, mode: str) -> None:
    # k=8, one chunk each: the first round (16 chunks) is all loan chunks, four documents.
    docs = kn.search("how long does loan approval take?", k=8, mode=mode, group_by="document",
                     chunks_per_document=1)
    names = _doc_names(kn, docs)
    assert len(docs) == 8 and len(set(names)) == 8
    assert set(names[:4]) == {f"loan-{i}" for i in range(4)}  # every loan document before any baking one
    assert [d["rank"] for d in docs] == list(range(1, 9))
    assert all(len(d["chunks"]) == 1 and d["chunks"][0]["document_id"] == d["document_id"] for d in docs)


@pytest.mark.parametrize("mode", ["dense", "fulltext", "hybrid"])
def test_documents_rank_by_their_best_chunk(kn: Any, mode: str) -> None:
    q = "loan approval by an analyst"
    chunks = kn.search(q, k=32, mode=mode, owner_types="chunk")
    docs = kn.search(q, k=3, mode=mode, group_by="document", chunks_per_document=2)
    first_seen = list(dict.fromkeys(h["document_id"] for h in chunks))
    assert [d["document_id"] for d in docs] == first_seen[:3]
    key = "similarity" if mode == "dense" else "score"
    for d in docs:
        mine = [h for h in chunks if h["document_id"] == d["document_id"]][:2]
        assert [c["owner_id"] for c in d["chunks"]] == [c["owner_id"] for c in mine]  # its best chunks, in order
        assert d[key] == pytest.approx(mine[0][key])
        assert d["title"] and d["file_name"].endswith(".txt")


def test_fulltext_by_document_returns_only_the_documents_that_match(kn: Any) -> None:
    docs = kn.search("loan", k=8, mode="fulltext", group_by="document")
    assert sorted(_doc_names(kn, docs)) == [f"loan-{i}" for i in range(4)]  # k whenever k match: 4 do
    assert all("loan" in c["content"].lower() for d in docs for c in d["chunks"])


def test_fulltext_mode_is_bm25_alone_and_never_embeds(kn: Any) -> None:
    from learnloop.embeddings.metrics import METRICS as EMB

    before = EMB.snapshot()
    hits = kn.search("sourdough starter flour", k=5, mode="fulltext")
    after = EMB.snapshot()
    assert after.get("cache_hits", 0) + after.get("cache_misses", 0) == \
        before.get("cache_hits", 0) + before.get("cache_misses", 0)  # no query embedding at all
    assert hits.mode == "fulltext" and hits.path == "fulltext"
    assert len(hits) == 4 and all("Sourdough" in h["content"] for h in hits)  # the one chunk, in 4 docs
    assert [h["text_rank"] for h in hits] == [1, 2, 3, 4]
    assert all(h["similarity"] is None and h["score"] > 0 for h in hits)
    assert kn.search("zebra quantum", k=5, mode="fulltext") == []  # no word occurs: nothing, not noise


def test_dense_and_hybrid_modes_and_their_knobs(kn: Any) -> None:
    dense = kn.search("is there a penalty for early repayment", k=5, mode="dense")
    assert dense.mode == "dense" and dense.path in ("exact", "hnsw", "hnsw+exact")
    assert "Early repayment" in dense[0]["content"]
    auto = kn.search("is there a penalty for early repayment", k=5, mode="hybrid")
    assert auto.mode == "hybrid" and auto.path.startswith("hybrid/")
    t = auto.trust
    assert set(t) >= {"corroboration", "rarity", "decisiveness", "text_weight", "dense_weight"}
    assert t["text_weight"] == pytest.approx((t["corroboration"] + t["rarity"] + t["decisiveness"]) / 3, abs=1e-3)
    # text_weight 0: the fusion is the dense ranking itself (k=4: the four copies of the
    # best sentence; a cut inside a group of equal distances would be arbitrary)
    only_dense = kn.search("is there a penalty for early repayment", k=4, mode="hybrid", text_weight=0)
    assert [h["owner_id"] for h in only_dense] == [h["owner_id"] for h in dense[:4]]
    # dense_weight 0: the text ranking's order
    only_text = kn.search("is there a penalty for early repayment", k=5, mode="hybrid", dense_weight=0, text_weight=1)
    text = kn.search("is there a penalty for early repayment", k=5, mode="fulltext")
    assert [h["owner_id"] for h in only_text][:len(text)] == [h["owner_id"] for h in text]
    # depth: how many rows each side contributes
    shallow = kn.search("is there a penalty for early repayment", k=5, mode="hybrid", depth=1, text_weight=1)
    assert all((h["dense_rank"] or 1) <= 5 and (h["text_rank"] or 1) <= 5 for h in shallow)
    assert sum(h["dense_rank"] is not None for h in shallow) == 5  # max(depth, k) rows from each side


@pytest.mark.parametrize(("options", "message"), [
    ({"path": "bogus"}, "unknown path 'bogus'; use auto, hnsw, exact"),
    ({"path": "bogus", "mode": "hybrid"}, "unknown path 'bogus'"),
    ({"path": "exact", "mode": "fulltext"}, "full-text search has none"),
    ({"mode": "semantic"}, "unknown search mode 'semantic'; use dense, fulltext, hybrid"),
    ({"mode": "dense", "hybrid": True}, "contradicts"),
    ({"mode": "hybrid", "text_weight": "sometimes"}, 'text_weight must be a number from 0 to 100 or "auto"'),
    ({"mode": "hybrid", "dense_weight": -1}, "dense_weight must be a number from 0 to 100"),
    ({"mode": "hybrid", "depth": 0}, "depth must be an integer"),
    ({"group_by": "file"}, "unknown group_by 'file'"),
    ({"group_by": "document", "owner_types": "entity"}, "come from document chunks"),
    ({"group_by": "document", "chunks_per_document": 0}, "chunks_per_document must be an integer"),
])
def test_bad_options_are_refused_not_ignored(kn: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        kn.search("loan", k=3, **options)


@pytest.mark.parametrize("path", ["exact", "hnsw"])
def test_hybrid_honours_the_path(kn: Any, path: str) -> None:
    res = kn.search("loan approval", k=3, mode="hybrid", path=path)
    assert res.path == f"hybrid/{path}" and len(res) == 3


def test_a_vector_needs_text_for_fulltext(kn: Any) -> None:
    vec = kn.embed(["loan"])[0]
    with pytest.raises(InvalidInput, match="needs a text query"):
        kn.search(vec, k=3, mode="fulltext")
    hits = kn.search(vec, k=3, mode="fulltext", text="loan")
    assert len(hits) == 3 and all(h["similarity"] is not None for h in hits)


def test_slow_search_warnings_are_one_line_per_interval(client: Any, kn: Any, caplog: Any) -> None:
    search_metrics.METRICS.reset()
    client.settings.slow_search_ms = 0.0
    try:
        with caplog.at_level(logging.WARNING, logger="learnloop.knowledge.search"):
            for _ in range(12):
                kn.search("loan", k=2)
            search_metrics.METRICS.flush_slow_log()
    finally:
        client.settings.slow_search_ms = 200.0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("slow searches")]
    assert len(lines) == 2, lines  # the first at once, the other eleven counted into one line
    assert lines[0].startswith("slow searches: 1 over 0 ms")
    assert lines[1].startswith("slow searches: 11 over 0 ms")
    assert search_metrics.snapshot()["slow_searches"] == 12


def _doc_text() -> str:
    return (ROOT / "docs" / "retrieval.md").read_text()


def test_docs_state_the_ranking_rules_with_the_codes_constants() -> None:
    doc = _doc_text()
    assert f"score = dense_weight / ({fusion.RRF_K} + dense_rank) + text_weight / ({fusion.RRF_K} + text_rank)" in doc
    assert f"k1 = {fulltext.K1}, b = {fulltext.B}" in doc
    assert "idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))" in doc
    assert "text_weight = (corroboration + rarity + decisiveness) / 3" in doc
    assert f"top {fusion.SIGNAL_DEPTH} text rows" in doc
    assert f"1 - s{fusion.SIGNAL_DEPTH} / s1" in doc
    assert f"depth` (default {fusion.DEFAULT_DEPTH})" in doc
    assert f"`chunks_per_document` (default {fusion.DEFAULT_CHUNKS_PER_DOCUMENT})" in doc
    assert f"The default mode is **{s.DEFAULT_MODE}**" in doc
    assert f"text search configuration `{fulltext.LANGUAGE}`" in doc
    rules = doc.split("## Measured")[0]
    assert "textbook BM25" in rules and "ts_rank(" not in doc  # the code ranks by BM25, the docs say so
