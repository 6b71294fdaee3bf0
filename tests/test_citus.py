"""On a Citus cluster (LEARNLOOP_TEST_CITUS_URL): tenant-scoped calls touch one shard, the
live stream's wake-up reaches a coordinator listener, and outbox txids are the coordinator's.

The rest of the suite runs on the cluster unchanged (tests/fix_citus.py); these check what
only a cluster can show.
"""

from __future__ import annotations

import select
import time
from typing import Any

import psycopg
import pytest
from benchmarks.citus_explain import explained

import learnloop

from .fix_citus import needs_citus

pytestmark = needs_citus


@pytest.fixture(scope="module")
def ll(client: learnloop.Client) -> Any:
    return client.scoped(tenant="citus-a", project="p")


def _tasks(call: Any) -> list[list[int]]:
    with explained() as seen:
        call()
    return [e.tasks for e in seen]


def test_every_tenant_scoped_call_runs_on_one_shard(ll: Any) -> None:
    g = ll.log(prompt="one shard please", output_text="ok", model="m", config={"style_preset": "MINIMAL"})
    child = ll.log(prompt="again", output_text="ok", model="m", parent_id=g.id)
    ll.knowledge.upsert_entity("note", "n-1", "a note about pyrolysis plants")
    vec = ll.knowledge.embed(["pyrolysis"])[0]
    calls = {
        "log": lambda: ll.log(prompt="explained", output_text="ok", model="m"),
        "child log": lambda: ll.log(prompt="explained", output_text="ok", model="m", parent_id=g.id),
        "feedback": lambda: ll.feedback(g.id, sentiment="NEGATIVE", tags=["TOO_DARK"]),
        "search": lambda: ll.knowledge.search(vec, 5),
        "search filtered": lambda: ll.knowledge.search(vec, 5, entity_types="note", where={"x": 1}),
        "search hybrid": lambda: ll.knowledge.search(vec, 5, text="pyrolysis plants", hybrid=True),
        "similar successes": lambda: ll.knowledge.similar_successes(vec, 3, kind="chat"),
        "failure rate": lambda: ll.analytics.failure_rate("style_preset"),
        "path": lambda: ll.path(child.id),
        "tree": lambda: ll.tree(child.id),
        "upsert entity": lambda: ll.knowledge.upsert_entity("note", "n-1", "a note about pyrolysis plants, again"),
    }
    for name, call in calls.items():
        tasks = _tasks(call)
        assert tasks, f"{name}: no statement was explained"
        spread = [t for t in tasks if any(n != 1 for n in t)]
        assert not spread, f"{name} touches more than one shard: {spread}"
        assert any(t for t in tasks), f"{name}: no statement reached a distributed table"


def test_a_coordinator_listener_is_woken_by_a_write(ll: Any, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as listen:
        listen.execute("LISTEN learnloop_events")
        # What a reader's heartbeat does (events.stream): writers notify until then.
        listen.execute("SELECT setval('learnloop.stream_listeners_until', %s)", (int(time.time()) + 60,))
        ll.log(prompt="wake up", output_text="ok")
        deadline = time.monotonic() + 10
        got = []
        while time.monotonic() < deadline and not got:
            select.select([listen.fileno()], [], [], 0.5)
            got = list(listen.notifies(timeout=0, stop_after=1))
        assert got and got[0].payload == str(ll.scope.tenant_id)


@pytest.mark.parametrize("how", ["log", "bulk_log", "feedback"])
def test_outbox_txids_are_the_coordinators(ll: Any, db_url: str, how: str) -> None:
    """The archiver and the stream order the outbox by txid against the coordinator's
    snapshot: each write path must stamp coordinator transaction ids."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        since = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
        before = int(conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0])  # type: ignore[index]
        if how == "log":
            ll.log(prompt="txid", output_text="ok")
        elif how == "bulk_log":
            ll.bulk_log([{"prompt": f"txid {i}", "output_text": "ok"} for i in range(3)])
        else:
            ll.feedback(ll.log(prompt="txid", output_text="ok").id, sentiment="POSITIVE")
        after = int(conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0])  # type: ignore[index]
        rows = conn.execute(
            "SELECT txid::text::bigint FROM learnloop.events WHERE tenant_id = %s AND created_at >= %s",
            (ll.scope.tenant_id, since)).fetchall()
    assert rows and all(before < r[0] < after for r in rows), (before, after, rows)
