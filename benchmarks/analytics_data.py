"""A generated seed-000 ledger for the analytics benchmark: N generations, ~30% rated,
~10% regenerations of an earlier attempt, config/context JSON shaped like the image engine's.

Rows go in through the library's own bulk paths (``bulk_log``/``bulk_feedback``: binary
COPY; the verdict summaries are settled by the first read), in chunks so memory stays flat at 10M.
Failure odds depend on the style, on the plant's demand (large plants dislike MINIMAL) and
on the lighting, so the analytics have something real to find.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

STYLES = ["CYBERPUNK_DARK", "MINIMAL", "BLUEPRINT", "WATERCOLOR", "PHOTOREAL", "ISOMETRIC"]
STYLE_FAIL = {"CYBERPUNK_DARK": 0.55, "MINIMAL": 0.2, "BLUEPRINT": 0.3, "WATERCOLOR": 0.25,
              "PHOTOREAL": 0.15, "ISOMETRIC": 0.2}
AUDIENCES = ["INVESTOR", "ENGINEER", "PUBLIC", "OPERATOR"]
TAGS = ["TOO_DARK", "TEXT_GLITCH", "WRONG_COLOR", "OFF_BRAND", "TOO_BUSY", "LOW_DETAIL"]
REGIONS = ["ES-AN", "ES-CT", "ES-MD", "PT-11", "FR-OCC"]
MODELS = ["dall-e-3", "sdxl-1.0", "flux-dev"]
START = datetime(2026, 8, 1, tzinfo=UTC)


def fail_odds(config: dict[str, Any], context: dict[str, Any]) -> float:
    p = STYLE_FAIL[config["style_preset"]]
    kw = context.get("demand_kw")
    if config["style_preset"] == "MINIMAL" and isinstance(kw, int) and kw > 500:
        p = 0.7  # seed 000: plants over 500 kW reject the minimalist style
    if config.get("lighting") == "low":
        p += 0.15
    return min(p, 0.95)


def _row(rnd: random.Random, i: int, parent: dict[str, Any] | None) -> dict[str, Any]:
    if parent is not None:
        config = dict(parent["config"], lighting="bright", guidance=round(rnd.uniform(5, 12), 1))
        context = parent["context"]
    else:
        config = {"audience": rnd.choice(AUDIENCES), "style_preset": rnd.choice(STYLES),
                  "aspect": rnd.choice(["16:9", "1:1", "4:3"]), "quality": rnd.choice(["standard", "hd"]),
                  "lighting": rnd.choice(["low", "normal", "bright"]), "guidance": round(rnd.uniform(5, 12), 1),
                  "steps": rnd.choice([20, 30, 40, 50])}
        kw = int(rnd.lognormvariate(5.6, 0.7))
        context = {"demand_kw": kw, "cost_eur": kw * rnd.randint(300, 700),
                   "efficiency": round(rnd.uniform(0.02, 0.2), 4), "region": rnd.choice(REGIONS),
                   "capacity_t_day": rnd.choice([5, 10, 20, 40, 80])}
        if i % 97 == 0:
            context["efficiency"] = "n/a"  # a non-number under a numeric key, as real telemetry has
        if i % 53 == 0:
            del context["demand_kw"]
    model = rnd.choice(MODELS)
    return {
        "id": uuid.UUID(int=rnd.getrandbits(128), version=4),
        "kind": "image",
        "prompt": f"Subject: pyrolysis plant {i}, {config['style_preset'].lower()} style, "
                  f"{context.get('demand_kw', 'unknown')} kW, for {config['audience'].lower()} audience",
        "negative_prompt": "blurry, text, watermark",
        "config": config, "context": context,
        "output_url": f"https://cdn.example/{i}.png",
        "output_meta": {"seed": rnd.getrandbits(31), "width": 1024, "height": 1024 if config["aspect"] == "1:1" else 576},
        "model": model, "provider": "openai" if model == "dall-e-3" else "replicate",
        "tokens_in": rnd.randint(30, 120), "tokens_out": 0, "latency_ms": round(rnd.lognormvariate(7.0, 0.4), 1),
        "user_ref": f"user-{rnd.randint(0, 2000)}",
        "parent_id": parent["id"] if parent is not None else None,
        "created_at": START + timedelta(seconds=i * 7.77 + rnd.random()),
    }


def chunks(n: int, seed: int = 1, size: int = 50_000) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """(generation rows, feedback rows) per chunk; a regeneration's parent is in an earlier
    row of the same chunk or a stored one."""
    rnd = random.Random(seed)
    rejected: list[dict[str, Any]] = []  # recent negatively rated attempts, to regenerate
    for start in range(0, n, size):
        gens: list[dict[str, Any]] = []
        fbs: list[dict[str, Any]] = []
        for i in range(start, min(n, start + size)):
            parent = rejected.pop(rnd.randrange(len(rejected))) if rejected and rnd.random() < 0.10 else None
            g = _row(rnd, i, parent)
            gens.append(g)
            if rnd.random() < 0.30:
                bad = rnd.random() < fail_odds(g["config"], g["context"])
                for k in range(1 if rnd.random() < 0.8 else 2):
                    tags = rnd.sample(TAGS, rnd.randint(1, 2)) if bad else []
                    if bad and g["config"].get("lighting") == "low" and "TOO_DARK" not in tags:
                        tags.append("TOO_DARK")
                    when = g["created_at"] + timedelta(minutes=5 + k)
                    style = rnd.random()
                    fb: dict[str, Any] = {"generation_id": g["id"], "tags": tags, "created_at": when,
                                          "source": "admin" if rnd.random() < 0.1 else "user"}
                    if style < 0.5:
                        fb["sentiment"] = "NEGATIVE" if bad else "POSITIVE"
                    elif style < 0.8:
                        fb["rating"] = rnd.choice([1, 2]) if bad else rnd.choice([4, 5])
                    else:
                        fb["thumbs"] = -1 if bad else 1
                    fbs.append(fb)
                if bad and len(rejected) < 5000:
                    rejected.append(g)
        yield gens, fbs


def load(ll: Any, n: int, seed: int = 1) -> tuple[int, int]:
    """Write ``n`` generations and their feedback; returns (generations, feedback rows)."""
    total_g = total_f = 0
    for gens, fbs in chunks(n, seed):
        total_g += len(ll.bulk_log(gens))
        total_f += ll.bulk_feedback(fbs)
    return total_g, total_f
