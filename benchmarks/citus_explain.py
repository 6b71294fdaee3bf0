"""How many shards does each statement of a library call touch on Citus?

``explained()`` wraps psycopg's cursor for the duration of a block: before each statement
the library runs, the same statement with the same parameters is EXPLAINed (not run) on the
same connection, and the Citus task counts in the plan are kept. A statement routed to one
shard has one task; one sent to every shard has as many tasks as shards; one that touches
no distributed table (``SELECT now()``, a NOTIFY) has none. Used by bench_citus (the
report's table) and tests/test_citus.py (every tenant-scoped call routed to one shard).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

_DML = ("select", "insert", "update", "delete", "with")


@dataclass
class Explained:
    statement: str
    tasks: list[int]  # one Task Count per distributed job or subplan in the plan


def _task_counts(plan: Any) -> list[int]:
    found: list[int] = []
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "Task Count" in node:
                found.append(int(node["Task Count"]))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


@contextmanager
def explained() -> Iterator[list[Explained]]:
    seen: list[Explained] = []
    original = psycopg.Cursor.execute

    def execute(self: Any, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        text = query.as_string(self.connection) if isinstance(query, sql.Composable) else query
        if isinstance(text, bytes):
            text = text.decode()
        if isinstance(text, str) and text.lstrip().lower().startswith(_DML):
            # Values inlined (a client-side cursor): the plan Citus makes for the bound
            # statement at run time. With $n parameters left to EXPLAIN, Citus cannot plan
            # an INSERT ... SELECT that it would recursively plan when run.
            with psycopg.ClientCursor(self.connection) as cur:
                original(cur, "EXPLAIN (FORMAT JSON) " + text, params)
                row = cur.fetchone()
            assert row is not None  # EXPLAIN returns its plan as one row
            plan = row[0] if isinstance(row, tuple | list) else next(iter(row.values()))
            seen.append(Explained(" ".join(text.split())[:160], _task_counts(plan)))
        return original(self, query, params, *args, **kwargs)

    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        psycopg.Cursor.execute = original  # type: ignore[method-assign]
