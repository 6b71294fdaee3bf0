"""Demo of retrieval, called by the knowledge demo after it has ingested and embedded.

Shows: a question answered from the ingested policy documents (vector and hybrid), seed
003's two queries over app entities, and learn-from-success over the imported
OpenAssistant generations, printed as few-shot examples ready for a prompt.
"""

from __future__ import annotations

from typing import Any

from .search import format_examples


def _short(text: str | None, n: int = 90) -> str:
    s = " ".join((text or "").split())
    return s if len(s) <= n else s[: n - 3] + "..."


def search_demo(ll: Any, console: Any) -> None:
    from rich.table import Table

    kn = ll.knowledge
    question = "How long does an analyst take to review a large loan application?"
    for hybrid in (False, True):
        hits = kn.search(question, k=3, owner_types="chunk", hybrid=hybrid)
        t = Table(title=f"{'hybrid' if hybrid else 'vector'} search over the documents: {question!r} "
                        f"({hits.path}, {hits.ms:.1f} ms)")
        for c in ("similarity", "file", "chunk"):
            t.add_column(c)
        for h in hits:
            t.add_row(f"{h['similarity']:.3f}", h.get("file_name") or "-", _short(h["content"]))
        console.print(t)

    goals = kn.search("build and test a web API", k=5, entity_types="goal", user="ana", where={"status": "completed"})
    console.print("seed 003, similar completed goals of user ana: "
                  + ", ".join(f"{h['entity_id']} ({h['similarity']:.2f})" for h in goals))
    code = kn.search("average of a list of numbers", k=5, entity_types="code",
                     where={"language": "python", "validation_score": {"gt": 0.8}})
    console.print("seed 003, validated python code with score > 0.8: "
                  + ", ".join(f"{h['entity_id']} (score {h['metadata']['validation_score']})" for h in code))

    prompt = "Can you explain how to learn a new programming language quickly?"
    wins = kn.similar_successes(prompt, k=3, min_rating=4, exclude_tags=["RED_FLAG"])
    t = Table(title=f"learn from success: past answers rated >= 4, never red-flagged, similar to {prompt!r}")
    for c in ("similarity", "avg rating", "+", "prompt", "answer"):
        t.add_column(c)
    for h in wins:
        t.add_row(f"{h['similarity']:.3f}", f"{h['avg_rating']:.1f}" if h["avg_rating"] else "-", str(h["positives"]),
                  _short(h.get("prompt"), 50), _short(h.get("output_text"), 60))
    console.print(t)
    if wins:
        console.print("[bold]ready to paste as few-shot examples:[/]")
        console.print(_short(format_examples(wins[:2], max_chars=300), 900), markup=False)
    m = kn.search_metrics()
    console.print(f"search metrics (this process): {m['searches']} searches, p50 {m['search_ms']['p50']:.1f} ms, "
                  f"p99 {m['search_ms']['p99']:.1f} ms, slow {m['slow_searches']}")
