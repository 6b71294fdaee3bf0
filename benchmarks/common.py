"""Shared benchmark helpers: a throwaway embedded server, timing, percentiles, results."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


@contextmanager
def bench_client(**settings: Any) -> Iterator[Any]:
    """A learnloop client on a fresh embedded server in a temporary home."""
    import learnloop

    with tempfile.TemporaryDirectory(prefix="learnloop-bench-") as home:
        ll = learnloop.connect(home=Path(home), **settings)
        try:
            yield ll
        finally:
            ll.close()
            # Stop it before its directory goes: left to process exit, every earlier run's
            # server kept running (autovacuum and all) under the later runs' timings.
            if ll.db.server is not None:
                ll.db.server.stop()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run_threads(threads: list[Any]) -> float:
    """Start every thread, wait for all; the wall-clock seconds from first start to last end."""
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    def q(p: float) -> float:
        return ms[min(len(ms) - 1, int(round(p * (len(ms) - 1))))]
    return {"p50_ms": q(0.50), "p99_ms": q(0.99), "mean_ms": statistics.fmean(ms), "n": len(ms)}


def save(name: str, data: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))


class MachineLoad:
    """What else used the box during a run: load average and the hypervisor's steal.

    On this shared 2-core VM the same run swings 2-3x with steal time and with other work;
    printing both beside a figure says how far to trust it.
    """

    def __init__(self) -> None:
        self._start = _cpu_times()

    def summary(self) -> str:
        now = _cpu_times()
        delta = [b - a for a, b in zip(self._start, now, strict=False)]
        total = sum(delta) or 1
        busy = 1 - (delta[3] + delta[4]) / total  # idle + iowait
        steal = delta[7] / total if len(delta) > 7 else 0.0
        return f"load {os.getloadavg()[0]:.1f}, cpu busy {busy:.0%}, steal {steal:.0%}"


def _cpu_times() -> list[int]:
    try:
        with open("/proc/stat") as fh:
            return [int(x) for x in fh.readline().split()[1:]]
    except OSError:  # not Linux: no figures, not an error
        return [0] * 8



@contextmanager
def api_server(ll: Any, **env: str) -> Iterator[str]:
    """``learnloop serve``'s app (uvicorn, one worker, its own process) over ``ll``'s
    database; yields its base URL once /healthz answers, stops it on exit."""
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    full = {**os.environ, "LEARNLOOP_DATABASE_URL": ll.db.url, "LEARNLOOP_ARCHIVE_INTERVAL": "0", **env}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "learnloop.api.app:create_app", "--factory",
                             "--port", str(port), "--log-level", "warning", "--no-access-log"], env=full)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        else:
            raise RuntimeError("the API server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def run_sizes(sizes: list[int], run: Callable[[int], dict[str, Any]],
              machine: MachineLoad) -> list[dict[str, Any]]:
    """``run(n)`` for each size in turn, with the machine's load printed after each."""
    results = []
    for n in sizes:
        print(f"size {n:,}", flush=True)
        results.append(run(n))
        print(f"  machine so far: {machine.summary()}", flush=True)
    return results
