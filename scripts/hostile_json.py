"""Send N hostile-JSON requests, generated from the OpenAPI schema, to every route of a
throwaway API server; fail on any 5xx or any keep-alive connection the server dropped.

    .venv/bin/python scripts/hostile_json.py [N=10000] [--seed S]

The generator is tests/hostile.py (lone surrogates in keys and values, nesting around every
limit, numbers past a double, NaN/Infinity, NUL, invalid UTF-8, duplicate keys; hostile
path and query text). The server runs on its own embedded PostgreSQL under a temporary
LEARNLOOP_HOME, never your data. Prints a JSON summary: cases, by status, 5xx, dropped.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()

    from tests.hostile import Probe, Schema, serve

    import learnloop
    from learnloop.api import create_app
    from learnloop.config import get_settings

    with tempfile.TemporaryDirectory(prefix="learnloop-hostile-") as tmp:
        home = Path(tmp)
        ll = learnloop.connect(home=home, shared_buffers="128MB", tenant="hostile", project="hostile")
        try:
            _, key = ll.events.create_key("hostile", ["admin"])
            g = ll.log(kind="chat", prompt="seed", output_text="seed")
            f = ll.feedback(g.id, rating=2, comment="seed")
            app = create_app(get_settings(home=home, archive_interval=0), client=ll, archive=False)
            with serve(app) as hostport:
                schema = Schema(app.openapi(), {"generation_id": str(g.id), "feedback_id": str(f.id)})
                probe = Probe(hostport, {"Authorization": f"Bearer {key}", "X-Learnloop-Project": "hostile"})
                rnd = random.Random(args.seed)
                statuses: Counter[int] = Counter()
                bad: list[dict[str, object]] = []
                t0 = time.perf_counter()
                for i in range(args.n):
                    case = schema.case(rnd)
                    r = probe.send(case)
                    statuses[r.status] += 1
                    if r.status >= 500 or not r.kept_alive:
                        bad.append({"case": i, "request": case.describe(), "status": r.status,
                                    "kept_alive": r.kept_alive, "body": r.body[:300].decode("utf-8", "replace")})
                probe.close()
        finally:
            ll.close()
    summary = {
        "cases": args.n, "seed": args.seed, "seconds": round(time.perf_counter() - t0, 1),
        "operations": len(schema.ops), "by_status": dict(sorted(statuses.items())),
        "5xx": sum(v for k, v in statuses.items() if k >= 500),
        "connections_dropped": sum(1 for b in bad if not b["kept_alive"]), "failures": bad[:20],
    }
    print(json.dumps(summary, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
