"""Capture every statement the library sends during the test run, and check its routing.

psycopg's cursor methods are wrapped for the run: a statement is kept when the first frame
outside psycopg that sent it is in ``src/learnloop`` (the tests' own SQL is theirs to
write). At the end of the run (on the xdist controller, after every worker wrote its
statements) each distinct statement is parsed with pglast and checked by
``tests/routing.py``: every reference to a tenant-keyed table must carry ``tenant_id =
<constant or parameter>`` in its own scope, so that Citus routes it to one shard. A
violation fails the run and names the statement and the function that sent it.

Statements that legitimately span tenants are listed in ``CROSS_TENANT`` by the function
that sends them, with the reason. ``LEARNLOOP_TEST_ROUTING=0`` turns the check off.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
import pytest
from psycopg import sql

import learnloop
from learnloop.store.distribute import REFERENCE_TABLES

from .routing import Checker, to_server_placeholders

ENABLED = os.environ.get("LEARNLOOP_TEST_ROUTING", "1") != "0"
DIR_ENV = "LEARNLOOP_TEST_STATEMENTS_DIR"

# (module path under src/learnloop, function) -> why it may span tenants.
CROSS_TENANT: dict[tuple[str, str], str] = {
    ("events/cursor.py", "stable_events"): "the archiver and the relay read every tenant's outbox in commit order",
    ("events/archive.py", "_new_batch"): "the archiver: is there anything to archive, in any tenant",
    ("events/archive.py", "prune"): "the archiver drops archived events of every tenant",
    ("events/archive.py", "status"): "the archiver's lag, over every tenant",
    ("events/stream.py", "register"): "a live-stream hub listens for several tenants: its rows go by listener id",
    ("events/stream.py", "unregister"): "a live-stream hub leaving: its rows of every tenant",
    ("store/migrations.py", "_run"): "a migration backfilling a table reads every tenant once",
    ("store/migrations.py", "run_statements"): "the same, for a migration sent one statement at a time",
    ("analytics/rollup.py", "tenants_to_refresh"): "the server's rollup refresher: which tenants changed",
    ("ledger/schema.py", "_m007_analytics_rollup"): "the rollup migration marks every tenant's days unbuilt once",
    ("ledger/schema.py", "_where_rollup_kept"): "the rollup migrations (m008 grid, m010 lineage) empty every tenant's rollup for a rebuild, once",
}

_SRC = str(Path(learnloop.__file__).parent) + os.sep
_SKIP = (str(Path(psycopg.__file__).parent) + os.sep, str(Path(psycopg_pool.__file__).parent) + os.sep)
_seen: dict[str, str] = {}


def _origin() -> str | None:
    frame = sys._getframe(3)  # past _record and the wrapper
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_SRC):
            return f"{name[len(_SRC):]}:{frame.f_code.co_name}"
        if not name.startswith(_SKIP):
            return None
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _text(cur: Any, query: Any, params: Any) -> str | None:
    if isinstance(query, sql.Composable):
        query = query.as_string(cur.connection)
    if isinstance(query, bytes):
        query = query.decode()
    if not isinstance(query, str):
        return None
    return to_server_placeholders(query) if params is not None else query


def _record(cur: Any, query: Any, params: Any) -> None:
    origin = _origin()
    if origin is None:
        return
    text = _text(cur, query, params)
    if text is not None and text not in _seen:
        _seen[text] = origin


def _wrap(name: str, with_params: bool = True) -> None:
    original = getattr(psycopg.Cursor, name)

    def wrapper(self: Any, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        _record(self, query, kwargs.get("params_seq", params) if with_params else params)
        return original(self, query, params, *args, **kwargs)

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(psycopg.Cursor, name, wrapper)


def _install() -> None:
    for name in ("execute", "executemany", "stream", "copy"):
        _wrap(name)


def pytest_configure(config: pytest.Config) -> None:
    if not ENABLED:
        return
    if not hasattr(config, "workerinput") and DIR_ENV not in os.environ:
        # The controller (or a run without xdist) picks the directory; workers inherit it.
        os.environ[DIR_ENV] = tempfile.mkdtemp(prefix="learnloop-statements-")
    _install()


def write_tenant_tables(conn: psycopg.Connection[Any]) -> None:
    """Called by the db fixture: which tables are keyed by tenant, read from the catalog."""
    if not ENABLED or DIR_ENV not in os.environ:
        return
    rows = conn.execute(
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = 'learnloop' AND column_name = 'tenant_id'"
    ).fetchall()
    # Reference tables (a copy on every node) route anywhere; the rest is distributed by tenant.
    keyed = sorted(r[0] for r in rows if r[0] not in REFERENCE_TABLES)
    (Path(os.environ[DIR_ENV]) / "tenant_tables.json").write_text(json.dumps(keyed))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not ENABLED or DIR_ENV not in os.environ:
        return
    folder = Path(os.environ[DIR_ENV])
    worker = getattr(session.config, "workerinput", {}).get("workerid", "solo")
    (folder / f"statements-{worker}.json").write_text(json.dumps(_seen))
    if hasattr(session.config, "workerinput"):
        return
    report = check_folder(folder)
    session.config._learnloop_routing = report  # type: ignore[attr-defined]
    if report["problems"] and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def check_folder(folder: Path) -> dict[str, Any]:
    tables_file = folder / "tenant_tables.json"
    statements: dict[str, str] = {}
    for path in sorted(folder.glob("statements-*.json")):
        for text, origin in json.loads(path.read_text()).items():
            statements.setdefault(text, origin)
    if not tables_file.exists():
        return {"checked": 0, "problems": []}
    checker = Checker(json.loads(tables_file.read_text()))
    problems = []
    for text, origin in statements.items():
        module, _, func = origin.partition(":")
        if (module, func) in CROSS_TENANT:
            continue
        for problem in checker.problems(text):
            problems.append({"origin": origin, "problem": problem, "statement": text})
    return {"checked": len(statements), "problems": problems}


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = getattr(config, "_learnloop_routing", None)
    if report is None:
        return
    tr = terminalreporter
    if not report["problems"]:
        tr.write_line(f"routing: {report['checked']} distinct library statements, "
                      "each tenant-keyed table pinned to one tenant")
        return
    tr.section("routing: statements Citus cannot route to one shard", red=True)
    groups: dict[tuple[str, str], list[str]] = {}
    for p in report["problems"]:
        groups.setdefault((p["origin"], p["problem"]), []).append(p["statement"])
    for (origin, problem), texts in sorted(groups.items()):
        one_line = " ".join(texts[0].split())
        tr.write_line(f"{origin}: {problem} ({len(texts)} statements), e.g.\n    {one_line[:400]}")
    tr.write_line(f"routing: {len(report['problems'])} problems in {report['checked']} statements", red=True)
