"""Demo section for the ledger: import real OpenAssistant trees, then ask seed 000's questions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .importers import import_oasst
from .models import LineageNode

DATA = Path(__file__).resolve().parents[3] / "data" / "oasst" / "en_100_message.jsonl"


def run(ll: Any, console: Any) -> None:
    from rich.table import Table

    result = import_oasst(ll, DATA)
    console.print(
        f"imported {result['trees']} OpenAssistant trees: {result['generations']} new generations "
        f"({result['already_present']} already there), {result['feedback']} feedback rows"
    )

    def show(rows: list[dict[str, Any]], cols: list[str], title: str) -> None:
        t = Table(title=title)
        for c in cols:
            t.add_column(c)
        for r in rows:
            t.add_row(*[f"{r[c]:.1%}" if c == "failure_rate" and r[c] is not None else str(r[c]) for c in cols])
        console.print(t)

    cols = ["value", "attempts", "rated", "negative", "positive", "failure_rate"]
    show(ll.analytics.failure_rate("author"), cols, "failure rate by config.author (who wrote the reply)")
    show(ll.analytics.failure_rate("siblings", source="context"), cols,
         "failure rate by context.siblings (how many replies competed)")

    c = ll.analytics.corrections()
    console.print(
        f"corrections: {c['negative']} replies judged negative, {c['regenerated']} regenerated, "
        f"{c['fixed']} fixed by a positively judged regeneration"
        + (f" (fix rate {c['fix_rate']:.0%})" if c["fix_rate"] is not None else "")
    )
    dist = ", ".join(f"iteration {k}: {v} trees" for k, v in sorted(c["iterations"].items()))
    console.print(f"first positive verdict at {dist}; never positive: {c['never']} trees")

    tags = ll.analytics.tags()
    console.print("tags: " + (", ".join(f"{t['tag']} x{t['count']}" for t in tags) or "none"))

    gold = ll.analytics.golden(["prompt_chars<80", "turn>=2"], limit=3)
    t = Table(title="golden examples: short follow-up prompts answered well (context.prompt_chars < 80, turn >= 2)")
    for col in ("prompt", "answer", "+", "avg rating"):
        t.add_column(col)
    for g in gold:
        t.add_row(g["prompt"][:60], (g["output_text"] or "")[:70].replace("\n", " ") + "...",
                  str(g["positives"]), f"{g['avg_rating']:.1f}" if g["avg_rating"] else "-")
    console.print(t)

    # One lineage tree with its verdicts: the regenerations of one prompt.
    worst = ll.review_queue(limit=1)
    if worst:
        tree = ll.tree(worst[0].generation_id)

        def lines(n: LineageNode, depth: int = 0) -> list[str]:
            text = (n.output_text or "")[:60].replace("\n", " ")
            out = [f"{'  ' * depth}#{n.iteration} {n.verdict or 'unrated':8} {text}"]
            for ch in n.children:
                out.extend(lines(ch, depth + 1))
            return out

        console.print(f"lineage of the oldest unreviewed negative reply (prompt: {(tree.prompt or '')[:60]!r}):")
        for line in lines(tree):
            console.print("  " + line)
    console.print(f"review queue: {len(ll.review_queue(limit=1000))} negative feedback rows waiting for an admin")
