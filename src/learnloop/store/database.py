"""Connections: which server, the pgvector check, the pool.

``Database.open(settings)`` picks the server (embedded unless a URL is given), checks
PostgreSQL >= 15 and pgvector >= 0.8, applies pending migrations (unless told not to) and
opens a pool whose connections have pgvector registered once, in the ``configure`` hook.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from ..config import Settings
from ..errors import ConfigurationError, DatabaseUnavailable, InvalidInput
from . import migrations
from .embedded import EmbeddedServer

log = logging.getLogger(__name__)

# What the pool hands out: autocommit connections whose rows are dicts (``row_factory=dict_row``
# in ``_connection_kwargs``). Annotate with this, not bare ``psycopg.Connection``, which the type
# checker reads as tuple rows.
Conn = psycopg.Connection[DictRow]

MIN_SERVER = 150000
MIN_VECTOR = (0, 8)


def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def check_server(conn: psycopg.Connection) -> str:
    """Raise ConfigurationError with the exact fix if this server cannot host learnloop."""
    if conn.info.server_version < MIN_SERVER:
        raise ConfigurationError(
            f"PostgreSQL {conn.info.server_version // 10000} is too old: learnloop needs 15 or newer."
        )
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    if row is None:
        raise ConfigurationError(
            "pgvector is not installed on this PostgreSQL server. Install pgvector >= 0.8 "
            "(https://github.com/pgvector/pgvector#installation), or unset "
            "LEARNLOOP_DATABASE_URL to use the embedded server that ships with it."
        )
    available, installed = row[0], row[1]
    version = installed or available
    if _parse_version(version) < MIN_VECTOR:
        fix = (
            "run ALTER EXTENSION vector UPDATE as a superuser"
            if installed and _parse_version(available) >= MIN_VECTOR
            else "upgrade the pgvector package on the server, then ALTER EXTENSION vector UPDATE"
        )
        raise ConfigurationError(
            f"pgvector {version} is too old: learnloop needs 0.8 or newer "
            f"(iterative index scans); {fix}."
        )
    return str(version)


class Database:
    """A pool on one PostgreSQL server, plus the embedded server handle if we own it."""

    def __init__(self, url: str, pool: ConnectionPool[Conn], server: EmbeddedServer | None) -> None:
        self.url = url
        self.pool = pool
        self.server = server

    @classmethod
    def open(cls, settings: Settings, *, url: str | None = None, migrate: bool = True) -> Database:
        server: EmbeddedServer | None = None
        url = url or settings.database_url
        if not url:
            server = EmbeddedServer(settings)
            url = server.ensure_running()
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=int(settings.connect_timeout)) as conn:
                check_server(conn)
                if migrate:
                    migrations.apply(conn)
                else:
                    todo = migrations.pending(conn)
                    if todo:
                        names = ", ".join(f"{m.set_name}/{m.name}" for m in todo[:3])
                        raise ConfigurationError(
                            f"the database schema is behind ({len(todo)} pending: {names}...); "
                            "run `learnloop migrate`."
                        )
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {_first_line(exc)}") from exc

        pool: ConnectionPool[Conn] = ConnectionPool(
            url,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            kwargs=_connection_kwargs(settings),
            configure=_configure,
            check=_check_if_idle,
            open=False,
            name="learnloop",
        )
        _most_recent_first(pool)
        pool.open(wait=False)
        return cls(url, pool, server)

    def connection(self, timeout: float | None = None) -> _Checkout:
        """A pooled autocommit connection with dict rows; errors become our own."""
        return _Checkout(self.pool, timeout)

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        with self.connection() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        self.pool.close()
        if self.server is not None:
            server, self.server = self.server, None
            server.release()

    def retry_after(self) -> float | None:
        """Seconds until the database is expected back, when we know (the embedded
        server's supervisor does); None otherwise."""
        return self.server.retry_after() if self.server is not None else None


class _Checkout:
    """``with db.connection() as conn``: the pool's ``connection()`` context, flattened.

    The same steps (getconn; the connection's own exit, which commits or rolls back; putconn)
    without two generator-based context managers around them: a search checks a
    connection out and back each time, and the layers cost ~15 us of it. Pool and
    connection errors become ``DatabaseUnavailable``, as before.
    """

    __slots__ = ("_pool", "_timeout", "_conn")

    def __init__(self, pool: ConnectionPool[Conn], timeout: float | None) -> None:
        self._pool, self._timeout = pool, timeout

    def __enter__(self) -> Conn:
        try:
            self._conn = self._pool.getconn(timeout=self._timeout)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise _unavailable(exc) from exc
        return self._conn

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        conn = self._conn
        try:
            try:
                conn.__exit__(exc_type, exc, tb)  # commit, or roll back after an error
            finally:
                conn._learnloop_returned = time.monotonic()  # type: ignore[attr-defined]  # see _check_if_idle
                self._pool.putconn(conn)
        except (PoolTimeout, psycopg.OperationalError) as late:
            raise _unavailable(late) from late
        if isinstance(exc, PoolTimeout | psycopg.OperationalError):
            raise _unavailable(exc) from exc
        if isinstance(exc, UnicodeEncodeError) and "surrogates" in str(exc):
            # The backstop for text no check saw: psycopg cannot encode a lone surrogate
            # (what "\ud800" in JSON decodes to); the transaction was rolled back above.
            raise InvalidInput("a text value is not valid Unicode: it holds a lone surrogate "
                               f"(U+{ord(exc.object[exc.start]):04X})") from exc


def _unavailable(exc: PoolTimeout | psycopg.OperationalError) -> DatabaseUnavailable:
    if isinstance(exc, PoolTimeout):
        return DatabaseUnavailable("no database connection became available in time; is PostgreSQL up?")
    return DatabaseUnavailable(f"database connection failed: {_first_line(exc)}")


class _MostRecentFirst(deque):  # type: ignore[type-arg]
    """psycopg_pool's queue of idle connections, read from the end it was last returned to."""

    def popleft(self) -> Any:
        return self.pop()


def _most_recent_first(pool: ConnectionPool[Conn]) -> None:
    # The pool hands out the connection idle the longest (FIFO): once a burst has opened a
    # second connection, a single-threaded caller alternates between two server processes
    # forever, each one's caches gone cold in between; on two cores one hot backend logged
    # ~15% faster (median 388 vs 471 us a log). Reusing the most recent one keeps it hot and
    # lets the others sit idle until the pool's max_idle closes them. tests/test_store.py
    # checks the behaviour, so a change in psycopg_pool's internals shows.
    if isinstance(getattr(pool, "_pool", None), deque):
        pool._pool = _MostRecentFirst(pool._pool)


def _connection_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
    if settings.synchronous_commit:
        # A startup option, not a SET: it costs no round trip and survives the pool's resets.
        kwargs["options"] = f"-c synchronous_commit={settings.synchronous_commit}"
    return kwargs


# A connection back from a request a moment ago is almost surely alive; pinging it on every
# checkout cost a round trip per call (a third of a single log). Ping only connections
# that sat idle long enough for the server to have restarted meanwhile.
IDLE_CHECK_AFTER = 1.0


def database_key(conn: psycopg.Connection[Any]) -> tuple[str, str, int]:
    """(dbname, host, port): which database a connection talks to, for process-wide caches
    keyed by database. Kept on the connection: three libpq reads cost ~5 us per search."""
    key = getattr(conn, "_learnloop_db", None)
    if key is None:
        key = (conn.info.dbname, conn.info.host, conn.info.port)
        conn._learnloop_db = key  # type: ignore[attr-defined]
    return key  # type: ignore[no-any-return]


# ``_learnloop_returned`` is stamped on the way back (``_Checkout.__exit__``), in the
# caller's thread. (As the pool's ``reset`` hook it made every return a hand-off to a pool
# worker thread: a GIL round trip per call.)
def _check_if_idle(conn: Conn) -> None:
    returned = getattr(conn, "_learnloop_returned", None)
    if returned is None or time.monotonic() - returned > IDLE_CHECK_AFTER:
        ConnectionPool.check_connection(conn)


def _dumps(obj: Any) -> bytes:
    # Values were validated as JSON before they get here (NaN, NUL refused); orjson is
    # ~5x faster than the stdlib encoder, which shows on the bulk path.
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS, default=_json_default)
    except (orjson.JSONEncodeError, TypeError):
        pass
    # orjson stops at 64-bit integers; jsonb (numeric) does not, so neither do we. A value
    # that skipped validation still gets our error, never a UnicodeEncodeError or a
    # RecursionError (a 500 at the API).
    try:
        return json.dumps(obj, default=_json_default, ensure_ascii=False).encode()
    except (UnicodeEncodeError, RecursionError, ValueError) as exc:
        raise InvalidInput(f"a JSON value cannot be stored: {type(exc).__name__}: {str(exc)[:200]}") from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return float(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


# A run of 19+ digits may be an integer beyond 64 bits: orjson would read it as a float
# (losing digits), the stdlib reads it exactly.
_LONG_DIGITS = re.compile(rb"\d{19}")


def _loads(data: str | bytes) -> Any:
    # orjson reads ~3x faster than the stdlib (a search decodes each hit's metadata). It
    # reads integers beyond 64 bits as floats and refuses numbers beyond a double, both of
    # which jsonb holds exactly: those documents go to the stdlib.
    if isinstance(data, bytes | bytearray | memoryview) and _LONG_DIGITS.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def _configure(conn: Conn) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)
    set_json_dumps(_dumps, context=conn)
    set_json_loads(_loads, context=conn)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
