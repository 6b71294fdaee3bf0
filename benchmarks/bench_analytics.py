"""Analytics at scale: each call's p50/p99 against DuckDB over the same rows in Parquet.

For each size (default 100k and 1M generations; 10M with BENCH_ANALYTICS_10M=1) a fresh
embedded server is loaded with a generated seed-000 ledger (benchmarks/analytics_data.py:
~30% rated, ~10% regenerations, realistic config/context JSON) through the library's own
bulk paths, vacuumed and analysed, then exported to Parquet (config/context as JSON text,
the verdict summary and feedback beside it). Each call then runs BENCH_ANALYTICS_REPEAT
times (default 7), taking turns with the DuckDB query that computes the same answer
(DuckDB 2 threads, the machine's cores). Reported: p50/p99 per call, the ratio
learnloop/DuckDB of the p50s, and the growth factor from one size to the next.

Before the calls the daily rollup is built (``ll.analytics.refresh()``, timed and reported);
the calls then read it wherever it can answer. Last, one day is changed (a new rating) and
failure rate and drivers are timed again: that day is read from the ledger.

Targets (issue 13, this 2-core machine): p50 <= 300 ms at 1M and <= 3 s at 10M for every
call, within x2 of DuckDB, growing no faster than the rows.

Env: BENCH_ANALYTICS_SIZES (comma list, default 100000,1000000), BENCH_ANALYTICS_10M=1,
BENCH_ANALYTICS_REPEAT, BENCH_ANALYTICS_HOME (a folder: each size's server and Parquet files
are kept in it, and a later run reuses a size already loaded there; a 10M load takes ~30
minutes, so a 10M run can be resumed in another session).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import analytics_data
from benchmarks.common import MachineLoad, bench_client, percentiles, run_sizes, save
from learnloop.ledger import verdicts

EXPORTS = {
    "g": "SELECT id::text AS id, project_id::text AS project_id, created_at, kind, model, parent_id::text AS parent_id,"
         " root_id::text AS root_id, iteration, tokens_in, tokens_out, latency_ms, cost::float8 AS cost,"
         " config::text AS config, context::text AS context FROM learnloop.generations",
    "vd": "SELECT generation_id::text AS generation_id, verdict, parent_id::text AS parent_id, root_id::text AS root_id,"
          " iteration, rating_sum, rating_count, to_jsonb(tags)::text AS tags FROM learnloop.verdicts"
          " WHERE feedback_count > 0",
    "fb": "SELECT generation_id::text AS generation_id, sentiment, to_jsonb(tags)::text AS tags, created_at"
          " FROM learnloop.feedback",
}

KW = "TRY_CAST(json_extract(g.context, '$.demand_kw') AS DOUBLE)"
BAND = ("CASE WHEN json_type(g.context, '$.demand_kw') IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN"
        f" (CASE WHEN {KW} < 0 THEN 0 WHEN {KW} < 100 THEN 1 WHEN {KW} < 500 THEN 2 ELSE 3 END) END")
DUCK = {
    "failure_rate": """
        SELECT json_extract_string(g.config, '$.style_preset') AS v, count(*), count(vd.verdict),
               count(*) FILTER (WHERE vd.verdict = 'NEGATIVE'), count(*) FILTER (WHERE vd.verdict = 'POSITIVE')
        FROM g LEFT JOIN vd ON vd.generation_id = g.id GROUP BY 1""",
    "breakdown_2d_banded": f"""
        SELECT d0, d1, count(*), count(verdict), count(*) FILTER (WHERE verdict = 'NEGATIVE'),
               count(*) FILTER (WHERE verdict = 'POSITIVE'), sum(rating_sum), sum(rating_count), sum(tokens_in),
               sum(tokens_out), sum(cost), quantile_cont(latency_ms, [0.5, 0.95])
        FROM (SELECT json_extract_string(g.config, '$.style_preset') AS d0,
                     {BAND} AS d1,
                     vd.verdict, vd.rating_sum, vd.rating_count, g.tokens_in, g.tokens_out, g.cost, g.latency_ms
              FROM g LEFT JOIN vd ON vd.generation_id = g.id
              WHERE json_extract_string(g.config, '$.audience') = 'INVESTOR')
        GROUP BY GROUPING SETS ((d0, d1), ())""",  # noqa: S608 (built from this module's constants)
    "tags": """
        WITH t AS (SELECT generation_id, unnest(from_json(tags, '["VARCHAR"]')) AS tag FROM fb)
        SELECT tag, count(*), count(DISTINCT generation_id),
               count(DISTINCT generation_id) / (SELECT count(DISTINCT generation_id) FROM fb) FROM t GROUP BY tag""",
    "golden": """
        SELECT g.* FROM g JOIN vd ON vd.generation_id = g.id
        WHERE vd.verdict = 'POSITIVE' AND json_type(g.context, '$.efficiency') IN ('BIGINT', 'UBIGINT', 'DOUBLE')
          AND CAST(json_extract(g.context, '$.efficiency') AS DOUBLE) < 0.08
        ORDER BY g.created_at DESC, g.id DESC LIMIT 10""",
    "corrections": """
        WITH neg AS (SELECT generation_id AS id FROM vd WHERE verdict = 'NEGATIVE')
        SELECT (SELECT count(*) FROM neg),
               (SELECT count(DISTINCT parent_id) FROM g WHERE parent_id IN (SELECT id FROM neg)),
               (SELECT count(DISTINCT parent_id) FROM vd WHERE verdict = 'POSITIVE' AND parent_id IN (SELECT id FROM neg)),
               (SELECT list(x) FROM (SELECT first_positive, count(*) AS x FROM (
                   SELECT root_id, min(iteration) FILTER (WHERE verdict = 'POSITIVE') AS first_positive
                   FROM vd WHERE verdict IS NOT NULL GROUP BY root_id) GROUP BY 1))""",
    "find": """
        SELECT g.* FROM g
        WHERE json_extract_string(g.config, '$.audience') = 'INVESTOR'
          AND json_type(g.context, '$.demand_kw') IN ('BIGINT', 'UBIGINT', 'DOUBLE')
          AND CAST(json_extract(g.context, '$.demand_kw') AS DOUBLE) > 500
        ORDER BY g.created_at DESC, g.id DESC LIMIT 50""",
}


def library_calls(ll: Any) -> dict[str, Callable[[], Any]]:
    a = ll.analytics
    return {
        "failure_rate": lambda: a.failure_rate("style_preset"),
        "breakdown_2d_banded": lambda: a.breakdown(["style_preset", "demand_kw:bands=0,100,500"], "audience=INVESTOR"),
        "tags": lambda: a.tags(),
        "golden": lambda: a.golden(["efficiency<0.08"]),
        "corrections": lambda: a.corrections(),
        "find": lambda: ll.find(["audience=INVESTOR", "demand_kw>500"], limit=50),
        "drivers": lambda: a.drivers(),
    }


def duck_drivers(d: Any) -> str:
    """DuckDB's version of the drivers scan for the keys and edges the library chose, over
    the rated generations as the library reads them: the quantile edges in one pass, then
    one GROUPING SETS pass."""
    exprs, qs = [], []
    for i, x in enumerate(d.drivers):
        path = f"'$.{x.key}'"
        col = f"g.{x.source}"
        if x.kind == "bins":
            num = f"TRY_CAST(json_extract({col}, {path}) AS DOUBLE)"
            isnum = f"json_type({col}, {path}) IN ('BIGINT', 'UBIGINT', 'DOUBLE')"
            qs.append(f"quantile_cont({num}, [0.25, 0.5, 0.75]) FILTER (WHERE {isnum})")
            edges = x.edges or [0.0]
            case = " ".join(f"WHEN {num} < {e!r} THEN {j}" for j, e in enumerate(edges))
            exprs.append(f"CASE WHEN {isnum} THEN (CASE {case} ELSE {len(edges)} END) END AS k{i}")
        else:
            exprs.append(f"json_extract_string({col}, {path}) AS k{i}")
    sets = ", ".join(f"(k{i})" for i in range(len(exprs)))
    # DuckDB text built from the library's own result (keys found in our generated data).
    rated = "FROM g JOIN vd ON vd.generation_id = g.id WHERE vd.verdict IS NOT NULL"
    edges_sql = f"SELECT {', '.join(qs)} {rated}" if qs else "SELECT 1"  # noqa: S608
    keys = ", ".join(f"k{i}" for i in range(len(exprs)))
    scan = (f"SELECT {keys}, count(*), count(verdict), count(*) FILTER (WHERE verdict = 'NEGATIVE')"  # noqa: S608
            f" FROM (SELECT {', '.join(exprs)}, vd.verdict {rated})"
            f" GROUP BY GROUPING SETS ({sets})")
    return edges_sql + ";\n" + scan


def export(ll: Any, folder: Path, duck: Any) -> None:
    for name, query in EXPORTS.items():
        csv = folder / f"{name}.csv"
        with ll.db.connection() as conn, conn.cursor() as cur, csv.open("wb") as fh:
            with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)") as copy:
                for chunk in copy:
                    fh.write(chunk)
        pq = folder / f"{name}.parquet"
        with csv.open() as fh:
            header = set(fh.readline().strip().split(","))
        types = {"cost": "DOUBLE", "tokens_out": "BIGINT", "tokens_in": "BIGINT", "latency_ms": "DOUBLE",
                 "parent_id": "VARCHAR", "verdict": "VARCHAR", "sentiment": "VARCHAR", "config": "VARCHAR",
                 "context": "VARCHAR", "tags": "VARCHAR"}
        types = {k: v for k, v in types.items() if k in header}
        duck.execute(f"COPY (SELECT * FROM read_csv('{csv}', header=true, types={types!r}))"  # noqa: S608
                     f" TO '{pq}' (FORMAT parquet)")
        csv.unlink()
    views(folder, duck)


def views(folder: Path, duck: Any) -> None:
    """DuckDB's views over the exported Parquet files."""
    for name in EXPORTS:
        duck.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{folder / name}.parquet')")  # noqa: S608


@contextmanager
def _server(n: int) -> Iterator[tuple[Any, Path, bool]]:
    """(client, folder for the Parquet files, whether the ledger is already loaded): a fresh
    temporary server, or with BENCH_ANALYTICS_HOME the one kept for this size."""
    kept = os.environ.get("BENCH_ANALYTICS_HOME")
    if not kept:
        with bench_client() as ll, tempfile.TemporaryDirectory(prefix="learnloop-bench-parquet-") as tmp:
            yield ll, Path(tmp), False
        return
    import learnloop

    home = Path(kept) / str(n)
    if home.exists() and not (home / "loaded.json").exists():
        shutil.rmtree(home)  # a load that did not finish: start again rather than add to it
    (home / "parquet").mkdir(parents=True, exist_ok=True)
    ll = learnloop.connect(home=home)
    server = ll.db.server
    try:
        yield ll, home / "parquet", (home / "loaded.json").exists()
    finally:
        ll.close()
        if server is not None:
            server.stop()


def run_size(n: int, repeat: int) -> dict[str, Any]:
    import duckdb

    out: dict[str, Any] = {"rows": n}
    with _server(n) as (ll, folder, loaded):
        if loaded:
            out.update(json.loads((folder.parent / "loaded.json").read_text()))
            print(f"  {n:,} generations: reusing the ledger loaded in {folder.parent}", flush=True)
            duck = duckdb.connect()
            duck.execute("SET threads = 2")
            views(folder, duck)
            return _measure(ll, n, repeat, duck, out)
        t0 = time.perf_counter()
        gens, fbs = analytics_data.load(ll, n)
        out["load_s"] = time.perf_counter() - t0
        out["feedback_rows"] = fbs
        with ll.db.connection() as conn:
            # Feedback leaves each generation's summary to the next reader (ledger m009):
            # the first read after this bulk load settles every rated generation at once.
            t0 = time.perf_counter()
            settled = verdicts.settle(conn, ll.scope.tenant_id)
            out["settle_s"] = time.perf_counter() - t0
            print(f"  verdict summaries of {settled:,} rated generations settled in {out['settle_s']:.1f} s", flush=True)
            conn.execute("VACUUM ANALYZE learnloop.generations")
            conn.execute("VACUUM ANALYZE learnloop.verdicts")
            conn.execute("VACUUM ANALYZE learnloop.feedback")
            out["rated"] = conn.execute(
                "SELECT count(*) AS n FROM learnloop.verdicts WHERE feedback_count > 0").fetchone()["n"]  # type: ignore[index]
            out["regenerations"] = conn.execute(
                "SELECT count(*) AS n FROM learnloop.generations WHERE parent_id IS NOT NULL").fetchone()["n"]  # type: ignore[index]
        duck = duckdb.connect()
        duck.execute("SET threads = 2")
        t0 = time.perf_counter()
        export(ll, folder, duck)
        out["export_s"] = time.perf_counter() - t0
        print(f"  {n:,} generations ({out['rated']:,} rated, {out['regenerations']:,} regenerations, {fbs:,} feedback"
              f" rows): loaded in {out['load_s']:.0f} s, exported in {out['export_s']:.0f} s", flush=True)
        if os.environ.get("BENCH_ANALYTICS_HOME"):
            (folder.parent / "loaded.json").write_text(json.dumps(out))
        return _measure(ll, n, repeat, duck, out)


def _measure(ll: Any, n: int, repeat: int, duck: Any, out: dict[str, Any]) -> dict[str, Any]:
    # The daily rollup (analytics/rollup.py), built once over the loaded days as the
    # server's refresher would: its cost is reported, then every call reads it.
    t0 = time.perf_counter()
    built = ll.analytics.refresh()
    out["refresh_s"] = time.perf_counter() - t0
    out["rollup"] = {"days": built.days, "rows": built.rows, "wide_keys": built.wide_keys}
    print(f"  rollup: {built.days} days, {built.rows:,} rows in {out['refresh_s']:.1f} s"
          f" (wide keys, numbers on the grid: {', '.join(built.wide_keys) or 'none'})", flush=True)
    calls = library_calls(ll)
    sample = calls["drivers"]()
    duck_sql = {**DUCK, "drivers": duck_drivers(sample)}
    for name, fn in calls.items():
        lib_t, duck_t = [], []
        fn()  # warm: plans, caches
        for statement in duck_sql[name].split(";\n"):
            duck.execute(statement).fetchall()
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            lib_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for statement in duck_sql[name].split(";\n"):
                duck.execute(statement).fetchall()
            duck_t.append(time.perf_counter() - t0)
        lib, dk = percentiles(lib_t), percentiles(duck_t)
        out[name] = {"learnloop": lib, "duckdb": dk, "ratio_p50": lib["p50_ms"] / dk["p50_ms"]}
        print(f"  {name:<22} p50 {lib['p50_ms']:>8.1f} ms  p99 {lib['p99_ms']:>8.1f} ms   DuckDB p50"
              f" {dk['p50_ms']:>8.1f} ms   x{out[name]['ratio_p50']:.2f}", flush=True)
    duck.close()
    # A live ledger: one day changed since the refresh (a new rating on one of its
    # generations). That day is read from the ledger, the others from the rollup.
    with ll.db.connection() as conn:
        gid = conn.execute("SELECT generation_id AS id FROM learnloop.verdicts WHERE tenant_id = %s"
                           " ORDER BY generated_at LIMIT 1 OFFSET %s", (ll.scope.tenant_id, n // 2)).fetchone()["id"]  # type: ignore[index]
    ll.feedback(gid, sentiment="NEGATIVE", tags=["TOO_DARK"])
    for name in ("failure_rate", "tags", "corrections", "drivers"):
        fn = calls[name]
        fn()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[f"{name}_one_day_changed"] = percentiles(times)
        print(f"  {name + ' (a day changed)':<22} p50 {out[f'{name}_one_day_changed']['p50_ms']:>8.1f} ms", flush=True)
    # A read right after a write: each call first settles the rating given just before it
    # (on unrated generations of the day already changed, so the ledger reads one day).
    with ll.db.connection() as conn:
        fresh = [r["id"] for r in conn.execute(
            "SELECT generation_id AS id FROM learnloop.verdicts WHERE tenant_id = %s AND feedback_count = 0"
            " AND generated_at > (SELECT generated_at FROM learnloop.verdicts WHERE tenant_id = %s"
            " AND generation_id = %s) ORDER BY generated_at LIMIT %s",
            (ll.scope.tenant_id, ll.scope.tenant_id, gid, repeat)).fetchall()]
    times = []
    for g in fresh:
        ll.feedback(g, sentiment="NEGATIVE", tags=["TOO_DARK"])
        t0 = time.perf_counter()
        calls["failure_rate"]()
        times.append(time.perf_counter() - t0)
    out["failure_rate_after_a_rating"] = percentiles(times)
    print(f"  {'failure_rate (just rated)':<22} p50 {out['failure_rate_after_a_rating']['p50_ms']:>8.1f} ms", flush=True)
    return out


def main() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_ANALYTICS_SIZES", "100000,1000000").split(",") if s.strip()]
    if os.environ.get("BENCH_ANALYTICS_10M") == "1" and 10_000_000 not in sizes:
        sizes.append(10_000_000)
    repeat = int(os.environ.get("BENCH_ANALYTICS_REPEAT", 7))
    machine = MachineLoad()
    results = run_sizes(sizes, lambda n: run_size(n, repeat), machine)
    for small, big in zip(results, results[1:], strict=False):
        factor = big["rows"] / small["rows"]
        print(f"growth {small['rows']:,} -> {big['rows']:,} (rows x{factor:.0f}):")
        for name in [*DUCK, "drivers"]:
            g = big[name]["learnloop"]["p50_ms"] / small[name]["learnloop"]["p50_ms"]
            print(f"  {name:<22} p50 x{g:.1f}")
    print(f"machine during the runs: {machine.summary()}")
    save("analytics", {"sizes": results, "machine": machine.summary()})


if __name__ == "__main__":
    main()
