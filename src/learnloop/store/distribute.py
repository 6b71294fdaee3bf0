"""``learnloop distribute``: spread the schema over a Citus cluster, by tenant.

On a Citus coordinator (with workers), in one transaction:

* ``tenants``, ``api_keys`` and ``console_sessions`` become *reference tables* (a copy on
  every node): ``tenants`` is what every tenant table's foreign key points to, and an API key
  or a console session cookie is looked up by its id before the tenant is known. All are
  small and written rarely.
* every other table with a ``tenant_id`` becomes a *distributed table* on ``tenant_id``, all
  colocated, parents before children (a foreign key between distributed tables needs its
  parent distributed first). Citus turns a local table with a foreign key to a reference
  table into a "Citus local table" that then refuses to distribute, so the foreign keys to
  ``tenants`` are dropped first and put back at the end.
* installation state (``migrations``, ``vector_indexes``, ``archive_state``, ``installation_keys``,
  ``archive_batches``, ``relay_state``) stays in plain tables on the coordinator: only the
  coordinator's sessions (migrations, the archiver, the relay) read it.
* the outbox's NOTIFY trigger is dropped: it would run on the workers, where no listener is,
  and read a sequence that lives on the coordinator. On a cluster the writing client notifies
  through the coordinator instead (``events.outbox.notify_written``). The row triggers that
  guard lineage and dataset immutability only read the row they fire for: safe on shards.
* learnloop's SQL functions are propagated to the workers (an upsert may call one there).

A failure rolls the whole transaction back: the schema is as it was. Running it again
after success finds nothing to do. On plain PostgreSQL it says there is nothing to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from ..errors import ConfigurationError
from . import migrations
from .database import database_key

# Copies on every node; everything else with a tenant_id is distributed by it.
REFERENCE_TABLES = ("tenants", "api_keys", "console_sessions")
# Installation state, read and written by the coordinator's own sessions only.
COORDINATOR_TABLES = ("migrations", "vector_indexes", "archive_state", "archive_batches", "relay_state")


@dataclass
class Report:
    """What ``distribute`` found and did."""

    citus: str | None = None
    workers: int = 0
    reference: list[str] = field(default_factory=list)
    distributed: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.reference or self.distributed)


def citus_version(conn: psycopg.Connection[Any]) -> str | None:
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'").fetchone()
    return None if row is None else str(row[0])


_citus: dict[tuple[str, str, int], bool] = {}


def on_citus(conn: psycopg.Connection[Any]) -> bool:
    """Whether ``conn``'s database has the citus extension (asked once per database and
    process: restart learnloop processes after moving a database to a cluster)."""
    key = database_key(conn)
    known = _citus.get(key)
    if known is None:
        known = _citus[key] = citus_version(conn) is not None
    return known


def distributed_tables(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """learnloop tables Citus knows, name -> 'reference' | 'distributed' | 'local'."""
    if citus_version(conn) is None:
        return {}
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(
            "SELECT c.relname, p.partmethod, p.repmodel FROM pg_dist_partition p"
            " JOIN pg_class c ON c.oid = p.logicalrelid"
            " WHERE c.relnamespace = 'learnloop'::regnamespace"
        ).fetchall()
    kinds = {"h": "distributed", "n": "reference"}
    return {str(name): ("local" if method == "n" and model == "s" else kinds.get(str(method), str(method)))
            for name, method, model in rows}


def _tenant_tables(cur: psycopg.Cursor[Any]) -> list[str]:
    rows = cur.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
        " WHERE c.relnamespace = 'learnloop'::regnamespace AND c.relkind IN ('r', 'p')"
        " AND a.attname = 'tenant_id' AND NOT a.attisdropped ORDER BY c.relname"
    ).fetchall()
    return [r[0] for r in rows if r[0] not in REFERENCE_TABLES]


def _parents_first(cur: psycopg.Cursor[Any], tables: list[str]) -> list[str]:
    """``tables`` ordered so that each comes after the tables its foreign keys point to."""
    edges = cur.execute(
        "SELECT c.relname, r.relname FROM pg_constraint k"
        " JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid"
        " WHERE k.contype = 'f' AND k.connamespace = 'learnloop'::regnamespace"
    ).fetchall()
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in edges:
        if child in parents and parent in parents and parent != child:
            parents[child].add(parent)
    ordered: list[str] = []
    while parents:
        ready = sorted(t for t, ps in parents.items() if not ps - set(ordered))
        if not ready:  # a cycle: cannot happen with this schema; say so rather than loop
            raise ConfigurationError(f"foreign keys form a cycle among {', '.join(sorted(parents))}")
        for t in ready:
            ordered.append(t)
            del parents[t]
    return ordered


_SET_NULL = re.compile(r" ON DELETE SET (NULL|DEFAULT)( \([^)]*\))?")


def _foreign_keys(cur: psycopg.Cursor[Any], tables: list[str], which: str) -> list[tuple[str, str, str]]:
    """(table, constraint, definition) of the foreign keys of ``tables`` that match ``which``
    (a constant condition on pg_constraint k)."""
    return [tuple(r) for r in cur.execute(  # type: ignore[misc]
        sql.SQL("SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k"
                " JOIN pg_class c ON c.oid = k.conrelid"
                " WHERE k.contype = 'f' AND c.relnamespace = 'learnloop'::regnamespace"
                " AND c.relname = ANY(%s) {}").format(sql.SQL(which)),  # type: ignore[arg-type]  # our constants
        (tables,),
    ).fetchall()]


def distribute(conn: psycopg.Connection[Any], *, shard_count: int | None = None) -> Report:
    """Distribute the learnloop schema on the Citus coordinator ``conn`` talks to.

    ``conn`` must be in autocommit mode (the work runs in its own transaction). Raises
    ConfigurationError when the server cannot take it (no workers, schema behind).
    """
    if not conn.autocommit:
        raise ConfigurationError("distribute needs an autocommit connection")
    report = Report(citus=citus_version(conn))
    if report.citus is None:
        report.message = ("nothing to do: this server is plain PostgreSQL (no citus extension); "
                          "learnloop runs on it as one server. See docs/scaling.md to move to Citus.")
        return report
    if shard_count is not None and (isinstance(shard_count, bool) or not 1 <= int(shard_count) <= 1024):
        raise ConfigurationError("shard_count must be from 1 to 1024")
    todo = migrations.pending(conn)
    if todo:
        raise ConfigurationError(f"the schema is behind ({len(todo)} migrations pending): "
                                 "run `learnloop migrate` first, then `learnloop distribute`")
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(
            "SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary' AND isactive AND groupid <> 0"
        ).fetchone()
        report.workers = int(row[0]) if row else 0
        if report.workers == 0:
            raise ConfigurationError(
                "this Citus coordinator has no workers: add them first "
                "(SELECT citus_add_node('worker-host', 5432) on the coordinator), then run distribute again")
        known = distributed_tables(conn)
        tables = _tenant_tables(cur)
        wrong = {t: k for t, k in known.items() if k == "local"}
        if wrong:
            raise ConfigurationError(
                f"{', '.join(sorted(wrong))} became Citus local tables (a foreign key to a reference table "
                "made by hand?): run SELECT undistribute_table('learnloop.<table>') for each, then distribute again")
        report.already = sorted(t for t in [*REFERENCE_TABLES, *tables] if t in known)
        ref_todo = [t for t in REFERENCE_TABLES if t not in known]
        dist_todo = [t for t in _parents_first(cur, tables) if t not in known]
        if not ref_todo and not dist_todo:
            # A cluster distributed by an earlier learnloop still has the statement trigger.
            if cur.execute("SELECT 1 FROM pg_trigger WHERE tgname = 'generations_drop_verdicts'"
                           " AND tgrelid = 'learnloop.generations'::regclass").fetchone():
                with conn.transaction():
                    cur.execute("SET LOCAL citus.enable_unsafe_triggers TO on")
                    _row_verdict_trigger(cur)
                    cur.execute("SELECT create_distributed_function('learnloop.drop_verdict()')")
                report.message = (f"already distributed ({len(report.already)} tables, {report.workers} workers); "
                                  "made the verdicts cleanup a row trigger")
                return report
            report.message = (f"nothing to do: already distributed ({len(report.already)} tables, "
                              f"{report.workers} workers)")
            return report
        try:
            with conn.transaction():
                colocate = next((f"learnloop.{t}" for t in tables if known.get(t) == "distributed"), None)
                _run(cur, ref_todo, dist_todo, shard_count, colocate)
        except psycopg.Error as exc:
            detail = f" ({exc.diag.message_detail})" if exc.diag.message_detail else ""
            raise ConfigurationError(
                f"distribute failed and was rolled back, the schema is as it was: "
                f"{exc.diag.message_primary or exc}{detail}") from exc
    report.reference, report.distributed = ref_todo, dist_todo
    report.message = (f"distributed {len(dist_todo)} tables by tenant_id and made {len(ref_todo)} reference "
                      f"tables on {report.workers} workers")
    return report


_DROP_VERDICT_ROW = """
CREATE OR REPLACE FUNCTION learnloop.drop_verdict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM learnloop.verdicts WHERE tenant_id = OLD.tenant_id AND generation_id = OLD.id;
    RETURN NULL;
END $$
"""


def _row_verdict_trigger(cur: psycopg.Cursor[Any]) -> None:
    cur.execute(_DROP_VERDICT_ROW)
    cur.execute("DROP TRIGGER IF EXISTS generations_drop_verdicts ON learnloop.generations")
    cur.execute("CREATE TRIGGER generations_drop_verdict AFTER DELETE ON learnloop.generations"
                " FOR EACH ROW EXECUTE FUNCTION learnloop.drop_verdict()")


def _run(cur: psycopg.Cursor[Any], ref_todo: list[str], dist_todo: list[str], shard_count: int | None,
         first: str | None) -> None:
    # Tables created with foreign keys to a reference table in this transaction must not
    # open parallel connections per shard: Citus asks for sequential mode up front.
    cur.execute("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
    # The lineage and dataset guards are row triggers reading only their own row.
    cur.execute("SET LOCAL citus.enable_unsafe_triggers TO on")
    if shard_count is not None:
        cur.execute(sql.SQL("SET LOCAL citus.shard_count TO {}").format(sql.Literal(int(shard_count))))
    # Every foreign key to tenants from a table still to convert: with one in place, making
    # tenants a reference table turns that table into a Citus local table.
    keys = _foreign_keys(cur, [*dist_todo, *(t for t in ref_todo if t != "tenants")],
                         "AND k.confrelid = 'learnloop.tenants'::regclass")
    # Citus refuses ON DELETE SET NULL / SET DEFAULT on a foreign key that includes the
    # distribution column (spans -> generations): on the cluster such a key refuses the
    # delete instead (docs/scaling.md). learnloop itself never deletes a generation.
    nulling = [(t, n, _SET_NULL.sub("", d)) for t, n, d in _foreign_keys(cur, dist_todo, "AND k.confdeltype IN ('n', 'd')")]
    for table, name, _ in [*keys, *nulling]:
        cur.execute(sql.SQL("ALTER TABLE learnloop.{} DROP CONSTRAINT {}").format(
            sql.Identifier(table), sql.Identifier(name)))
    cur.execute("DROP TRIGGER IF EXISTS events_notify ON learnloop.events")
    # A statement trigger with a transition table cannot run on a shard (Citus on the
    # worker cannot plan a query over the transition table): the verdicts cleanup after a
    # generation is deleted becomes a row trigger, one router DELETE on a colocated shard.
    _row_verdict_trigger(cur)
    # Functions first: a shard's upsert or trigger may call them on a worker.
    for (fn,) in cur.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p"
        " WHERE p.pronamespace = 'learnloop'::regnamespace AND p.prokind = 'f'"
        " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_object o"
        "                 WHERE o.classid = 'pg_proc'::regclass AND o.objid = p.oid)"
    ).fetchall():
        cur.execute("SELECT create_distributed_function(%s)", (fn,))
    for table in ref_todo:
        cur.execute("SELECT create_reference_table(%s)", (f"learnloop.{table}",))
    for table in dist_todo:
        cur.execute("SELECT create_distributed_table(%s, 'tenant_id', colocate_with => %s)",
                    (f"learnloop.{table}", first or "default"))
        first = first or f"learnloop.{table}"
    for table, name, definition in [*keys, *nulling]:
        cur.execute(sql.SQL("ALTER TABLE learnloop.{} ADD CONSTRAINT {} {}").format(
            sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)))  # type: ignore[arg-type]  # pg_get_constraintdef of our own schema
