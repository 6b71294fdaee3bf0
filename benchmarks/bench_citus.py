"""Citus against one server, in the same run: logging and search throughput, shards touched.

Needs a Citus coordinator with workers (LEARNLOOP_BENCH_CITUS_URL, a superuser URL of its
``postgres`` database; docs/scaling.md builds one) and, as the baseline, a plain single
server (LEARNLOOP_BENCH_SINGLE_URL; the embedded server when unset). Skipped without the
cluster. Each target gets a fresh database (the cluster's distributed with
``learnloop distribute``, BENCH_CITUS_SHARDS shards, 32 unless set); 8 tenants share it.

At each size (BENCH_CITUS_SIZES, default "500,2000": generations logged and entities
indexed per size, spread over the tenants) it measures single-generation logs/s from one
thread and from 4 threads, and vector searches/s (plain, filtered by entity type, hybrid)
over the entities, by vector (the query embedding is computed once, outside the timing).
Then it EXPLAINs every statement of a tenant-scoped log, feedback, search (plain, filtered,
hybrid), analytics call and path on the cluster and prints their Citus task counts.

On this machine every node shares the same 2 cores: the figures measure what distribution
costs or saves per call, not what more machines would add.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg.conninfo import make_conninfo

from benchmarks.common import MachineLoad, run_threads, save

TENANTS = 8
QUERIES = 200


def _single_database(url: str) -> str:
    name = f"bench_single_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return make_conninfo(url, dbname=name)


_WORDS = ("pyrolysis plant reactor biochar yield feedstock moisture temperature loan payment client "
          "rate default risk goal task code review python api database index vector search answer "
          "question image style dark bright minimal blueprint audience investor engineer cost energy").split()


def _texts(n: int) -> list[str]:
    """Short, distinct, deterministic sentences (the same for both targets)."""
    import random

    rnd = random.Random(7)
    return [f"{i} " + " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(6, 14))) for i in range(n)]


def _clients(url: str) -> list[Any]:
    import learnloop

    base = learnloop.connect(url)
    return [base.scoped(tenant=f"tenant-{i}", project="bench") for i in range(TENANTS)]


def _log_rate(clients: list[Any], n: int, threads: int) -> float:
    per = n // threads
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(per):
                clients[(k + i) % len(clients)].log(prompt=f"prompt {k}/{i}", output_text="answer", model="m")
        except BaseException as exc:  # reported after the timing
            errors.append(exc)

    elapsed = run_threads([threading.Thread(target=work, args=(k,)) for k in range(threads)])
    if errors:
        raise errors[0]
    return per * threads / elapsed


def _index(clients: list[Any], texts: list[str]) -> None:
    for t, c in enumerate(clients):
        mine = texts[t::len(clients)]
        c.knowledge.upsert_entities([{"entity_type": "gloss" if i % 2 else "note", "entity_id": f"{t}-{i}",
                                      "text": x} for i, x in enumerate(mine)])


def _search_rates(clients: list[Any], queries: np.ndarray, texts: list[str]) -> dict[str, float]:
    out = {}
    for name, opts in (("plain", {}), ("filtered", {"entity_types": "gloss"}), ("hybrid", {"hybrid": True})):
        t0 = time.perf_counter()
        for i, q in enumerate(queries):
            extra = {"text": texts[i % len(texts)]} if name == "hybrid" else {}
            clients[i % len(clients)].knowledge.search(q, 10, **opts, **extra)
        out[name] = len(queries) / (time.perf_counter() - t0)
    return out


def _run_target(url: str, sizes: list[int], texts: list[str], queries: np.ndarray) -> dict[str, Any]:
    clients = _clients(url)
    res: dict[str, Any] = {}
    indexed = 0
    try:
        for n in sizes:
            r: dict[str, Any] = {"log_1_thread_per_s": _log_rate(clients, n, 1),
                                 "log_4_threads_per_s": _log_rate(clients, n, 4)}
            _index(clients, texts[indexed:n])
            indexed = n
            r.update({f"search_{k}_per_s": v for k, v in _search_rates(clients, queries, texts).items()})
            res[str(n)] = r
            print(f"    {n}: " + ", ".join(f"{k} {v:.0f}" for k, v in r.items()), flush=True)
    finally:
        clients[0].close()
    return res


def task_counts(url: str) -> dict[str, list[list[int]]]:
    """Citus task counts of every statement of each tenant-scoped call (fresh data)."""
    from benchmarks.citus_explain import explained

    ll = _clients(url)[0]
    try:
        g = ll.log(prompt="explain me", output_text="ok", model="m", config={"style_preset": "MINIMAL"})
        child = ll.log(prompt="again", output_text="ok", model="m", parent_id=g.id)
        ll.knowledge.upsert_entity("note", "explain-1", "a note about pyrolysis plants")
        vec = ll.knowledge.embed(["pyrolysis"])[0]
        calls = {
            "log": lambda: ll.log(prompt="explained", output_text="ok", model="m"),
            "feedback": lambda: ll.feedback(g.id, sentiment="NEGATIVE", tags=["TOO_DARK"]),
            "search plain": lambda: ll.knowledge.search(vec, 5),
            "search filtered": lambda: ll.knowledge.search(vec, 5, entity_types="note", where={"x": 1}),
            "search hybrid": lambda: ll.knowledge.search(vec, 5, text="pyrolysis plants", hybrid=True),
            "analytics failure_rate": lambda: ll.analytics.failure_rate("style_preset"),
            "path": lambda: ll.path(child.id),
        }
        out = {}
        for name, call in calls.items():
            with explained() as seen:
                call()
            out[name] = [e.tasks for e in seen]
            print(f"    {name}: " + "; ".join(f"{e.tasks or '-'} {e.statement[:70]}" for e in seen), flush=True)
        return out
    finally:
        ll.close()


def main() -> None:
    citus = os.environ.get("LEARNLOOP_BENCH_CITUS_URL") or os.environ.get("LEARNLOOP_TEST_CITUS_URL")
    if not citus:
        print("skipped: no Citus cluster (set LEARNLOOP_BENCH_CITUS_URL to a coordinator; docs/scaling.md)")
        return
    os.environ.setdefault("LEARNLOOP_TEST_CITUS_SHARDS", os.environ.get("BENCH_CITUS_SHARDS", "32"))
    from tests.fix_citus import SHARDS, citus_database, workers

    sizes = [int(s) for s in os.environ.get("BENCH_CITUS_SIZES", "500,2000").split(",")]
    texts = _texts(max(sizes))
    import learnloop

    machine = MachineLoad()
    single = os.environ.get("LEARNLOOP_BENCH_SINGLE_URL")
    with tempfile.TemporaryDirectory(prefix="learnloop-bench-") as home:
        embedded = None
        if not single:
            embedded = learnloop.connect(home=Path(home))
            single = embedded.db.url
        queries = np.asarray(_clients(single)[0].knowledge.embed(texts[:QUERIES]), dtype=np.float32)
        result: dict[str, Any] = {"tenants": TENANTS, "queries": QUERIES, "shards": SHARDS,
                                  "workers": len(workers(citus)), "machine": "2 cores, 24 GiB (shared)"}
        print("  single server:", flush=True)
        result["single"] = _run_target(_single_database(single), sizes, texts, queries)
        print(f"  citus ({result['workers']} workers, {SHARDS} shards):", flush=True)
        cluster_db = citus_database(citus, "bench")
        result["citus"] = _run_target(cluster_db, sizes, texts, queries)
        result["ratio_citus_to_single"] = {
            n: {k: result["citus"][n][k] / result["single"][n][k] for k in result["single"][n]}
            for n in result["single"]}
        if len(sizes) > 1:
            a, b = str(sizes[0]), str(sizes[-1])
            result["growth"] = {t: {k: result[t][b][k] / result[t][a][k] for k in result[t][a]}
                                for t in ("single", "citus")}
        print("  task counts on the cluster:", flush=True)
        result["task_counts"] = task_counts(cluster_db)
        result["load"] = machine.summary()
        if embedded is not None:
            embedded.close()
            if embedded.db.server is not None:
                embedded.db.server.stop()
    for n, ratios in result["ratio_citus_to_single"].items():
        print(f"  {n}: citus/single " + ", ".join(f"{k} x{v:.2f}" for k, v in ratios.items()))
    print(f"  {result['load']}")
    save("citus", result)
