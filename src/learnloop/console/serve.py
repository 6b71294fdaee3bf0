"""Serve the built console at ``/``: its files, and ``index.html`` for every client route.

Registered after the API routers, so it only sees paths no route claimed. Unknown ``/v1``
paths stay JSON 404s. Every console response carries a strict Content-Security-Policy: no
inline script, no other origin for scripts, styles or connections; images may come from
http(s) (generation outputs are image URLs).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from ..errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' http: https:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
_NOT_BUILT = ("<!doctype html><html lang=en><title>learnloop</title><h1>The console is not built</h1>"
              "<p>Run <code>make console</code> (or <code>make install</code>) in the learnloop checkout; "
              "the API is under <a href=/docs>/docs</a>.</p></html>")
_API_PREFIXES = ("v1/", "docs", "redoc", "openapi.json", "healthz", "readyz", "metrics")


def mount(app: FastAPI, static: Path = STATIC) -> None:
    from .demo_pictures import mount as mount_demo_pictures

    root = static.resolve()
    mount_demo_pictures(app)  # before the catch-all below: /demo-images/... are pictures

    @app.get("/{path:path}", include_in_schema=False)
    def console(path: str, request: Request) -> Response:
        if path.startswith(_API_PREFIXES):
            raise NotFound(f"no route {request.url.path}")
        index = root / "index.html"
        if not index.is_file():
            return HTMLResponse(_NOT_BUILT, headers=HEADERS)
        target = (root / path).resolve()
        if path and target.is_file() and target.is_relative_to(root):
            cache = "public, max-age=31536000, immutable" if path.startswith("assets/") else "no-cache"
            return FileResponse(target, headers={**HEADERS, "Cache-Control": cache})
        # A client route (/generations/...): the app reads the URL and renders the page.
        return FileResponse(index, headers={**HEADERS, "Cache-Control": "no-cache"})
