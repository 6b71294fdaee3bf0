"""The test suite on a Citus cluster: ``LEARNLOOP_TEST_CITUS_URL`` names its coordinator.

Set it to a superuser URL of a Citus coordinator whose workers are registered in its
``postgres`` database (``citus_add_node``), each worker reachable with the same user and
password, every node with pgvector. Then every test module gets a database of its own,
created on every node, with citus and vector in each, the workers added, migrated and
``learnloop distribute``-d (``LEARNLOOP_TEST_CITUS_SHARDS`` shards per table, 32 unless
set). Unset, the tests that need a cluster are skipped and the rest run on the embedded
server. docs/scaling.md says how to build such a cluster.
"""

from __future__ import annotations

import os
import tempfile
import uuid

import fasteners
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from learnloop.store import migrations
from learnloop.store.distribute import distribute

CITUS_URL = os.environ.get("LEARNLOOP_TEST_CITUS_URL") or None
SHARDS = int(os.environ.get("LEARNLOOP_TEST_CITUS_SHARDS") or 32)
needs_citus = pytest.mark.skipif(
    CITUS_URL is None, reason="no Citus cluster: set LEARNLOOP_TEST_CITUS_URL to a coordinator (docs/scaling.md)")


def single_server_only(why: str) -> pytest.MarkDecorator:
    """Skip on a cluster a test of what only one server has (the embedded server, one
    planner's cached plans), saying why; it runs in every plain run."""
    return pytest.mark.skipif(CITUS_URL is not None, reason=f"single server only: {why}")


EMBEDDED_ONLY = single_server_only("checks the embedded server learnloop starts by itself, not a server given by URL")
# Citus plans a tenant-scoped statement as a Custom Scan on the coordinator (always a custom
# plan) and sends its shard's statement to a worker, which plans it afresh with the shard's
# own statistics: the seeded young-table statistics and cached generic plans these tests
# check live on the coordinator's (empty) table only.
PLANNER_ONLY = single_server_only("checks one server's cached or young-table plans; "
                                  "Citus plans each shard's statement afresh on its worker")


def workers(url: str) -> list[tuple[str, int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE noderole = 'primary' AND groupid <> 0"
            " ORDER BY nodeid").fetchall()
    return [(r[0], int(r[1])) for r in rows]


def _node_url(url: str, host: str, port: int, dbname: str) -> str:
    return make_conninfo(url, host=host, port=str(port), dbname=dbname)


def empty_citus_database(url: str, prefix: str = "t", *, add_workers: bool = True) -> str:
    """A new database on the coordinator and every worker, with citus and vector, workers
    added unless told not to; not migrated."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    coordinator = conninfo_to_dict(url)
    nodes = workers(url)
    for host, port in nodes:
        with psycopg.connect(_node_url(url, host, port, "postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        with psycopg.connect(_node_url(url, host, port, name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION citus")
            conn.execute("CREATE EXTENSION vector")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    db_url = make_conninfo(url, dbname=name)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION citus")
        conn.execute("CREATE EXTENSION vector")
        conn.execute("SELECT citus_set_coordinator_host(%s, %s)",
                     (coordinator.get("host") or "localhost", int(coordinator.get("port") or 5432)))
        if add_workers:
            # Adding a node re-creates the current role on it (a cluster-wide catalog row):
            # two test processes doing it at once fail with "tuple concurrently updated".
            with fasteners.InterProcessLock(os.path.join(tempfile.gettempdir(), "learnloop-citus-add-node.lock")):
                for host, port in nodes:
                    conn.execute("SELECT citus_add_node(%s, %s)", (host, port))
    return db_url


def citus_database(url: str, prefix: str = "t") -> str:
    """A new, migrated, distributed database on the cluster."""
    db_url = empty_citus_database(url, prefix)
    with psycopg.connect(db_url, autocommit=True) as conn:
        migrations.apply(conn)
        distribute(conn, shard_count=SHARDS)
    return db_url
