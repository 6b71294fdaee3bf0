"""The bulk path's fast validator never disagrees with the model, and the pipeline is safe.

``learnloop.ledger.bulk`` accepts rows whose values already have the model's own types
without calling pydantic. These tests hold it to the model: on any row, the fast path either
defers (None) or yields exactly what GenerationIn would, and it never accepts a row the
model refuses.
"""

from __future__ import annotations

import gc
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learnloop import Conflict, InvalidInput
from learnloop.ledger import bulk
from learnloop.ledger.models import GenerationIn

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(0, 3)), inner, max_size=3),
    ),
    max_leaves=8,
)
text_value = st.one_of(st.none(), st.text(max_size=12), st.just("a\x00b"), st.just("x" * 600), st.integers(0, 5))
row = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.one_of(st.text(max_size=60), st.none(), st.integers()),
        "id": st.one_of(st.none(), st.uuids(), st.uuids().map(str), st.just("not-a-uuid")),
        "parent_id": st.one_of(st.none(), st.uuids(), st.uuids().map(str)),
        "external_id": text_value, "user_ref": text_value, "prompt": text_value, "model": text_value,
        "output_url": text_value,
        "context": st.one_of(json_value, st.dictionaries(st.text(max_size=4), json_value, max_size=3)),
        "config": st.one_of(st.none(), st.dictionaries(st.text(max_size=4), json_value, max_size=3)),
        "messages": st.one_of(st.none(), json_value, st.lists(st.dictionaries(st.text(max_size=4), json_value, max_size=2), max_size=2)),
        "retrieved": st.one_of(st.none(), json_value),
        "links": st.one_of(st.none(), st.dictionaries(st.text(max_size=4), st.one_of(st.text(max_size=4), st.integers(), st.floats()), max_size=3)),
        "tokens_in": st.one_of(st.none(), st.integers(-5, 3_000_000_000), st.booleans(), st.just("12")),
        "latency_ms": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 10**6)),
        "cost": st.one_of(st.none(), st.decimals(allow_nan=False, places=3, min_value=0, max_value=10), st.just("0.5")),
        "created_at": st.one_of(st.none(), st.datetimes(timezones=st.just(UTC)), st.just("2024-01-02T03:04:05Z")),
        "surprise": st.just(1),
    },
)


def model_or_error(data):
    try:
        return GenerationIn.model_validate(data), None
    except Exception as exc:  # noqa: BLE001 - InvalidInput or pydantic's own
        return None, exc


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row)
def test_fast_path_defers_or_agrees_with_the_model(data):
    fast = bulk._canonical(data)
    model, error = model_or_error(data)
    if fast is None:
        return
    assert error is None, f"fast path accepted a row the model refuses: {error}"
    for name, value in model.__dict__.items():
        assert fast.f[name] == value, name
        assert type(fast.f[name]) is type(value), name
    for name, data_bytes in fast.json.items():
        expected = getattr(model, name)
        assert (None if data_bytes is None else orjson.loads(data_bytes)) == expected, name


def test_common_rows_take_the_fast_path_and_unusual_ones_the_model():
    plain = {"kind": "image", "prompt": "p", "context": {"a": 1.5}, "links": {"loan": "456"}, "tokens_in": 3}
    assert bulk._canonical(plain) is not None
    for unusual in ({**plain, "id": str(uuid.uuid4())}, {**plain, "cost": "0.5"},
                    {**plain, "links": {"loan": 456}}, {**plain, "context": {"x": None}}):
        assert bulk._canonical(unusual) is None
        assert bulk.validate(unusual).f == dict(GenerationIn.model_validate(unusual).__dict__)


def test_rows_from_either_path_are_stored_identically(fresh_client):
    ll = fresh_client
    t = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    fast = {"kind": "chat", "prompt": "hi", "context": {"n": 1}, "config": {"s": "X"}, "links": {"loan": "456"},
            "messages": [{"role": "user", "content": "hi"}], "latency_ms": 12, "tokens_in": 4, "created_at": t}
    slow = {**fast, "links": {"loan": 456}, "cost": Decimal("0.25"), "id": str(uuid.uuid4())}
    assert bulk._canonical(fast) is not None and bulk._canonical(slow) is None
    a, b = (ll.get(i) for i in ll.bulk_log([fast, slow]))
    one = ll.log(fast)
    for g in (a, b, one):
        assert g.links == {"loan": "456"} and g.messages == [{"role": "user", "content": "hi"}]
        assert g.latency_ms == 12.0 and g.created_at == t and g.context == {"n": 1}
    assert b.cost == Decimal("0.25") and str(b.id) == slow["id"]


def test_bad_rows_get_the_models_message_and_nothing_is_written(fresh_client):
    ll = fresh_client
    with pytest.raises(InvalidInput, match="tokens_in"):
        ll.bulk_log([{"kind": "chat"}] * 5 + [{"kind": "chat", "tokens_in": -1}])
    with pytest.raises(InvalidInput, match="NUL"):
        ll.bulk_log([{"kind": "chat", "context": {"k": "a\x00b"}}])
    with ll.db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM learnloop.generations").fetchone()["n"] == 0
        assert conn.execute("SELECT count(*) AS n FROM learnloop.events").fetchone()["n"] == 0


def test_a_failure_while_a_batch_is_in_flight_rolls_everything_back(fresh_client):
    from learnloop.ledger import generations

    ll = fresh_client
    stored = ll.log(kind="chat")
    # Batch 1 is copied by the writer thread while batch 2 is validated; batch 3 collides
    # with a stored id, so the writer fails after two batches went in.
    rows = [{"kind": "chat"} for _ in range(20)] + [{"kind": "chat", "id": stored.id}]
    with ll.db.connection() as conn, pytest.raises(Conflict, match="already stored"):
        generations.bulk_log(conn, ll.scope, rows, batch_size=10)
    # ... and a validation error in the main thread while the writer is busy.
    rows = [{"kind": "chat"} for _ in range(20)] + [{"kind": "chat", "rating": 9}]
    with ll.db.connection() as conn, pytest.raises(InvalidInput):
        generations.bulk_log(conn, ll.scope, rows, batch_size=10)
    with ll.db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM learnloop.generations").fetchone()["n"] == 1
        assert conn.execute("SELECT count(*) AS n FROM learnloop.events").fetchone()["n"] == 1
    assert gc.isenabled()  # the collector pause ends with the call, failed or not


def test_each_bulk_row_gets_its_outbox_event_in_input_order(fresh_client):
    ll = fresh_client
    ids = ll.bulk_log([{"kind": "chat", "user_ref": f"u{i}"} for i in range(30)])
    with ll.db.connection() as conn:
        rows = conn.execute(
            "SELECT entity_id, payload FROM learnloop.events WHERE event_type = 'generation.logged' ORDER BY id"
        ).fetchall()
    assert [r["entity_id"] for r in rows] == [str(i) for i in ids]
    assert all(r["payload"]["bulk"] is True and r["payload"]["iteration"] == 1 for r in rows)


def test_feedback_bulk_add_also_leaves_the_collector_running(fresh_client):
    ll = fresh_client
    g = ll.log(kind="chat")
    assert ll.bulk_feedback([{"generation_id": g.id, "rating": 5}] * 3) == 3
    with pytest.raises(InvalidInput):
        ll.bulk_feedback([{"generation_id": g.id, "rating": 9}])
    assert gc.isenabled()
    gc.disable()
    try:  # a collector the caller turned off stays off
        ll.bulk_feedback([{"generation_id": g.id, "thumbs": 1}])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_bulk_events_carry_the_same_payload_as_single_logs(fresh_client):
    ll = fresh_client
    root = ll.log(kind="chat", model="m1", user_ref="ana", links={"loan": "456"})
    child = ll.log(kind="chat", model="m1", user_ref="ana", links={"loan": "456"}, parent_id=root.id)
    b_root, b_child = ll.bulk_log([
        {"kind": "chat", "model": "m1", "user_ref": "ana", "links": {"loan": "456"}, "id": uuid.uuid4()},
        {"kind": "chat", "model": "m1", "user_ref": "ana", "links": {"loan": 456}, "parent_id": root.id},
    ])
    with ll.db.connection() as conn:
        ev = {r["entity_id"]: r for r in conn.execute(
            "SELECT entity_id, payload, actor, project_id FROM learnloop.events WHERE event_type = 'generation.logged'"
        ).fetchall()}

    def strip(p):
        return {k: v for k, v in p.items() if k not in ("root_id", "bulk")}

    assert strip(ev[str(b_root)]["payload"]) == strip(ev[str(root.id)]["payload"])
    assert ev[str(b_root)]["payload"]["root_id"] == str(b_root)
    # a bulk child of a stored parent: same parent, root and iteration as a single child
    assert ev[str(b_child)]["payload"] == {**ev[str(child.id)]["payload"], "bulk": True}
    assert {e["actor"] for e in ev.values()} == {"ana"}
    assert {e["project_id"] for e in ev.values()} == {ll.scope.project_id}


def test_a_time_without_a_zone_is_utc_in_log_and_bulk_log(client):
    """bulk_log once failed with a TypeError on a naive datetime (its binary COPY needs a
    zone) while log() left it to the server session's zone: both now read it as UTC."""
    ll = client.scoped(tenant=f"t{uuid.uuid4().hex[:10]}", project="p")
    naive = datetime(2026, 3, 1, 23, 30)
    [bulk_id] = ll.bulk_log([{"kind": "chat", "created_at": naive}])
    single = ll.log(kind="chat", created_at=naive)
    want = naive.replace(tzinfo=UTC)
    assert ll.get(bulk_id).created_at == want == ll.get(single.id).created_at
