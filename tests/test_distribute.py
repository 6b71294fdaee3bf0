"""``learnloop distribute``: plain PostgreSQL says there is nothing to do; on a Citus
coordinator it distributes once, refuses without workers, and a failure leaves the schema
as it was (those need LEARNLOOP_TEST_CITUS_URL, tests/fix_citus.py)."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

import learnloop
from learnloop.errors import ConfigurationError
from learnloop.store import migrations
from learnloop.store.distribute import distribute, distributed_tables

from .fix_citus import CITUS_URL, citus_database, empty_citus_database, needs_citus


def _foreign_keys_to_tenants(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
                           " AND confrelid = 'learnloop.tenants'::regclass").fetchone()
    assert row is not None
    return int(row[0])


def _still_works(url: str) -> None:
    ll = learnloop.connect(url)
    try:
        g = ll.log(prompt="still here?", output_text="yes")
        ll.feedback(g.id, sentiment="POSITIVE")
        assert [x.id for x in ll.path(g.id)] == [g.id]
    finally:
        ll.close()


@pytest.mark.skipif(CITUS_URL is not None, reason="the cluster has Citus; this is the plain-PostgreSQL case")
def test_plain_postgresql_has_nothing_to_distribute(db_url: str) -> None:
    before = _foreign_keys_to_tenants(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        report = distribute(conn)
    assert report.citus is None and not report.changed
    assert report.message.startswith("nothing to do: this server is plain PostgreSQL")
    assert _foreign_keys_to_tenants(db_url) == before
    _still_works(db_url)


@pytest.mark.skipif(CITUS_URL is not None, reason="the cluster has Citus; this is the plain-PostgreSQL case")
def test_cli_says_nothing_to_do_in_one_line(cli_env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-m", "learnloop.cli.main", "distribute"], env=cli_env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1 and "plain PostgreSQL" in out.stdout
    assert "Traceback" not in out.stderr


def test_cli_unreachable_server_is_one_line(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "LEARNLOOP_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"}
    out = subprocess.run([sys.executable, "-m", "learnloop.cli.main", "distribute"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "cannot connect to PostgreSQL" in out.stderr and "Traceback" not in out.stderr


@needs_citus
def test_coordinator_without_workers_is_refused_and_left_usable() -> None:
    assert CITUS_URL is not None
    url = empty_citus_database(CITUS_URL, "nowork", add_workers=False)
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.apply(conn)
        with pytest.raises(ConfigurationError, match="no workers.*citus_add_node"):
            distribute(conn)
        assert distributed_tables(conn) == {}
    _still_works(url)


@needs_citus
def test_twice_in_a_row_is_nothing_to_do() -> None:
    assert CITUS_URL is not None
    url = citus_database(CITUS_URL, "twice")
    with psycopg.connect(url, autocommit=True) as conn:
        kinds = distributed_tables(conn)
        assert kinds["tenants"] == kinds["api_keys"] == "reference"
        assert kinds["generations"] == kinds["events"] == "distributed"
        assert "migrations" not in kinds and "archive_state" not in kinds
        again = distribute(conn)
    assert not again.changed and again.message.startswith("nothing to do: already distributed")
    _still_works(url)


@needs_citus
def test_a_failure_half_way_rolls_everything_back() -> None:
    assert CITUS_URL is not None
    url = empty_citus_database(CITUS_URL, "half")
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.apply(conn)
        before = _foreign_keys_to_tenants(url)
        # A table Citus cannot distribute by tenant (a unique key without tenant_id), sorted
        # after every learnloop table: the failure comes once the others are distributed.
        conn.execute("CREATE TABLE learnloop.zz_unroutable (tenant_id uuid NOT NULL, code text UNIQUE)")
        with pytest.raises(ConfigurationError, match="rolled back, the schema is as it was"):
            distribute(conn)
        assert distributed_tables(conn) == {}
        assert _foreign_keys_to_tenants(url) == before
        trigger = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'events_notify'").fetchone()
        assert trigger is not None and trigger[0] == 1
        _still_works(url)
        conn.execute("DROP TABLE learnloop.zz_unroutable")
        report = distribute(conn)
        assert report.changed and "generations" in report.distributed
    _still_works(url)


@needs_citus
def test_a_cluster_from_an_earlier_distribute_gets_the_row_verdict_trigger() -> None:
    """Earlier versions kept the statement trigger (a transition table, which a shard cannot
    read): every generation delete failed. Running distribute again swaps it, once."""
    assert CITUS_URL is not None
    url = citus_database(CITUS_URL, "d")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET citus.enable_unsafe_triggers TO on")  # what an earlier distribute left
        conn.execute("DROP TRIGGER generations_drop_verdict ON learnloop.generations")
        conn.execute("CREATE TRIGGER generations_drop_verdicts AFTER DELETE ON learnloop.generations"
                     " REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION learnloop.drop_verdicts()")
        conn.execute("RESET citus.enable_unsafe_triggers")
        assert distribute(conn).message.endswith("made the verdicts cleanup a row trigger")
        assert distribute(conn).message.startswith("nothing to do")
    ll = learnloop.connect(url)
    try:
        g = ll.log(prompt="to be deleted", output_text="ok")
        ll.feedback(g.id, sentiment="NEGATIVE")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM learnloop.generations WHERE tenant_id = %s AND id = %s", (ll.scope.tenant_id, g.id))
            left = conn.execute("SELECT count(*) FROM learnloop.verdicts WHERE tenant_id = %s AND generation_id = %s",
                                (ll.scope.tenant_id, g.id)).fetchone()
        assert left == (0,)
    finally:
        ll.close()
