"""App-defined events (seed 003): ``ll.events.emit`` and ``POST /v1/events`` write to the
same outbox as learnloop's own events, so they reach the list, the archive (entity and
user as columns), DuckDB, the WebSocket stream and the relay; bad types and oversized
payloads are refused before anything is written. Entities: events carry user and
metadata, and a patch changes part of an entity without re-sending the rest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import learnloop
from learnloop.api import create_app
from learnloop.config import get_settings
from learnloop.errors import InvalidInput, NotFound
from learnloop.events.app_events import MAX_PAYLOAD_BYTES


@pytest.fixture(scope="module")
def api(client: learnloop.Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("app-events")
    s = get_settings(home=home, archive_root=str(home / "archive"))
    ll = client.scoped(tenant="app-events-http")
    _, key = ll.events.create_key("writer", ["ingest", "read"])
    with TestClient(create_app(s, client=client, archive=False)) as tc:
        yield {"tc": tc, "ll": ll, "key": key, "root": s.archive_root}


def _h(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def _count(ll: learnloop.Client) -> int:
    with ll.db.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM learnloop.events WHERE tenant_id = %s",
                           (ll.scope.tenant_id,)).fetchone()
    assert row is not None
    return int(row["n"])


def test_emit_reaches_list_archive_and_duckdb(client: learnloop.Client, tmp_path: Any) -> None:
    ll = client.scoped(tenant="app-events-lib")
    ev = ll.events.emit("goal.completed", entity=("goal", "g-17"), user="u-3", payload={"score": 0.92})
    assert ev["id"] > 0 and ev["entity_type"] == "goal" and ev["user"] == "u-3"
    ll.events.emit("code.validated", entity={"type": "code_snapshot", "id": 5}, user="u-3")
    ll.events.emit("course.announcement_sent")  # no entity: typed by its first word
    listed = ll.events.list()
    assert [e["event_type"] for e in listed] == ["goal.completed", "code.validated", "course.announcement_sent"]
    assert listed[1]["entity_id"] == "5" and listed[2]["entity_type"] == "course"
    root = str(tmp_path / "archive")
    assert ll.events.archive(root=root)["events"] >= 3
    res = ll.events.sql("SELECT event_type, entity_type, entity_id, actor, json_extract(payload, '$.score')::DOUBLE"
                        " FROM events WHERE event_type = 'goal.completed'", root=root)
    assert res["rows"] == [["goal.completed", "goal", "g-17", "u-3", 0.92]]
    per_user = {r["user"]: r["events"] for r in ll.events.activity(days=1, root=root)}
    assert per_user == {"u-3": 2}


@pytest.mark.parametrize(("event_type", "why"), [
    ("GoalCreated", "does not match"),
    ("goal", "does not match"),
    ("goal.", "does not match"),
    ("goal created.x", "does not match"),
    ("goal.créé", "does not match"),
    ("a." + "b" * 120, "does not match"),
    ("feedback.added", "learnloop's own"),
    ("entity.upserted", "learnloop's own"),
    ("search.slow", "learnloop's own"),
])
def test_event_type_outside_the_pattern_is_refused(client: learnloop.Client, event_type: str, why: str) -> None:
    ll = client.scoped(tenant="app-events-bad")
    before = _count(ll)
    with pytest.raises(InvalidInput, match=why):
        ll.events.emit(event_type)
    assert _count(ll) == before


def test_bad_payloads_entities_and_users_are_refused(client: learnloop.Client) -> None:
    ll = client.scoped(tenant="app-events-bad")
    before = _count(ll)
    with pytest.raises(InvalidInput, match="limit is 65,536"):
        ll.events.emit("goal.created", payload={"text": "x" * MAX_PAYLOAD_BYTES})
    with pytest.raises(InvalidInput, match="JSON object"):
        ll.events.emit("goal.created", payload=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="NaN"):
        ll.events.emit("goal.created", payload={"x": float("nan")})
    with pytest.raises(InvalidInput, match="NUL"):
        ll.events.emit("goal.created", payload={"x": "a\x00b"})
    with pytest.raises(InvalidInput, match="pair"):
        ll.events.emit("goal.created", entity="g-1")
    with pytest.raises(InvalidInput, match="entity id"):
        ll.events.emit("goal.created", entity=("goal", ""))
    with pytest.raises(InvalidInput, match="user"):
        ll.events.emit("goal.created", user="")
    assert _count(ll) == before
    # Just under the cap is fine.
    ll.events.emit("goal.created", payload={"text": "x" * (MAX_PAYLOAD_BYTES - 20)})


def test_post_events_idempotent_and_streamed(api: dict[str, Any]) -> None:
    tc, ll, key = api["tc"], api["ll"], api["key"]
    body = {"type": "task.completed", "entity_type": "task", "entity_id": "t-1", "user": "u-9",
            "payload": {"minutes": 42}}
    with tc.websocket_connect("/v1/events/stream?event_type=task.completed", headers=_h(key)) as ws:
        assert ws.receive_json()["type"] == "ready"
        r1 = tc.post("/v1/events", json=body, headers=_h(key, **{"Idempotency-Key": "task-1-done"}))
        assert r1.status_code == 201, r1.text
        live = ws.receive_json()
        while live["type"] != "event":
            live = ws.receive_json()
    assert live["id"] == r1.json()["id"] and live["event_type"] == "task.completed"
    assert live["actor"] == "u-9" and live["payload"] == {"minutes": 42}
    r2 = tc.post("/v1/events", json=body, headers=_h(key, **{"Idempotency-Key": "task-1-done"}))
    assert r2.status_code == 201 and r2.json() == r1.json() and r2.headers["Idempotent-Replayed"] == "true"
    assert [e["event_type"] for e in ll.events.list(event_types=["task.completed"])] == ["task.completed"]


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "Task.Done"}, "type"),
    ({"type": "review.added"}, "type"),
    ({"type": "task.done", "payload": {"blob": "y" * (MAX_PAYLOAD_BYTES + 1)}}, "payload"),
    ({"type": "task.done", "entity_type": "task"}, "entity_id"),
    ({"type": "task.done", "extra": 1}, None),
])
def test_post_events_bad_input_is_problem_json(api: dict[str, Any], body: dict[str, Any], field: str | None) -> None:
    tc, ll, key = api["tc"], api["ll"], api["key"]
    before = _count(ll)
    r = tc.post("/v1/events", json=body, headers=_h(key))
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if field:
        assert field in r.text
    assert _count(ll) == before


def test_read_key_cannot_emit(api: dict[str, Any]) -> None:
    tc, ll = api["tc"], api["ll"]
    _, read_key = ll.events.create_key("reader", ["read"])
    r = tc.post("/v1/events", json={"type": "goal.created"}, headers=_h(read_key))
    assert r.status_code == 403


# -- entities ------------------------------------------------------------------------------

def test_entity_events_carry_user_and_metadata(client: learnloop.Client) -> None:
    ll = client.scoped(tenant="app-events-entities")
    ll.knowledge.upsert_entity("goal", "g-1", "Learn Python in 3 months", user_ref="u-1",
                               metadata={"status": "active"})
    ev = ll.events.list(event_types=["entity.upserted"])[-1]
    assert ev["actor"] == "u-1"
    assert ev["payload"]["metadata"] == {"status": "active"} and ev["payload"]["entity_id"] == "g-1"


def test_patch_entity_merges_metadata_and_keeps_text(client: learnloop.Client) -> None:
    ll = client.scoped(tenant="app-events-entities")
    kn = ll.knowledge
    kn.upsert_entity("goal", "g-2", "Build a REST API with FastAPI", user_ref="u-2",
                     metadata={"status": "active", "priority": 2, "draft": True})
    out = kn.patch_entity("goal", "g-2", metadata={"status": "completed", "draft": None})
    assert out["text"] == "Build a REST API with FastAPI" and out["user_ref"] == "u-2"
    assert out["metadata"] == {"status": "completed", "priority": 2}
    ev = ll.events.list(event_types=["entity.upserted"])[-1]
    assert ev["payload"]["metadata"] == {"status": "completed", "priority": 2} and ev["actor"] == "u-2"
    # The vector row's metadata follows, so a filtered search sees the new status at once.
    hits = kn.search("REST API", k=5, owner_types=["entity"], where={"status": "completed"})
    assert [h["entity_id"] for h in hits] == ["g-2"]
    out = kn.patch_entity("goal", "g-2", text="Build a GraphQL API", user_ref=None, replace_metadata=True,
                          metadata={"status": "archived"})
    assert out["text"] == "Build a GraphQL API" and out["user_ref"] is None and out["metadata"] == {"status": "archived"}
    with pytest.raises(NotFound):
        kn.patch_entity("goal", "nope", metadata={"status": "x"})
    with pytest.raises(InvalidInput):
        kn.patch_entity("goal", "g-2", metadata={"bad": float("inf")})
    assert kn.entity("goal", "g-2")["metadata"] == {"status": "archived"}


def test_patch_entity_over_http(api: dict[str, Any]) -> None:
    tc, ll, key = api["tc"], api["ll"], api["key"]
    ll.knowledge.upsert_entity("task", "t-7", "Write unit tests for the parser", user_ref="u-7",
                               metadata={"status": "todo"})
    r = tc.patch("/v1/entities/task/t-7", json={"metadata": {"status": "done"}}, headers=_h(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["metadata"] == {"status": "done"} and body["text"] == "Write unit tests for the parser"
    assert body["user_ref"] == "u-7"
    r = tc.patch("/v1/entities/task/t-7", json={"user_ref": None}, headers=_h(key))
    assert r.json()["user_ref"] is None and r.json()["metadata"] == {"status": "done"}
    r = tc.patch("/v1/entities/task/missing", json={"metadata": {}}, headers=_h(key))
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = tc.patch("/v1/entities/task/t-7", json={"text": ""}, headers=_h(key))
    assert r.status_code == 422
    assert json.loads(tc.get("/v1/entities/task/t-7", headers=_h(key)).text)["metadata"] == {"status": "done"}
