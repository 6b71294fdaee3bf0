"""Hybrid search: the BM25 text ranking checked against an independent Python BM25 over
the same lexemes, and the reciprocal rank fusion checked by recomputing it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from learnloop.knowledge.fulltext import K1, B
from learnloop.knowledge.search import RRF_K, SearchMixin
from learnloop.knowledge.vectors import EmbeddingRow, ensure_index, upsert_embeddings
from learnloop.store.ids import uuid7

MODEL = "test/hybrid-8"
TEXTS = [
    "The loan is approved when the income covers the monthly instalment.",
    "Loan approval takes two business days for large loans and loans above the limit.",
    "Payment plans let a client split an overdue payment into instalments.",
    "A client in default cannot apply for a new loan.",
    "Interest rates depend on the risk score of the client.",
    "Sourdough bread needs a starter, flour, water and salt.",
    "The analyst reviews large applications; small ones are approved automatically.",
    "Early repayment of a loan carries no penalty.",
]


class KB(SearchMixin):
    def __init__(self, c: Any) -> None:
        self._c = c


@pytest.fixture(scope="module")
def kb(client: Any) -> KB:
    c = client.scoped(project="hybrid")
    rng = np.random.default_rng(5)
    rows = [EmbeddingRow("entity", uuid7(), t, rng.standard_normal(8), entity_type="policy", metadata={"i": i})
            for i, t in enumerate(TEXTS)]
    with c.db.transaction() as conn:
        ensure_index(conn, MODEL, 8)
        upsert_embeddings(conn, c.scope, MODEL, rows)
    return KB(c)


def _python_bm25(kb: KB, query: str) -> dict[int, float]:
    with kb._c.db.connection() as conn:
        docs = []
        for t in TEXTS:
            lex = conn.execute("SELECT lexeme, positions FROM unnest(to_tsvector('english', %s))", (t,)).fetchall()
            docs.append({r["lexeme"]: len(r["positions"]) for r in lex})
        qlex = [r["lexeme"] for r in conn.execute("SELECT lexeme FROM unnest(to_tsvector('english', %s))", (query,))]
    n = len(docs)
    avgdl = sum(sum(d.values()) for d in docs) / n
    scores = {}
    for i, d in enumerate(docs):
        dl = sum(d.values())
        s = 0.0
        for t in qlex:
            if t in d:
                df = sum(1 for x in docs if t in x)
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                tf = d[t]
                s += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl / avgdl))
        if s > 0:
            scores[i] = s
    return scores


@pytest.mark.parametrize("query", [
    "how long does loan approval take for large applications?",
    "client default and new loans",
    "sourdough",
    "penalty for repaying early",
])
def test_text_ranking_is_bm25_and_fusion_is_rrf(kb: KB, query: str) -> None:
    q = np.random.default_rng(9).standard_normal(8).astype(np.float32)
    hits = kb.search(q, k=len(TEXTS), model=MODEL, hybrid=True, text=query, text_weight=1.0)
    expected = _python_bm25(kb, query)
    by_text = sorted((h for h in hits if h["text_rank"] is not None), key=lambda h: h["text_rank"])
    assert [h["metadata"]["i"] for h in by_text] == sorted(expected, key=lambda i: -expected[i])
    # Every row is in the dense list here (8 rows, depth 100); the fused score is the RRF sum.
    for h in hits:
        want = 1 / (RRF_K + h["dense_rank"]) + (1 / (RRF_K + h["text_rank"]) if h["text_rank"] else 0)
        assert h["score"] == pytest.approx(want)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    for h in hits:  # the text score is the BM25 score itself
        if h["text_rank"] is not None:
            assert h["text_score"] == pytest.approx(expected[h["metadata"]["i"]])
    # "auto": the same fusion with the text side weighted by this query's trust
    auto = kb.search(q, k=len(TEXTS), model=MODEL, hybrid=True, text=query)
    w = auto.trust["text_weight"]
    assert 0 < w <= 1 and auto.trust["dense_weight"] == 1.0
    for h in auto:
        want = 1 / (RRF_K + h["dense_rank"]) + (w / (RRF_K + h["text_rank"]) if h["text_rank"] else 0)
        assert h["score"] == pytest.approx(want, rel=1e-3)


def test_rare_word_outweighs_common_words(kb: KB) -> None:
    """idf at work: 'sourdough' (1 row) beats 'loan' (4 rows) in the text ranking."""
    q = np.zeros(8, dtype=np.float32)
    q[0] = 1
    hits = kb.search(q, k=3, model=MODEL, hybrid=True, text="loan sourdough")
    top_text = min((h for h in hits if h["text_rank"]), key=lambda h: h["text_rank"])
    assert top_text["content"].startswith("Sourdough")


def test_stop_words_only_query_falls_back_to_vectors(kb: KB) -> None:
    q = np.ones(8, dtype=np.float32)
    hits = kb.search(q, k=3, model=MODEL, hybrid=True, text="the and of")
    assert len(hits) == 3 and all(h["text_rank"] is None for h in hits)
