"""Demo section for knowledge: ingest real documents, index seed-003 entities, embed the ledger.

Search is shown by ``learnloop.knowledge.search_demo:search_demo`` when that module exists.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[3] / "data" / "docs"
FILES = ["loan-policy.md", "payment-plans.html", "collections-faq.txt", "pdflatex-4-pages.pdf",
         "google-doc-document.pdf", "multicolumn.pdf"]

# Seed 003: goals and code snapshots of a learning platform, with filterable metadata.
ENTITIES = [
    {"entity_type": "goal", "entity_id": "g-101", "user_ref": "ana", "text": "Build a REST API with FastAPI and write tests for it",
     "metadata": {"status": "completed", "language": "python"}},
    {"entity_type": "goal", "entity_id": "g-102", "user_ref": "ana", "text": "Learn SQL window functions for analytics",
     "metadata": {"status": "completed", "language": "sql"}},
    {"entity_type": "goal", "entity_id": "g-103", "user_ref": "ana", "text": "Deploy a web service with Docker",
     "metadata": {"status": "active", "language": "python"}},
    {"entity_type": "goal", "entity_id": "g-201", "user_ref": "ben", "text": "Write unit tests for a Flask application",
     "metadata": {"status": "completed", "language": "python"}},
    {"entity_type": "code", "entity_id": "c-1", "user_ref": "ana", "text": "def mean(xs):\n    return sum(xs) / len(xs) if xs else 0.0",
     "metadata": {"language": "python", "validation_score": 0.92}},
    {"entity_type": "code", "entity_id": "c-2", "user_ref": "ben", "text": "def mean(xs): return sum(xs)/len(xs)",
     "metadata": {"language": "python", "validation_score": 0.55}},
    {"entity_type": "code", "entity_id": "c-3", "user_ref": "ben", "text": "SELECT user_id, avg(score) FROM reviews GROUP BY 1",
     "metadata": {"language": "sql", "validation_score": 0.88}},
]


def run(ll: Any, console: Any) -> None:
    from rich.table import Table

    kn = ll.knowledge
    results = kn.ingest_many([DOCS / f for f in FILES])
    t = Table(title="documents ingested (text extracted in a sandboxed subprocess)")
    for c in ("file", "status", "type", "chunks", "seconds"):
        t.add_column(c)
    for r in results:
        t.add_row(r.file_name, r.status, r.file_type or "-", str(r.chunks), f"{r.seconds:.2f}")
    console.print(t)
    hostile = kn.ingest_bytes(b"%PDF-1.7\n%%EOF\n", file_name="broken.pdf", source="demo/broken.pdf")
    console.print(f"a corrupt PDF is recorded as [bold]{hostile.status}[/]: {hostile.error}")

    kn.upsert_entities(ENTITIES)
    console.print(f"indexed {len(ENTITIES)} app entities (goals and code snapshots, seed 003)")
    out = kn.embed_generations(what="both")
    console.print(
        f"embedded {out['embedded']} ledger generations (prompt + output) in {out['seconds']:.1f} s, "
        f"without touching the log path"
    )
    from ..embeddings import METRICS

    m = METRICS.snapshot()
    console.print(f"embedding cache: {m['cache_hits']} hits, {m['cache_misses']} misses "
                  f"({m['cache_hit_rate']:.0%} hit rate), {m['embed_ms_per_text']:.1f} ms per embedded text")
    try:
        mod = importlib.import_module("learnloop.knowledge.search_demo")
    except ModuleNotFoundError as exc:
        if exc.name != "learnloop.knowledge.search_demo":
            raise
        return
    mod.search_demo(ll, console)
