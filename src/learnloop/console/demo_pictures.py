"""Pictures for the demo's image generations, drawn by code and served at ``/demo-images/``.

The demo's image ledger (``learnloop.ledger.demo_images``) stores output URLs such as
``/demo-images/minimal/12.svg?kw=385&lighting=low&aspect=16x9``: relative, so they resolve
against whatever origin serves the console, and the gallery, the generation page and the
lineage thumbnails show a picture with no internet access. Each picture is a small SVG of a
pyrolysis plant in the preset's colours, sized by the plant's demand (more reactors, a
taller stack), darker in low light; the same URL always gives the same bytes.

Only known presets, lighting values and aspects are drawn, and every number is parsed as an
integer: nothing from the URL reaches the SVG as text it did not pass through ``int`` or a
fixed table. The response forbids scripts (``script-src 'none'``, ``sandbox``) even when
someone opens the SVG as a page; the console shows it through ``<img>`` only.
"""

from __future__ import annotations

import hashlib
import math

from fastapi import FastAPI, Query
from fastapi.responses import Response

from ..errors import NotFound
from ..ledger.demo_images import IMAGE_PATH as PATH  # where the demo's URLs point

# (sky, ground, plant, accent) per preset, lower-case as in the URL.
PALETTES = {
    "cyberpunk_dark": ("#1e1b4b", "#3b0764", "#a21caf", "#22d3ee"),
    "minimal": ("#f1f5f9", "#cbd5e1", "#64748b", "#0f172a"),
    "blueprint": ("#1e3a8a", "#1d4ed8", "#bfdbfe", "#eff6ff"),
    "watercolor": ("#e0f2fe", "#bbf7d0", "#f9a8d4", "#7c3aed"),
    "photoreal": ("#bae6fd", "#65a30d", "#78716c", "#f59e0b"),
}
SHADE = {"low": 0.45, "normal": 0.15, "bright": 0.0}
SIZES = {"16x9": (320, 180), "1x1": (240, 240)}
SVG_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'none'; style-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "public, max-age=86400",
    "Referrer-Policy": "no-referrer",
}


def picture(preset: str, index: int, kw: int, lighting: str = "normal", aspect: str = "16x9") -> str:
    """The SVG of one demo image (``ValueError`` for a preset, lighting or aspect it does
    not know)."""
    if preset not in PALETTES or lighting not in SHADE or aspect not in SIZES:
        raise ValueError("unknown preset, lighting or aspect")
    sky, ground, plant, accent = PALETTES[preset]
    w, h = SIZES[aspect]
    # A per-image jitter (hills, stack position) from the index: the same URL, the same bytes.
    rnd = hashlib.sha256(f"{preset}/{index}".encode()).digest()
    horizon = int(h * 0.68)
    reactors = max(1, min(7, 1 + int(math.log2(max(kw, 20) / 20))))
    scale = min(1.0, 0.45 + 0.1 * reactors)
    parts = [f'<rect width="{w}" height="{h}" fill="{sky}"/>',
             f'<path d="M0 {horizon} Q {w * (0.2 + rnd[0] / 900):.0f} {horizon - 18 - rnd[1] % 20} {w // 2} {horizon} '
             f'T {w} {horizon} V {h} H 0 Z" fill="{ground}"/>']
    unit = int(w * 0.72 / reactors) if reactors > 1 else int(w * 0.3)
    x0 = int(w * 0.14)
    top = int(horizon - 55 * scale)
    for k in range(reactors):
        x = x0 + k * unit
        rw = max(10, int(unit * 0.7))
        parts.append(f'<rect x="{x}" y="{top + (k % 2) * 6}" width="{rw}" height="{horizon - top - (k % 2) * 6}" '
                     f'rx="{rw // 3}" fill="{plant}"/>')
    sx = x0 + int((rnd[2] / 255) * max(1, reactors - 1)) * unit + 4
    stack = int(40 + 70 * scale)
    parts.append(f'<rect x="{sx}" y="{horizon - stack}" width="8" height="{stack}" fill="{accent}"/>')
    parts.append(f'<circle cx="{sx + 4}" cy="{horizon - stack - 10}" r="9" fill="{sky}" fill-opacity="0.6" '
                 f'stroke="{accent}" stroke-opacity="0.5"/>')
    parts.append(f'<rect x="{x0 - 6}" y="{horizon - 2}" width="{reactors * unit}" height="4" fill="{accent}"/>')
    if SHADE[lighting]:
        parts.append(f'<rect width="{w}" height="{h}" fill="#000" fill-opacity="{SHADE[lighting]}"/>')
    label = f"{kw} kW · {preset.replace('_', ' ')}"
    parts.append(f'<rect x="6" y="{h - 26}" width="{len(label) * 7 + 12}" height="20" rx="4" fill="#000" fill-opacity="0.55"/>'
                 f'<text x="12" y="{h - 12}" font-family="sans-serif" font-size="12" fill="#fff">{label}</text>')
    body = "".join(parts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">'
            f'<title>{label}</title>{body}</svg>')


def mount(app: FastAPI) -> None:
    """``GET /demo-images/{preset}/{index}.svg?kw=&lighting=&aspect=`` (no sign-in: these
    pictures hold no data beyond what their URL says)."""

    @app.get(PATH + "/{preset}/{name}", include_in_schema=False)
    def demo_image(preset: str, name: str, kw: int = Query(100, ge=1, le=1_000_000),
                   lighting: str = "normal", aspect: str = "16x9") -> Response:
        stem, dot, ext = name.partition(".")
        if not (dot and ext == "svg" and stem.isdigit() and len(stem) <= 9):
            raise NotFound(f"no demo image {PATH}/{preset}/{name}")
        try:
            svg = picture(preset, int(stem), kw, lighting, aspect)
        except ValueError:
            raise NotFound(f"no demo image {PATH}/{preset}/{name}") from None
        return Response(svg, media_type="image/svg+xml", headers=SVG_HEADERS)
