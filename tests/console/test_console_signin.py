"""Sign-in: the one-time link, the key form, the session cookie, CSRF, read-only keys, revocation."""

from __future__ import annotations

from typing import Any

from .conftest import Server, shot, sign_in


def test_one_time_link_signs_in_and_leaves_no_token_in_the_address_bar(page: Any, server: Server) -> None:
    link = server.login_link()
    page.goto(link)
    page.get_by_role("heading", name="Overview").wait_for()
    assert "token" not in page.url and "lll_" not in page.url
    assert page.evaluate("location.hash") == ""
    cookie = next(c for c in page.context.cookies() if c["name"] == "learnloop_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # page script cannot read the session
    # The link works once.
    other = page.context.browser.new_context()
    try:
        p2 = other.new_page()
        p2.goto(link)
        p2.get_by_role("alert").wait_for()
        assert "not valid" in p2.get_by_role("alert").inner_text()
    finally:
        other.close()


def test_key_form_returns_to_the_page_asked_for(page: Any, server: Server, watch: Any) -> None:
    watch.allowed.append("401")  # the wrong key first
    page.goto(f"{server.url}/generations?project=demo&kind=chat")
    page.get_by_role("heading", name="Sign in").wait_for()
    shot(page, "signin")
    page.get_by_label("API key").fill("llk_" + "0" * 32 + "_" + "x" * 40)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    page.get_by_label("API key").fill(server.admin_key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Generations").wait_for()
    assert page.url.endswith("/generations?project=demo&kind=chat")
    assert server.admin_key not in page.content()
    assert server.admin_key not in page.url


def test_cookie_writes_need_the_csrf_header(page: Any, server: Server) -> None:
    sign_in(page, server)
    gid = str(server.client.find(limit=1)[0].id)
    url = f"{server.url}/v1/generations/{gid}/feedback"
    # The browser's cookie without the console's header: refused.
    res = page.context.request.post(url, data={"sentiment": "POSITIVE"}, headers={"X-Learnloop-Project": "demo"})
    assert res.status == 403 and "CSRF" in res.json()["detail"]
    # From the page, with the token the console holds: accepted.
    status = page.evaluate("""async (url) => {
        const s = await (await fetch('/v1/console/session')).json();
        const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json',
            'X-CSRF-Token': s.csrf, 'X-Learnloop-Project': 'demo'}, body: JSON.stringify({comment: 'ok'})});
        return r.status; }""", url)
    assert status == 201


def test_read_only_key_sees_no_write_controls_and_cannot_write(page: Any, server: Server, watch: Any) -> None:
    watch.allowed.append("403")  # the forced write below
    _, key = server.client.events.create_key("read only", ["read"])
    sign_in(page, server, key)
    gid = str(server.client.find(limit=1)[0].id)
    page.goto(f"{server.url}/generations/{gid}?project=demo")
    page.get_by_role("heading", name="Feedback", exact=True).wait_for()
    assert page.get_by_role("button", name="Save feedback").count() == 0
    assert "read only" in page.content()
    status = page.evaluate("""async (url) => {
        const s = await (await fetch('/v1/console/session')).json();
        const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json',
            'X-CSRF-Token': s.csrf, 'X-Learnloop-Project': 'demo'}, body: JSON.stringify({comment: 'no'})});
        return r.status; }""", f"{server.url}/v1/generations/{gid}/feedback")
    assert status == 403


def test_revoking_the_key_ends_its_session(page: Any, server: Server, watch: Any) -> None:
    rec, key = server.client.events.create_key("to revoke", ["admin"])
    sign_in(page, server, key)
    page.goto(f"{server.url}/generations?project=demo")
    page.get_by_role("heading", name="Generations").wait_for()
    server.client.events.revoke_key(rec["id"])
    watch.allowed.append("401")  # the page's next call is refused: that is the point
    page.goto(f"{server.url}/review?project=demo")
    page.get_by_role("heading", name="Sign in").wait_for()
    page.wait_for_url("**/signin?next=*")


def test_sign_out_ends_the_session(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    res = page.context.request.get(f"{server.url}/v1/projects")
    assert res.status == 401
