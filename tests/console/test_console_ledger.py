"""Generations, a generation's lineage tree and feedback, the review queue, analytics."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Server, shot, sign_in


def _parent_with_child(server: Server) -> tuple[str, str]:
    with server.client.db.connection() as conn:
        row = conn.execute(
            "SELECT p.id AS parent, c.id AS child FROM learnloop.generations c"
            " JOIN learnloop.generations p ON p.tenant_id = c.tenant_id AND p.id = c.parent_id"
            " WHERE c.tenant_id = %s ORDER BY c.iteration DESC, c.id LIMIT 1",
            (server.client.scope.tenant_id,),
        ).fetchone()
    return str(row["parent"]), str(row["child"])


def test_generations_list_filters_and_pages(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.get_by_role("link", name="Generations").click()
    page.get_by_role("heading", name="Generations").wait_for()
    page.get_by_role("link", name="Older →").wait_for()
    first = page.locator("tbody tr td a").first.inner_text()
    page.get_by_role("link", name="Older →").click()
    page.wait_for_url("**after=**")
    page.wait_for_function("(first) => document.querySelector('tbody tr td a')?.textContent !== first", arg=first)
    page.get_by_role("link", name="Newest").wait_for()
    shot(page, "generations")
    # A filter lands in the URL (shareable) and narrows the rows.
    page.goto(f"{server.url}/generations?project=demo")
    page.get_by_label("Verdict").select_option("NEGATIVE")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**verdict=NEGATIVE**")
    page.locator("tbody tr").first.wait_for()
    n = page.locator("tbody tr td a").count()
    assert 0 < n <= 50


def test_lineage_tree_moves_to_a_child(page: Any, server: Server) -> None:
    parent, child = _parent_with_child(server)
    sign_in(page, server)
    page.goto(f"{server.url}/generations/{parent}?project=demo")
    tree = page.get_by_role("group", name="Lineage tree")
    tree.wait_for()
    current = page.locator(f'[data-node="{parent}"]')
    assert current.get_attribute("aria-current") == "page"
    shot(page, "generation")
    page.locator(f'[data-node="{child}"]').click()
    page.wait_for_url(f"**/generations/{child}**")
    page.wait_for_function(f"""() => document.querySelector('[data-node="{child}"]')?.getAttribute('aria-current') === 'page'""")
    assert child in page.locator(".ids").inner_text()


def test_unknown_generation_shows_not_found_with_a_way_back(page: Any, server: Server, watch: Any) -> None:
    watch.allowed.append("404")
    sign_in(page, server)
    page.goto(f"{server.url}/generations/00000000-0000-0000-0000-000000000000?project=demo")
    page.get_by_role("heading", name="Generation not found").wait_for()
    assert "does not exist" in page.get_by_role("alert").inner_text()
    page.get_by_role("link", name="Back to generations").click()
    page.get_by_role("heading", name="Generations").wait_for()
    page.goto(f"{server.url}/no/such/page?project=demo")
    page.get_by_role("heading", name="Not found").wait_for()


def _chart_value(page: Any, label: str, x: str) -> Any:
    """The first series' value at the bar labelled ``x``."""
    canvas = page.locator(f'canvas[data-chart="{label}"]')
    return json.loads(canvas.get_attribute("data-values"))[0][json.loads(canvas.get_attribute("data-labels")).index(x)]


def test_feedback_changes_the_failure_rate_chart(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.goto(f"{server.url}/analytics?project=demo&source=config&by=lang")
    label = "Failure rate by config.lang"
    page.locator(f'canvas[data-chart="{label}"]').wait_for()
    before = _chart_value(page, label, "en")
    # Negative feedback on an English reply that has none yet, from its page.
    with server.client.db.connection() as conn:
        gid = conn.execute(
            "SELECT g.id FROM learnloop.generations g WHERE g.tenant_id = %s AND g.config->>'lang' = 'en'"
            " AND NOT EXISTS (SELECT 1 FROM learnloop.feedback f WHERE f.tenant_id = g.tenant_id"
            " AND f.generation_id = g.id) LIMIT 1", (server.client.scope.tenant_id,)).fetchone()["id"]
    page.goto(f"{server.url}/generations/{gid}?project=demo")
    form = page.get_by_role("form", name="Give feedback")
    form.get_by_label("Sentiment").select_option("NEGATIVE")
    form.get_by_label("Tags (comma separated)").fill("OFF_TOPIC, TOO_LONG")
    form.get_by_label("Comment").fill("answers a different question")
    form.get_by_role("button", name="Save feedback").click()
    page.get_by_role("status").filter(has_text="Feedback saved.").wait_for()
    page.locator(".feedback-list").get_by_text("answers a different question").wait_for()
    page.goto(f"{server.url}/analytics?project=demo&source=config&by=lang")
    page.locator(f'canvas[data-chart="{label}"]').wait_for()
    after = _chart_value(page, label, "en")
    assert after != before and after > before
    page.get_by_role("table").filter(has_text="Failure rate by config.lang").wait_for()
    shot(page, "analytics")
    with page.expect_download() as dl:
        page.get_by_role("table").filter(has_text="Failure rate by config.lang").get_by_role("button", name="Download CSV").click()
    text = open(dl.value.path()).read()
    assert text.startswith("value,attempts,rated,negative,positive,failure_rate,failure_low,failure_high\n")
    assert "\nen," in text


def test_review_queue_by_keyboard(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.goto(f"{server.url}/review?project=demo")
    page.get_by_role("heading", name="Review queue").wait_for()
    heading = page.locator("h2.small-h").first
    heading.wait_for()
    assert int(heading.inner_text().split()[0].rstrip("+")) > 1
    shot(page, "review")
    page.keyboard.press("j")
    second = page.locator(".queue li").nth(1)
    assert second.get_attribute("aria-current") == "true"
    page.keyboard.press("k")
    assert page.locator(".queue li").nth(0).get_attribute("aria-current") == "true"
    fid = server.client.review_queue(limit=1)[0].id
    assert page.locator(".queue li").nth(0).get_attribute("data-id") == str(fid)
    page.keyboard.press("n")
    page.keyboard.type("the reply ignored the question; added a dictionary term")
    page.keyboard.press("Escape")
    page.keyboard.press("y")
    page.get_by_role("status").filter(has_text="Marked as reviewed.").wait_for()
    page.wait_for_function(f"() => !document.querySelector('.queue li[data-id=\"{fid}\"]')")
    fb = [f for f in server.client.feedback_for(server.client.review_queue(include_processed=True, limit=1000)[0].generation_id) if str(f.id) == str(fid)]
    assert fb and fb[0].processed and fb[0].improved is True
    assert fb[0].review_notes == "the reply ignored the question; added a dictionary term"
