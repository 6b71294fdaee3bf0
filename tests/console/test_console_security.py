"""Inert user content, tenant isolation, cross-site requests, accessibility (axe) and
keyboard reachability, and no console error on any page."""

from __future__ import annotations

import http.server
import socketserver
import threading
from typing import Any

import pytest

from learnloop.console.serve import CSP

from .conftest import ROOT, Server, shot, sign_in

AXE = ROOT / "console" / "node_modules" / "axe-core" / "axe.min.js"
XSS = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=1;alert(1)</script>'
MD_XSS = XSS + "\n\n[click](javascript:window.__xss=1) ![i](javascript:alert(1))"
PAGES = ["/", "/generations", "/review", "/analytics", "/knowledge", "/training", "/dictionary", "/predictions",
         "/events", "/settings", "/patterns"]


@pytest.fixture(scope="module")
def hostile(server: Server) -> dict[str, Any]:
    """A project whose every user-supplied field carries script."""
    ll = server.client.scoped(project="hostile")
    doc = ll.knowledge.ingest_bytes(XSS.encode(), file_name="x.txt", source=XSS, title=XSS)
    chunk = ll.knowledge.document(doc.document_id, chunks=True)["chunks"][0]
    root = ll.log(retrieved=[{"type": "chunk", "id": str(chunk["id"]), "score": 0.5},
                             {"type": XSS, "id": XSS, "content": XSS}],
                  kind=XSS[:50], prompt=XSS, negative_prompt=XSS, output_text=MD_XSS, output_url="javascript:alert(1)",
                  messages=[{"role": XSS, "content": XSS}], model=XSS[:200], user_ref=XSS, session_ref=XSS,
                  config={XSS: XSS, "style_preset": XSS}, context={"efficiency": 0.05, XSS: XSS},
                  output_meta={"seed": XSS}, links={"client": XSS})
    child = ll.log(kind="chat", parent_id=root.id, prompt=XSS, output_text=XSS)
    # A data: URL resolves to itself: never an image source, like javascript: above.
    ll.log(kind="image", parent_id=root.id, prompt=XSS, output_url="data:image/svg+xml,<svg onload='alert(1)'/>")
    for gid in (root.id, child.id):
        ll.feedback(gid, sentiment="NEGATIVE", tags=[XSS[:100]], comment=XSS, instruction=XSS, corrected_output=XSS)
    ll.feedback(child.id, sentiment="POSITIVE", rating=5)
    ll.dictionary.add({"word": XSS[:200], "definition": XSS, "synonyms": [XSS[:100]]})
    ll.knowledge.upsert_entity(XSS[:100], XSS[:100], XSS, metadata={XSS: XSS})
    ll.training.create_dataset("hostile-set", {})
    return {"root": str(root.id), "child": str(child.id), "doc": str(doc.document_id)}


def test_stored_script_in_every_user_field_never_runs(page: Any, server: Server, hostile: dict[str, Any],
                                                     watch: Any) -> None:
    sign_in(page, server)
    res = page.request.get(f"{server.url}/generations")
    assert res.headers["content-security-policy"] == CSP and "'unsafe-inline'" not in CSP
    urls = [f"{p}?project=hostile" for p in PAGES] + [
        f"/generations/{hostile['root']}?project=hostile", f"/generations/{hostile['child']}?project=hostile",
        "/analytics?project=hostile&source=config&by=style_preset",
        "/analytics?project=hostile&gsource=context&where=efficiency%3C0.08",
        "/dictionary?project=hostile&phrase=script",
        f"/knowledge?project=hostile&document={hostile['doc']}",
    ]
    for url in urls:
        page.goto(server.url + url)
        page.wait_for_load_state("networkidle")
        for d in page.locator("details").all()[:20]:
            if d.is_visible():
                d.locator("summary").first.click()
        assert page.evaluate("window.__xss") is None, f"script ran on {url}"
        # The payload is shown as text, not parsed into elements.
        assert page.locator('img[src="x"]').count() == 0
        assert page.locator("main script").count() == 0
        assert page.locator('a[href^="javascript:"]').count() == 0
        assert page.locator('img[src^="javascript:"], img[src^="data:"], image[href^="javascript:"], '
                            'image[href^="data:"]').count() == 0
    page.goto(f"{server.url}/generations/{hostile['root']}?project=hostile")
    page.get_by_text(XSS).first.wait_for()
    page.goto(f"{server.url}/patterns?project=hostile")
    page.wait_for_load_state("networkidle")
    shot(page, "patterns")
    assert page.evaluate("window.__xss") is None and not watch.dialogs


def test_tenant_b_session_never_sees_tenant_a(page: Any, server: Server, watch: Any) -> None:
    b = server.client.scoped(tenant="tenant-b", project="demo")
    mark = "tenant-b-only-7f3a"
    g = b.log(kind="chat", prompt=f"{mark} prompt", output_text=f"{mark} output")
    b.feedback(g.id, sentiment="NEGATIVE", comment=f"{mark} comment", tags=["B_TAG"])
    _, key_b = b.events.create_key("b admin", ["admin"])
    a_ids = [str(x.id) for x in server.client.find(limit=3)]
    a_prompt = server.client.find(limit=1)[0].prompt[:40]

    sign_in(page, server, key_b)
    for p in PAGES[:-1]:
        page.goto(f"{server.url}{p}?project=demo")
        page.wait_for_load_state("networkidle")
        html = page.content()
        assert a_prompt not in html and not any(i in html for i in a_ids), f"tenant A data on {p}"
    page.goto(f"{server.url}/generations?project=demo")
    page.get_by_text(f"{mark} prompt").wait_for()
    # A's generation by its id: not found, and the API behind it says 404.
    watch.allowed.append("404")
    page.goto(f"{server.url}/generations/{a_ids[0]}?project=demo")
    page.get_by_role("heading", name="Generation not found").wait_for()
    assert page.evaluate("async (id) => (await fetch('/v1/generations/' + id, {headers: {'X-Learnloop-Project': 'demo'}})).status",
                         a_ids[0]) == 404
    # And A never sees B.
    other = page.context.browser.new_context()
    try:
        pa = other.new_page()
        sign_in(pa, server)
        for p in ("/generations", "/review", "/analytics", "/settings"):
            pa.goto(f"{server.url}{p}?project=demo")
            pa.wait_for_load_state("networkidle")
            assert mark not in pa.content() and "b admin" not in pa.content()
    finally:
        other.close()


class _Attacker(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: Any) -> None:
        pass


def test_cross_site_post_is_refused(page: Any, server: Server, watch: Any) -> None:
    gid = str(server.client.find(limit=1)[0].id)
    before = len(server.client.feedback_for(gid))
    sign_in(page, server)
    target = f"{server.url}/v1/generations/{gid}/feedback"
    _Attacker.page = f"""<!doctype html><html><body>
      <form id=f method=POST action="{target}" enctype="text/plain">
        <input name='{{"sentiment":"NEGATIVE","comment":"csrf","x":"' value='"}}'></form>
      <script>
        fetch("{target}", {{method: "POST", credentials: "include", mode: "no-cors",
          headers: {{"Content-Type": "text/plain"}}, body: '{{"sentiment":"NEGATIVE","comment":"csrf"}}'}})
          .finally(() => document.getElementById("f").submit());
      </script></body></html>""".encode()
    srv = socketserver.TCPServer(("127.0.0.1", 0), _Attacker)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        watch.allowed.extend(["401", "403", "415", "422"])
        # "localhost" is another site than 127.0.0.1: the SameSite=Strict cookie stays home.
        page.goto(f"http://localhost:{srv.server_address[1]}/")
        page.wait_for_url(f"{server.url}/v1/**", timeout=15_000)
        page.wait_for_load_state("load")
        body = page.content()
        assert "401" in body or "403" in body or "Unauthenticated" in body
    finally:
        srv.shutdown()
        srv.server_close()
    assert len(server.client.feedback_for(gid)) == before
    # Even with the cookie attached, a write without the CSRF header from another origin is refused.
    res = page.context.request.post(target, data={"comment": "csrf"},
                                    headers={"Origin": "http://evil.example", "X-Learnloop-Project": "demo"})
    assert res.status == 403
    assert len(server.client.feedback_for(gid)) == before


def test_every_page_loads_without_console_errors(page: Any, server: Server) -> None:
    sign_in(page, server)
    gid = str(server.client.find(limit=1)[0].id)
    for p in [*PAGES, f"/generations/{gid}"]:
        page.goto(f"{server.url}{p}?project=demo")
        page.get_by_role("heading", level=1).first.wait_for()
        page.wait_for_load_state("networkidle")
        if p == "/":
            shot(page, "overview")


def test_axe_reports_no_serious_or_critical_violation(browser: Any, server: Server) -> None:
    # The test injects axe-core itself; bypass_csp lets its script tag in (the app never needs it).
    ctx = browser.new_context(bypass_csp=True, viewport={"width": 1360, "height": 900})
    try:
        page = ctx.new_page()
        page.goto(f"{server.url}/signin")
        gid = str(server.client.find(limit=1)[0].id)
        found: dict[str, list[str]] = {}
        for p in ["/signin", *PAGES, f"/generations/{gid}"]:
            if p != "/signin" and not found.get("_signed_in"):
                sign_in(page, server)
                found["_signed_in"] = []
            page.goto(f"{server.url}{p}?project=demo")
            page.get_by_role("heading", level=1).first.wait_for()
            page.wait_for_load_state("networkidle")
            page.add_script_tag(path=str(AXE))
            res = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                                ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
                                ".map(v => v.id + ': ' + v.help + ' (' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; ') + ')')")
            if res:
                found[p] = res
        found.pop("_signed_in", None)
        assert not found, found
    finally:
        ctx.close()


def test_every_control_is_reachable_by_keyboard(page: Any, server: Server) -> None:
    sign_in(page, server)
    parent = server.client.review_queue(limit=1)[0].generation_id
    for p in ["/review", "/analytics", "/knowledge", "/training", "/settings", f"/generations/{parent}"]:
        page.goto(f"{server.url}{p}?project=demo")
        page.get_by_role("heading", level=1).first.wait_for()
        page.wait_for_load_state("networkidle")
        total = page.evaluate("""() => {
            // Inside a closed <details> only its summary shows; of a radio group, Tab reaches
            // the checked radio (arrow keys move within the group).
            const shown = (e) => { const d = e.closest('details:not([open])');
              return !d || (e.tagName === 'SUMMARY' && e.parentElement === d && !d.parentElement.closest('details:not([open])')); };
            const els = [...document.querySelectorAll('a[href], button, input, select, textarea, summary')]
              .filter(e => !e.disabled && e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
              .filter(e => shown(e) && !(e.type === 'radio' && !e.checked));
            els.forEach((e, i) => e.setAttribute('data-kb', String(i)));
            return els.length; }""")
        seen: set[str] = set()
        page.evaluate("document.activeElement && document.activeElement.blur()")
        for _ in range(total + 40):
            page.keyboard.press("Tab")
            k = page.evaluate("document.activeElement && document.activeElement.getAttribute('data-kb')")
            if k is not None:
                seen.add(k)
            if len(seen) == total:
                break
        missing = page.evaluate("(seen) => [...document.querySelectorAll('[data-kb]')].filter(e => !seen.includes(e.getAttribute('data-kb'))).map(e => e.outerHTML.slice(0, 120))", list(seen))
        assert not missing, f"{p}: not reachable by Tab: {missing[:5]}"
