"""The console's pages at scale: the API calls behind each, timed over HTTP against
``learnloop serve``'s app (uvicorn in its own process) on a generated seed-000 ledger
(100k and 1M generations, ~30% rated; see ``analytics_data``).

Pages and the calls a browser makes for them:

* generations list, first page: ``GET /v1/generations?limit=50``
* generations list, deep page: ``GET /v1/generations?limit=50&after=<id half way down>``
* generation with a 50-node lineage tree: ``GET /v1/generations/{id}``, ``.../tree``,
  ``.../feedback``, ``.../training`` (each timed; the page total is their sum, the browser
  sends them at once)
* review queue: ``GET /v1/review-queue?limit=100``
* overview: ``GET /v1/overview`` (analytics target: 1 s)
* analytics page (target 1 s), the calls it makes on load: the keys for the picker,
  failure rate by ``style_preset``, failure rate by day, tags, corrections, the golden
  gallery and what drives failure (``/v1/analytics/drivers?kind=image``); each timed, the
  page total their sum and the wall clock of the seven sent at once, as a browser does
* the page's "Cross" action (a user's click, timed alone): preset x demand band

Baseline in the same process: the raw SQL of the first list page (same columns, same
order, psycopg), so the ratio says what the API layers cost. Target (issue 12): p95 at
most 300 ms at 1M for each page.

Env: BENCH_CONSOLE_SIZES (default 100000,1000000), BENCH_CONSOLE_REPEAT (default 30).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from . import analytics_data
from .common import MachineLoad, api_server, bench_client, percentiles, run_sizes, save


def p95(samples_s: list[float]) -> float:
    ms = sorted(s * 1000 for s in samples_s)
    return ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]


def fifty_node_tree(ll: Any) -> str:
    """A regeneration tree of 50 attempts (branching 3 wide), rated here and there; returns
    the id of a node in its middle."""
    root = {"id": uuid.uuid4(), "kind": "image", "prompt": "tree root", "output_url": "https://cdn.example/t0.png",
            "config": {"style_preset": "MINIMAL"}, "created_at": analytics_data.START - timedelta(days=1)}
    rows = [root]
    for i in range(1, 50):
        parent = rows[(i - 1) // 3]
        rows.append({"id": uuid.uuid4(), "kind": "image", "prompt": f"attempt {i}", "parent_id": parent["id"],
                     "output_url": f"https://cdn.example/t{i}.png", "config": {"style_preset": "MINIMAL"},
                     "created_at": analytics_data.START - timedelta(days=1) + timedelta(seconds=i)})
    ll.bulk_log(rows)
    ll.bulk_feedback([{"generation_id": r["id"], "sentiment": "NEGATIVE" if i % 2 else "POSITIVE",
                       "tags": ["TOO_DARK"] if i % 2 else []} for i, r in enumerate(rows) if i % 3 == 0])
    return str(rows[20]["id"])


def run_size(n: int, repeat: int) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {"rows": n}
    with bench_client() as ll:
        t0 = time.perf_counter()
        gens, fbs = analytics_data.load(ll, n)
        node = fifty_node_tree(ll)
        out["load_s"] = time.perf_counter() - t0
        with ll.db.connection() as conn:
            for t in ("generations", "feedback", "verdicts"):
                conn.execute(f"VACUUM ANALYZE learnloop.{t}")  # noqa: S608 - constant names
            mid = conn.execute(
                "SELECT id FROM learnloop.generations WHERE tenant_id = %s ORDER BY created_at DESC, id DESC"
                " OFFSET %s LIMIT 1", (ll.scope.tenant_id, n // 2)).fetchone()["id"]
        # The analytics rollup, as `learnloop serve` keeps it (its refresher runs every 30 s).
        t0 = time.perf_counter()
        built = ll.analytics.refresh()
        out["refresh_s"] = time.perf_counter() - t0
        print(f"  {n:,} generations, {fbs:,} feedback rows, loaded in {out['load_s']:.0f} s;"
              f" rollup of {built.days} days built in {out['refresh_s']:.1f} s", flush=True)
        _, key = ll.events.create_key("bench", ["admin"])
        tenant, project = ll.scope.tenant_id, ll.scope.project_id

        def raw_first_page() -> Any:
            with ll.db.connection() as conn:
                return conn.execute(
                    "SELECT g.*, p.name AS project FROM learnloop.generations g JOIN learnloop.projects p"
                    " ON p.tenant_id = g.tenant_id AND p.id = g.project_id"
                    " WHERE g.tenant_id = %s AND g.project_id = %s ORDER BY g.created_at DESC, g.id DESC LIMIT 50",
                    (tenant, project)).fetchall()

        with api_server(ll) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                                                 timeout=60) as http:
            def get(path: str, **params: Any) -> Callable[[], Any]:
                def call() -> Any:
                    r = http.get(path, params=params)
                    r.raise_for_status()
                    return r
                return call

            calls: dict[str, Callable[[], Any]] = {
                "list first page": get("/v1/generations", limit=50),
                "list deep page": get("/v1/generations", limit=50, after=str(mid)),
                "generation": get(f"/v1/generations/{node}"),
                "generation tree (50 nodes)": get(f"/v1/generations/{node}/tree"),
                "generation feedback": get(f"/v1/generations/{node}/feedback"),
                "generation training": get(f"/v1/generations/{node}/training"),
                "review queue": get("/v1/review-queue", limit=100),
                "overview": get("/v1/overview"),
                "analytics keys": get("/v1/analytics/keys", source="config"),
                # as the console asks: its failure-rate charts leave latency percentiles out
                "analytics by preset": get("/v1/analytics/breakdown", by=["style_preset"], latency="false"),
                "cross: preset x demand band": get("/v1/analytics/breakdown", latency="false",
                                                   by=["style_preset", "demand_kw:bands=100,500"]),
                "analytics by day": get("/v1/analytics/breakdown", by=["day"], latency="false"),
                "analytics tags": get("/v1/analytics/tags"),
                "analytics corrections": get("/v1/analytics/corrections"),
                "analytics golden": get("/v1/analytics/golden", where=["efficiency<0.08"], limit=24),
                "analytics drivers": get("/v1/analytics/drivers", kind=["image"]),
            }
            assert len(calls["generation tree (50 nodes)"]().json()["children"]) == 3
            analytics_calls = [fn for k, fn in calls.items() if k.startswith("analytics ")]

            def analytics_page_at_once() -> None:
                # What a browser waits for: the page's calls sent together (six connections).
                with ThreadPoolExecutor(len(analytics_calls)) as pool:
                    for f in [pool.submit(fn) for fn in analytics_calls]:
                        f.result()

            samples: dict[str, list[float]] = {k: [] for k in [*calls, "raw SQL first page",
                                                               "analytics page (7 calls at once, wall)"]}
            for fn in [*calls.values(), raw_first_page]:
                fn()  # warm: plans, caches, connections
            for _ in range(repeat):  # interleaved, so a slow second hits every call alike
                for name, fn in calls.items():
                    t0 = time.perf_counter()
                    fn()
                    samples[name].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                raw_first_page()
                samples["raw SQL first page"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                analytics_page_at_once()
                samples["analytics page (7 calls at once, wall)"].append(time.perf_counter() - t0)
        page_total = [sum(samples[k][i] for k in calls if k.startswith("generation")) for i in range(repeat)]
        samples["generation page (4 calls, summed)"] = page_total
        samples["analytics page (7 calls, summed)"] = [
            sum(samples[k][i] for k in calls if k.startswith("analytics ")) for i in range(repeat)]
        for name, s in samples.items():
            out[name] = {**percentiles(s), "p95_ms": p95(s)}
            print(f"  {name:<36} p50 {out[name]['p50_ms']:>7.1f} ms  p95 {out[name]['p95_ms']:>7.1f} ms", flush=True)
        out["ratio_first_page_vs_raw_p50"] = out["list first page"]["p50_ms"] / out["raw SQL first page"]["p50_ms"]
        print(f"  list first page / raw SQL (p50): x{out['ratio_first_page_vs_raw_p50']:.1f}", flush=True)
    return out


def main() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_CONSOLE_SIZES", "100000,1000000").split(",") if s.strip()]
    repeat = int(os.environ.get("BENCH_CONSOLE_REPEAT", 30))
    machine = MachineLoad()
    results = run_sizes(sizes, lambda n: run_size(n, repeat), machine)
    for small, big in zip(results, results[1:], strict=False):
        print(f"growth {small['rows']:,} -> {big['rows']:,} (rows x{big['rows'] / small['rows']:.0f}), p95:")
        for name in small:
            if isinstance(small[name], dict) and "p95_ms" in small[name]:
                print(f"  {name:<36} x{big[name]['p95_ms'] / small[name]['p95_ms']:.2f}")
    print(f"machine during the runs: {machine.summary()}")
    save("console", {"sizes": results, "machine": machine.summary()})


if __name__ == "__main__":
    main()
