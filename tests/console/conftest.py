"""Browser tests of the console: the real app (uvicorn, real PostgreSQL with the demo's
OpenAssistant trees) driven by Debian's chromium through Playwright.

One server and one browser per test module; each test gets a fresh browser context (its
own cookies) and fails when the page logged a console error or threw.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import learnloop

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "learnloop" / "console" / "static" / "index.html"
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "docs" / "console"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

playwright_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    client: learnloop.Client
    admin_key: str
    thread: threading.Thread
    server: Any
    extra: dict[str, Any] = field(default_factory=dict)

    def login_link(self, key: str | None = None) -> str:
        from learnloop.console import sessions
        from learnloop.events import keys

        with self.client.db.connection() as conn:
            p = keys.authenticate(conn, key or self.admin_key)
            return f"{self.url}/login#token={sessions.create_login_link(conn, p)}"


def start_server(ll: learnloop.Client, settings: Any = None) -> Server:
    import uvicorn

    from learnloop.api.app import create_app

    if not STATIC.is_file():
        pytest.fail("the console is not built: run `make console`")
    app = create_app(settings, client=ll, archive=False)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    t = threading.Thread(target=server.run, name="console-test-server", daemon=True)
    t.start()
    # Startup loads the embedding model: seconds on a quiet machine, over 30 s on a busy one.
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline or not t.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    _, key = ll.events.create_key("console tests", ["admin"])
    return Server(f"http://127.0.0.1:{port}", ll, key, t, server)


def load_demo(ll: learnloop.Client) -> None:
    from learnloop.ledger import demo_images
    from learnloop.ledger.importers import import_oasst

    import_oasst(ll, ROOT / "data" / "oasst" / "en_100_message.jsonl")
    demo_images.load(ll)
    # As `learnloop serve` keeps it: the charts by key, day and tag then read the rollup.
    ll.analytics.refresh()


@pytest.fixture(scope="module")
def server(db_url: str) -> Iterator[Server]:
    ll = learnloop.connect(db_url, project="demo")
    load_demo(ll)
    srv = start_server(ll)
    yield srv
    srv.server.should_exit = True
    srv.thread.join(timeout=15)
    ll.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: `make chromium` installs Debian's package")
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


class Watch:
    """Console errors and uncaught exceptions of a page, and dialogs (alert() = script ran)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.allowed: list[str] = []
        self.failed: list[str] = []  # responses >= 400, to say which request a console error was

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"{m.text} [{page.url}]"))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.status} {r.request.method} {r.url}"))

        def on_dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", on_dialog)

    def problems(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


@pytest.fixture()
def watch() -> Watch:
    return Watch()


@pytest.fixture()
def context(browser: Any, watch: Watch) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    ctx.on("page", watch.attach)
    yield ctx
    ctx.close()
    assert not watch.dialogs, f"a dialog opened (injected script ran): {watch.dialogs}"
    assert not watch.problems(), f"browser console errors: {watch.problems()} (failed responses: {watch.failed})"


@pytest.fixture()
def page(context: Any) -> Any:
    return context.new_page()


def sign_in(page: Any, server: Server, key: str | None = None) -> None:
    page.goto(server.login_link(key))
    page.get_by_role("heading", name="Overview").wait_for()


def shot(page: Any, name: str) -> None:
    """A screenshot for docs/console.md, taken by the tests (the docs show what they saw);
    written when LEARNLOOP_CONSOLE_SHOTS=1 (`make console-shots`), so a test run leaves the
    checkout clean."""
    if os.environ.get("LEARNLOOP_CONSOLE_SHOTS") != "1":
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def shot_of(locator: Any, name: str) -> None:
    """A screenshot of one element (a chart, the lineage tree), under the same switch."""
    if os.environ.get("LEARNLOOP_CONSOLE_SHOTS") != "1":
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(SHOTS / f"{name}.png"))
