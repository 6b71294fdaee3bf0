"""Archive throughput: events/s from the outbox to Parquet (one pass), and DuckDB query
time over the result. Baseline in the same process: reading the same rows from the outbox
without writing (what the pass costs beyond the database read).

    python -m benchmarks archive        (LEARNLOOP_BENCH_EVENTS, default 200000)
"""

from __future__ import annotations

import os
import tempfile
import time

from .common import bench_client, save

N = int(os.environ.get("LEARNLOOP_BENCH_EVENTS", "200000"))


def main() -> None:
    with bench_client() as ll, tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        for start in range(0, N, 50_000):
            ll.bulk_log({"kind": "chat", "prompt": f"q{i}", "user_ref": f"u{i % 100}"}
                        for i in range(start, min(N, start + 50_000)))
        print(f"loaded {N} generations (+{N} events) in {time.perf_counter() - t0:.1f}s")
        with ll.db.connection() as conn:
            t0 = time.perf_counter()
            n = 0
            with conn.transaction(), conn.cursor(name="read") as cur:
                cur.itersize = 5000
                cur.execute("SELECT * FROM learnloop.events")
                for _ in cur:
                    n += 1
            read_s = time.perf_counter() - t0
        res = ll.events.archive(root=root)
        eps = res["events"] / res["seconds"]
        print(f"outbox read only: {n / read_s:,.0f} events/s; archive pass: {eps:,.0f} events/s "
              f"({res['events']} events, {res['files']} files, {res['seconds']:.1f}s; "
              f"{eps / (n / read_s):.2f}x the bare read)")
        t0 = time.perf_counter()
        rows = ll.events.by_type_and_day(root=root)
        q_s = time.perf_counter() - t0
        print(f"DuckDB events by type and day over the archive: {q_s * 1000:.0f} ms ({len(rows)} rows)")
        save("archive", {"events": res["events"], "files": res["files"], "archive_events_per_s": eps,
                         "read_only_events_per_s": n / read_s, "duckdb_by_type_day_ms": q_s * 1000})
