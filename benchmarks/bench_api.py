"""HTTP API throughput: log-generation requests/s and latency at 16 concurrent clients on
loopback (uvicorn, one worker), against the library called in-process with 16 threads
(the baseline, same database, same process), plus WebSocket fan-out latency.

    python -m benchmarks api          (LEARNLOOP_BENCH_SECONDS, default 10 per phase)
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

import httpx

from .common import api_server, bench_client, percentiles, run_threads, save

CLIENTS = 16
SECONDS = float(os.environ.get("LEARNLOOP_BENCH_SECONDS", "10"))


def _body(i: int) -> dict[str, Any]:
    return {"kind": "chat", "prompt": f"question {i}", "output_text": "answer " * 20, "model": "m",
            "user_ref": f"user{i % 50}", "context": {"demand_kw": 385, "efficiency": 0.06},
            "links": {"loan": str(i % 1000)}}


def _run_threads(fn: Any) -> tuple[float, list[float]]:
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + SECONDS

    def worker(n: int) -> None:
        mine, i = [], 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            fn(n, i)
            mine.append(time.perf_counter() - t0)
            i += 1
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(CLIENTS)]
    return run_threads(ts), lat


def main() -> None:
    with bench_client(pool_max=20) as ll:
        # Baseline: the library in-process, 16 threads.
        el, lat = _run_threads(lambda n, i: ll.log(_body(i)))
        base = {"requests_per_s": len(lat) / el, **percentiles(lat)}
        print(f"library in-process: {base['requests_per_s']:.0f} logs/s, p50 {base['p50_ms']:.1f} ms, "
              f"p99 {base['p99_ms']:.1f} ms")

        _, key = ll.events.create_key("bench", ["admin"])
        with api_server(ll, LEARNLOOP_POOL_MAX="20") as base_url:
            hdr = {"Authorization": f"Bearer {key}"}
            clients = [httpx.Client(base_url=base_url, headers=hdr, timeout=30) for _ in range(CLIENTS)]

            def post(n: int, i: int) -> None:
                r = clients[n].post("/v1/generations", json=_body(i))
                assert r.status_code == 201, r.text

            el, lat = _run_threads(post)
            api = {"requests_per_s": len(lat) / el, **percentiles(lat)}
            print(f"HTTP API, {CLIENTS} clients: {api['requests_per_s']:.0f} req/s, p50 {api['p50_ms']:.1f} ms, "
                  f"p99 {api['p99_ms']:.1f} ms  ({api['requests_per_s'] / base['requests_per_s']:.2f}x the library)")
            fan = asyncio.run(_fanout(base_url, key, ll))
            print(f"WebSocket fan-out to {fan['subscribers']} subscribers: commit->receive p50 {fan['p50_ms']:.1f} ms,"
                  f" p99 {fan['p99_ms']:.1f} ms")
    save("api", {"clients": CLIENTS, "seconds": SECONDS, "library": base, "http": api,
                 "ratio_http_vs_library": api["requests_per_s"] / base["requests_per_s"], "ws_fanout": fan})


async def _fanout(base_url: str, key: str, ll: Any, subscribers: int = 50, events: int = 40) -> dict[str, Any]:
    import websockets

    url = base_url.replace("http", "ws") + "/v1/events/stream?event_type=generation.logged"
    sent: dict[str, float] = {}
    lat: list[float] = []

    async def sub(ready: asyncio.Event, counter: list[int]) -> None:
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
            json.loads(await ws.recv())
            counter[0] += 1
            if counter[0] == subscribers:
                ready.set()
            got = 0
            while got < events:
                m = json.loads(await ws.recv())
                if m["type"] == "event" and m["entity_id"] in sent:
                    lat.append(time.perf_counter() - sent[m["entity_id"]])
                    got += 1

    ready, counter = asyncio.Event(), [0]
    tasks = [asyncio.create_task(sub(ready, counter)) for _ in range(subscribers)]
    await ready.wait()
    for i in range(events):
        t0 = time.perf_counter()
        g = await asyncio.to_thread(ll.log, {"kind": "chat", "prompt": f"fan {i}"})
        sent[str(g.id)] = t0
        await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    return {"subscribers": subscribers, "events": events, **percentiles(lat)}
