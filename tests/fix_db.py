"""Database fixtures: one embedded server per test run, a fresh database per test module.

The server lives under a home shared by the xdist workers of one run (keyed by the run's
uid), so it starts once; a migrated template database is built once under a file lock, and
each module gets ``CREATE DATABASE ... TEMPLATE`` of it (milliseconds). Nothing is mocked:
these are the real PostgreSQL 18 + pgvector the product runs on. With
LEARNLOOP_TEST_CITUS_URL set, the same tests run on a Citus cluster instead (fix_citus.py).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import fasteners
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

import learnloop
from learnloop.config import get_settings
from learnloop.store import migrations
from learnloop.store.embedded import EmbeddedServer

from .fix_citus import CITUS_URL, citus_database
from .fix_routing import write_tenant_tables

TEMPLATE = "learnloop_template"


def _run_home() -> Path:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"solo-{os.getpid()}"
    home = Path(tempfile.gettempdir()) / f"learnloop-tests-{run[:12]}"
    home.mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of the run's embedded server (maintenance database ``postgres``), or of the Citus
    coordinator named by LEARNLOOP_TEST_CITUS_URL (tests/fix_citus.py)."""
    if CITUS_URL is not None:
        yield CITUS_URL
        return
    home = _run_home()
    server = EmbeddedServer(get_settings(home=home, shared_buffers="256MB"))
    url = server.ensure_running()
    with fasteners.InterProcessLock(str(home / "template.lock")):
        with psycopg.connect(url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE,)).fetchone()
            if not exists:
                conn.execute(f"CREATE DATABASE {TEMPLATE}")
                with psycopg.connect(make_conninfo(url, dbname=TEMPLATE), autocommit=True) as tconn:
                    migrations.apply(tconn)
            with psycopg.connect(make_conninfo(url, dbname=TEMPLATE)) as tconn:
                write_tenant_tables(tconn)
    yield url


def new_database(server_url: str, prefix: str = "t") -> str:
    if CITUS_URL is not None:
        return citus_database(server_url, prefix)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY")
    return make_conninfo(server_url, dbname=name)


@pytest.fixture(scope="module")
def db_url(pg_server: str) -> str:
    """A fresh, migrated database for this test module."""
    return new_database(pg_server)


@pytest.fixture(scope="module")
def client(db_url: str) -> Iterator[learnloop.Client]:
    ll = learnloop.connect(db_url)
    yield ll
    ll.close()


@pytest.fixture()
def fresh_client(pg_server: str) -> Iterator[learnloop.Client]:
    """A client on its own new database, for tests that count everything."""
    ll = learnloop.connect(new_database(pg_server))
    yield ll
    ll.close()


@pytest.fixture()
def cli_env(db_url: str) -> dict[str, str]:
    """Environment for running the ``learnloop`` command against this module's database."""
    env = dict(os.environ)
    env["LEARNLOOP_DATABASE_URL"] = db_url
    return env
