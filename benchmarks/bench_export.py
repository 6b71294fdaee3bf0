"""Training data throughput: curating a dataset version and exporting chat JSONL, examples/s.

Data: real short texts — WordNet 3.0 glosses from ../shared/data/wordnet30 (benchmarks
may read shared data) — as 100k chat generations "What does X mean?" -> gloss, half of
them rated thumbs-up. Measured in one process on one fresh embedded server:

* curate: ``create_dataset`` with ``{"verdict": "POSITIVE"}`` (filter + verdict join,
  example building, hashing, dedupe, split, COPY of membership rows, event);
* export: ``export(..., fmt="chat")`` of that version (server-side cursor, validation,
  token estimate, line-safe JSON, atomic write);
* baseline: the same example rows read in one ``SELECT`` and written with a bare
  ``json.dumps`` per line — the floor of "read and serialise"; the ratio is our overhead.

Env: BENCH_ROWS (default 100000).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

from benchmarks.common import bench_client, save

WORDNET = Path(__file__).resolve().parents[2] / "shared" / "data" / "wordnet30"


def glosses(n: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET / f"data.{part}").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue
            fields = line.split(" ")
            word = fields[4].replace("_", " ")
            gloss = line.split("|", 1)[1].strip()
            out.append((word, gloss))
    if not out:
        raise SystemExit(f"no WordNet data under {WORDNET}")
    return [(f"{w} ({i // len(out)})" if i >= len(out) else w, g) for i, (w, g) in
            ((i, out[i % len(out)]) for i in range(n))]


def main() -> None:
    n = int(os.environ.get("BENCH_ROWS", 100_000))
    pairs = glosses(n)
    rows = [{"kind": "chat", "prompt": f"What does {w!r} mean?", "output_text": g, "model": "gpt-4o-mini",
             "messages": [{"role": "system", "content": "You explain words."},
                          {"role": "user", "content": f"What does {w!r} mean?"}]} for w, g in pairs]
    results: dict[str, float | int | str] = {"rows": n, "machine": "2 cores, 24 GiB"}
    with bench_client() as ll, tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ids = ll.bulk_log(rows)
        ll.bulk_feedback({"generation_id": str(g), "thumbs": 1 if i % 2 == 0 else -1} for i, g in enumerate(ids))
        results["load_s"] = round(time.perf_counter() - t0, 1)

        t0 = time.perf_counter()
        ds = ll.training.create_dataset("bench", {"verdict": "POSITIVE"}, options={"validation": 0.05, "seed": 1})
        dt = time.perf_counter() - t0
        examples = ds.counts["examples"]
        results.update(examples=examples, curate_s=round(dt, 2), curate_examples_per_s=round(examples / dt))

        out = Path(tmp) / "chat.jsonl"
        t0 = time.perf_counter()
        rep = ll.training.export(ds.id, out, fmt="chat")
        dt = time.perf_counter() - t0
        assert rep["examples"] == examples
        results.update(export_s=round(dt, 2), export_examples_per_s=round(examples / dt),
                       export_mb=round(out.stat().st_size / 1e6, 1))

        base = Path(tmp) / "baseline.jsonl"
        t0 = time.perf_counter()
        with ll.db.connection() as conn, base.open("w", encoding="utf-8") as fh:
            cur = conn.execute("SELECT example FROM learnloop.dataset_items WHERE tenant_id = %s AND dataset_id = %s"
                               " ORDER BY position", (ll.scope.tenant_id, ds.id))
            for r in cur:
                fh.write(json.dumps(r["example"], ensure_ascii=False))
                fh.write("\n")
        dt = time.perf_counter() - t0
        results.update(baseline_s=round(dt, 2), baseline_examples_per_s=round(examples / dt))
        results["export_vs_baseline"] = round(results["baseline_s"] / results["export_s"], 2)  # type: ignore[operator]
        for line in out.read_text(encoding="utf-8").splitlines():
            if re.search("[\u2028\u2029\u0085]", line):
                raise SystemExit("unsafe character in export")
    for k, v in results.items():
        print(f"{k:>26}: {v}")
    save("export", results)


if __name__ == "__main__":
    main()
