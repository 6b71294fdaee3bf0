"""HTTP knowledge/training routes against the library in the same process: search latency
(one client, text queries through the embedding cache, uvicorn on loopback) and dataset
export throughput (streamed JSONL download vs the library writing the file).

    python -m benchmarks api_search      (LEARNLOOP_BENCH_ENTITIES, default 2000; _CHATS, 20000)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from .bench_api import _free_port
from .common import bench_client, percentiles, save

ENTITIES = int(os.environ.get("LEARNLOOP_BENCH_ENTITIES", "2000"))
CHATS = int(os.environ.get("LEARNLOOP_BENCH_CHATS", "20000"))
TOPICS = ["python", "go", "rust", "cooking", "running", "guitar", "spanish", "finance", "gardening", "chess"]
QUERIES = [f"goals about {t} for a beginner" for t in TOPICS] + [f"advanced {t} practice plan" for t in TOPICS]
ROUNDS = 10  # each query repeated: after the first round the query vector comes from the cache


def _entities() -> list[dict[str, object]]:
    return [{"entity_type": "goal", "entity_id": f"g{i}",
             "text": f"Goal {i}: get better at {TOPICS[i % 10]}, step {i // 10} of a {['short', 'long'][i % 2]} plan",
             "user_ref": f"u{i % 100}", "metadata": {"status": ["active", "completed"][i % 2], "score": (i % 100) / 100}}
            for i in range(ENTITIES)]


def main() -> None:
    with bench_client(pool_max=10) as ll:
        t0 = time.perf_counter()
        ll.knowledge.upsert_entities(_entities())
        print(f"indexed {ENTITIES} entities in {time.perf_counter() - t0:.1f} s")
        body = {"k": 10, "entity_types": ["goal"], "where": {"status": "completed"}}

        for q in QUERIES:  # warm the model and the cache, as the server's first round will
            ll.knowledge.search(q, 10, entity_types=["goal"], where={"status": "completed"})
        lat = []
        for _ in range(ROUNDS):
            for q in QUERIES:
                s0 = time.perf_counter()
                ll.knowledge.search(q, 10, entity_types=["goal"], where={"status": "completed"})
                lat.append(time.perf_counter() - s0)
        lib = percentiles(lat)
        print(f"library search: p50 {lib['p50_ms']:.1f} ms, p99 {lib['p99_ms']:.1f} ms ({lib['n']} searches)")

        ll.bulk_log([{"kind": "chat", "prompt": f"question {i} about {TOPICS[i % 10]}?",
                      "output_text": f"answer {i}: " + "some explanation " * 20} for i in range(CHATS)])
        ds = ll.training.create_dataset("bench", {})
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            rep = ll.training.export(ds.id, Path(tmp) / "x.jsonl")
            lib_export = time.perf_counter() - t0
            size = (Path(tmp) / "x.jsonl").stat().st_size
        print(f"library export: {rep['examples']} examples, {size / 1e6:.1f} MB in {lib_export:.2f} s")

        _, key = ll.events.create_key("bench", ["admin"])
        port = _free_port()
        env = {**os.environ, "LEARNLOOP_DATABASE_URL": ll.db.url, "LEARNLOOP_ARCHIVE_INTERVAL": "0",
               "LEARNLOOP_API_MAX_BODY_BYTES": "10000000"}
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "learnloop.api.app:create_app", "--factory",
                                 "--port", str(port), "--log-level", "warning", "--no-access-log"], env=env)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"},
                              timeout=120) as c:
                for _ in range(240):
                    try:
                        if c.get("/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.25)
                for q in QUERIES:  # the server process loads its own model
                    assert c.post("/v1/search", json={"query": q, **body}).status_code == 200
                lat = []
                for _ in range(ROUNDS):
                    for q in QUERIES:
                        s0 = time.perf_counter()
                        r = c.post("/v1/search", json={"query": q, **body})
                        lat.append(time.perf_counter() - s0)
                        assert r.status_code == 200 and len(r.json()["items"]) == 10
                api = percentiles(lat)
                print(f"HTTP search: p50 {api['p50_ms']:.1f} ms, p99 {api['p99_ms']:.1f} ms "
                      f"({api['p50_ms'] / lib['p50_ms']:.2f}x the library's p50)")
                t0 = time.perf_counter()
                got = 0
                with c.stream("GET", f"/v1/datasets/{ds.id}/export") as r:
                    assert r.status_code == 200
                    for chunk in r.iter_bytes():
                        got += len(chunk)
                http_export = time.perf_counter() - t0
                assert got == size
                print(f"HTTP export: {got / 1e6:.1f} MB in {http_export:.2f} s "
                      f"({lib_export / http_export:.2f}x the library's throughput)")
        finally:
            proc.terminate()
            proc.wait(20)
    save("api_search", {"entities": ENTITIES, "searches": len(lat), "library_search": lib, "http_search": api,
                        "chats": CHATS, "export_bytes": size, "library_export_s": lib_export,
                        "http_export_s": http_export})
