"""Knowledge (upload + search), training (dataset + JSONL), events (live tail), settings (keys)."""

from __future__ import annotations

import json
from typing import Any

from .conftest import ROOT, Server, shot, sign_in

PDF = ROOT / "data" / "docs" / "google-doc-document.pdf"
ENCRYPTED = ROOT / "tests" / "files" / "crazyones-encrypted-256.pdf"


def test_upload_pdfs_and_find_the_text_in_the_search_playground(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.goto(f"{server.url}/knowledge?project=demo")
    page.get_by_role("heading", name="Documents").wait_for()
    page.get_by_label("Choose files").set_input_files([str(PDF), str(ENCRYPTED)])
    uploads = page.get_by_role("list", name="Uploads")
    uploads.get_by_text("processed").wait_for(timeout=120_000)
    uploads.get_by_text("failed").wait_for(timeout=60_000)
    refused = uploads.locator("li").filter(has_text=ENCRYPTED.name).inner_text()
    assert "encrypted" in refused.lower() or "password" in refused.lower(), refused
    # The failure reason is in the documents table too.
    page.get_by_role("table").get_by_text(ENCRYPTED.name).wait_for()
    form = page.get_by_role("form", name="Search")
    form.get_by_label("Query").fill("flat is better than nested")
    form.get_by_role("button", name="Search").click()
    status = page.get_by_role("status").filter(has_text="hits in")
    status.wait_for(timeout=60_000)
    assert "Flat is better than nested" in page.locator("ol.hits li").first.inner_text()
    shot(page, "knowledge")


def test_create_a_dataset_version_and_download_its_jsonl(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.goto(f"{server.url}/training?project=demo")
    form = page.get_by_role("form", name="Create a dataset version")
    form.get_by_label("Name").fill("console-good")
    form.get_by_label("Without tags").fill("RED_FLAG")
    form.get_by_role("button", name="Create version").click()
    page.get_by_role("status").filter(has_text="Created console-good@1").wait_for()
    page.get_by_role("cell", name="console-good@1", exact=True).wait_for()
    shot(page, "training")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download JSONL of console-good@1").click()
    assert dl.value.suggested_filename.startswith("console-good-1")
    lines = open(dl.value.path()).read().splitlines()
    ds = server.client.training.dataset("console-good@1")
    assert len(lines) == ds.counts["examples"] > 0
    first = json.loads(lines[0])
    assert first["messages"][-1]["role"] == "assistant"


def test_a_review_shows_up_in_the_live_tail(context: Any, server: Server) -> None:
    tail = context.new_page()
    sign_in(tail, server)
    tail.goto(f"{server.url}/events?project=demo")
    tail.get_by_role("status").filter(has_text="Stream: live").wait_for()
    review = context.new_page()
    review.goto(f"{server.url}/review?project=demo")
    review.locator(".queue li").first.wait_for()
    fid = review.locator(".queue li").first.get_attribute("data-id")
    review.get_by_label("Review notes").fill("checked in the live tail test")
    review.get_by_role("button", name="Mark reviewed").click()
    review.get_by_role("status").filter(has_text="Marked as reviewed.").wait_for()
    row = tail.locator('tr[data-event-type="feedback.reviewed"]').filter(has_text=fid)
    row.wait_for(timeout=20_000)
    # Pause, write while paused, resume: the event written meanwhile arrives (no gap).
    tail.get_by_role("button", name="Pause").click()
    tail.get_by_role("status").filter(has_text="Stream: paused").wait_for()
    other = server.client.scoped(project="demo").review_queue(limit=1)[0].id
    server.client.scoped(project="demo").mark_reviewed(other, notes="while paused")
    tail.get_by_role("button", name="Resume").click()
    tail.locator('tr[data-event-type="feedback.reviewed"]').filter(has_text=str(other)).wait_for(timeout=20_000)
    shot(tail, "events")
    # The archive/SQL side answers too.
    tail.get_by_role("button", name="Run").click()
    tail.get_by_role("table").filter(has_text="event_type").last.wait_for()


def test_keys_are_shown_once_and_revoking_one_ends_its_sessions(context: Any, server: Server, browser: Any,
                                                                 watch: Any) -> None:
    page = context.new_page()
    sign_in(page, server)
    page.goto(f"{server.url}/settings?project=demo")
    form = page.get_by_role("form", name="Create an API key")
    form.get_by_label("Name").fill("colleague")
    form.get_by_role("button", name="Create key").click()
    key = page.get_by_label("new API key").inner_text().strip()
    assert key.startswith("llk_")
    shot(page, "settings")
    page.get_by_role("button", name="I have stored it").click()
    assert key not in page.content()
    # The colleague signs in with it in another browser...
    other = browser.new_context()
    try:
        p2 = other.new_page()
        sign_in(p2, server, key)
        # ...the admin revokes it...
        row = page.get_by_role("row").filter(has_text="colleague")
        row.get_by_role("button", name="Revoke").click()
        row.get_by_role("button", name="Revoke colleague").click()
        # The created column already reads "UTC": wait for the revoke itself to land,
        # i.e. the row's Revoke button to give way to the revocation time.
        row.get_by_role("button", name="Revoke").wait_for(state="detached")
        assert row.get_by_text("UTC").count() == 2
        # ...and the colleague's next page is the sign-in form.
        p2.goto(f"{server.url}/generations?project=demo")
        p2.get_by_role("heading", name="Sign in").wait_for()
    finally:
        other.close()
