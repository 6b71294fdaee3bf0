"""Named, ordered migrations, one transaction each, recorded in ``learnloop.migrations``.

Each capability owns a *set* (``core``, ``ledger``, ``knowledge``...) declared next to its
tables; ``SETS`` below fixes the order in which sets apply. Inside a set, migrations apply
in list order and are never edited once released: add a new one instead. Everything runs
under a session advisory lock, so two processes starting at once cannot race; the second
one waits, then finds nothing pending.

A migration flagged ``transactional=False`` (e.g. ``CREATE INDEX CONCURRENTLY``) runs in
autocommit mode; it must be idempotent since a crash can leave it half-applied.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from ..errors import ConfigurationError

SCHEMA = "learnloop"
# hashtext('learnloop.migrations') would be evaluated by the server; a constant is clearer.
LOCK_KEY = 7_162_024_001

# Order matters: a set may reference tables of the sets before it.
SETS: list[str] = [
    "learnloop.store.schema:MIGRATIONS",
    "learnloop.ledger.schema:MIGRATIONS",
    "learnloop.knowledge.schema:MIGRATIONS",
    "learnloop.knowledge.retrieval_schema:MIGRATIONS",
    "learnloop.training.schema:MIGRATIONS",
    "learnloop.events.schema:MIGRATIONS",
    "learnloop.traces.schema:MIGRATIONS",
    "learnloop.console.schema:MIGRATIONS",
    "learnloop.accounts.schema:MIGRATIONS",
    "learnloop.knowledge.languages:MIGRATIONS",
]


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str | Callable[[psycopg.Connection], None]
    transactional: bool = True


@dataclass(frozen=True)
class MigrationSet:
    name: str
    migrations: Sequence[Migration]


def one_statement_at_a_time(text: str) -> Callable[[psycopg.Connection], None]:
    """A migration that sends its statements one by one (in its one transaction).

    On a Citus cluster that was distributed before the migration, a multi-statement
    string fails: Citus forwards DDL to the shards with the whole query string ("cannot
    insert multiple commands into a prepared statement"). ``text`` must split on ``;`` at
    line ends (no function bodies or DO blocks)."""
    statements = [s.strip() for s in text.split(";\n") if s.strip() and not all(
        line.strip().startswith("--") or not line.strip() for line in s.splitlines())]

    def run_statements(conn: psycopg.Connection) -> None:
        for statement in statements:
            conn.execute(statement)  # type: ignore[call-overload]  # constant DDL text owned by us

    return run_statements


def young_table_statistics(tables: Sequence[str]) -> str:
    """SQL that seeds "one tenant" as tenant_id's statistics on tables never analysed yet.

    Before a table's first ANALYZE the planner takes ``tenant_id = $1`` to match 0.5% of
    the rows, so for a lookup by (tenant_id, id) every index leading with tenant_id looks as
    good as the primary key; plans made in that window scanned the tenant's whole index on
    every call. Seeding the one statistic the planner lacks makes the primary key the only
    good path from the first row. PostgreSQL 18 can set statistics
    (pg_restore_attribute_stats); older servers rely on autovacuum. Real statistics are
    never overwritten, and ANALYZE replaces these. ``tables`` are names in ``learnloop``.
    """
    return sql.SQL(_YOUNG_TABLE_STATISTICS).format(
        names=sql.SQL(", ").join(sql.Literal(t) for t in tables)).as_string(None)


_YOUNG_TABLE_STATISTICS = """
DO $$
DECLARE
    t text;
BEGIN
    IF current_setting('server_version_num')::int < 180000 THEN
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY[{names}] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_stats
                       WHERE schemaname = 'learnloop' AND tablename = t AND attname = 'tenant_id') THEN
            PERFORM pg_restore_attribute_stats(
                'schemaname', 'learnloop', 'relname', t, 'attname', 'tenant_id', 'inherited', false,
                'null_frac', 0::real, 'avg_width', 16, 'n_distinct', 1::real);
        END IF;
    END LOOP;
END $$;
"""


@dataclass(frozen=True)
class MigrationState:
    set_name: str
    name: str
    applied_at: datetime | None

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


def registered_sets() -> list[MigrationSet]:
    sets = []
    for ref in SETS:
        module_name, attr = ref.split(":")
        sets.append(getattr(importlib.import_module(module_name), attr))
    return sets


def iter_migrations() -> Iterator[tuple[MigrationSet, Migration]]:
    for mset in registered_sets():
        for mig in mset.migrations:
            yield mset, mig


_BOOTSTRAP = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.migrations (
    set_name   text NOT NULL,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (set_name, name)
);
COMMENT ON TABLE {SCHEMA}.migrations IS
    'Applied schema migrations (global metadata, not tenant data).';
"""


# These take a connection with any row factory: a plain one (``Database.open``, ``learnloop
# migrate``) or one of the pool's dict-row connections (``Client.migrations``), so the one
# place that reads rows asks for tuples itself.
def _applied(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], datetime]:
    with conn.cursor(row_factory=tuple_row) as cur:
        exists = cur.execute("SELECT to_regclass('learnloop.migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return {}
        rows = cur.execute("SELECT set_name, name, applied_at FROM learnloop.migrations").fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def status(conn: psycopg.Connection[Any]) -> list[MigrationState]:
    done = _applied(conn)
    return [
        MigrationState(s.name, m.name, done.get((s.name, m.name))) for s, m in iter_migrations()
    ]


def pending(conn: psycopg.Connection[Any]) -> list[MigrationState]:
    return [m for m in status(conn) if not m.applied]


def apply(conn: psycopg.Connection[Any]) -> list[MigrationState]:
    """Apply every pending migration; return those applied by this call.

    ``conn`` must be in autocommit mode; each migration opens its own transaction.
    """
    if not conn.autocommit:
        raise ConfigurationError("migrations need an autocommit connection")
    applied: list[MigrationState] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        with conn.transaction():
            conn.execute(_BOOTSTRAP)
        done = _applied(conn)
        for mset, mig in iter_migrations():
            if (mset.name, mig.name) in done:
                continue
            try:
                if mig.transactional:
                    with conn.transaction():
                        _run(conn, mig)
                        _record(conn, mset.name, mig.name)
                else:
                    _run(conn, mig)
                    _record(conn, mset.name, mig.name)
            except psycopg.Error as exc:
                raise ConfigurationError(
                    f"migration {mset.name}/{mig.name} failed and was rolled back: "
                    f"{exc.diag.message_primary or exc}"
                ) from exc
            applied.append(MigrationState(mset.name, mig.name, datetime.now()))
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return applied


def _run(conn: psycopg.Connection[Any], mig: Migration) -> None:
    if callable(mig.sql):
        mig.sql(conn)
    else:
        conn.execute(mig.sql)  # type: ignore[arg-type]  # constant DDL text owned by us


def _record(conn: psycopg.Connection[Any], set_name: str, name: str) -> None:
    conn.execute(
        "INSERT INTO learnloop.migrations (set_name, name) VALUES (%s, %s)", (set_name, name)
    )
