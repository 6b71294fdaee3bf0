"""Per-account operations over HTTP (seed 002): an installation key made by the CLI creates
tenants and their first keys; tenant keys get 403 there; each tenant reads its own search
metrics over HTTP (flushed by a timer, not by the next search) and sets the latency above
which a search emits ``search.slow``, which the stream and the archive carry."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import learnloop
from learnloop.api import create_app
from learnloop.config import get_settings
from learnloop.knowledge import metrics as search_metrics


@pytest.fixture(scope="module")
def api(client: learnloop.Client, tmp_path_factory: pytest.TempPathFactory, cli_env_module: dict[str, str]
        ) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("accounts")
    s = get_settings(home=home, archive_root=str(home / "archive"))
    out = subprocess.run([sys.executable, "-m", "learnloop.cli.main", "keys", "create", "--installation", "--name", "ops"],
                         env=cli_env_module, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    inst_key = out.stdout.strip()
    assert inst_key.startswith("lli_")
    with TestClient(create_app(s, client=client, archive=False)) as tc:
        yield {"tc": tc, "client": client, "inst": inst_key, "root": s.archive_root}


@pytest.fixture(scope="module")
def cli_env_module(db_url: str) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["LEARNLOOP_DATABASE_URL"] = db_url
    return env


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _new_tenant(api: dict[str, Any], name: str, **extra: Any) -> dict[str, Any]:
    r = api["tc"].post("/v1/installation/tenants", json={"name": name, **extra}, headers=_h(api["inst"]))
    assert r.status_code == 201, r.text
    return r.json()


def test_installation_key_creates_tenants_and_first_keys(api: dict[str, Any]) -> None:
    tc = api["tc"]
    made = _new_tenant(api, "acme-dental", key_name="acme backend", scopes=["admin"])
    assert made["tenant"]["name"] == "acme-dental" and made["key"]["key"].startswith("llk_")
    key = made["key"]["key"]
    # The new tenant's key works at once, in its own tenant.
    r = tc.post("/v1/generations", json={"kind": "chat", "prompt": "hola"}, headers=_h(key))
    assert r.status_code == 201, r.text
    names = [t["name"] for t in tc.get("/v1/installation/tenants", headers=_h(api["inst"])).json()]
    assert "acme-dental" in names
    r = tc.post("/v1/installation/tenants/acme-dental/keys", json={"name": "reader", "scopes": ["read"]},
                headers=_h(api["inst"]))
    assert r.status_code == 201 and r.json()["scopes"] == ["read"]
    assert tc.get("/v1/events", headers=_h(r.json()["key"])).status_code == 200
    # Same name twice: a conflict, nothing created.
    r = tc.post("/v1/installation/tenants", json={"name": "acme-dental"}, headers=_h(api["inst"]))
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    r = tc.post("/v1/installation/tenants/nobody/keys", json={"name": "k", "scopes": ["read"]},
                headers=_h(api["inst"]))
    assert r.status_code == 404


def test_tenant_keys_cannot_call_installation_routes(api: dict[str, Any]) -> None:
    tc = api["tc"]
    key = _new_tenant(api, "tenant-admin-tries")["key"]["key"]  # even an admin-scope tenant key
    for method, path, body in (("POST", "/v1/installation/tenants", {"name": "sneaky"}),
                               ("GET", "/v1/installation/tenants", None),
                               ("POST", "/v1/installation/tenants/acme-dental/keys", {"name": "x", "scopes": ["admin"]})):
        r = tc.request(method, path, json=body, headers=_h(key))
        assert r.status_code == 403, r.text
        assert "installation key" in r.json()["detail"]
    names = [t["name"] for t in api["client"].accounts.tenants()]
    assert "sneaky" not in names
    # No key, a garbage key, a revoked installation key: 401.
    assert tc.get("/v1/installation/tenants").status_code == 401
    assert tc.get("/v1/installation/tenants", headers=_h("lli_nope")).status_code == 401
    assert tc.get("/v1/installation/tenants", headers=_h("llk_" + "0" * 32 + "_" + "x" * 30)).status_code == 401
    rec, other = api["client"].accounts.create_installation_key("temporary")
    assert tc.get("/v1/installation/tenants", headers=_h(other)).status_code == 200
    api["client"].accounts.revoke_installation_key(rec["id"])
    assert tc.get("/v1/installation/tenants", headers=_h(other)).status_code == 401
    # An installation key reads no tenant's data.
    assert tc.get("/v1/events", headers=_h(api["inst"])).status_code == 401


def test_installation_key_never_logged(api: dict[str, Any]) -> None:
    from learnloop.api.middleware import RedactKeys

    rec = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s"', (
        "127.0.0.1", "GET", f"/v1/x?key={api['inst']}"), None)
    RedactKeys().filter(rec)
    assert api["inst"] not in rec.getMessage() and "***" in rec.getMessage()


def test_settings_bad_values_are_refused(api: dict[str, Any]) -> None:
    tc = api["tc"]
    key = _new_tenant(api, "settings-tenant")["key"]["key"]
    for bad in (0, -5, 10_000_000, "fast", None and 1):
        if bad is None:
            continue
        r = tc.put("/v1/settings", json={"slow_search_ms": bad}, headers=_h(key))
        assert r.status_code == 422, (bad, r.text)
    assert tc.get("/v1/settings", headers=_h(key)).json()["slow_search_ms"] is None
    r = tc.put("/v1/settings", json={"slow_search_ms": 150}, headers=_h(key))
    assert r.status_code == 200 and r.json()["effective_slow_search_ms"] == 150
    r = tc.put("/v1/settings", json={"slow_search_ms": None}, headers=_h(key))
    assert r.json()["slow_search_ms"] is None and r.json()["effective_slow_search_ms"] == 200


def test_metrics_per_tenant_over_http_and_flushed_by_timer(api: dict[str, Any], monkeypatch: Any) -> None:
    tc, client = api["tc"], api["client"]
    a = _new_tenant(api, "metrics-a")["key"]["key"]
    b = _new_tenant(api, "metrics-b")["key"]["key"]
    tc.put("/v1/entities/doc/d1", json={"text": "how to reset a password"}, headers=_h(a))
    for _ in range(3):
        assert tc.post("/v1/search", json={"query": "password", "k": 1}, headers=_h(a)).status_code == 200
    assert tc.post("/v1/search", json={"query": "password", "k": 1}, headers=_h(b)).status_code == 200
    sa = tc.get("/v1/stats/search", headers=_h(a)).json()
    sb = tc.get("/v1/stats/search", headers=_h(b)).json()
    assert sa["searches"] == 3 and sb["searches"] == 1
    assert sa["search_ms_mean"] > 0
    # An idle process still books its counts: the timer flushes without another search.
    monkeypatch.setattr(search_metrics, "FLUSH_SECONDS", 0.2)
    # Start a fresh timer with the short interval. Both flags: with only the thread
    # forgotten, record_search saw "started" and started none, and the old thread's
    # 10 s sleep raced the deadline below (a flaky failure).
    monkeypatch.setattr(search_metrics, "_flusher", None)
    monkeypatch.setattr(search_metrics, "_flusher_started", False)
    tc.post("/v1/search", json={"query": "password", "k": 1}, headers=_h(b))
    scope_b = client.scoped(tenant="metrics-b").scope
    deadline = time.time() + 10
    stored = 0
    while time.time() < deadline:
        with client.db.connection() as conn:
            stored = search_metrics.stored(conn, scope_b.tenant_id, None)["searches"]
        if stored == 2:
            break
        time.sleep(0.1)
    assert stored == 2


def test_search_slow_event_per_tenant_threshold(api: dict[str, Any], tmp_path: Any) -> None:
    tc, client = api["tc"], api["client"]
    fast = _new_tenant(api, "slow-strict", slow_search_ms=0.001)["key"]["key"]  # every search is "slow"
    lax = _new_tenant(api, "slow-lax", slow_search_ms=600_000)["key"]["key"]
    for k in (fast, lax):
        tc.put("/v1/entities/doc/d1", json={"text": "opening hours of the clinic"}, headers=_h(k))
    with tc.websocket_connect("/v1/events/stream?event_type=search.slow", headers=_h(fast)) as ws:
        assert ws.receive_json()["type"] == "ready"
        assert tc.post("/v1/search", json={"query": "hours", "k": 1}, headers=_h(fast)).status_code == 200
        m = ws.receive_json()
        while m["type"] != "event":
            m = ws.receive_json()
    assert m["event_type"] == "search.slow" and m["payload"]["threshold_ms"] == 0.001 and m["payload"]["ms"] > 0
    tc.post("/v1/search", json={"query": "hours", "k": 1}, headers=_h(lax))
    strict, lax_c = client.scoped(tenant="slow-strict"), client.scoped(tenant="slow-lax")
    assert len(strict.events.list(event_types=["search.slow"])) == 1
    assert lax_c.events.list(event_types=["search.slow"]) == []
    root = str(tmp_path / "archive")
    strict.events.archive(root=root)
    rows = strict.events.sql("SELECT event_type, json_extract(payload, '$.path') FROM events"
                             " WHERE event_type = 'search.slow'", root=root)["rows"]
    assert len(rows) == 1
    stats = tc.get("/v1/stats/search", headers=_h(fast)).json()
    assert stats["slow_searches"] == 1


def test_cache_hit_rate_is_per_tenant_and_project(api: dict[str, Any]) -> None:
    """Tenant A's cached query vectors never count for tenant B (each tenant has its own
    cache, and now its own hit rate), nor for A's other project."""
    tc = api["tc"]
    a = _new_tenant(api, "cache-a")["key"]["key"]
    b = _new_tenant(api, "cache-b")["key"]["key"]
    query = {"query": "which loans are overdue this week", "k": 1}
    for _ in range(4):  # one miss, then three hits
        assert tc.post("/v1/search", json=query, headers=_h(a)).status_code == 200
    # B asks the same text once: a miss in B's own cache, whatever A has cached.
    assert tc.post("/v1/search", json=query, headers=_h(b)).status_code == 200
    other_h = {**_h(a), "X-Learnloop-Project": "other"}
    assert tc.put("/v1/entities/doc/d1", json={"text": "overdue loans"}, headers=other_h).status_code == 200
    assert tc.post("/v1/search", json=query, headers=other_h).status_code == 200
    sa = tc.get("/v1/stats/search", headers=_h(a)).json()
    sb = tc.get("/v1/stats/search", headers=_h(b)).json()
    assert (sa["cache_hits"], sa["cache_misses"]) == (3, 1) and sa["cache_hit_rate"] == 0.75
    assert (sb["cache_hits"], sb["cache_misses"]) == (0, 1) and sb["cache_hit_rate"] == 0.0
    # A's second project: the text is in A's cache (a hit), counted for that project only.
    other = tc.get("/v1/stats/search", headers=other_h).json()
    assert (other["cache_hits"], other["cache_misses"]) == (1, 0)
    whole = tc.get("/v1/stats/search", params={"all_projects": True}, headers=_h(a)).json()
    assert (whole["cache_hits"], whole["cache_misses"], whole["searches"]) == (4, 1, 5)


def test_metrics_of_two_databases_stay_in_their_own(pg_server: str) -> None:
    """One process, two databases whose tenant and project have the same ids (the second is
    a copy of the first, as a restored backup is): each flush writes that database's
    searches only, and each database's cache hits are its own."""
    import uuid

    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from tests.fix_citus import CITUS_URL
    from tests.fix_db import new_database

    if CITUS_URL is not None:
        pytest.skip("copies a database with CREATE DATABASE ... TEMPLATE")
    url_one = new_database(pg_server)
    with learnloop.connect(url_one) as ll:
        ll.knowledge.upsert_entity("doc", "d1", "how to reset a password")
    name_two = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name_two), sql.Identifier(conninfo_to_dict(url_one)["dbname"])))
    one, two = learnloop.connect(url_one), learnloop.connect(make_conninfo(pg_server, dbname=name_two))
    try:
        assert (one.scope.tenant_id, one.scope.project_id) == (two.scope.tenant_id, two.scope.project_id)
        one.knowledge.search("password", k=1)
        for _ in range(2):
            two.knowledge.search("password", k=1)
        search_metrics.flush(one.db)  # (the timer may flush either meanwhile: same outcome)
        search_metrics.flush(two.db)
        with one.db.connection() as conn:
            in_one = search_metrics.stored(conn, one.scope.tenant_id, one.scope.project_id)
        with two.db.connection() as conn:
            in_two = search_metrics.stored(conn, two.scope.tenant_id, two.scope.project_id)
        assert in_one["searches"] == 1 and (in_one["cache_hits"], in_one["cache_misses"]) == (0, 1)
        assert in_two["searches"] == 2 and (in_two["cache_hits"], in_two["cache_misses"]) == (1, 1)
    finally:
        one.close()
        two.close()
