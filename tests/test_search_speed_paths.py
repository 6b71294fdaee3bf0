"""The fast paths of search, against the real database: what they save must not cost rows.

* HNSW settings live on the pooled session and are sent only when they change; a session
  reset behind our back still yields k rows (the exact path finishes a short graph walk).
* Guarded (metadata-filtered) searches scope their planner settings to the query's own
  implicit transaction: nothing leaks to the next user of the connection.
* The exact path computes each row's distance once (it used to compute it twice).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import numpy as np
import pytest

import learnloop
from learnloop.knowledge import search as S
from tests.fix_citus import PLANNER_ONLY, single_server_only
from tests.test_search import _vec_rows

MODEL = "test/random-24"
DIMS = 24
N = 2000

# On Citus a search's hnsw.* settings are SET LOCAL in its transaction, which Citus forwards
# to the workers (set_config on the coordinator's session would reach no shard);
# test_search's forced-path test shows there that they arrive (ef_search=1, one tuple: the
# walk runs dry and the exact path completes it).
SESSION_SETTINGS = single_server_only("hnsw.* kept on the coordinator's session; on Citus they are SET LOCAL per search")


class KB(S.SearchMixin):
    def __init__(self, c: Any) -> None:
        self._c = c


@pytest.fixture(scope="module")
def one_conn(db_url: str) -> Iterator[tuple[Any, KB, np.ndarray]]:
    """A client whose pool holds exactly one connection, so every call sees the same session."""
    ll = learnloop.connect(db_url, pool_min=1, pool_max=1)
    vecs = _vec_rows(ll, N, DIMS, MODEL, np.random.default_rng(5))  # 1% 'rare', metadata bucket and i
    yield ll, KB(ll), vecs
    ll.close()


def _show(ll: Any, name: str) -> str:
    with ll.db.connection() as conn:
        return str(conn.execute(f"SHOW {name}").fetchone()[name])  # type: ignore[index]


def _exact_top(vecs: np.ndarray, q: np.ndarray, mask: np.ndarray, k: int) -> list[int]:
    sims = np.where(mask, vecs @ q, -np.inf)
    return [int(i) for i in np.argsort(-sims)[: min(k, int(mask.sum()))]]


@SESSION_SETTINGS
def test_session_hnsw_settings_are_sent_once_and_only_when_they_change(one_conn: Any) -> None:
    ll, kb, vecs = one_conn
    hits = kb.search(vecs[1], k=10, model=MODEL, path="hnsw")
    assert len(hits) == 10
    assert _show(ll, "hnsw.ef_search") == str(S.DEFAULT_EF_SEARCH)
    assert _show(ll, "hnsw.iterative_scan") == "relaxed_order"
    # Change the session behind the tracker's back: the same settings are not re-sent...
    with ll.db.connection() as conn:
        conn.execute("SET hnsw.ef_search = 77")
    kb.search(vecs[2], k=10, model=MODEL, path="hnsw")
    assert _show(ll, "hnsw.ef_search") == "77"
    # ...new ones are.
    kb.search(vecs[2], k=10, model=MODEL, path="hnsw", ef_search=90)
    assert _show(ll, "hnsw.ef_search") == "90"
    # Only hnsw.* stays on the session; the planner settings never do.
    assert _show(ll, "enable_sort") == "on"
    assert _show(ll, "join_collapse_limit") == "8"


def test_a_reset_session_still_returns_k_rows(one_conn: Any) -> None:
    ll, kb, vecs = one_conn
    kb.search(vecs[3], k=10, model=MODEL, path="hnsw")
    with ll.db.connection() as conn:
        conn.execute("RESET ALL")  # iterative scan off, ef_search 40; the tracker does not know
    rare = np.arange(N) % 100 == 0
    for i in range(5):
        hits = kb.search(vecs[i], k=10, model=MODEL, entity_types="rare", exact_threshold=5)
        assert len(hits) == 10
        assert [int(h["content"].split()[1]) for h in hits] == _exact_top(vecs, vecs[i], rare, 10)


def test_guarded_search_settings_end_with_the_query(one_conn: Any) -> None:
    ll, kb, vecs = one_conn
    bucket = np.arange(N) % 10 == 3
    hits = kb.search(vecs[4], k=10, model=MODEL, where={"bucket": 3}, exact_threshold=50, ef_search=100)
    assert hits.path == "hnsw" and len(hits) == 10
    got = [h["metadata"]["i"] for h in hits]
    assert all(bucket[i] for i in got)
    assert len(set(got) & set(_exact_top(vecs, vecs[4], bucket, 10))) >= 8
    assert _show(ll, "enable_sort") == "on"
    assert _show(ll, "join_collapse_limit") == "8"
    assert _show(ll, "hnsw.ef_search") != "100"


def test_search_inside_a_callers_transaction_keeps_settings_local(one_conn: Any) -> None:
    ll, _, vecs = one_conn
    q = S.prepare(ll.scope, vecs[5], MODEL, k=10)
    with ll.db.connection() as conn:
        before = conn.execute("SHOW hnsw.ef_search").fetchone()["hnsw.ef_search"]
        with conn.transaction():
            hits = S.run(conn, q, ef_search=123, path="hnsw")
            assert conn.execute("SHOW hnsw.ef_search").fetchone()["hnsw.ef_search"] == "123"
        assert len(hits) == 10
        assert conn.execute("SHOW hnsw.ef_search").fetchone()["hnsw.ef_search"] == before


def test_exact_path_computes_each_distance_once(one_conn: Any) -> None:
    ll, _, vecs = one_conn
    q = S.prepare(ll.scope, vecs[6], MODEL, k=10, entity_types="rare")
    query, params = S._fetch_sql(q, "exact")
    with ll.db.connection() as conn:
        plan = [r["QUERY PLAN"] for r in conn.execute(
            b"EXPLAIN (VERBOSE, COSTS OFF) " + query.as_bytes(conn), params).fetchall()]
    outputs = [line for line in plan if line.strip().startswith("Output:") and "<=>" in line]
    assert outputs, plan
    assert all(len(re.findall("<=>", line)) == 1 for line in outputs), outputs


def test_hits_carry_similarity_from_the_one_distance(one_conn: Any) -> None:
    _, kb, vecs = one_conn
    q = vecs[7]
    for path in ("exact", "hnsw"):
        hits = kb.search(q, k=5, model=MODEL, path=path)
        sims = [h["similarity"] for h in hits]
        assert sims == sorted(sims, reverse=True)
        for h in hits:
            i = int(h["content"].split()[1])
            assert h["similarity"] == pytest.approx(float(vecs[i] @ q), abs=1e-5)


def test_owner_data_is_the_same_on_every_path_and_ids_only_ranks_alike(one_conn: Any) -> None:
    ll, _, _ = one_conn
    kn = ll.knowledge
    doc = kn.ingest_bytes(b"A sourdough starter needs flour and water, fed every day.", file_name="bread.txt",
                          title="Bread notes")
    g = ll.log(kind="chat", prompt="How do I feed a sourdough starter?", output_text="Flour and water, daily.")
    kn.embed_generations()
    kn.upsert_entity("goal", "g-1", "Bake a sourdough loaf", user_ref="ana", metadata={"status": "active"})
    seen: dict[str, list[Any]] = {}
    for path in ("exact", "hnsw", "auto"):
        hits = kn.search("sourdough starter", k=10, path=path)
        assert len(hits) == 3, path
        by_type = {h["owner_type"]: h for h in hits}
        chunk, gen, ent = by_type["chunk"], by_type["generation"], by_type["entity"]
        assert (chunk["title"], chunk["file_name"], chunk["chunk_index"]) == ("Bread notes", "bread.txt", 0)
        assert chunk["document_id"] == doc.document_id
        assert (gen["owner_id"], gen["prompt"], gen["output_text"], gen["kind"]) == (
            g.id, g.prompt, g.output_text, "chat")
        assert gen["generation_created_at"] == g.created_at  # a timestamp, not the JSON string
        assert (ent["entity_id"], ent["user_ref"], ent["metadata"]) == ("g-1", "ana", {"status": "active"})
        assert "prompt" not in chunk and "title" not in ent and "entity_id" not in gen
        seen[path] = [(h["owner_id"], round(h["similarity"], 5)) for h in hits]
        ids = kn.search("sourdough starter", k=10, path=path, owner_data=False)
        assert [set(h) for h in ids] == [{"owner_type", "owner_id", "similarity", "embedding_id"}] * 3
        assert [(h["owner_id"], round(h["similarity"], 5)) for h in ids] == seen[path]
    assert seen["exact"] == seen["hnsw"] == seen["auto"]


def test_a_narrowed_scope_returns_the_same_owner_data_with_fewer_lookups(one_conn: Any) -> None:
    """A scope that cannot reach an owner type leaves its lookups out of the statement
    (each is planned on every exact-path search); the hits it returns must not change."""
    ll, _, _ = one_conn
    kn = ll.knowledge
    doc = kn.ingest_bytes(b"Rye bread wants a long, slow rise in a cool kitchen.", file_name="rye.txt",
                          title="Rye notes")
    ll.log(kind="chat", prompt="How long should rye bread rise?", output_text="Slowly, overnight.")
    kn.embed_generations()
    kn.upsert_entity("goal", "rye-1", "Bake a rye loaf with a slow rise", user_ref="ana")
    every = {h["owner_id"]: h for h in kn.search("rye bread slow rise", k=50, path="exact")}
    narrowed = {
        "entity": kn.search("rye bread slow rise", k=50, path="exact", entity_types="goal"),
        "chunk": kn.search("rye bread slow rise", k=50, path="exact", document_ids=[doc.document_id]),
        "generation": kn.search("rye bread slow rise", k=50, path="exact", owner_types="generation"),
    }
    assert len(every) < 50  # the whole corpus of the default model: every narrowed hit is in it
    for owner_type, hits in narrowed.items():
        assert hits and {h["owner_type"] for h in hits} == {owner_type}
        assert all(h == every[h["owner_id"]] for h in hits), owner_type
    q = S.prepare(ll.scope, np.ones(384, dtype=np.float32), kn.provider.model_id, entity_types="goal")
    with ll.db.connection() as conn:
        text = S._statement(conn, q, "exact")[0].decode()
    assert "learnloop.chunks" not in text and "learnloop.documents" not in text
    assert "learnloop.entities" in text and "learnloop.generations" in text


def test_only_chunks_have_documents_and_chunks_have_no_entity_type(one_conn: Any) -> None:
    # The narrowed statements above rely on these two rules; the table enforces them.
    import psycopg

    ll, _, _ = one_conn
    insert = ("INSERT INTO learnloop.embeddings (tenant_id, id, project_id, owner_type, owner_id, model,"
              " content_hash, content, embedding, entity_type, document_id)"
              " VALUES (%s, gen_random_uuid(), %s, %s, gen_random_uuid(), 'm', 'h', 't', '[1]', %s, %s)")
    for owner_type, entity_type, document in (("entity", "goal", uuid4()), ("chunk", "goal", None)):
        with pytest.raises(psycopg.errors.CheckViolation), ll.db.connection() as conn:
            conn.execute(insert,
                         (ll.scope.tenant_id, ll.scope.project_id, owner_type, entity_type, document))


@pytest.mark.parametrize("path", ["exact", "hnsw"])
def test_owner_lookups_run_for_the_k_hits_only(one_conn: Any, path: str) -> None:
    """The owner subqueries sit in the scan's own SELECT list: PostgreSQL must evaluate
    them after sort and limit (k times), not once per matching row."""
    ll, _, vecs = one_conn
    q = S.prepare(ll.scope, vecs[8], MODEL, k=5, entity_types="common")  # 1,980 matching rows
    query, params = S._fetch_sql(q, path)
    with ll.db.connection() as conn:
        if path == "hnsw":
            S._session_settings(conn, 64, 20000)
        plan = [r["QUERY PLAN"] for r in conn.execute(
            b"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + query.as_bytes(conn), params).fetchall()]
    lookups = [line for line in plan if "entities_pkey" in line]
    assert lookups, plan
    assert all(re.search(r"loops=5\b", line) for line in lookups), plan


def test_default_ef_search_grows_with_the_table() -> None:
    # 64 while the graph is small; larger graphs need a longer candidate list for the same
    # recall (measured: 0.979-0.986 at 117k with 64, 0.9835-0.9875 with 80, 0.984-0.990
    # with 96-100; at 1M 0.961 at 64, 0.982 at 300), capped where recall stopped moving.
    assert S.ef_for_rows(0) == S.ef_for_rows(S.EF_BASE_ROWS) == S.DEFAULT_EF_SEARCH == 64
    assert 72 < S.ef_for_rows(117_459) < 96
    sizes = [200_000, 500_000, 1_000_000, 1_500_000]
    efs = [S.ef_for_rows(n) for n in sizes]
    assert efs == sorted(efs) and len(set(efs)) == len(efs)
    assert 256 <= S.ef_for_rows(1_000_000) <= 320
    assert S.ef_for_rows(10**9) == S.MAX_AUTO_EF
    assert all(ef % 8 == 0 for ef in efs)


@SESSION_SETTINGS
def test_search_uses_the_table_sized_default_unless_told(one_conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ll, kb, vecs = one_conn
    with ll.db.connection() as conn:  # forget what earlier tests left on the session
        setattr(conn, S._SESSION_ATTR, None)
    kb.search(vecs[5], k=10, model=MODEL, path="hnsw")
    assert _show(ll, "hnsw.ef_search") == str(S.ef_for_rows(N))  # a small table: 64
    monkeypatch.setattr(S, "_table_size", lambda conn: 1_000_000.0)  # as if the table held 1M vectors
    assert len(kb.search(vecs[6], k=10, model=MODEL, path="hnsw")) == 10
    assert _show(ll, "hnsw.ef_search") == str(S.ef_for_rows(1_000_000))
    kb.search(vecs[7], k=10, model=MODEL, path="hnsw", ef_search=72)  # an explicit value wins
    assert _show(ll, "hnsw.ef_search") == "72"


@PLANNER_ONLY
def test_repeated_searches_reuse_a_generic_plan(one_conn: Any) -> None:
    # The model id is part of the statement (like the partial index's predicate), so after
    # psycopg prepares the statement PostgreSQL can keep one plan instead of planning each call.
    ll, kb, vecs = one_conn
    # psycopg prepares a statement on its 6th run, PostgreSQL plans the first 5 runs of a
    # prepared statement as custom plans: 20 searches leave 10 runs for the generic plan.
    for i in range(20):
        assert len(kb.search(vecs[10 + i], k=10, model=MODEL, path="hnsw")) == 10
    with ll.db.connection() as conn:
        rows = conn.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ("%learnloop.embeddings e%",),
        ).fetchall()
    assert rows and max(r["generic_plans"] for r in rows) >= 5


def test_a_hostile_model_id_is_a_value_not_sql(one_conn: Any) -> None:
    ll, kb, vecs = one_conn
    hostile = "x'; DELETE FROM learnloop.embeddings; --"
    assert list(kb.search(vecs[3], k=5, model=hostile, path="exact")) == []
    assert len(kb.search(vecs[3], k=5, model=MODEL)) == 5  # nothing was deleted
    with pytest.raises(learnloop.InvalidInput, match="model"):
        kb.search(vecs[3], k=5, model="a\x00b")


@PLANNER_ONLY
def test_a_young_knowledge_base_looks_owners_up_by_primary_key(fresh_client: Any) -> None:
    # Before the knowledge tables' first ANALYZE, the join back to the winners scanned the
    # tenant's embeddings_scope_idx, and the active-document check (once per candidate
    # row) and the title lookup scanned the tenant's (tenant_id, project_id, source) index.
    ll = fresh_client
    kn = ll.knowledge
    for i in range(3):
        kn.ingest_bytes(f"Note {i}: rye bread wants a slow rise.".encode(), file_name=f"n{i}.txt")
    kn.upsert_entity("goal", "g-1", "Bake a rye loaf")
    with ll.db.connection() as conn:
        analysed = conn.execute(
            "SELECT count(*) AS n FROM pg_stat_user_tables WHERE schemaname = 'learnloop'"
            " AND relname IN ('embeddings', 'documents') AND coalesce(last_analyze, last_autoanalyze) IS NOT NULL"
        ).fetchone()
        assert analysed == {"n": 0}  # far below autovacuum's threshold: still young
        q = S.prepare(ll.scope, kn.embed(["rye bread"])[0], kn.provider.model_id, k=5)
        query, params = S._fetch_sql(q, "exact")
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(b"EXPLAIN " + query.as_bytes(conn), params))
    assert "embeddings_pkey" in plan and "documents_pkey" in plan, plan
    assert "source_key" not in plan, plan
    assert len(kn.search("rye bread", k=5)) == 4


def test_kept_scopes_still_refuse_what_prepare_refuses(one_conn: Any) -> None:
    # Validated scopes are kept per call shape; values equal in Python but refused by
    # prepare (k=10.0, k=True) must not borrow the kept scope of k=10 / k=1.
    ll, kb, vecs = one_conn
    assert len(kb.search(vecs[1], k=10, model=MODEL)) == 10
    assert len(kb.search(vecs[1], k=1, model=MODEL)) == 1
    for bad_k in (10.0, True):
        with pytest.raises(learnloop.InvalidInput, match="k must be an integer"):
            kb.search(vecs[1], k=bad_k, model=MODEL)  # type: ignore[arg-type]
    # user=1 and user=True are different users ("1", "True"), though 1 == True in Python.
    assert S._scope_key(ll.scope, MODEL, _args(user=1)) is None  # not a str: prepared every time
    assert S._scope_key(ll.scope, MODEL, _args(user="1")) != S._scope_key(ll.scope, MODEL, _args(user="True"))
    # A metadata filter is never kept: its values may be anything JSON holds.
    assert S._scope_key(ll.scope, MODEL, _args(where={"bucket": 3})) is None
    # Another scope of the same shape gets its own entry: rows never cross tenants/projects.
    other = ll.scoped(project="elsewhere")
    assert S._scope_key(other.scope, MODEL, _args()) != S._scope_key(ll.scope, MODEL, _args())
    assert list(KB(other).search(vecs[1], k=10, model=MODEL)) == []


def test_a_kept_scope_gives_the_same_hits_as_a_fresh_one(one_conn: Any) -> None:
    ll, kb, vecs = one_conn
    first = kb.search(vecs[2], k=10, model=MODEL, entity_types=["rare"])
    S._SCOPES.clear()
    again = kb.search(vecs[2], k=10, model=MODEL, entity_types=["rare"])
    assert [h["owner_id"] for h in first] == [h["owner_id"] for h in again]
    kept = kb.search(vecs[2], k=10, model=MODEL, entity_types=["rare"])
    assert [h["owner_id"] for h in kept] == [h["owner_id"] for h in again]
    assert all(h["entity_type"] == "rare" for h in kept) and len(kept) == 10
    # The kept scope is a template: a search never changes it (text, owner_data, vector).
    kb.search(vecs[3], k=10, model=MODEL, entity_types=["rare"], owner_data=False)
    template = next(q for key, q in S._SCOPES.items() if key[3] == 10 and key[6] == ("rare",))
    assert template.owner_data is True and template.text is None and template.vector.shape == (0,)


def _args(**given: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"k": 10, "owner_types": None, "entity_types": None, "user": None,
                            "document_ids": None, "where": None, "all_projects": False, "extra": None}
    return {**args, **given}


def test_one_value_is_an_equality_and_finds_what_the_list_finds(one_conn: Any) -> None:
    ll, kb, vecs = one_conn
    one = S.prepare(ll.scope, vecs[4], MODEL, entity_types=["rare", "rare"])  # duplicates dropped
    assert "e.entity_type = %s" in [c.as_string(None) for c in one.conds]
    assert "rare" in one.params
    many = S.prepare(ll.scope, vecs[4], MODEL, entity_types=["rare", "nowhere"])
    assert "e.entity_type = ANY(%s)" in [c.as_string(None) for c in many.conds]
    for path in ("exact", "hnsw"):
        a = kb.search(vecs[4], k=10, model=MODEL, entity_types="rare", path=path)
        b = kb.search(vecs[4], k=10, model=MODEL, entity_types=["rare", "nowhere"], path=path)
        assert [h["owner_id"] for h in a] == [h["owner_id"] for h in b] and len(a) == 10
