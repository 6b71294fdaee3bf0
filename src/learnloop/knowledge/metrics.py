"""Search metrics (seed 002): searches, search latency, query-embedding time, cache hits.

Two views of the same counters:

* this process, exact: ``snapshot()`` (latency percentiles over the last 10,000 searches,
  plus the embedding counters of ``learnloop.embeddings.metrics``);
* every process, by day: ``learnloop.search_metrics`` rows per tenant/project/day, to
  which each process adds its counts every ``FLUSH_SECONDS`` (a daemon timer thread, so an
  idle process does not sit on its last counts) and at exit. ``stored(conn, scope)`` sums
  them; ``learnloop stats search`` and ``GET /v1/stats/search`` show them.

Pending counts are kept per database, then per (tenant, project): a process that talks to
two databases (two clients, or a test and a server) flushes each database's counts into
that database only. Cache hits and misses in the table are those of the searches' own
query embeddings, counted per search, so each tenant's (and project's) hit rate is its own;
the process-wide embedding counters (ingestion included) stay in ``snapshot()`` and the
Prometheus gauge.

Searches slower than their tenant's threshold (``tenant_settings.slow_search_ms``, else
``LEARNLOOP_SLOW_SEARCH_MS``, default 200 ms) each write a ``search.slow`` event, which the
live stream, the relay and the archive carry like any other (an app's latency alert
subscribes to it), and are reported on the ``learnloop.knowledge.search`` logger as one
warning line per ``SLOW_LOG_SECONDS`` at most,
with their count, the slowest, the paths and how many were mostly query embedding (a
cold model): the first slow search after a quiet interval is logged at once, the ones
after it are counted into the next line (written by the next slow search once the
interval has passed, or at exit). A batch evaluation with a cold model used to print one
line per query. Recording never raises into the search that is
being measured: a failed flush is logged and its counts are kept for the next one.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

log = logging.getLogger("learnloop.knowledge.search")

BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, float("inf"))
DEFAULT_SLOW_MS = 200.0
FLUSH_SECONDS = 10.0
WINDOW = 10_000
SLOW_LOG_SECONDS = 60.0


class _Pending:
    """Counts for one (tenant, project) of one database not yet written to the table."""

    def __init__(self) -> None:
        self.searches = 0
        self.slow = 0
        self.total_ms = 0.0
        self.max_ms = 0.0
        self.buckets = [0] * len(BUCKETS_MS)
        self.embed_calls = 0
        self.embed_ms = 0.0
        self.cache_hits = 0
        self.cache_misses = 0


class SearchMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.searches = 0
            self.slow_searches = 0
            self.rows_returned = 0
            self.paths: dict[str, int] = {}
            self.latencies: deque[float] = deque(maxlen=WINDOW)
            self.embed_ms: deque[float] = deque(maxlen=WINDOW)
            # database (the client's ``db`` object; None for counts recorded without one)
            # -> (tenant, project) -> counts
            self.pending: dict[Any, dict[tuple[UUID, UUID], _Pending]] = {}
            self.last_flush = time.monotonic()
            self._slow = _SlowLog()

    def record(self, tenant_id: UUID, project_id: UUID, ms: float, *, embed_ms: float | None,
               rows: int, path: str, slow_ms: float, db: Any = None, cache_hit: bool | None = None) -> None:
        """Count one search. ``cache_hit``: its query text's vector came from the embedding
        cache (True), had to be embedded (False), or no text was embedded (None)."""
        with self._lock:
            self.searches += 1
            self.rows_returned += rows
            self.paths[path] = self.paths.get(path, 0) + 1
            self.latencies.append(ms)
            of_db = self.pending.get(db)
            if of_db is None:
                of_db = self.pending[db] = {}
            p = of_db.get((tenant_id, project_id))
            if p is None:  # (setdefault built a _Pending, buckets and all, on every search)
                p = of_db[(tenant_id, project_id)] = _Pending()
            p.searches += 1
            p.total_ms += ms
            p.max_ms = max(p.max_ms, ms)
            p.buckets[bisect.bisect_left(BUCKETS_MS, ms)] += 1
            if embed_ms is not None:
                self.embed_ms.append(embed_ms)
                p.embed_calls += 1
                p.embed_ms += embed_ms
            if cache_hit is not None:
                p.cache_hits += cache_hit
                p.cache_misses += not cache_hit
            line = None
            if ms > slow_ms:
                self.slow_searches += 1
                p.slow += 1
                line = self._slow.add(ms, path, embed_ms, slow_ms)
        if line:
            log.warning("%s", line)

    def flush_slow_log(self) -> None:
        """Write the slow searches counted since the last line, if any."""
        with self._lock:
            line = self._slow.line()
        if line:
            log.warning("%s", line)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            lat = sorted(self.latencies)
            emb = sorted(self.embed_ms)
            out: dict[str, Any] = {
                "searches": self.searches,
                "slow_searches": self.slow_searches,
                "rows_returned": self.rows_returned,
                "paths": dict(self.paths),
                "search_ms": _pcts(lat),
                "query_embed_ms": _pcts(emb),
            }
        out["embeddings"] = _embedding_counters()
        return out

    def take_pending(self, db: Any) -> dict[tuple[UUID, UUID], _Pending]:
        """The counts pending for ``db`` (removed from the buffer)."""
        with self._lock:
            self.last_flush = time.monotonic()
            return self.pending.pop(db, None) or {}

    def drop(self, db: Any) -> None:
        """Forget ``db``'s pending counts (a closed database can no longer take them)."""
        with self._lock:
            self.pending.pop(db, None)

    def databases(self) -> list[Any]:
        with self._lock:
            return list(self.pending)

    def give_back(self, db: Any, pending: dict[tuple[UUID, UUID], _Pending]) -> None:
        with self._lock:
            of_db = self.pending.setdefault(db, {})
            for key, p in pending.items():
                mine = of_db.get(key)
                if mine is None:
                    mine = of_db[key] = _Pending()
                mine.searches += p.searches
                mine.slow += p.slow
                mine.total_ms += p.total_ms
                mine.max_ms = max(mine.max_ms, p.max_ms)
                mine.buckets = [a + b for a, b in zip(mine.buckets, p.buckets, strict=True)]
                mine.embed_calls += p.embed_calls
                mine.embed_ms += p.embed_ms
                mine.cache_hits += p.cache_hits
                mine.cache_misses += p.cache_misses


class _SlowLog:
    """Slow searches since the last warning line (see the module docstring)."""

    def __init__(self) -> None:
        self.last_line = float("-inf")
        self.clear()

    def clear(self) -> None:
        self.count = 0
        self.max_ms = 0.0
        self.mostly_embedding = 0
        self.threshold = DEFAULT_SLOW_MS
        self.paths: dict[str, int] = {}
        self.since = time.monotonic()

    def add(self, ms: float, path: str, embed_ms: float | None, threshold: float) -> str | None:
        """Count one slow search; the line to log now, if the interval has passed."""
        if self.count == 0:
            self.since = time.monotonic()
        self.count += 1
        self.max_ms = max(self.max_ms, ms)
        self.threshold = threshold
        self.paths[path] = self.paths.get(path, 0) + 1
        if embed_ms is not None and embed_ms > ms / 2:
            self.mostly_embedding += 1
        if time.monotonic() - self.last_line >= SLOW_LOG_SECONDS:
            return self.line()
        return None

    def line(self) -> str | None:
        if not self.count:
            return None
        now = time.monotonic()
        paths = ", ".join(f"{p} {n}" for p, n in sorted(self.paths.items(), key=lambda x: (-x[1], x[0])))
        text = (f"slow searches: {self.count} over {self.threshold:.0f} ms in the last {now - self.since:.0f} s"
                f" (slowest {self.max_ms:.1f} ms; paths: {paths}; {self.mostly_embedding} mostly query embedding)")
        self.clear()
        self.last_line = now
        return text


def _pcts(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}

    def q(p: float) -> float:
        return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]

    return {"p50": q(0.50), "p95": q(0.95), "p99": q(0.99), "max": values[-1]}


def _embedding_counters() -> dict[str, Any]:
    try:
        from ..embeddings.metrics import METRICS as EMB
    except ImportError:  # the embeddings package is optional for pure-vector use
        return {}
    return dict(EMB.snapshot())


METRICS = SearchMetrics()
_flusher_started = False


def record_search(client: Any, ms: float, *, embed_ms: float | None, rows: int, path: str,
                  cache_hit: bool | None = None) -> None:
    """Called by every search; a slow one also writes its ``search.slow`` event."""
    default = float(getattr(client.settings, "slow_search_ms", DEFAULT_SLOW_MS))
    scope = client.scope
    db = client.db
    slow = _slow_threshold(db, scope.tenant_id, default)
    METRICS.record(scope.tenant_id, scope.project_id, ms, embed_ms=embed_ms, rows=rows, path=path, slow_ms=slow,
                   db=db, cache_hit=cache_hit)
    if not _flusher_started:
        _start_flusher()
    if ms > slow:
        _emit_slow(db, scope, ms, slow, path, rows)


def _slow_threshold(db: Any, tenant_id: UUID, default: float) -> float:
    try:
        from ..accounts.tenants import slow_threshold
    except ImportError:  # pragma: no cover - the accounts package ships with learnloop
        return default
    try:
        return slow_threshold(db, tenant_id, default)
    except Exception:  # noqa: BLE001 - a settings read must never fail a search
        return default


def _emit_slow(db: Any, scope: Any, ms: float, slow: float, path: str, rows: int) -> None:
    from ..events.outbox import emit

    try:
        with db.transaction() as conn:
            emit(conn, scope.tenant_id, "search", "", "search.slow",
                 {"ms": round(ms, 3), "threshold_ms": slow, "path": path, "rows": rows, "project": scope.project},
                 project_id=scope.project_id)
    except Exception as exc:  # noqa: BLE001 - never fail the search being measured
        log.warning("search.slow event not written (%s)", exc)


_flusher: threading.Thread | None = None
_flusher_lock = threading.Lock()


def _start_flusher() -> None:
    """One daemon thread per process writes every database's pending counts each
    ``FLUSH_SECONDS``, searches or not."""
    global _flusher, _flusher_started
    with _flusher_lock:
        _flusher_started = True
        if _flusher is not None and _flusher.is_alive():
            return
        _flusher = threading.Thread(target=_flush_loop, name="learnloop-search-metrics", daemon=True)
        _flusher.start()


def _flush_loop() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        flush_all()


def flush_all() -> int:
    """Flush every open database's pending counts; returns rows written. The counts of a
    database closed meanwhile are dropped (nothing can write them)."""
    n = 0
    for db in METRICS.databases():
        if db is None or getattr(getattr(db, "pool", None), "closed", True):
            METRICS.drop(db)
        else:
            n += flush(db, quiet=True)
    return n


def flush(db: Any, *, quiet: bool = False) -> int:
    """Add this process's pending counts for ``db`` to ``learnloop.search_metrics``; return rows written."""
    pending = METRICS.take_pending(db)
    if not pending:
        return 0
    try:
        with db.transaction() as conn:
            write(conn, pending)
    except Exception as exc:  # never fail a search (or exit) because metrics could not be saved
        METRICS.give_back(db, pending)
        if quiet:
            return 0
        log.warning("search metrics not saved this time (%s); keeping them for the next flush", exc)
        return 0
    return len(pending)


# Bucket by bucket, without a subquery or a function that is not IMMUTABLE: Citus refuses
# both in an upsert's DO UPDATE SET (EXCLUDED.updated_at is the column's default, now()).
_ADD_BUCKETS = "ARRAY[" + ", ".join(
    f"m.latency_buckets[{i}] + EXCLUDED.latency_buckets[{i}]" for i in range(1, len(BUCKETS_MS) + 1)) + "]"


_FLUSH_SQL = f"""
INSERT INTO learnloop.search_metrics AS m
    (tenant_id, project_id, day, searches, slow_searches, search_ms_total, search_ms_max,
     latency_buckets, embed_calls, embed_ms_total, cache_hits, cache_misses)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, project_id, day) DO UPDATE SET
    searches = m.searches + EXCLUDED.searches,
    slow_searches = m.slow_searches + EXCLUDED.slow_searches,
    search_ms_total = m.search_ms_total + EXCLUDED.search_ms_total,
    search_ms_max = greatest(m.search_ms_max, EXCLUDED.search_ms_max),
    latency_buckets = {_ADD_BUCKETS},
    embed_calls = m.embed_calls + EXCLUDED.embed_calls,
    embed_ms_total = m.embed_ms_total + EXCLUDED.embed_ms_total,
    cache_hits = m.cache_hits + EXCLUDED.cache_hits,
    cache_misses = m.cache_misses + EXCLUDED.cache_misses,
    updated_at = EXCLUDED.updated_at
"""  # noqa: S608 - _ADD_BUCKETS is a constant


def write(conn: psycopg.Connection[Any], pending: dict[tuple[UUID, UUID], _Pending]) -> None:
    from ..events.outbox import emit

    day = datetime.now(UTC).date()
    for (tenant_id, project_id), p in pending.items():
        conn.execute(
            _FLUSH_SQL,
            (tenant_id, project_id, day, p.searches, p.slow, p.total_ms, p.max_ms, p.buckets,
             p.embed_calls, p.embed_ms, p.cache_hits, p.cache_misses),
        )
        emit(conn, tenant_id, "search_metrics", f"{project_id}/{day}", "search_metrics.flushed",
             {"searches": p.searches, "slow_searches": p.slow, "day": day.isoformat()}, project_id=project_id)


def stored(conn: psycopg.Connection[Any], tenant_id: UUID, project_id: UUID | None, days: int = 30) -> dict[str, Any]:
    """Sums over the last ``days`` days from the table (every process that flushed)."""
    row = conn.execute(
        """
        SELECT coalesce(sum(searches), 0)::bigint AS searches,
               coalesce(sum(slow_searches), 0)::bigint AS slow_searches,
               coalesce(sum(search_ms_total), 0) AS search_ms_total,
               max(search_ms_max) AS search_ms_max,
               coalesce(sum(embed_calls), 0)::bigint AS embed_calls,
               coalesce(sum(embed_ms_total), 0) AS embed_ms_total,
               coalesce(sum(cache_hits), 0)::bigint AS cache_hits,
               coalesce(sum(cache_misses), 0)::bigint AS cache_misses,
               (SELECT array_agg(s ORDER BY i) FROM (
                    SELECT i, sum(b)::bigint AS s
                    FROM learnloop.search_metrics m2, unnest(m2.latency_buckets) WITH ORDINALITY AS u(b, i)
                    WHERE m2.tenant_id = %s AND (%s::uuid IS NULL OR m2.project_id = %s)
                      AND m2.day > current_date - %s
                    GROUP BY i) z) AS buckets
        FROM learnloop.search_metrics
        WHERE tenant_id = %s AND (%s::uuid IS NULL OR project_id = %s) AND day > current_date - %s
        """,
        (tenant_id, project_id, project_id, days, tenant_id, project_id, project_id, days),
    ).fetchone()
    assert row is not None
    n = int(row["searches"])
    looked = int(row["cache_hits"]) + int(row["cache_misses"])
    buckets = [int(b) for b in (row["buckets"] or [])]
    return {
        "days": days,
        "searches": n,
        "slow_searches": int(row["slow_searches"]),
        "search_ms_mean": (row["search_ms_total"] / n) if n else None,
        "search_ms_max": row["search_ms_max"],
        "search_ms_p50_at_most": _bucket_pct(buckets, 0.50),
        "search_ms_p99_at_most": _bucket_pct(buckets, 0.99),
        "query_embeddings": int(row["embed_calls"]),
        "query_embed_ms_mean": (row["embed_ms_total"] / row["embed_calls"]) if row["embed_calls"] else None,
        "cache_hits": int(row["cache_hits"]),
        "cache_misses": int(row["cache_misses"]),
        "cache_hit_rate": (int(row["cache_hits"]) / looked) if looked else None,
    }


def _bucket_pct(buckets: list[int], p: float) -> float | None:
    """The upper bound of the latency bucket holding the p-th search (None if none)."""
    total = sum(buckets)
    if not total:
        return None
    target = p * total
    seen = 0
    for bound, count in zip(BUCKETS_MS, buckets, strict=False):
        seen += count
        if seen >= target:
            return bound
    return BUCKETS_MS[-1]


def snapshot() -> dict[str, Any]:
    return METRICS.snapshot()


@atexit.register
def _flush_at_exit() -> None:
    METRICS.flush_slow_log()
    # Clients closed before exit cannot write; their counts stay in this process only.
    flush_all()
