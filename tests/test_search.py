"""Search against the real database and the real model: seed 003 and seed 002 queries,
k rows under filters on both paths, hybrid, learn-from-success, metrics, bad input.

Entities and vectors are written with SQL and ``knowledge.vectors.upsert_embeddings``
(our own tables and writer), embedded by the packaged all-MiniLM-L6-v2.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
import pytest

from learnloop.errors import InvalidInput
from learnloop.knowledge import metrics as search_metrics
from learnloop.knowledge.search import SearchMixin, format_examples
from learnloop.knowledge.vectors import EmbeddingRow, ensure_index, upsert_embeddings
from learnloop.store.ids import uuid7

GOALS = [
    # (user, text, status)
    ("ana", "Build a REST API in Python with FastAPI and PostgreSQL", "completed"),
    ("ana", "Write unit tests for a Flask web service", "completed"),
    ("ana", "Create a web API with Django REST framework", "abandoned"),
    ("ana", "Learn to bake sourdough bread at home", "completed"),
    ("ben", "Build an HTTP JSON API with Python and SQLAlchemy", "completed"),
    ("ben", "Train a neural network to classify images", "in_progress"),
    ("ana", "Deploy a Python web backend to a Linux server", "in_progress"),
]
CODE = [
    # (text, language, validation_score)
    ("def add(a, b):\n    return a + b", "python", 0.95),
    ("def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)", "python", 0.85),
    ("def div(a, b):\n    return a / b  # no zero check", "python", 0.40),
    ("function add(a, b) { return a + b; }", "javascript", 0.97),
    ("def mul(a, b):\n    return a * b", "python", 0.80),
    ("def sub(a, b):\n    return a - b", "python", "high"),
]


class KB(SearchMixin):
    def __init__(self, c: Any) -> None:
        self._c = c


@pytest.fixture(scope="module")
def provider() -> Any:
    from learnloop.embeddings import get_provider

    return get_provider()


def _add_entities(client: Any, provider: Any, items: list[tuple[str, str, str | None, dict[str, Any]]]) -> list[UUID]:
    """(entity_type, text, user, metadata) -> entity ids, with embeddings."""
    scope = client.scope
    vecs = provider.embed([t for _, t, _, _ in items])
    ids = []
    rows = []
    with client.db.transaction() as conn:
        ensure_index(conn, provider.model_id, provider.dimensions)
        for (etype, text, user, meta), vec in zip(items, vecs, strict=True):
            eid = uuid7()
            conn.execute(
                "INSERT INTO learnloop.entities (tenant_id, id, project_id, entity_type, entity_id, user_ref, text, metadata)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (scope.tenant_id, eid, scope.project_id, etype, f"{etype}-{eid.hex}", user, text,
                 psycopg.types.json.Jsonb(meta)))
            rows.append(EmbeddingRow("entity", eid, text, vec, entity_type=etype, user_ref=user, metadata=meta))
            ids.append(eid)
        upsert_embeddings(conn, scope, provider.model_id, rows)
    return ids


@pytest.fixture(scope="module")
def kb(client: Any, provider: Any) -> KB:
    _add_entities(client, provider, [("goal", t, u, {"status": s}) for u, t, s in GOALS])
    _add_entities(client, provider, [("code_snapshot", t, "ana", {"language": lang, "validation_score": sc})
                                      for t, lang, sc in CODE])
    return KB(client)


def test_seed003_similar_completed_goals_of_this_user(kb: KB) -> None:
    hits = kb.search("I want to build a web API in Python", k=5, entity_types="goal", user="ana",
                     where={"status": "completed"})
    texts = [h["content"] for h in hits]
    # Only ana's completed goals (3 of them), the API one first; ben's and abandoned ones never.
    assert len(hits) == 3
    assert texts[0] == "Build a REST API in Python with FastAPI and PostgreSQL"
    assert set(texts) == {t for u, t, s in GOALS if u == "ana" and s == "completed"}
    assert all(h["metadata"]["status"] == "completed" and h["user_ref"] == "ana" for h in hits)
    assert all(h["entity_id"].startswith("goal-") for h in hits)
    sims = [h["similarity"] for h in hits]
    assert sims == sorted(sims, reverse=True) and sims[0] > 0.5


def test_seed003_validated_python_code_with_score_above_08(kb: KB) -> None:
    hits = kb.search("python function adding two numbers", k=10, entity_types="code_snapshot",
                     where={"language": "python", "validation_score": {"gt": 0.8}})
    # 0.95 and 0.85 pass; 0.80 is not > 0.8; 0.40 fails; the javascript one and the string
    # score "high" never match a numeric comparison.
    assert sorted(h["metadata"]["validation_score"] for h in hits) == [0.85, 0.95]
    assert hits[0]["content"].startswith("def add")
    gte = kb.search("python function", k=10, entity_types="code_snapshot",
                    where={"language": "python", "validation_score": {"gte": 0.8}})
    assert sorted(h["metadata"]["validation_score"] for h in gte) == [0.8, 0.85, 0.95]


def test_seed002_account_scoped_top3(client: Any, provider: Any) -> None:
    """Each phone-agent account is a tenant: its top 3 never include another account's rows."""
    acme, globex = client.scoped(tenant="acct-acme"), client.scoped(tenant="acct-globex")
    faq = ["Our opening hours are 9 to 5 on weekdays", "You can return a product within 30 days",
           "Shipping is free above 50 euros", "We accept Visa and Mastercard"]
    _add_entities(acme, provider, [("faq", t, None, {"account": "acme"}) for t in faq])
    _add_entities(globex, provider, [("faq", t, None, {"account": "globex"}) for t in faq + ["Opening hours: 24/7"]])
    for acct, c in (("acme", acme), ("globex", globex)):
        hits = KB(c).search("when are you open?", k=3)
        assert len(hits) == 3
        assert {h["metadata"]["account"] for h in hits} == {acct}
        assert "hours" in hits[0]["content"].lower()


def _vec_rows(client: Any, n: int, dims: int, model: str, rng: np.random.Generator) -> np.ndarray:
    vecs = rng.standard_normal((n, dims)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = [EmbeddingRow("entity", uuid7(), f"row {i}", v, entity_type="rare" if i % 100 == 0 else "common",
                         metadata={"bucket": i % 10, "i": i}) for i, v in enumerate(vecs)]
    with client.db.transaction() as conn:
        ensure_index(conn, model, dims)
        upsert_embeddings(conn, client.scope, model, rows)
        conn.execute("ANALYZE learnloop.embeddings")
    return vecs


@pytest.fixture(scope="module")
def synthetic(client: Any) -> tuple[KB, np.ndarray, str]:
    """3,000 random unit vectors of a 16-dim test model: 1% 'rare', 10% per bucket."""
    c = client.scoped(project="synthetic")
    model = "test/random-16"
    vecs = _vec_rows(c, 3000, 16, model, np.random.default_rng(7))
    return KB(c), vecs, model


def _exact_top(vecs: np.ndarray, q: np.ndarray, mask: np.ndarray, k: int) -> list[int]:
    sims = vecs @ q
    sims[~mask] = -np.inf
    order = np.argsort(-sims)
    return [int(i) for i in order[: min(k, int(mask.sum()))]]


@pytest.mark.parametrize("where,etype,expect_path", [
    (None, None, "hnsw"),
    ({"bucket": 3}, None, "hnsw"),              # 10%: the graph walk with iterative scan
    (None, "rare", "exact"),                    # 1% = 30 rows (< threshold 100): B-tree + exact
    ({"i": {"lt": 5}}, None, "exact"),          # 5 rows < k: all of them, nothing missing
])
def test_filtered_search_returns_min_k_matching_and_right_rows(synthetic: Any, where: Any, etype: Any,
                                                               expect_path: str) -> None:
    kb, vecs, model = synthetic
    idx = np.arange(len(vecs))
    mask = np.ones(len(vecs), bool)
    if where and "bucket" in where:
        mask = idx % 10 == where["bucket"]
    if where and "i" in where:
        mask = idx < 5
    if etype:
        mask = idx % 100 == 0
    rng = np.random.default_rng(11)
    recall = []
    for _ in range(10):
        q = rng.standard_normal(16).astype(np.float32)
        q /= np.linalg.norm(q)
        hits = kb.search(q, k=10, model=model, where=where, entity_types=etype, exact_threshold=100)
        assert len(hits) == min(10, int(mask.sum()))
        assert hits.path == expect_path
        got = [h["metadata"]["i"] for h in hits]
        assert all(mask[i] for i in got)
        truth = _exact_top(vecs, q, mask, 10)
        recall.append(len(set(got) & set(truth)) / len(truth))
        sims = [h["similarity"] for h in hits]
        assert sims == sorted(sims, reverse=True)
        assert sims[0] == pytest.approx(float(vecs[got[0]] @ q), abs=1e-4)
    assert np.mean(recall) >= (1.0 if expect_path == "exact" else 0.9)


def test_forced_paths_agree_and_tiny_scan_budget_still_gives_k(synthetic: Any) -> None:
    kb, vecs, model = synthetic
    q = vecs[42]
    rare = np.arange(len(vecs)) % 100 == 0  # 30 rows
    exact = kb.search(q, k=10, model=model, entity_types="rare", path="exact")
    assert exact.path == "exact"
    assert [h["metadata"]["i"] for h in exact] == _exact_top(vecs, q, rare, 10)
    # Told to walk the graph with a budget of 1 tuple, it runs dry; the exact path completes
    # it. A metadata filter keeps the planner off its own sort (guarded path), so the graph
    # walk really runs and really comes up short.
    where = {"i": {"in": [int(i) for i in np.flatnonzero(rare)]}}
    exact = kb.search(q, k=10, model=model, where=where, path="exact")
    assert [h["metadata"]["i"] for h in exact] == _exact_top(vecs, q, rare, 10)
    auto = kb.search(q, k=10, model=model, where=where, ef_search=1, max_scan_tuples=1, exact_threshold=5)
    assert auto.path == "hnsw+exact"
    assert [h["owner_id"] for h in auto] == [h["owner_id"] for h in exact]


def test_bad_input_is_refused_with_a_sentence(synthetic: Any, kb: KB) -> None:
    skb, vecs, model = synthetic
    with pytest.raises(InvalidInput, match="dimensions"):
        skb.search(np.ones(17, dtype=np.float32), model=model)
    with pytest.raises(InvalidInput, match="unknown filter operator 'like'"):
        kb.search("api", where={"status": {"like": "comp%"}})
    with pytest.raises(InvalidInput, match="NUL"):
        kb.search("api\x00")
    with pytest.raises(InvalidInput, match="k must be"):
        kb.search("api", k=0)
    with pytest.raises(InvalidInput, match="empty"):
        kb.search("   ")
    with pytest.raises(InvalidInput, match="owner type"):
        kb.search("api", owner_types="table")
    with pytest.raises(InvalidInput, match="NaN"):
        skb.search(np.full(16, np.nan, dtype=np.float32), model=model)


def test_sql_in_filter_keys_and_values_is_just_data(client: Any, kb: KB) -> None:
    evil = "status') OR 1=1; DROP TABLE learnloop.embeddings; --"
    assert kb.search("api", where={evil: "completed"}) == []
    assert kb.search("api", where={"status": evil}) == []
    assert kb.search("api", where={'"status"': "completed"}) == []
    assert len(kb.search("api", where={"status": "completed"}, k=50)) == 4
    with client.db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM learnloop.embeddings").fetchone()["n"] > 0


def test_hybrid_finds_exact_words_and_keeps_filters(kb: KB) -> None:
    hits = kb.search("sourdough", k=3, hybrid=True, entity_types="goal")
    assert hits[0]["content"] == "Learn to bake sourdough bread at home"
    assert hits[0]["text_rank"] == 1
    assert hits.path.startswith("hybrid/")
    scoped = kb.search("Python API", k=10, hybrid=True, entity_types="goal", where={"status": "completed"})
    assert scoped and all(h["metadata"]["status"] == "completed" for h in scoped)
    with pytest.raises(InvalidInput, match="text query"):
        kb.search(np.ones(384, dtype=np.float32), hybrid=True)


def _log_rated(client: Any, prompt: str, answer: str, **fb: Any) -> UUID:
    g = client.log(kind="chat", prompt=prompt, output_text=answer)
    for f in fb.pop("feedback", []):
        client.feedback(g.id, **f)
    return g.id


@pytest.fixture(scope="module")
def history(client: Any, provider: Any) -> dict[str, UUID]:
    c = client.scoped(project="assistant")
    gens = {
        "good": _log_rated(c, "How do I reset my password?", "Click 'Forgot password' on the login page.",
                           feedback=[{"thumbs": 1}, {"rating": 5}]),
        "ok": _log_rated(c, "How can I change my password?", "Go to Settings > Security > Change password.",
                         feedback=[{"thumbs": 1}, {"rating": 3}]),
        "bad": _log_rated(c, "I forgot my password, what now?", "Passwords cannot be recovered.",
                          feedback=[{"thumbs": -1}, {"rating": 1}]),
        "tagged": _log_rated(c, "Reset password link not working", "Try again later.",
                             feedback=[{"thumbs": 1, "tags": ["OUTDATED"]}]),
        "unrated": _log_rated(c, "How do I reset my password please", "Use the reset link."),
        "other": _log_rated(c, "What is the capital of France?", "Paris.", feedback=[{"rating": 5}]),
    }
    rows = []
    texts = {}
    with c.db.connection() as conn:
        for name, gid in gens.items():
            texts[name] = conn.execute("SELECT prompt FROM learnloop.generations WHERE id = %s", (gid,)).fetchone()["prompt"]
    vecs = provider.embed(list(texts.values()))
    for (name, gid), vec in zip(gens.items(), vecs, strict=True):
        rows.append(EmbeddingRow("generation", gid, texts[name], vec))
    with c.db.transaction() as conn:
        ensure_index(conn, provider.model_id, provider.dimensions)
        upsert_embeddings(conn, c.scope, provider.model_id, rows)
    return {"client": c, **gens}  # type: ignore[dict-item]


def test_learn_from_success_positive_rating_and_tags(history: dict[str, Any]) -> None:
    kb = KB(history["client"])
    ids = {v: k for k, v in history.items() if k != "client"}
    pos = kb.similar_successes("reset my password", k=5)
    assert [ids[h["owner_id"]] for h in pos][:3] == ["good", "tagged", "ok"] or \
        {ids[h["owner_id"]] for h in pos} == {"good", "ok", "tagged", "other"}
    assert {ids[h["owner_id"]] for h in pos} == {"good", "ok", "tagged", "other"}  # never bad/unrated
    four = kb.similar_successes("reset my password", k=5, positive=False, min_rating=4)
    assert {ids[h["owner_id"]] for h in four} == {"good", "other"}
    clean = kb.similar_successes("reset my password", k=5, exclude_tags=["OUTDATED"])
    assert "tagged" not in {ids[h["owner_id"]] for h in clean}
    top = clean[0]
    assert ids[top["owner_id"]] == "good" and top["avg_rating"] == 5 and top["positives"] == 2
    text = kb.few_shot("reset my password", k=2, exclude_tags=["OUTDATED"])
    assert text.startswith("Example 1\nUser: How do I reset my password?\nAssistant: Click 'Forgot password'")
    msgs = format_examples(clean[:1], style="messages")
    assert msgs == [{"role": "user", "content": "How do I reset my password?"},
                    {"role": "assistant", "content": "Click 'Forgot password' on the login page."}]


@pytest.mark.parametrize("mode", ["dense", "fulltext", "hybrid"])
def test_learn_from_success_in_every_mode(history: dict[str, Any], mode: str) -> None:
    kb = KB(history["client"])
    ids = {v: k for k, v in history.items() if k != "client"}
    hits = kb.similar_successes("reset my password", k=5, mode=mode)
    assert hits.mode == mode
    found = {ids[h["owner_id"]] for h in hits}
    # Full text needs a query word in the prompt: the French capital has none.
    assert found == ({"good", "ok", "tagged"} if mode == "fulltext" else {"good", "ok", "tagged", "other"})
    assert ids[hits[0]["owner_id"]] == "good" and hits[0]["positives"] == 2
    with pytest.raises(InvalidInput, match="unknown search mode 'sparse'"):
        kb.similar_successes("reset my password", mode="sparse")


def test_learn_from_success_sees_new_feedback_at_once(history: dict[str, Any]) -> None:
    c = history["client"]
    kb = KB(c)
    before = {h["owner_id"] for h in kb.similar_successes("reset my password", k=10)}
    assert history["unrated"] not in before
    c.feedback(history["unrated"], thumbs=1)
    after = {h["owner_id"] for h in kb.similar_successes("reset my password", k=10)}
    assert history["unrated"] in after


def test_metrics_count_searches_warn_when_slow_and_persist(client: Any, kb: KB, caplog: Any) -> None:
    kb = KB(client.scoped(project="metrics"))  # its own project: the stored sums are ours alone
    search_metrics.METRICS.reset()
    client.settings.slow_search_ms = 1e9  # a loaded CI machine must not make these "slow"
    for _ in range(3):
        kb.search("python", k=2)
    snap = kb.search_metrics()
    assert snap["searches"] == 3 and snap["slow_searches"] == 0
    assert snap["search_ms"]["p50"] > 0 and snap["query_embed_ms"]["p50"] is not None
    assert snap["embeddings"]["cache_hits"] >= 2  # the same query text is embedded once
    client.settings.slow_search_ms = 0.0
    try:
        with caplog.at_level(logging.WARNING, logger="learnloop.knowledge.search"):
            kb.search("python", k=2)
    finally:
        client.settings.slow_search_ms = 200.0
    assert any("slow search" in r.message for r in caplog.records)
    search_metrics.flush(client.db)  # (the timer thread may have flushed some already)
    with client.db.connection() as conn:
        stored = search_metrics.stored(conn, kb._c.scope.tenant_id, kb._c.scope.project_id)
        events = conn.execute("SELECT count(*) AS n FROM learnloop.events WHERE event_type = 'search_metrics.flushed'"
                              ).fetchone()["n"]
    assert stored["searches"] == 4 and stored["slow_searches"] == 1
    assert stored["search_ms_p50_at_most"] is not None
    assert events >= 1
