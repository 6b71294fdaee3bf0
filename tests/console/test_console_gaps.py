"""Bulk review in one call, creating a project, what drives failure, fine-tuning jobs with
their progress and events, retrieved chunks with their documents, the lineage tree drawn
as a tree — in the browser, on the demo's data (OpenAssistant trees + the image engine)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

import learnloop
from learnloop.config import get_settings
from tests.fake_openai_server import FakeOpenAI

from .conftest import ROOT, Server, load_demo, shot, shot_of, sign_in, start_server

AXE = ROOT / "console" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("console-gaps")
    ll = learnloop.connect(db_url, project="demo")
    load_demo(ll)
    ll.training.create_dataset("good-chats", {"verdict": "POSITIVE", "kind": "chat"})
    with FakeOpenAI() as fake:
        s = get_settings(home=home, archive_root=str(home / "archive"), finetune_base_url=fake.base_url,
                         finetune_api_key="sk-test", finetune_timeout=5, api_preload_model=False)
        srv = start_server(ll, s)
        srv.extra["fake"] = fake
        yield srv
        srv.server.should_exit = True
        srv.thread.join(timeout=15)
    ll.close()


def _axe(browser: Any, server: Server, url: str, ready: str) -> list[str]:
    ctx = browser.new_context(bypass_csp=True, viewport={"width": 1360, "height": 900})
    try:
        page = ctx.new_page()
        sign_in(page, server)
        page.goto(server.url + url)
        page.locator(ready).first.wait_for()
        page.wait_for_load_state("networkidle")
        page.add_script_tag(path=str(AXE))
        return list(page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
            ".map(v => v.id + ': ' + v.help + ' (' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; ') + ')')"))
    finally:
        ctx.close()


def test_bulk_review_is_one_request(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.goto(f"{server.url}/review?project=demo")
    page.locator(".queue li").nth(2).wait_for()
    ids = [page.locator(".queue li").nth(i).get_attribute("data-id") for i in range(3)]
    # Select three by keyboard: x on the current item, j to the next.
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    bulk = page.get_by_role("group", name="Bulk actions")
    bulk.get_by_role("button", name="Mark 3 selected as reviewed").wait_for()
    page.get_by_label("Review notes").fill("closed together: same dark preset")
    posts: list[str] = []
    page.on("request", lambda r: r.method == "POST" and "/v1/feedback" in r.url and posts.append(r.url))
    bulk.get_by_role("button", name="… and improved").click()
    page.get_by_role("status").filter(has_text="3 items marked as reviewed.").wait_for()
    for fid in ids:
        page.wait_for_function(f"() => !document.querySelector('.queue li[data-id=\"{fid}\"]')")
    assert posts == [f"{server.url}/v1/feedback/review"], posts
    done = {str(f.id): f for f in server.client.review_queue(include_processed=True, limit=5000) if str(f.id) in ids}
    assert len(done) == 3
    for fid in ids:
        fb = [f for f in server.client.feedback_for(done[fid].generation_id) if str(f.id) == fid][0]
        assert fb.processed and fb.improved is True and fb.review_notes == "closed together: same dark preset"


def test_create_a_project_and_a_taken_name_says_so(page: Any, server: Server, watch: Any) -> None:
    watch.allowed.append("409")  # the browser logs the refused POST; the page says why
    sign_in(page, server)
    page.goto(f"{server.url}/settings?project=demo")
    form = page.get_by_role("form", name="Create a project")
    form.get_by_label("Project name").fill("support-bot")
    form.get_by_role("button", name="Create project").click()
    form.get_by_role("status").filter(has_text="Project support-bot created.").wait_for()
    page.get_by_role("table").filter(has_text="Projects").get_by_role("link", name="support-bot").wait_for()
    assert "support-bot" in [p["name"] for p in server.client.projects()]
    form.get_by_label("Project name").fill("support-bot")
    form.get_by_role("button", name="Create project").click()
    alert = form.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text() == "a project named 'support-bot' already exists in this tenant"
    shot_of(page.locator("section[aria-labelledby=proj-h]"), "settings-projects")
    # The project list's link opens that project (the picker follows the URL).
    page.get_by_role("table").filter(has_text="Projects").get_by_role("link", name="support-bot").click()
    page.get_by_role("heading", name="Overview").wait_for()
    assert page.get_by_label("Project").input_value() == "support-bot"


def test_the_header_picker_lists_a_project_created_on_settings(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.goto(f"{server.url}/settings?project=demo")
    page.get_by_role("table").filter(has_text="Projects").get_by_role("link", name="demo").wait_for()
    page.wait_for_load_state("networkidle")
    picker = page.locator("#project-picker")
    assert "from-settings" not in picker.locator("option").all_inner_texts()
    form = page.get_by_role("form", name="Create a project")
    form.get_by_label("Project name").fill("from-settings")
    form.get_by_role("button", name="Create project").click()
    form.get_by_role("status").filter(has_text="Project from-settings created.").wait_for()
    # No page reload: the picker asked for the list again.
    page.wait_for_function("() => [...document.querySelectorAll('#project-picker option')]"
                           ".some(o => o.value === 'from-settings')")
    picker.select_option("from-settings")
    page.wait_for_url("**project=from-settings**")
    page.get_by_role("heading", name="Projects of").wait_for()
    assert picker.input_value() == "from-settings"


def test_what_drives_failure(page: Any, server: Server, browser: Any) -> None:
    sign_in(page, server)
    page.goto(f"{server.url}/analytics?project=demo&dkind=image")
    table = page.get_by_role("table").filter(has_text="Keys ranked by how much they move the failure rate")
    table.wait_for()
    keys = [c.inner_text() for c in table.locator("tbody tr td:nth-child(2)").all()]
    differs = [c.inner_text() for c in table.locator("tbody tr td:nth-child(6)").all()]
    assert "config.style_preset" in keys[:3] and differs[keys.index("config.style_preset")] == "yes"
    no_diff = page.locator(".no-difference").inner_text()
    assert "config.aspect" in no_diff and "context.region" in no_diff
    canvas = page.locator('canvas[data-chart="Spread of the failure rate by key (ranked)"]')
    assert json.loads(canvas.get_attribute("data-labels"))[: len(keys)] == keys
    spreads = json.loads(canvas.get_attribute("data-values"))[0]
    assert spreads[keys.index("config.style_preset")] > 0.3
    with page.expect_download() as dl:
        table.get_by_role("button", name="Download CSV").click()
    text = open(dl.value.path()).read()
    assert text.startswith("rank,key,kind,groups,spread,differs,worst,best\n") and "config.style_preset" in text
    # Every column carries data (the table's "Break down" buttons are not in the file).
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == len(keys)
    for col in ("rank", "key", "kind", "groups", "spread", "differs", "worst", "best"):
        assert any(r[col] for r in records), f"column {col} is empty in every row"
    preset = next(r for r in records if r["key"] == "config.style_preset")
    assert all(preset.values()), preset
    assert preset["differs"] == "yes" and float(preset["spread"]) > 0.3 and int(preset["groups"]) == 5
    shot_of(page.locator("section[aria-labelledby=drivers-h]"), "drivers")
    # A binned key is charted in the bands its row ranks: same edges, same worst group.
    worst = next(r for r in records if r["key"] == "context.demand_kw")["worst"]  # e.g. ">= 530 43.3% of 104"
    table.get_by_role("button", name="Break down by context.demand_kw").click()
    page.wait_for_url("**bands**")
    chart = page.get_by_role("table").filter(has_text="Failure rate by context.demand_kw:bands=")
    chart.wait_for()
    assert worst.rsplit(" ", 3)[0] in chart.inner_text(), (worst, chart.inner_text())  # the worst band's label
    # From a key to its chart, then crossed with the plant's demand band (seed 000's 2-D question).
    table.get_by_role("button", name="Break down by config.style_preset").click()
    page.wait_for_url("**by=style_preset**")
    page.locator('canvas[data-chart="Failure rate by config.style_preset"]').wait_for()
    page.get_by_label("Second dimension (optional)").fill("context.demand_kw:bands=100,500")
    page.get_by_role("button", name="Cross").click()
    label = "Failure rate by config.style_preset × context.demand_kw:bands=100,500"
    page.locator(f'canvas[data-chart="{label}"]').wait_for()
    cross = page.get_by_role("table").filter(has_text=label)
    cross.locator("tbody tr").filter(has_text="MINIMAL").nth(2).wait_for()  # the crossed answer, not the last one
    minimal = [r.inner_text() for r in cross.locator("tbody tr").all() if r.inner_text().startswith("MINIMAL")]
    assert len(minimal) == 3, minimal
    shot_of(page.locator("section[aria-labelledby=fr-h]"), "analytics-2d")
    assert not _axe(browser, server, "/analytics?project=demo&dkind=image", "section[aria-labelledby=drivers-h] table")


def test_start_a_fine_tuning_job_and_follow_it(page: Any, server: Server, browser: Any) -> None:
    sign_in(page, server)
    page.goto(f"{server.url}/training?project=demo")
    form = page.get_by_role("form", name="Start a fine-tuning job")
    form.get_by_label("Dataset").select_option(label="good-chats@1")
    form.get_by_label("Suffix").fill("console")
    form.get_by_role("button", name="Start job").click()
    form.get_by_role("status").filter(has_text="Started job").wait_for()
    page.wait_for_url("**job=**")
    detail = page.locator("article").filter(has=page.get_by_role("heading", name="Job "))
    detail.wait_for()
    assert detail.locator(".status").first.inner_text() in ("pending", "running")
    sync = detail.get_by_role("button", name="Sync with the provider")
    progress: list[float] = []
    for _ in range(6):
        sync.click()
        detail.get_by_role("status").filter(has_text="Synced:").wait_for()
        page.wait_for_function("() => !document.querySelector('article button[disabled]')")
        progress.append(float(detail.locator("progress").first.get_attribute("value") or 0))
        if detail.locator(".status").first.inner_text() == "succeeded":
            break
    assert detail.locator(".status").first.inner_text() == "succeeded", progress
    assert progress == sorted(progress) and progress[0] < 100 and progress[-1] == 100
    assert detail.locator(".progress").first.inner_text().strip() == "100%"
    events = detail.get_by_role("table").filter(has_text="provider events")
    events.get_by_text("Step 2/3: training loss=0.50").wait_for()
    events.get_by_text("The job has successfully completed").wait_for()
    shot_of(detail, "training-job")
    jid = page.url.split("job=")[1].split("&")[0]
    assert not _axe(browser, server, f"/training?project=demo&job={jid}", "article table")
    # The resulting model's training generations.
    detail.get_by_role("link", name="ft:").first.click()
    page.get_by_role("table").filter(has_text="Generations that trained ft:").wait_for()
    n = page.get_by_role("table").filter(has_text="Generations that trained ft:").locator("tbody tr").count()
    assert n == server.client.training.job(jid).example_count or n > 0


def test_retrieved_chunks_link_to_their_document(page: Any, server: Server, browser: Any) -> None:
    ll = server.client
    doc = ll.knowledge.ingest_bytes(b"Image guidelines: large plants need detailed reactors.\n\nNever use dark presets "
                                   b"for investors.", file_name="guia-de-estilo.txt", title="Style guide")
    chunk = ll.knowledge.document(doc.document_id, chunks=True)["chunks"][0]
    g = ll.log(kind="image", prompt="Planta de 900 kW, estilo minimal", output_url="/demo-images/minimal/9999.svg?kw=900",
               retrieved=[{"type": "chunk", "id": str(chunk["id"]), "score": 0.77},
                          {"type": "document", "id": "brand-wiki", "content": "external brand wiki page"}])
    sign_in(page, server)
    page.goto(f"{server.url}/generations/{g.id}?project=demo")
    section = page.locator("section[aria-labelledby=retrieved-h]")
    link = section.get_by_role("link", name="Style guide")
    link.wait_for()
    assert "guia-de-estilo.txt" in section.locator("li").first.inner_text()
    assert "score 0.770" in section.locator("li").first.inner_text()
    assert "not a stored document (brand-wiki)" in section.locator("li").nth(1).inner_text()
    assert not _axe(browser, server, f"/generations/{g.id}?project=demo", "section[aria-labelledby=retrieved-h] li")
    link.click()
    page.get_by_role("heading", name="Document: Style guide").wait_for()
    assert f"document={doc.document_id}" in page.url
    page.get_by_text("guia-de-estilo.txt (txt").wait_for()


def test_the_lineage_tree_is_drawn_as_a_tree(page: Any, server: Server) -> None:
    # The demo's first plant: a rejected image tried again two ways, each of those once more.
    with server.client.db.connection() as conn:
        root = conn.execute(
            "SELECT g.root_id FROM learnloop.generations g WHERE g.tenant_id = %s AND g.external_id = 'demo-image-0'",
            (server.client.scope.tenant_id,)).fetchone()["root_id"]
    tree = server.client.tree(root)
    assert len(tree.children) == 2 and all(len(c.children) == 1 for c in tree.children)
    sign_in(page, server)
    page.goto(f"{server.url}/generations/{root}?project=demo")
    svg = page.get_by_role("group", name="Lineage tree")
    svg.wait_for()
    nodes = page.locator("[data-node]")
    assert nodes.count() >= 4
    # Drawn as a tree: children sit below their parent, siblings side by side.
    boxes = {n.get_attribute("data-node"): n.bounding_box() for n in nodes.all()}
    a, b = (str(c.id) for c in tree.children)
    grandchild = str(tree.children[0].children[0].id)
    assert boxes[a]["y"] == boxes[b]["y"] > boxes[str(root)]["y"] and boxes[a]["x"] != boxes[b]["x"]
    assert boxes[grandchild]["y"] > boxes[a]["y"]
    page.wait_for_function("() => [...document.querySelectorAll('[data-node] image')].length >= 5")
    shot(page, "generation-image")
    shot_of(page.locator(".tree-wrap"), "lineage-tree")
    # Enter on a node moves to it.
    page.locator(f'[data-node="{a}"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/generations/{a}**")


LOADED = "i => i.complete && i.naturalWidth > 0"


def test_demo_images_load_with_no_internet(page: Any, server: Server) -> None:
    """The demo's outputs are pictures this server draws (relative /demo-images/ URLs): in
    the golden gallery and on the generation page they actually load (no request leaves
    for another host; a failed load would be a console error)."""
    elsewhere: list[str] = []
    page.on("request", lambda r: not r.url.startswith(server.url) and elsewhere.append(r.url))
    sign_in(page, server)
    page.goto(f"{server.url}/analytics?project=demo&gsource=context&where=demand_kw%3E0")
    img = page.locator(".gallery img").first
    img.wait_for()
    img.scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('.gallery img')].slice(0, 4)"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert img.evaluate(LOADED)
    assert (img.get_attribute("src") or "").startswith(f"{server.url}/demo-images/")
    # From the gallery to the generation page: the same picture, full size.
    page.locator(".gallery li").first.get_by_role("link").click()
    page.wait_for_url("**/generations/**")
    out = page.locator("img.output-image")
    out.wait_for()
    page.wait_for_function("() => { const i = document.querySelector('img.output-image');"
                           " return i && i.complete && i.naturalWidth > 0 }")
    assert out.evaluate("i => i.naturalWidth") >= 240
    assert page.get_by_text("output URL: /demo-images/").count() == 1
    assert not elsewhere, elsewhere
