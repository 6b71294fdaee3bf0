"""Nexo Sinérgico's image engine (seed 000) on learnloop's ledger.

Every image generation is logged with the engine's configuration (audience, style preset)
and the plant's telemetry at that moment (demand_kw, cost_eur, efficiency), its prompt and
negative prompt, output URL and metadata (seed, model). Feedback is a sentiment, tags such
as TOO_DARK, a comment and a manual instruction for the next attempt; a regeneration is a
child generation (lineage: root, iteration). Then the seed's analytics: failure rate by
style preset, golden assets with efficiency < 0.08, tag frequencies, whether
regenerations fixed what was wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import learnloop

MODEL = "sdxl-nexo-1.2"

# (style preset, audience, telemetry, verdict, tags, instruction for the regeneration, its verdict)
RUNS: list[tuple[str, str, dict[str, float], str, list[str], str | None, str | None]] = [
    ("CYBERPUNK_DARK", "investors", {"demand_kw": 385, "cost_eur": 0.42, "efficiency": 0.06}, "NEGATIVE",
     ["TOO_DARK"], "brighter, show the reactor in daylight", "POSITIVE"),
    ("CYBERPUNK_DARK", "engineers", {"demand_kw": 410, "cost_eur": 0.47, "efficiency": 0.07}, "NEGATIVE",
     ["TOO_DARK", "UNREADABLE_LABELS"], "larger labels, less neon", "NEGATIVE"),
    ("CYBERPUNK_DARK", "public", {"demand_kw": 290, "cost_eur": 0.31, "efficiency": 0.09}, "POSITIVE", [], None, None),
    ("BLUEPRINT", "engineers", {"demand_kw": 300, "cost_eur": 0.22, "efficiency": 0.05}, "POSITIVE", [], None, None),
    ("BLUEPRINT", "investors", {"demand_kw": 320, "cost_eur": 0.25, "efficiency": 0.11}, "POSITIVE", [], None, None),
    ("BLUEPRINT", "public", {"demand_kw": 280, "cost_eur": 0.20, "efficiency": 0.07}, "NEGATIVE",
     ["TOO_TECHNICAL"], "friendlier, fewer dimensions", "POSITIVE"),
    ("WATERCOLOR", "public", {"demand_kw": 250, "cost_eur": 0.18, "efficiency": 0.04}, "POSITIVE", [], None, None),
    ("WATERCOLOR", "investors", {"demand_kw": 260, "cost_eur": 0.19, "efficiency": 0.12}, "NEGATIVE",
     ["OFF_BRAND"], None, None),
]


def generate(ll: learnloop.Client, preset: str, audience: str, telemetry: dict[str, float], *,
             parent: Any = None, instruction: str | None = None, n: int = 0) -> learnloop.Generation:
    prompt = f"Pyrolysis plant for {audience}, {preset.lower().replace('_', ' ')} style"
    if instruction:
        prompt += f"; {instruction}"
    return ll.log(kind="image", prompt=prompt, negative_prompt="blurry, text artifacts", model=MODEL,
                  config={"style_preset": preset, "audience": audience}, context=telemetry,
                  output_url=f"https://cdn.nexo.example/renders/{preset.lower()}-{audience}-{n}.png",
                  output_meta={"seed": 1000 + n, "model": MODEL, "width": 1024, "height": 768},
                  parent_id=parent, latency_ms=2400 + 10 * n, cost=telemetry["cost_eur"])


def run(ll: learnloop.Client, *, out: Callable[[str], None] = print) -> dict[str, Any]:
    trees = []
    for n, (preset, audience, tel, verdict, tags, instruction, second) in enumerate(RUNS):
        g = generate(ll, preset, audience, tel, n=n)
        ll.feedback(g.id, sentiment=verdict, tags=tags, comment=", ".join(tags) or "good", author_ref="marta",
                    instruction=instruction)
        if instruction and second:
            child = generate(ll, preset, audience, tel, parent=g.id, instruction=instruction, n=100 + n)
            ll.feedback(child.id, sentiment=second, author_ref="marta")
            trees.append((g.id, child.id))
    out("== failure rate by style preset ==")
    rates = ll.analytics.failure_rate(by="style_preset")
    for r in rates:
        out(f"  {r.value:<15} {r.negative}/{r.rated} negative  ({r.failure_rate:.0%}, 95% CI "
            f"{r.failure_low:.0%}-{r.failure_high:.0%})")
    out("\n== golden assets with efficiency < 0.08 ==")
    golden = ll.analytics.golden(["efficiency<0.08"])
    for g in golden:
        out(f"  {g.config['style_preset']:<15} {g.config['audience']:<10} efficiency {g.context['efficiency']}  {g.output_url}")
    out("\n== tags of negative feedback ==")
    tags = ll.analytics.tags(sentiment="NEGATIVE")
    for t in tags:
        out(f"  {t.tag:<18} {t.count}")
    out("\n== did regenerations fix it? ==")
    fixes = ll.analytics.corrections()
    out(f"  {fixes.negative} negative, {fixes.regenerated} regenerated, {fixes.fixed} fixed (rate {fixes.fix_rate:.0%})")
    root, child = trees[0]
    path = ll.path(child)
    out(f"  lineage of {child}: iterations {[p.iteration for p in path]}")
    return {"rates": rates, "golden": golden, "tags": tags, "corrections": fixes, "path": path}
