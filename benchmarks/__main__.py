"""Run every benchmark, or those named: python -m benchmarks [NAME ...]."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> None:
    here = Path(__file__).parent
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    wanted = argv or names
    unknown = [n for n in wanted if n not in names]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}")
    for name in wanted:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        importlib.import_module(f"benchmarks.bench_{name}").main()
        print(f"=== {name}: {time.perf_counter() - t0:.1f}s ===", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
