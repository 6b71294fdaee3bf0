"""The verdict summary (ledger m004) always equals a recount of the feedback it summarises:
after single feedback, bulk feedback, the JSONL/OASST import path, concurrent writers on
one generation, a refused bulk call, and deletions. And every generation has exactly one
analytics row (ledger m005) holding its analytic columns as logged."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from learnloop import NotFound
from learnloop.ledger import verdicts

RECOUNT = """
SELECT f.tenant_id, f.generation_id, g.project_id, g.parent_id, g.root_id, g.iteration, g.created_at AS generated_at,
       count(*)::int AS feedback_count, count(f.sentiment)::int AS sentiments,
       (count(*) FILTER (WHERE f.sentiment = 'POSITIVE'))::int AS positives,
       (count(*) FILTER (WHERE f.sentiment = 'NEGATIVE'))::int AS negatives,
       coalesce(sum(f.rating), 0)::int AS rating_sum, count(f.rating)::int AS rating_count,
       coalesce((SELECT array_agg(DISTINCT t ORDER BY t) FROM learnloop.feedback x, unnest(x.tags) t
                 WHERE x.tenant_id = f.tenant_id AND x.generation_id = f.generation_id), '{}') AS tags,
       array_agg(DISTINCT f.source ORDER BY f.source) AS sources, max(f.created_at) AS last_feedback_at
FROM learnloop.feedback f JOIN learnloop.generations g ON g.tenant_id = f.tenant_id AND g.id = f.generation_id
GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2
"""
STORED = """
SELECT tenant_id, generation_id, project_id, parent_id, root_id, iteration, generated_at, feedback_count, sentiments,
       positives, negatives, rating_sum, rating_count, tags, sources, last_feedback_at
FROM learnloop.verdicts WHERE feedback_count > 0 ORDER BY 1, 2
"""
LEDGER_COLUMNS = """SELECT tenant_id, id, created_at, project_id, parent_id, root_id, iteration, kind, model, provider,
    tokens_in, tokens_out, latency_ms, cost, config, context, output_meta FROM learnloop.generations ORDER BY 1, 2"""
ANALYTICS_ROWS = """SELECT tenant_id, generation_id, generated_at, project_id, parent_id, root_id, iteration, kind, model,
    provider, tokens_in, tokens_out, latency_ms, cost, config, context, output_meta FROM learnloop.verdicts ORDER BY 1, 2"""


def assert_summary_is_a_recount(ll: Any) -> None:
    """After every tenant's pending summaries are settled (ledger/verdicts.py), as any reader does."""
    with ll.db.connection() as conn:
        for t in conn.execute("SELECT id FROM learnloop.tenants").fetchall():
            verdicts.settle(conn, t["id"])
        assert conn.execute(STORED).fetchall() == conn.execute(RECOUNT).fetchall()
        ledger = [tuple(r.values()) for r in conn.execute(LEDGER_COLUMNS).fetchall()]
        rows = [tuple(r.values()) for r in conn.execute(ANALYTICS_ROWS).fetchall()]
        assert rows == ledger


def test_every_write_path_keeps_the_summary_right(fresh_client):
    ll = fresh_client
    a = ll.scoped(tenant="a", project="p")
    root = a.log(kind="image", config={"style_preset": "MINIMAL"})
    child = a.log(kind="image", parent_id=root.id)
    a.feedback(root.id, sentiment="NEGATIVE", tags=["TOO_DARK", "OFF_BRAND"])
    a.feedback(root.id, rating=5, tags=["TOO_DARK"], source="admin")
    a.feedback(child.id, comment="no sentiment at all")
    ids = a.bulk_log([{"kind": "chat"} for _ in range(50)])
    a.bulk_feedback([{"generation_id": g, "thumbs": -1 if i % 3 else 1, "tags": ["SLOW"] if i % 2 else []}
                     for i, g in enumerate(ids + ids[:10])])  # twice for ten of them, in one call
    a.bulk_feedback([{"generation_id": root.id, "rating": 2, "tags": ["NEW_TAG"]}])  # onto an existing summary
    assert_summary_is_a_recount(ll)
    # a refused bulk call (one unknown generation) leaves the summary as it was
    with pytest.raises(NotFound):
        a.bulk_feedback([{"generation_id": ids[0], "sentiment": "POSITIVE"},
                         {"generation_id": "00000000-0000-0000-0000-000000000001", "sentiment": "POSITIVE"}])
    assert_summary_is_a_recount(ll)
    # the import path: real OpenAssistant trees, votes and ranks become bulk feedback
    from learnloop.ledger.importers import import_oasst
    from tests.conftest import DATA

    imported = import_oasst(a, DATA / "oasst" / "en_100_message.jsonl")
    assert imported["feedback"] > 0
    assert_summary_is_a_recount(ll)
    # another tenant's writes never touch this tenant's rows, and deletions take summaries along
    b = ll.scoped(tenant="b", project="p")
    gb = b.log(kind="chat")
    b.feedback(gb.id, sentiment="POSITIVE")
    with ll.db.connection() as conn:
        conn.execute("DELETE FROM learnloop.generations WHERE tenant_id = %s AND id = ANY(%s)",
                     (a.scope.tenant_id, ids[40:]))
        conn.execute("DELETE FROM learnloop.tenants WHERE name = 'b'")
    assert_summary_is_a_recount(ll)


def test_concurrent_feedback_on_one_generation_is_all_counted(fresh_client):
    ll = fresh_client
    g = ll.log(kind="chat")

    def rate(n: int) -> None:
        for i in range(25):
            ll.feedback(g.id, sentiment="NEGATIVE" if (n + i) % 2 else "POSITIVE", tags=[f"T{n}"])

    threads = [threading.Thread(target=rate, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_summary_is_a_recount(ll)
    with ll.db.connection() as conn:
        row = conn.execute("SELECT feedback_count, tags FROM learnloop.verdicts").fetchone()
    assert row["feedback_count"] == 100 and row["tags"] == ["T0", "T1", "T2", "T3"]


def test_migration_m005_gives_every_existing_generation_its_analytics_row(fresh_client):
    """A database from before m005 (summary rows for rated generations only, no analytic
    columns) gets a row for every generation, with its ledger columns, and keeps its sums."""
    from learnloop.store import migrations

    ll = fresh_client
    a = ll.scoped(tenant="a", project="p")
    rated = a.log(kind="image", config={"style_preset": "MINIMAL"}, context={"demand_kw": 600}, tokens_in=5,
                  cost=0.25, latency_ms=120.0, model="sdxl")
    a.log(kind="image", parent_id=rated.id, config={"style_preset": "PHOTOREAL"})
    a.bulk_log([{"kind": "chat", "output_meta": {"seed": i}} for i in range(20)])
    a.feedback(rated.id, sentiment="NEGATIVE", tags=["TOO_DARK"])
    with ll.db.connection() as conn:  # back to the m004 shape (whose feedback moved its summary at once)
        verdicts.settle(conn, a.scope.tenant_id)
        conn.execute("DROP VIEW learnloop.generation_verdicts")
        conn.execute("DROP INDEX learnloop.verdicts_judged_idx")
        conn.execute("DELETE FROM learnloop.verdicts WHERE feedback_count = 0")
        conn.execute("ALTER TABLE learnloop.verdicts DROP COLUMN kind, DROP COLUMN model, DROP COLUMN provider,"
                     " DROP COLUMN tokens_in, DROP COLUMN tokens_out, DROP COLUMN latency_ms, DROP COLUMN cost,"
                     " DROP COLUMN config, DROP COLUMN context, DROP COLUMN output_meta,"
                     " ALTER COLUMN last_feedback_at SET NOT NULL")
        conn.execute("CREATE VIEW learnloop.generation_verdicts AS SELECT tenant_id, generation_id,"
                     " feedback_count::bigint AS feedback_count, positives::bigint AS positives,"
                     " negatives::bigint AS negatives,"
                     " (rating_sum::double precision / nullif(rating_count, 0)) AS avg_rating, verdict,"
                     " last_feedback_at FROM learnloop.verdicts")
        conn.execute("DELETE FROM learnloop.migrations WHERE set_name = 'ledger' AND name = 'm005_analytics_rows'")
        assert conn.execute("SELECT count(*) AS n FROM learnloop.verdicts").fetchone()["n"] == 1
    with ll.db.connection() as conn:
        conn.commit()
        conn.autocommit = True
        done = migrations.apply(conn)
        conn.autocommit = False
    assert [m.name for m in done] == ["m005_analytics_rows"]
    assert_summary_is_a_recount(ll)
    rows = a.analytics.breakdown(["kind"]).groups
    assert {g.by[0].value: (g.attempts, g.rated, g.negative) for g in rows} == {"image": (2, 1, 1), "chat": (20, 0, 0)}


@pytest.mark.parametrize("by", [["day"], ["week"], ["month"], ["style_preset", "demand_kw:bands=100,500"]])
def test_the_planner_expects_few_groups_for_time_buckets_and_json_keys(fresh_client, by):
    """Ledger m006's statistics must match the expressions breakdowns write: if they drift
    apart the planner takes a day-by-day count for a million groups and sorts every row in
    one process again. The estimate of the grouped rows is read from EXPLAIN."""
    import importlib
    import json
    from datetime import UTC, datetime, timedelta

    bd = importlib.import_module("learnloop.analytics.breakdown")  # the module, not the function

    ll = fresh_client
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ll.bulk_log([{"kind": "image", "created_at": start + timedelta(minutes=37 * i),
                  "config": {"style_preset": f"P{i % 4}"}, "context": {"demand_kw": i % 900}} for i in range(3000)])
    with ll.db.connection() as conn:
        conn.execute("ANALYZE learnloop.verdicts")
    plans: list[Any] = []
    run = bd.Frag.run

    def explain(self: Any, conn: Any, **kw: Any) -> Any:
        if "GROUP BY" in self.sql.as_string(conn):
            cur = conn.execute(bd.sql.SQL("EXPLAIN (FORMAT JSON) ") + self.sql, self.params)
            plans.append(cur.fetchone())
        return run(self, conn, **kw)

    bd.Frag.run = explain  # type: ignore[method-assign]
    try:
        out = ll.analytics.breakdown(by, latency=False)
    finally:
        bd.Frag.run = run  # type: ignore[method-assign]
    assert plans, "the breakdown ran no GROUP BY"
    doc = plans[0]
    top = (json.loads(doc) if isinstance(doc, str) else list(doc.values())[0] if isinstance(doc, dict) else doc[0])
    estimated = top[0]["Plan"]["Plan Rows"]
    assert len(out.groups) <= 200
    assert estimated <= 1000, f"planner expects {estimated} groups for {by} (3,000 rows)"


def _pending(ll: Any, tenant: Any) -> int:
    with ll.db.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM learnloop.verdicts_pending WHERE tenant_id = %s",
                            (tenant,)).fetchone()["n"]


def test_every_reader_sees_the_feedback_given_just_before_it(fresh_client):
    """Feedback leaves the summary to the next reader (ledger m009): each reader of the
    verdicts settles first, so none is behind the vote it follows."""
    from learnloop.knowledge.search import verdicts as search_verdicts

    ll = fresh_client
    a = ll.scoped(tenant="a", project="p")
    root = a.log(kind="chat", prompt="Q", output_text="A1", model="m")
    child = a.log(kind="chat", prompt="Q", output_text="A2", model="m", parent_id=root.id)
    scope = a.scope
    a.feedback(root.id, sentiment="NEGATIVE", tags=["WRONG"])
    assert _pending(ll, scope.tenant_id) == 1
    [g] = [g for g in a.analytics.breakdown(["kind"]).groups]
    assert (g.rated, g.negative) == (1, 1)
    assert _pending(ll, scope.tenant_id) == 0  # settled by that read
    a.feedback(child.id, sentiment="POSITIVE", tags=["CLEAR"])
    assert [(t.tag, t.generations) for t in a.analytics.tags()] == [("CLEAR", 1), ("WRONG", 1)]
    a.feedback(child.id, rating=5)
    c = a.analytics.corrections()
    assert (c.negative, c.regenerated, c.fixed) == (1, 1, 1)
    a.feedback(root.id, sentiment="POSITIVE")
    a.feedback(root.id, sentiment="POSITIVE")  # now more positive than negative
    assert a.tree(root.id).verdict == "POSITIVE"
    a.feedback(child.id, sentiment="NEGATIVE")  # child: 2 positive (the 5 stars count), 1 negative
    assert {g.id for g in a.analytics.golden()} == {root.id, child.id}
    third = a.log(kind="chat", prompt="Q", output_text="A3", model="m")
    a.feedback(third.id, sentiment="NEGATIVE")
    d = a.analytics.drivers(min_rated=1)
    assert (d.rated, d.failure_rate) == (3, 1 / 3)
    for _ in range(2):
        a.feedback(child.id, sentiment="NEGATIVE")  # 2 positive, 3 negative
    assert [g.id for g in a.find(filters={"verdict": "NEGATIVE"})] == [third.id, child.id]
    a.feedback(child.id, sentiment="POSITIVE")
    a.feedback(child.id, sentiment="POSITIVE")
    with ll.db.connection() as conn:
        got = search_verdicts(conn, scope, [root.id, child.id])
    assert {k: (v["positives"], v["negatives"], v["verdict"]) for k, v in got.items()} == {
        root.id: (2, 1, "POSITIVE"), child.id: (4, 3, "POSITIVE")}
    a.feedback(root.id, sentiment="NEGATIVE")
    a.feedback(root.id, sentiment="NEGATIVE")  # root: 2 positive, 3 negative
    ds = a.training.create_dataset("good", {"verdict": "POSITIVE"})
    assert [it["generation_id"] for it in a.training.items(ds.id)] == [child.id]
    assert_summary_is_a_recount(ll)


def test_a_settle_touches_its_own_tenant_only(fresh_client):
    ll = fresh_client
    a, b = ll.scoped(tenant="a", project="p"), ll.scoped(tenant="b", project="p")
    ga, gb = a.log(kind="chat"), b.log(kind="chat")
    a.feedback(ga.id, sentiment="NEGATIVE")
    b.feedback(gb.id, sentiment="NEGATIVE")
    b.bulk_feedback([{"generation_id": gb.id, "thumbs": -1}])
    assert a.analytics.breakdown().total.negative == 1
    assert (_pending(ll, a.scope.tenant_id), _pending(ll, b.scope.tenant_id)) == (0, 2)
    with ll.db.connection() as conn:
        row = conn.execute("SELECT feedback_count FROM learnloop.verdicts WHERE tenant_id = %s",
                           (b.scope.tenant_id,)).fetchone()
    assert row["feedback_count"] == 0  # b's summary waits for b's next reader
    assert b.analytics.breakdown().total.negative == 1
    assert _pending(ll, b.scope.tenant_id) == 0
    assert_summary_is_a_recount(ll)


def test_readers_and_writers_at_once_each_read_their_own_writes(fresh_client):
    """Four writers, each reading right after each vote, while settles of the same tenant
    race: every read counts at least the writer's own judged generations so far, and the
    summary ends a recount."""
    ll = fresh_client
    gens = {n: ll.bulk_log([{"kind": "chat", "config": {"w": n}} for _ in range(12)]) for n in range(4)}
    errors: list[str] = []

    def work(n: int) -> None:
        try:
            for i in range(12):
                ll.feedback(gens[n][i], sentiment="NEGATIVE", tags=[f"T{i % 3}"])
                got = {g.by[0].value: g.negative for g in ll.analytics.breakdown(["w"]).groups}
                if got.get(str(n), 0) != i + 1:
                    errors.append(f"writer {n} saw {got.get(str(n))} of its {i + 1} negative generations")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {g.by[0].value: g.negative for g in ll.analytics.breakdown(["w"]).groups} == {
        "0": 12, "1": 12, "2": 12, "3": 12}
    assert_summary_is_a_recount(ll)


def test_a_read_only_transaction_reads_the_last_settled_summaries(fresh_client):
    """A reader that cannot write (a hot standby, a read-only transaction) does not fail on
    the settle: it reads the summaries as the last settle left them."""
    from learnloop.analytics.breakdown import breakdown
    from learnloop.analytics.ledger import corrections, tag_frequencies

    ll = fresh_client
    g1, g2 = ll.log(kind="chat"), ll.log(kind="chat")
    ll.feedback(g1.id, sentiment="NEGATIVE", tags=["A"])
    assert ll.analytics.breakdown().total.negative == 1  # settled
    ll.feedback(g2.id, sentiment="NEGATIVE", tags=["B"])  # left pending
    with ll.db.connection() as conn:
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            assert breakdown(conn, ll.scope).total.negative == 1
        conn.execute("SET default_transaction_read_only = on")  # as on a standby: every statement
        assert corrections(conn, ll.scope).negative == 1
        assert [t.tag for t in tag_frequencies(conn, ll.scope)] == ["A"]
        conn.execute("RESET default_transaction_read_only")
    assert _pending(ll, ll.scope.tenant_id) == 1  # nothing was lost: the next writable read settles it
    assert ll.analytics.breakdown().total.negative == 2
    assert_summary_is_a_recount(ll)
