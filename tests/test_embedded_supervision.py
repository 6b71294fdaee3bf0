"""The supervised embedded server (issue 14, finding 5): it comes back by itself after its
postmaster dies, under 8 writers, losing nothing acknowledged; it stops with the last
client whatever the signal; ``learnloop db url`` changes nothing.

Before: 10 of 10 kills left it down until someone ran ``learnloop db start``; SIGTERM left
it running; ``db url`` switched it to "stays up".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

import learnloop
from learnloop.config import get_settings
from learnloop.errors import DatabaseUnavailable
from learnloop.store.embedded import KEEP_RUNNING, EmbeddedServer

WRITERS = 8


def _postmaster_pid(home: Path) -> int | None:
    st = EmbeddedServer(get_settings(home=home)).status()
    return st.pid if st.running else None


def _wait_stopped(home: Path, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while _postmaster_pid(home) is not None and time.time() < deadline:
        time.sleep(0.2)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("supervised")


def test_writes_resume_by_themselves_after_the_postmaster_is_killed(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    ll = learnloop.connect(home=home, shared_buffers="128MB", api_db_timeout=2.0, tenant="kill")
    ll.db.pool.timeout = 2.0  # as the API sets them: fail fast while down, abandon a failing chain quickly
    ll.db.pool.reconnect_timeout = 10.0
    acked: list[UUID] = []
    failures: list[float] = []
    stop = threading.Event()
    lock = threading.Lock()

    def writer(n: int) -> None:
        while not stop.is_set():
            try:
                g = ll.log(kind="chat", prompt=f"writer {n}")
            except DatabaseUnavailable:
                failures.append(time.monotonic())
                time.sleep(0.1)
                continue
            with lock:
                acked.append(g.id)

    try:
        threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(WRITERS)]
        for t in threads:
            t.start()
        time.sleep(2)
        restarts: list[float] = []
        for _ in range(2):
            pid = _postmaster_pid(home)
            assert pid is not None
            with lock:
                before = len(acked)
            assert before > 0
            os.kill(pid, signal.SIGKILL)  # a crash: no shutdown, no checkpoint
            t0 = time.monotonic()
            while True:  # writes resume with nobody running a command
                time.sleep(0.05)
                with lock:
                    if len(acked) > before + WRITERS and _postmaster_pid(home) not in (None, pid):
                        break
                assert time.monotonic() - t0 < 15, f"no write succeeded within 15 s of the kill ({len(failures)} refused)"
            restarts.append(time.monotonic() - t0)
            time.sleep(1)
        stop.set()
        for t in threads:
            t.join(30)
        print(f"writes resumed {', '.join(f'{r:.1f}' for r in restarts)} s after each kill; "
              f"{len(acked)} writes acknowledged, {len(failures)} refused meanwhile")
        with psycopg.connect(ll.db.url) as conn:
            stored = {r[0] for r in conn.execute("SELECT id FROM learnloop.generations WHERE prompt LIKE 'writer %'")}
        lost = set(acked) - stored
        assert not lost, f"{len(lost)} acknowledged writes lost"
        assert "restarting it" in caplog.text
    finally:
        stop.set()
        ll.close()
    # The last client of this process closed: the server stops with it.
    time.sleep(0.5)
    assert _postmaster_pid(home) is None


def _holder(home: Path, body: str = "") -> subprocess.Popen[str]:
    """A process that opens a client on ``home`` and waits; prints READY.

    It starts with the signal dispositions of a program started from a terminal. A child
    inherits ignored signals, and a suite launched in the background ignores some: a
    non-interactive shell's ``&`` ignores SIGINT, ``nohup`` ignores SIGHUP (seen: the
    SIGINT and then the SIGHUP case slept for 60 s under ``nohup make test &``, leaving a
    server behind for the next tests). The library rightly leaves an ignored signal alone."""
    code = textwrap.dedent(f"""
        import signal, sys, time, learnloop
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        ll = learnloop.connect(home={str(home)!r}, shared_buffers="128MB")
        print("READY", flush=True)
        {body}
        time.sleep(600)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.strip() == "READY", p.stderr.read() if p.stderr else ""
    return p


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, None],
                         ids=["SIGTERM", "SIGINT", "SIGHUP", "normal-exit"])
def test_the_server_stops_with_its_last_client_whatever_the_signal(home: Path, sig: Any) -> None:
    (home / KEEP_RUNNING).unlink(missing_ok=True)
    if sig is None:
        p = _holder(home, "sys.exit(0)")
    else:
        p = _holder(home)
        assert _postmaster_pid(home) is not None
        p.send_signal(sig)
    p.wait(60)
    _wait_stopped(home)
    assert _postmaster_pid(home) is None, f"the server outlived its last client ({sig})"


def test_the_server_stays_while_another_client_holds_it(home: Path) -> None:
    a = _holder(home)
    b = _holder(home)
    try:
        a.send_signal(signal.SIGTERM)
        a.wait(60)
        time.sleep(1)
        assert _postmaster_pid(home) is not None, "stopped under a client still holding it"
    finally:
        b.send_signal(signal.SIGTERM)
        b.wait(60)
    _wait_stopped(home)
    assert _postmaster_pid(home) is None


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEARNLOOP_HOME": str(home)}
    env.pop("LEARNLOOP_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "learnloop.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_db_url_has_no_side_effect_on_the_lifecycle(home: Path) -> None:
    (home / KEEP_RUNNING).unlink(missing_ok=True)
    assert _postmaster_pid(home) is None
    r = _cli(home, "db", "url")
    assert r.returncode == 1 and "not running" in r.stderr, r
    assert _postmaster_pid(home) is None and not (home / KEEP_RUNNING).exists()
    p = _holder(home)
    try:
        r = _cli(home, "db", "url")
        assert r.returncode == 0 and r.stdout.startswith("postgresql://"), r
        assert not (home / KEEP_RUNNING).exists()
        assert "stops when the last client exits" in _cli(home, "db", "status").stdout
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    _wait_stopped(home)
    assert _postmaster_pid(home) is None


def test_a_server_stopped_on_purpose_is_not_restarted(home: Path) -> None:
    p = _holder(home)
    try:
        assert _cli(home, "db", "stop").stdout.strip() == "stopped"
        time.sleep(3)
        assert _postmaster_pid(home) is None, "a supervisor restarted a server stopped with `learnloop db stop`"
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
