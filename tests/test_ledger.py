"""The ledger: logging with full context, lineage, feedback, review queue, outbox, bad input."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from learnloop import Conflict, InvalidInput, NotFound
from tests.fix_citus import PLANNER_ONLY


def counts(ll) -> tuple[int, int, int]:
    with ll.db.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM learnloop.generations) g, (SELECT count(*) FROM learnloop.feedback) f,"
            " (SELECT count(*) FROM learnloop.events) e"
        ).fetchone()
    return row["g"], row["f"], row["e"]


def test_a_generation_keeps_its_full_context(client):
    g = client.log(
        kind="image", user_ref="u-1", session_ref="s-1",
        context={"demand_kw": 385, "cost_eur": 184000, "efficiency": 0.06},
        config={"audience": "INVESTOR", "style_preset": "CYBERPUNK_DARK"},
        prompt="Subject: turbine", negative_prompt="blurry",
        messages=[{"role": "user", "content": "draw it"}],
        output_text="ok", output_url="https://cdn.example/x.png",
        output_meta={"seed": 12345, "model": "dall-e-3"}, model="dall-e-3", provider="openai",
        tokens_in=12, tokens_out=0, latency_ms=812.5, cost="0.04",
        retrieved=[{"type": "chunk", "id": "c1", "score": 0.8}], links={"client": 123, "loan": "456"},
    )
    back = client.get(g.id)
    assert back.context == {"demand_kw": 385, "cost_eur": 184000, "efficiency": 0.06}
    assert back.config["style_preset"] == "CYBERPUNK_DARK"
    assert back.output_meta == {"seed": 12345, "model": "dall-e-3"}
    assert back.links == {"client": "123", "loan": "456"}
    assert back.cost == Decimal("0.04") and back.latency_ms == 812.5
    assert back.messages == [{"role": "user", "content": "draw it"}]
    assert back.iteration == 1 and back.root_id == g.id and back.parent_id is None
    assert back.project == "default"
    # What log() hands back (built from the input plus what the server derived) is what
    # was stored, field for field.
    assert g.model_dump() == back.model_dump()


def test_every_conversation_about_a_loan(client):
    ll = client.scoped(project="rapicredit")
    a = ll.log(kind="chat", prompt="cuota?", links={"client": "123", "loan": "456"})
    b = ll.log(kind="chat", prompt="pago?", links={"loan": "456", "payment": "9"})
    ll.log(kind="chat", prompt="otro", links={"loan": "457"})
    client.scoped(tenant="other", project="rapicredit").log(kind="chat", links={"loan": "456"})
    found = ll.find(links={"loan": "456"})
    assert {g.id for g in found} == {a.id, b.id}
    assert [g.id for g in ll.find(links={"loan": 456, "client": 123})] == [a.id]


def test_lineage_iterations_roots_tree_and_path(client):
    ll = client.scoped(project="lineage")
    root = ll.log(kind="image", prompt="v1")
    a = ll.log(kind="image", prompt="v2a", parent_id=root.id)
    b = ll.log(kind="image", prompt="v2b", parent_id=root.id)
    a2 = ll.log(kind="image", prompt="v3", parent_id=a.id)
    assert (a.iteration, b.iteration, a2.iteration) == (2, 2, 3)
    assert {a.root_id, b.root_id, a2.root_id} == {root.id}
    ll.feedback(a2.id, sentiment="POSITIVE")
    tree = ll.tree(b.id)  # any node gives the whole tree
    assert tree.id == root.id
    assert sorted(c.prompt or "" for c in tree.children) == ["v2a", "v2b"]
    deep = next(c for c in tree.children if c.prompt == "v2a").children
    assert [(n.prompt, n.verdict) for n in deep] == [("v3", "POSITIVE")]
    assert [g.prompt for g in ll.path(a2.id)] == ["v1", "v2a", "v3"]
    assert [g.prompt for g in ll.path(root.id)] == ["v1"]


def test_unknown_parent_and_parent_in_another_tenant_write_nothing(client):
    before = counts(client)
    with pytest.raises(NotFound, match="parent"):
        client.log(kind="image", parent_id=uuid.uuid4())
    foreign = client.scoped(tenant="someone-else").log(kind="image")
    before = counts(client)
    with pytest.raises(NotFound, match="parent"):
        client.log(kind="image", parent_id=foreign.id)
    assert counts(client) == before


def test_lineage_cannot_be_changed_so_no_cycle_can_form(client):
    a = client.log(kind="code")
    b = client.log(kind="code", parent_id=a.id)
    with client.db.connection() as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE learnloop.generations SET parent_id = %s, iteration = 2 WHERE id = %s", (b.id, a.id))
    # A generation cannot name itself as parent: the parent must exist first.
    me = uuid.uuid4()
    with pytest.raises(NotFound):
        client.log(id=me, kind="code", parent_id=me)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"context": [1, 2]}, "context must be a JSON object, got an array"),
        ({"config": "style=dark"}, "config must be a JSON object, got a string"),
        ({"output_meta": 5}, "output_meta must be a JSON object"),
        ({"prompt": "bad\x00byte"}, "NUL"),
        ({"config": {"style": "da\x00rk"}}, "NUL"),
        ({"context": {"x": float("nan")}}, "not valid JSON"),
        ({"tokens_in": -1}, "tokens_in"),
        ({"links": {"loan": [1]}}, "links.loan"),
        ({"kind": ""}, "kind"),
        ({"unknown_field": 1}, "unknown field 'unknown_field'"),
        ({"parent_id": "not-a-uuid"}, "parent_id"),
    ],
)
def test_bad_generation_input_is_a_clear_error_and_writes_nothing(client, fields, message):
    before = counts(client)
    with pytest.raises(InvalidInput) as exc:
        client.log({"kind": "chat", **fields})
    assert message in str(exc.value)
    assert counts(client) == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rating": 6}, "rating must be from 1 to 5"),
        ({"rating": 0}, "rating must be from 1 to 5"),
        ({"rating": "five"}, "rating must be a whole number"),
        ({"sentiment": "ANGRY"}, "unknown sentiment 'ANGRY'"),
        ({"tags": "TOO_DARK"}, "tags must be a list"),
        ({"tags": ["OK", 3]}, "each tag"),
        ({"comment": "x\x00"}, "NUL"),
        ({"source": "robot"}, "source"),
    ],
)
def test_bad_feedback_is_a_clear_error_and_writes_nothing(client, fields, message):
    g = client.log(kind="chat")
    before = counts(client)
    with pytest.raises(InvalidInput) as exc:
        client.feedback(g.id, **fields)
    assert message in str(exc.value)
    assert counts(client) == before


def test_feedback_on_unknown_or_foreign_generation_is_not_found(client):
    with pytest.raises(NotFound):
        client.feedback(uuid.uuid4(), sentiment="POSITIVE")
    foreign = client.scoped(tenant="t-feedback").log(kind="chat")
    with pytest.raises(NotFound):
        client.feedback(foreign.id, sentiment="POSITIVE")
    with pytest.raises(InvalidInput, match="not a valid id"):
        client.feedback("12; DROP TABLE x", sentiment="POSITIVE")


def test_several_feedback_rows_with_derived_sentiment(client):
    g = client.log(kind="image")
    f1 = client.feedback(g.id, thumbs="down", tags=["TOO_DARK", "TOO_DARK", "TEXT_GLITCH"],
                         comment="muy oscuro", instruction="add more light")
    f2 = client.feedback(g.id, rating=4, source="admin", author_ref="ana")
    f3 = client.feedback(g.id, rating=3, corrected_output="a brighter turbine")
    assert (f1.sentiment, f2.sentiment, f3.sentiment) == ("NEGATIVE", "POSITIVE", "NEUTRAL")
    assert f1.tags == ["TOO_DARK", "TEXT_GLITCH"]
    rows = client.feedback_for(g.id)
    assert [f.id for f in rows] == [f1.id, f2.id, f3.id]
    assert rows[0].instruction == "add more light" and rows[2].corrected_output == "a brighter turbine"


def test_review_queue_lists_pending_negatives_and_marks_them(fresh_client):
    ll = fresh_client
    g = ll.log(kind="chat", prompt="¿cuánto debo?", output_text="no sé")
    neg = ll.feedback(g.id, thumbs=-1, author_ref="cliente@x.com")
    ll.feedback(g.id, thumbs=1)
    queue = ll.review_queue()
    assert [r.id for r in queue] == [neg.id]
    assert queue[0].prompt == "¿cuánto debo?" and queue[0].output_text == "no sé"
    done = ll.mark_reviewed(neg.id, notes="added 'saldo' to the dictionary", improved=True, by="admin")
    assert done.processed and done.improved and done.review_notes.startswith("added")
    assert ll.review_queue() == []
    assert len(ll.review_queue(include_processed=True)) == 1
    with pytest.raises(NotFound):
        ll.mark_reviewed(uuid.uuid4())
    with pytest.raises(NotFound):  # another tenant cannot process it
        ll.scoped(tenant="intruder").mark_reviewed(neg.id)


def test_every_change_writes_an_outbox_event_in_its_transaction(fresh_client):
    ll = fresh_client
    g = ll.log(kind="chat", user_ref="u9", links={"loan": "1"})
    child = ll.log(kind="chat", parent_id=g.id)
    f = ll.feedback(child.id, sentiment="NEGATIVE", tags=["WRONG"])
    ll.mark_reviewed(f.id, improved=False)
    ll.bulk_log([{"kind": "chat"}, {"kind": "chat"}])
    with ll.db.connection() as conn:
        events = conn.execute(
            "SELECT entity_type, entity_id, event_type, payload, actor, tenant_id FROM learnloop.events ORDER BY id"
        ).fetchall()
    assert [e["event_type"] for e in events] == [
        "generation.logged", "generation.logged", "feedback.added", "feedback.reviewed",
        "generation.logged", "generation.logged",
    ]
    assert events[0]["entity_id"] == str(g.id) and events[0]["actor"] == "u9"
    assert events[0]["payload"]["links"] == {"loan": "1"}
    assert events[1]["payload"]["parent_id"] == str(g.id) and events[1]["payload"]["iteration"] == 2
    assert events[2]["payload"]["tags"] == ["WRONG"]
    assert {e["tenant_id"] for e in events} == {ll.scope.tenant_id}


def test_external_id_is_unique_per_project(client):
    ll = client.scoped(project="ext")
    ll.log(kind="chat", external_id="conv-1")
    with pytest.raises(Conflict, match="conv-1"):
        ll.log(kind="chat", external_id="conv-1")
    client.scoped(project="ext2").log(kind="chat", external_id="conv-1")  # other project: fine


def test_bulk_log_resolves_lineage_inside_and_outside_the_batch(fresh_client):
    ll = fresh_client
    stored = ll.log(kind="image", prompt="stored")
    ids = [uuid.uuid4() for _ in range(3)]
    got = ll.bulk_log([
        {"id": ids[0], "kind": "image", "prompt": "b0"},
        {"id": ids[1], "kind": "image", "prompt": "b1", "parent_id": ids[0]},
        {"id": ids[2], "kind": "image", "prompt": "b2", "parent_id": stored.id},
        {"kind": "image", "prompt": "b3", "parent_id": ids[1]},
    ])
    assert got[:3] == ids
    assert ll.get(ids[1]).iteration == 2 and ll.get(ids[1]).root_id == ids[0]
    assert ll.get(ids[2]).root_id == stored.id
    assert ll.get(got[3]).iteration == 3 and ll.get(got[3]).root_id == ids[0]


def test_bulk_log_is_all_or_nothing(fresh_client):
    ll = fresh_client
    before = counts(ll)
    rows = [{"kind": "chat", "prompt": f"ok {i}"} for i in range(50)]
    rows.append({"kind": "chat", "context": "not an object"})
    with pytest.raises(InvalidInput, match="context"):
        ll.bulk_log(rows)
    with pytest.raises(NotFound, match="parent"):
        ll.bulk_log([{"kind": "chat"}, {"kind": "chat", "parent_id": uuid.uuid4()}])
    assert counts(ll) == before


def test_bulk_log_with_skip_existing_is_idempotent(fresh_client):
    ll = fresh_client
    rows = [{"kind": "chat", "external_id": f"m{i}"} for i in range(20)]
    first = ll.bulk_log(rows, skip_existing=True)
    again = ll.bulk_log(rows, skip_existing=True)
    assert first == again
    assert counts(ll)[0] == 20
    with pytest.raises(Conflict):
        ll.bulk_log(rows)  # without skip_existing a duplicate is an error, and nothing lands
    assert counts(ll)[0] == 20


def test_bulk_failure_in_a_later_batch_rolls_back_earlier_batches(fresh_client):
    from learnloop.ledger import generations

    ll = fresh_client
    before = counts(ll)
    rows = [{"kind": "chat", "external_id": f"x{i}"} for i in range(25)] + [{"kind": "chat", "external_id": "x3"}]
    with ll.db.connection() as conn, pytest.raises(Conflict):
        generations.bulk_log(conn, ll.scope, rows, batch_size=10)
    assert counts(ll) == before


def test_integers_beyond_64_bits_round_trip(client):
    g = client.log(kind="chat", context={"big": 2**70, "neg": -(2**65)}, config={"n": 10**30})
    back = client.get(g.id)
    assert back.context == {"big": 2**70, "neg": -(2**65)} and back.config == {"n": 10**30}
    ids = client.bulk_log([{"kind": "chat", "context": {"big": 2**80}}])
    assert client.get(ids[0]).context == {"big": 2**80}


def _generic_parent_check_plan(ll) -> str:
    """The plan a backend caches for the parent foreign-key check, as PostgreSQL writes it."""
    with ll.db.connection() as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        try:
            conn.execute(
                "PREPARE parent_check (uuid, uuid) AS SELECT 1 FROM ONLY learnloop.generations x"
                " WHERE tenant_id = $1 AND id = $2 FOR KEY SHARE OF x"
            )
            # EXECUTE takes no bind parameters; the values do not matter to a generic plan
            rows = conn.execute(sql.SQL("EXPLAIN EXECUTE parent_check ({}, {})").format(
                sql.Literal(str(ll.scope.tenant_id)), sql.Literal(str(uuid.uuid4())))).fetchall()
            return "\n".join(r["QUERY PLAN"] for r in rows)
        finally:
            conn.execute("DEALLOCATE ALL")
            conn.execute("RESET plan_cache_mode")


@PLANNER_ONLY
def test_a_young_ledger_checks_parents_by_primary_key(fresh_client):
    # Before its first ANALYZE, a cached plan for a lookup by (tenant_id, id) used to scan the
    # tenant's whole (tenant_id, root_id) index: 2.7 ms per child log at 20k rows.
    ll = fresh_client
    parent = ll.log(kind="chat")
    for _ in range(20):  # below autovacuum's analyze threshold: these statistics stay seeded
        parent = ll.log(kind="chat", parent_id=parent.id)
    with ll.db.connection() as conn:
        assert conn.execute(
            "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables WHERE relid = 'learnloop.generations'::regclass"
        ).fetchone() == {"last_analyze": None, "last_autoanalyze": None}
    assert "generations_pkey" in _generic_parent_check_plan(ll)
    with ll.db.connection() as conn:
        conn.execute("ANALYZE learnloop.generations")  # real statistics replace the seeded ones
        assert conn.execute(
            "SELECT n_distinct FROM pg_stats WHERE schemaname = 'learnloop' AND tablename = 'generations'"
            " AND attname = 'tenant_id'"
        ).fetchone()["n_distinct"] == 1
