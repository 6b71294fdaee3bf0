"""Logging throughput: generations/s for single inserts and for the bulk path.

Targets (issue 2, on a 2-core machine): bulk >= 20,000 rows/s, single >= 1,000/s.
Baselines in the same process and server: a bare parameterised INSERT of the same row
(single) and a bare binary COPY of the same rows into the same table (bulk), both without
validation, lineage resolution or outbox events — the ratio is learnloop's overhead.

A fifth run logs singles with ``synchronous_commit=off`` (the LEARNLOOP_SYNCHRONOUS_COMMIT
setting): no wait for the WAL flush, the durability trade documented in docs/operations.md.

Each of the runs gets its own fresh embedded server, so none pays for the table or the
autovacuum work another run left behind.

Feedback (issue 13): ``feedback()`` and ``bulk_feedback()`` keep each generation's verdict
summary current in the same statement/transaction. Measured against the same write without
the summary, taking turns in one process: the single statement without its verdict CTE, and
the bulk call with its verdict step skipped. Target: at most 10% slower.

Logging (issue 13): each generation also gets its analytics row (ledger m005). Measured
against the same log without it, taking turns in one process. Target: at most 10% slower.

Env: BENCH_ROWS (default 100000), BENCH_SINGLE_ROWS (default = BENCH_ROWS),
BENCH_FEEDBACK_ROWS (default 20000).
"""

from __future__ import annotations

import os
import random
import time
import uuid

from psycopg.types.json import Jsonb

from benchmarks.common import MachineLoad, bench_client, save

STYLES = ["CYBERPUNK_DARK", "MINIMAL", "BLUEPRINT", "WATERCOLOR"]


def make_rows(n: int, rnd: random.Random) -> list[dict]:
    rows = []
    for i in range(n):
        rows.append({
            "kind": "image",
            "prompt": f"Subject: pyrolysis plant {i}, isometric, {rnd.choice(STYLES).lower()}",
            "negative_prompt": "blurry, text",
            "config": {"audience": rnd.choice(["INVESTOR", "ENGINEER"]), "style_preset": rnd.choice(STYLES)},
            "context": {"demand_kw": rnd.randint(100, 900), "cost_eur": rnd.randint(50_000, 500_000),
                        "efficiency": round(rnd.uniform(0.02, 0.2), 4)},
            "output_url": f"https://cdn.example/{i}.png",
            "output_meta": {"seed": rnd.randint(0, 2**31), "model": "dall-e-3"},
            "model": "dall-e-3", "provider": "openai", "tokens_in": 42, "latency_ms": 812.0,
            "user_ref": f"user-{i % 500}", "links": {"project": str(i % 100)},
        })
    return rows


def _without_summary(sql: str) -> str:
    """The single-feedback statement as it was before the verdict summary (ledger m004): no
    summary update, day mark (m007) or pending mark (m009)."""
    start = sql.index("verdict AS (") if "verdict AS (" in sql else sql.index("pend AS (")
    end = sql.index("ev AS (")
    return sql[:start] + sql[end:]


def _without_analytics_row(sql: str) -> str:
    """The single-log statement as it was before each generation got its analytics row (m005)
    and the rollup's day mark (m007)."""
    return sql[:sql.index("facts AS (")] + sql[sql.index("ev AS ("):]


def log_runs(n: int) -> dict[str, float]:
    """Logging with each generation's analytics row (ledger m005) vs the same write without
    it, taking turns in one process: single statements alternating, bulk batches alternating."""
    from learnloop.ledger import bulk
    from learnloop.ledger import generations as gen

    rnd = random.Random(3)
    rows = make_rows(2 * n, rnd)
    out: dict[str, float] = {}
    with bench_client() as ll:
        # (root, child) statements by "keeps the rollup's day marks"; without the analytics
        # row, the root statement also goes without its day mark (ledger/daymarks.py).
        keep_sql = gen._LOG_SQL
        bare_sql = {k: (_without_analytics_row(root), child) for k, (root, child) in keep_sql.items()}
        with_t = without_t = 0.0
        for i in range(n):
            for facts in ((True, False) if i % 2 == 0 else (False, True)):
                gen._LOG_SQL = keep_sql if facts else bare_sql
                try:
                    t0 = time.perf_counter()
                    ll.log(rows[2 * i + (0 if facts else 1)])
                    dt = time.perf_counter() - t0
                finally:
                    gen._LOG_SQL = keep_sql
                if facts:
                    with_t += dt
                else:
                    without_t += dt
        out["log_single_rows_s"] = n / with_t
        out["log_single_without_analytics_row_rows_s"] = n / without_t
    with bench_client() as ll:
        keep_copy = bulk._Writer.__dict__["_copy_facts"]  # the staticmethod itself
        with_t = without_t = 0.0
        rows_with = rows_without = 0
        size = max(1, min(5000, n // 2))
        more = make_rows(4 * n + size, rnd)
        ll.bulk_log(more[:size])  # warm-up: the first COPY into fresh tables pays extra
        more = more[size:]
        for turn, k in enumerate(range(0, len(more) - 2 * size + 1, 2 * size)):
            a, b = more[k:k + size], more[k + size:k + 2 * size]
            for facts in ((True, False) if turn % 2 == 0 else (False, True)):
                if not facts:
                    bulk._Writer._copy_facts = staticmethod(lambda *args: None)  # type: ignore[method-assign]
                try:
                    t0 = time.perf_counter()
                    ll.bulk_log(a if facts else b)
                    dt = time.perf_counter() - t0
                finally:
                    bulk._Writer._copy_facts = keep_copy  # type: ignore[method-assign]
                if facts:
                    with_t += dt
                    rows_with += len(a)
                else:
                    without_t += dt
                    rows_without += len(b)
        out["log_bulk_rows_s"] = rows_with / with_t
        out["log_bulk_without_analytics_row_rows_s"] = rows_without / without_t
    out["log_single_analytics_overhead"] = out["log_single_without_analytics_row_rows_s"] / out["log_single_rows_s"]
    out["log_bulk_analytics_overhead"] = out["log_bulk_without_analytics_row_rows_s"] / out["log_bulk_rows_s"]
    print(f"log single  {out['log_single_rows_s']:>9,.0f} rows/s   without the analytics row"
          f" {out['log_single_without_analytics_row_rows_s']:>9,.0f} rows/s   x{out['log_single_analytics_overhead']:.3f}"
          "   target <= x1.10")
    print(f"log bulk    {out['log_bulk_rows_s']:>9,.0f} rows/s   without the analytics row"
          f" {out['log_bulk_without_analytics_row_rows_s']:>9,.0f} rows/s   x{out['log_bulk_analytics_overhead']:.3f}"
          "   target <= x1.10")
    return out


def feedback_runs(n: int) -> dict[str, float]:
    """Feedback with the verdict summary vs the same write without it, taking turns."""
    from learnloop.ledger import feedback as fb
    from learnloop.ledger.models import FeedbackIn
    from learnloop.store.ids import uuid7

    rnd = random.Random(2)
    out: dict[str, float] = {}
    with bench_client() as ll:
        ids = ll.bulk_log(make_rows(2 * n, rnd))
        bare_sql = _without_summary(fb._ADD[True])
        with_t = without_t = 0.0
        with ll.db.connection() as conn:
            for i in range(n):
                sentiment = "NEGATIVE" if i % 3 == 0 else "POSITIVE"
                t0 = time.perf_counter()
                fb.add(conn, ll.scope, {"generation_id": ids[2 * i], "sentiment": sentiment, "tags": ["TOO_DARK"]})
                with_t += time.perf_counter() - t0
                f = FeedbackIn(generation_id=ids[2 * i + 1], sentiment=sentiment, tags=["TOO_DARK"])
                t0 = time.perf_counter()
                conn.execute(bare_sql, fb._params(ll.scope, f, uuid7())).fetchone()
                without_t += time.perf_counter() - t0
        out["feedback_single_rows_s"] = n / with_t
        out["feedback_single_without_summary_rows_s"] = n / without_t
        # bulk: half the generations each way, in alternating batches (5,000 at most)
        items = [{"generation_id": g, "rating": 1 + i % 5, "tags": ["TOO_DARK"] if i % 4 == 0 else []}
                 for i, g in enumerate(ids)]
        keep = fb._bulk_verdicts
        with_t = without_t = 0.0
        size = max(1, min(5000, n // 4))
        for turn, k in enumerate(range(0, len(items), 2 * size)):
            a, b = items[k:k + size], items[k + size:k + 2 * size]
            for summary in ((True, False) if turn % 2 == 0 else (False, True)):  # who goes first alternates
                if not summary:
                    fb._bulk_verdicts = lambda *args: None  # type: ignore[assignment]
                try:
                    t0 = time.perf_counter()
                    ll.bulk_feedback(a if summary else b)
                    if summary:
                        with_t += time.perf_counter() - t0
                    else:
                        without_t += time.perf_counter() - t0
                finally:
                    fb._bulk_verdicts = keep  # type: ignore[assignment]
        out["feedback_bulk_rows_s"] = n / with_t
        out["feedback_bulk_without_summary_rows_s"] = n / without_t
    out["feedback_single_overhead"] = out["feedback_single_without_summary_rows_s"] / out["feedback_single_rows_s"]
    out["feedback_bulk_overhead"] = out["feedback_bulk_without_summary_rows_s"] / out["feedback_bulk_rows_s"]
    print(f"feedback single {out['feedback_single_rows_s']:>9,.0f} rows/s   without the verdict summary"
          f" {out['feedback_single_without_summary_rows_s']:>9,.0f} rows/s   x{out['feedback_single_overhead']:.3f}"
          "   target <= x1.10")
    print(f"feedback bulk   {out['feedback_bulk_rows_s']:>9,.0f} rows/s   without the verdict summary"
          f" {out['feedback_bulk_without_summary_rows_s']:>9,.0f} rows/s   x{out['feedback_bulk_overhead']:.3f}"
          "   target <= x1.10")
    return out


def main() -> None:
    n = int(os.environ.get("BENCH_ROWS", 100_000))
    n_single = int(os.environ.get("BENCH_SINGLE_ROWS", n))
    rnd = random.Random(1)
    rows = make_rows(n, rnd)
    results: dict[str, float] = {}
    machine = MachineLoad()
    with bench_client() as ll:
        scope = ll.scope

        # bulk, baseline: bare binary COPY of the same rows (no validation, lineage, events)
        with ll.db.connection() as conn:
            t0 = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur, cur.copy(
                "COPY learnloop.generations (tenant_id, id, project_id, kind, root_id, prompt, negative_prompt,"
                " config, context, output_url, output_meta, model, provider, tokens_in, latency_ms, user_ref, links)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["uuid", "uuid", "uuid", "text", "uuid", "text", "text", "jsonb", "jsonb", "text",
                                "jsonb", "text", "text", "int4", "float8", "text", "jsonb"])
                for r in rows:
                    gid = uuid.uuid4()
                    copy.write_row((scope.tenant_id, gid, scope.project_id, r["kind"], gid, r["prompt"],
                                    r["negative_prompt"], Jsonb(r["config"]), Jsonb(r["context"]), r["output_url"],
                                    Jsonb(r["output_meta"]), r["model"], r["provider"], r["tokens_in"],
                                    r["latency_ms"], r["user_ref"], Jsonb(r["links"])))
            results["bulk_baseline_rows_s"] = n / (time.perf_counter() - t0)

    with bench_client() as ll:
        scope = ll.scope
        # bulk, learnloop: validation + lineage + outbox events, one transaction
        t0 = time.perf_counter()
        ids = ll.bulk_log(rows)
        results["bulk_rows_s"] = len(ids) / (time.perf_counter() - t0)

    with bench_client() as ll:
        scope = ll.scope
        # single, baseline: a bare INSERT per row, autocommit
        single = rows[:n_single]
        with ll.db.connection() as conn:
            t0 = time.perf_counter()
            for r in single:
                gid = uuid.uuid4()
                conn.execute(
                    "INSERT INTO learnloop.generations (tenant_id, id, project_id, kind, root_id, prompt, config, context,"
                    " output_url, output_meta, model, user_ref, links) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (scope.tenant_id, gid, scope.project_id, r["kind"], gid, r["prompt"], Jsonb(r["config"]),
                     Jsonb(r["context"]), r["output_url"], Jsonb(r["output_meta"]), r["model"], r["user_ref"],
                     Jsonb(r["links"])),
                )
            results["single_baseline_rows_s"] = len(single) / (time.perf_counter() - t0)

    with bench_client() as ll:
        # single, learnloop: client.log per row (validation, lineage, event, one round trip)
        t0 = time.perf_counter()
        parent = None
        for i, r in enumerate(single):
            g = ll.log(r if i % 10 else {**r, "parent_id": parent} if parent else r)
            parent = g.id
        results["single_rows_s"] = len(single) / (time.perf_counter() - t0)

    with bench_client(synchronous_commit="off") as ll:
        # single, learnloop with LEARNLOOP_SYNCHRONOUS_COMMIT=off: no wait for the WAL flush
        t0 = time.perf_counter()
        for r in single:
            ll.log(r)
        results["single_async_commit_rows_s"] = len(single) / (time.perf_counter() - t0)

    results["bulk_overhead_ratio"] = results["bulk_baseline_rows_s"] / results["bulk_rows_s"]
    results["single_overhead_ratio"] = results["single_baseline_rows_s"] / results["single_rows_s"]
    print(f"rows: bulk {n}, single {n_single}  (2 cores, embedded PostgreSQL 18, synchronous_commit on)")
    print(f"bulk   learnloop {results['bulk_rows_s']:>9,.0f} rows/s   bare COPY   {results['bulk_baseline_rows_s']:>9,.0f} rows/s"
          f"   overhead x{results['bulk_overhead_ratio']:.2f}   target >= 20,000")
    print(f"single learnloop {results['single_rows_s']:>9,.0f} rows/s   bare INSERT {results['single_baseline_rows_s']:>9,.0f} rows/s"
          f"   overhead x{results['single_overhead_ratio']:.2f}   target >= 1,000")
    print(f"single learnloop, synchronous_commit=off {results['single_async_commit_rows_s']:>9,.0f} rows/s")
    results.update(log_runs(int(os.environ.get("BENCH_FEEDBACK_ROWS", 20_000))))
    results.update(feedback_runs(int(os.environ.get("BENCH_FEEDBACK_ROWS", 20_000))))
    print(f"machine during the runs: {machine.summary()}")
    save("logging", {"rows": n, "single_rows": n_single, **results, "machine": machine.summary()})


if __name__ == "__main__":
    main()
