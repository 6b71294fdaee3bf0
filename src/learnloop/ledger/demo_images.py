"""Demo section: seed 000's image engine (``VisualMetaphorEngine``), so the analytics have
something to find.

The OpenAssistant trees carry one config key that matters little (``lang``); an image
engine's ledger is what seed 000 asks questions of: which ``style_preset`` fails, and for
which plants (``demand_kw``). These rows are generated, deterministically, with failure
odds that depend on the preset crossed with the plant's demand band (MINIMAL fails large
plants, PHOTOREAL small ones, CYBERPUNK_DARK most audiences) and on ``lighting``, and
improve over the month (the team learns); ``aspect``, ``quality`` and ``region`` make no
difference, and the drivers view says so. About one rejected image in six is regenerated
(a lineage tree, sometimes branching), so the corrections funnel and the trees have
content.

Image URLs are relative (``/demo-images/<preset>/<i>.svg?kw=...``): ``learnloop serve``
draws each one as a small SVG of the plant in the preset's colours
(``learnloop.console.demo_pictures``), so the console shows them with no internet access.
Data written by an older demo named ``https://img.example.com/demo/...`` (a documentation
domain that does not answer); ``relocate`` points those rows at the pictures.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

N_IMAGES = 600
RATED_SHARE = 0.65
NAMESPACE = uuid.UUID("5b1f2c55-7a43-4f2e-9a51-0d1e3c2b9a00")
IMAGE_PATH = "/demo-images"  # served by learnloop.console.demo_pictures, which reads it here
OLD_IMAGE_HOST = "https://img.example.com/demo/"  # what demos before it wrote

PRESETS = ["CYBERPUNK_DARK", "MINIMAL", "BLUEPRINT", "WATERCOLOR", "PHOTOREAL"]
BASE_FAIL = {"CYBERPUNK_DARK": 0.55, "MINIMAL": 0.15, "BLUEPRINT": 0.3, "WATERCOLOR": 0.25, "PHOTOREAL": 0.12}
AUDIENCES = ["INVESTOR", "ENGINEER", "PUBLIC", "OPERATOR"]
REGIONS = ["ES-AN", "ES-CT", "ES-MD", "PT-11", "FR-OCC"]
DEMAND_BANDS = "demand_kw:bands=100,500"  # the 2-D question: preset x demand band


def fail_odds(config: dict[str, Any], context: dict[str, Any], progress: float) -> float:
    """Chance that a person rejects the image; ``progress`` 0..1 through the month."""
    preset, kw = config["style_preset"], context["demand_kw"]
    p = BASE_FAIL[preset]
    if preset == "MINIMAL" and kw >= 500:
        p = 0.75  # seed 000: large plants look empty and cheap in the minimalist style
    if preset == "PHOTOREAL" and kw < 100:
        p = 0.5  # a small plant photographed looks like a shed
    if preset == "CYBERPUNK_DARK" and config["audience"] == "ENGINEER":
        p = 0.25  # engineers like it; everyone else finds it sinister
    if config["lighting"] == "low":
        p += 0.15
    return min(0.95, p * (1.15 - 0.3 * progress))


def _tags(rnd: random.Random, config: dict[str, Any], context: dict[str, Any]) -> list[str]:
    preset = config["style_preset"]
    tags = {"CYBERPUNK_DARK": ["TOO_DARK", "OFF_BRAND"], "MINIMAL": ["TOO_SIMPLE", "LOW_DETAIL"],
            "BLUEPRINT": ["TEXT_GLITCH"], "WATERCOLOR": ["WRONG_COLOR"], "PHOTOREAL": ["EMPTY_SCENE"]}[preset]
    out = [rnd.choice(tags)]
    if config["lighting"] == "low" and "TOO_DARK" not in out:
        out.append("TOO_DARK")
    return out


COMMENTS = {
    "TOO_DARK": "Demasiado oscura para enseñarla a inversores.",
    "OFF_BRAND": "No parece nuestra marca.",
    "TOO_SIMPLE": "Una planta de este tamaño no puede parecer tan vacía.",
    "LOW_DETAIL": "Faltan los reactores y la tolva.",
    "TEXT_GLITCH": "El texto del plano sale ilegible.",
    "WRONG_COLOR": "Los colores no son los corporativos.",
    "EMPTY_SCENE": "Parece un cobertizo, no una planta.",
}


def image_url(i: int, config: dict[str, Any], context: dict[str, Any]) -> str:
    """Where the picture of the demo's image ``i`` is served (relative to the console)."""
    aspect = "16x9" if config.get("aspect") == "16:9" else "1x1"
    return (f"{IMAGE_PATH}/{str(config['style_preset']).lower()}/{i}.svg?kw={int(context['demand_kw'])}"
            f"&lighting={config.get('lighting', 'normal')}&aspect={aspect}")


def _generation(i: int, config: dict[str, Any], context: dict[str, Any], at: datetime,
                parent: dict[str, Any] | None, rnd: random.Random) -> dict[str, Any]:
    preset = config["style_preset"]
    kw = context["demand_kw"]
    return {
        "id": uuid.uuid5(NAMESPACE, f"demo-image-{i}"),
        "external_id": f"demo-image-{i}",
        "kind": "image",
        "prompt": (f"Planta de pirólisis de {kw} kW en {context['region']}, estilo {preset.lower()}, "
                   f"para público {config['audience'].lower()}, iluminación {config['lighting']}"),
        "negative_prompt": "borroso, texto, marca de agua",
        "config": config,
        "context": context,
        "output_url": image_url(i, config, context),
        "output_meta": {"seed": rnd.getrandbits(31), "width": 1024, "height": 576 if config["aspect"] == "16:9" else 1024},
        "model": "dall-e-3" if config["quality"] == "hd" else "sdxl-1.0",
        "provider": "openai" if config["quality"] == "hd" else "replicate",
        "latency_ms": round(rnd.lognormvariate(8.6, 0.3), 1),
        "cost": 0.08 if config["quality"] == "hd" else 0.02,
        "user_ref": f"user-{rnd.randint(1, 40)}",
        "session_ref": f"plant-{context['plant_id']}",
        "links": {"plant": str(context["plant_id"])},
        "parent_id": parent["id"] if parent is not None else None,
        "created_at": at,
    }


def _feedback(rnd: random.Random, g: dict[str, Any], bad: bool) -> dict[str, Any]:
    fb: dict[str, Any] = {"generation_id": g["id"], "created_at": g["created_at"] + timedelta(minutes=rnd.randint(2, 90)),
                          "source": "admin" if rnd.random() < 0.15 else "user"}
    style = rnd.random()
    if style < 0.5:
        fb["sentiment"] = "NEGATIVE" if bad else "POSITIVE"
    elif style < 0.8:
        fb["rating"] = rnd.choice([1, 2]) if bad else rnd.choice([4, 5])
    else:
        fb["thumbs"] = -1 if bad else 1
    if bad:
        fb["tags"] = _tags(rnd, g["config"], g["context"])
        if rnd.random() < 0.6:
            fb["comment"] = COMMENTS[fb["tags"][0]]
    return fb


def rows(now: datetime | None = None, seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(generations, feedback) of the demo's image engine; parents come before children."""
    rnd = random.Random(seed)
    end = (now or datetime.now(UTC)).replace(microsecond=0)
    start = end - timedelta(days=28)
    gens: list[dict[str, Any]] = []
    fbs: list[dict[str, Any]] = []
    i = 0

    def attempt(config: dict[str, Any], context: dict[str, Any], at: datetime, parent: dict[str, Any] | None,
                depth: int, showcase: bool = False) -> None:
        nonlocal i
        g = _generation(i, config, context, at, parent, rnd)
        i += 1
        gens.append(g)
        progress = (at - start) / (end - start)
        bad = showcase or rnd.random() < fail_odds(config, context, progress)
        if showcase or parent is not None or rnd.random() < RATED_SHARE:
            fbs.append(_feedback(rnd, g, bad))
        # A rejected image is sometimes regenerated (always, once regenerating started):
        # brighter, or in another preset. The first plant is the showcase tree: rejected,
        # tried again two ways, the first of those rejected and tried once more.
        if bad and depth < 3 and (parent is not None or showcase or rnd.random() < 0.18):
            for k in range(2 if showcase and depth == 1 else 1):
                fixed = dict(config, lighting="bright", guidance=round(rnd.uniform(5, 12), 1))
                if rnd.random() < 0.5 or k == 1:
                    fixed["style_preset"] = rnd.choice([p for p in PRESETS if p != config["style_preset"]])
                attempt(fixed, context, min(end, at + timedelta(minutes=rnd.randint(10, 240))), g, depth + 1,
                        showcase=showcase and depth == 1 and k == 0)

    plant = 0
    while i < N_IMAGES:
        plant += 1
        at = start + (end - start) * (len(gens) / N_IMAGES) + timedelta(seconds=rnd.randint(0, 600))
        config = {"style_preset": rnd.choice(PRESETS), "audience": rnd.choice(AUDIENCES),
                  "lighting": rnd.choice(["low", "normal", "normal", "bright"]), "aspect": rnd.choice(["16:9", "1:1"]),
                  "quality": rnd.choice(["standard", "hd"]), "guidance": round(rnd.uniform(5, 12), 1)}
        kw = int(min(3000, max(20, rnd.lognormvariate(5.5, 1.0))))
        context = {"plant_id": plant, "demand_kw": kw, "cost_eur": kw * rnd.randint(380, 620),
                   "efficiency": round(rnd.uniform(0.03, 0.16), 3), "region": rnd.choice(REGIONS),
                   "capacity_t_day": rnd.choice([5, 10, 20, 40])}
        attempt(config, context, min(end, at), None, 1, showcase=plant == 1)
    return gens, fbs


def load(ll: Any) -> dict[str, int]:
    """Write the image generations and their feedback in one transaction: present in full
    or not at all (a re-run after an interruption starts them over)."""
    from . import feedback as _feedback_db
    from . import generations as _gen

    gens, fbs = rows()
    with ll.db.connection() as conn:
        present = conn.execute(
            "SELECT count(*) AS n FROM learnloop.generations WHERE tenant_id = %s AND id = %s",
            (ll.scope.tenant_id, gens[0]["id"])).fetchone()["n"]
    if present:
        relocate(ll)
        return {"generations": 0, "feedback": 0, "already_present": len(gens)}
    with ll.db.transaction() as conn:
        _gen.bulk_log(conn, ll.scope, gens)
        n_fb = _feedback_db.bulk_add(conn, ll.scope, fbs)
    return {"generations": len(gens), "feedback": n_fb, "already_present": 0}


def relocate(ll: Any) -> int:
    """Point the demo images an older demo wrote at ``img.example.com`` (which does not
    answer) at the pictures ``learnloop serve`` draws; returns how many rows changed. Only
    this project's ``demo-image-*`` rows are touched; running it again changes nothing."""
    with ll.db.transaction() as conn:
        old = conn.execute(
            "SELECT id, external_id, config, context FROM learnloop.generations"
            " WHERE tenant_id = %s AND project_id = %s AND external_id LIKE 'demo-image-%%'"
            " AND starts_with(output_url, %s)",
            (ll.scope.tenant_id, ll.scope.project_id, OLD_IMAGE_HOST)).fetchall()
        moved = [(image_url(int(r["external_id"].removeprefix("demo-image-")), r["config"], r["context"]),
                  ll.scope.tenant_id, r["id"]) for r in old]
        if moved:
            with conn.cursor() as cur:
                cur.executemany("UPDATE learnloop.generations SET output_url = %s WHERE tenant_id = %s AND id = %s",
                                moved)
    return len(moved)


def run(ll: Any, console: Any) -> None:
    from rich.table import Table

    out = load(ll)
    console.print(f"image engine (seed 000): {out['generations']} new image generations, {out['feedback']} feedback rows"
                  f" ({out['already_present']} already there)")
    d = ll.analytics.drivers(min_rated=10, kind=["image"])
    t = Table(title="what drives failure (analytics.drivers): keys ranked by how much the failure rate moves")
    for col in ("key", "spread", "differs"):
        t.add_column(col)
    for drv in d.drivers[:6]:
        t.add_row(f"{drv.source}.{drv.key}", f"{drv.spread:.0%}" if drv.spread is not None else "-",
                  "yes" if drv.differs else "no")
    console.print(t)
    console.print("make no difference: " + (", ".join(d.no_difference) or "none"))
    b = ll.analytics.breakdown(["config.style_preset", DEMAND_BANDS], kind=["image"])
    t = Table(title="failure rate by style_preset x demand band (kW)")
    for col in ("preset", "demand", "rated", "failure rate"):
        t.add_column(col)
    for g in b.groups:
        rate = g.failure_rate
        t.add_row(str(g.by[0].value), str(g.by[1].value), str(g.rated), f"{rate:.0%}" if rate is not None else "-")
    console.print(t)
