"""Shared benchmark helpers: a throwaway embedded server, timing, percentiles, results."""

from __future__ import annotations

import json
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


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    def q(p: float) -> float:
        return ms[min(len(ms) - 1, int(round(p * (len(ms) - 1))))]
    return {"p50_ms": q(0.50), "p99_ms": q(0.99), "mean_ms": statistics.fmean(ms), "n": len(ms)}


def save(name: str, data: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))
