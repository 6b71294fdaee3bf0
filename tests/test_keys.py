"""API keys: shown once, stored salted-hashed, compared in constant time, revoked at once."""

from __future__ import annotations

import subprocess
import sys

import pytest

import learnloop
from learnloop.errors import InvalidInput, NotFound
from learnloop.events import keys


def test_key_is_stored_only_as_salted_hash(client: learnloop.Client) -> None:
    ll = client.scoped(tenant="keys-a")
    rec1, k1 = ll.events.create_key("one", ["read"])
    rec2, k2 = ll.events.create_key("two", ["read"])
    secret1 = k1.split("_", 2)[2]
    with ll.db.connection() as conn:
        rows = conn.execute("SELECT * FROM learnloop.api_keys WHERE tenant_id = %s", (ll.scope.tenant_id,)).fetchall()
        dump = conn.execute("SELECT row_to_json(k)::text AS j FROM learnloop.api_keys k").fetchall()
    assert len(rows) == 2
    assert all(secret1 not in d["j"] and k1 not in d["j"] for d in dump)
    assert rows[0]["salt"] != rows[1]["salt"] and len(bytes(rows[0]["salt"])) == 16
    assert len(bytes(rows[0]["hash"])) == 32
    assert "key" not in rec1 and k1.startswith("llk_") and k1 != k2


def test_authenticate_and_revoke(client: learnloop.Client) -> None:
    ll = client.scoped(tenant="keys-b")
    rec, k = ll.events.create_key("svc", ["ingest", "read"])
    with ll.db.connection() as conn:
        p = keys.authenticate(conn, k)
        assert p.tenant == "keys-b" and p.scopes == {"ingest", "read"} and p.allows("read")
        assert not p.allows("admin")
        for bad in (None, "", "llk_x", k[:-1] + ("A" if k[-1] != "A" else "B"), k.replace("llk_", "llk_0")):
            with pytest.raises(keys.Unauthenticated):
                keys.authenticate(conn, bad)
    ll.events.revoke_key(rec["id"])
    with ll.db.connection() as conn, pytest.raises(keys.Unauthenticated):
        keys.authenticate(conn, k)
    # revocation is an event in the outbox
    assert "api_key.revoked" in [e["event_type"] for e in ll.events.list(entity_types=["api_key"])]


def test_admin_scope_implies_others_and_bad_scopes_refused(client: learnloop.Client) -> None:
    ll = client.scoped(tenant="keys-c")
    _, k = ll.events.create_key("adm", ["admin"])
    with ll.db.connection() as conn:
        p = keys.authenticate(conn, k)
    assert p.allows("ingest") and p.allows("read")
    for bad in ([], ["root"], "ingest,nope", [1]):
        with pytest.raises(InvalidInput):
            ll.events.create_key("x", bad)


def test_other_tenant_cannot_revoke(client: learnloop.Client) -> None:
    a = client.scoped(tenant="keys-d")
    b = client.scoped(tenant="keys-e")
    rec, k = a.events.create_key("a", ["read"])
    with pytest.raises(NotFound):
        b.events.revoke_key(rec["id"])
    with a.db.connection() as conn:
        assert keys.authenticate(conn, k).tenant == "keys-d"


def test_uses_constant_time_compare() -> None:
    import inspect

    assert "secret_matches" in inspect.getsource(keys.authenticate)
    assert "hmac.compare_digest" in inspect.getsource(keys.secret_matches)


def test_cli_create_list_revoke(cli_env: dict[str, str]) -> None:
    run = lambda *a: subprocess.run([sys.executable, "-m", "learnloop.cli.main", "--tenant", "keys-cli", *a],  # noqa: E731
                                    env=cli_env, capture_output=True, text=True, timeout=120)
    r = run("keys", "create", "--name", "ci", "--scope", "read")
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert key.startswith("llk_") and "only time" in r.stderr
    lst = run("keys", "list", "--json")
    assert key not in lst.stdout and '"ci"' in lst.stdout
    import json

    kid = json.loads(lst.stdout)[0]["id"]
    assert run("keys", "revoke", kid).returncode == 0
    assert json.loads(run("keys", "list", "--json").stdout)[0]["revoked_at"] is not None
    bad = run("keys", "revoke", "not-a-uuid")
    assert bad.returncode == 1 and "not a valid id" in bad.stderr and "Traceback" not in bad.stderr
