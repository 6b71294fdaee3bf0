"""Seed 000's questions, asked as the seed asks them, and the analytics' bad-input errors in
the library, the HTTP API and the CLI.

The ledger here is built so each question has a known answer: large plants (> 500 kW)
reject the minimalist style and small ones do not; dark styles collect TOO_DARK and
minimal ones OFF_BRAND; rejected dark images regenerated with more light are accepted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

import learnloop
from learnloop import InvalidInput
from learnloop.api import create_app
from learnloop.config import get_settings

BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def hub(client: learnloop.Client) -> learnloop.Client:
    ll = client.scoped(tenant="nexo", project="pyrolysis-hub")
    rows, feedback = [], []
    i = 0

    def add(style: str, kw: int, efficiency: float, bad: bool, tag: str | None, audience: str = "INVESTOR") -> Any:
        nonlocal i
        i += 1
        g = {"kind": "image", "prompt": f"plant {i}", "config": {"audience": audience, "style_preset": style},
             "context": {"demand_kw": kw, "cost_eur": kw * 480, "efficiency": efficiency},
             "output_url": f"https://cdn/{i}.png", "created_at": BASE + timedelta(minutes=i)}
        rows.append(g)
        feedback.append((len(rows) - 1, "NEGATIVE" if bad else "POSITIVE", [tag] if tag and bad else []))
        return g

    for k in range(40):  # big plants: minimal rejected 3 times in 4
        add("MINIMAL", 600 + k, 0.1, bad=k % 4 != 0, tag="OFF_BRAND")
    for k in range(40):  # small plants: minimal mostly liked
        add("MINIMAL", 150 + k, 0.1, bad=k % 8 == 0, tag="OFF_BRAND")
    for k in range(40):  # dark style: rejected half the time, for darkness
        add("CYBERPUNK_DARK", 200 + 20 * k, 0.05 + (k % 5) / 100, bad=k % 2 == 0, tag="TOO_DARK")
    for k in range(20):
        add("BLUEPRINT", 300 + k, 0.07, bad=k % 5 == 0, tag="TEXT_GLITCH", audience="ENGINEER")
    ids = ll.bulk_log(rows)
    ll.bulk_feedback([{"generation_id": ids[j], "sentiment": s, "tags": t} for j, s, t in feedback])
    # Corrections: the first 10 rejected dark images regenerated brighter; 8 of them accepted.
    rejected = [ids[j] for j, s, _ in feedback if s == "NEGATIVE" and rows[j]["config"]["style_preset"] == "CYBERPUNK_DARK"]
    for n, parent in enumerate(rejected[:10]):
        fix = ll.log(kind="image", prompt="brighter", parent_id=parent,
                     config={"audience": "INVESTOR", "style_preset": "CYBERPUNK_DARK", "lighting": "bright"},
                     context={"demand_kw": 400, "efficiency": 0.06})
        ll.feedback(fix.id, sentiment="POSITIVE" if n < 8 else "NEGATIVE", instruction="add more light")
    return ll


def test_do_plants_over_500_kw_reject_the_minimalist_style(hub):
    b = hub.analytics.breakdown(["style_preset", "demand_kw:bands=0,500"])
    minimal = {g.by[1].value: g for g in b.groups if g.by[0].value == "MINIMAL"}
    big, small = minimal[">= 500"], minimal["0 - 500"]
    assert (big.attempts, big.negative) == (40, 30) and (small.attempts, small.negative) == (40, 5)
    # Yes: the intervals do not even overlap, so it is not noise.
    assert big.failure_low > small.failure_high
    assert minimal["< 0"].attempts == 0  # every band is listed, empty ones too


def test_which_tag_dominates_which_preset(hub):
    b = hub.analytics.breakdown(["style_preset", "tag"], verdict="NEGATIVE")
    top: dict[str, tuple[int, str]] = {}
    for g in b.groups:
        preset, tag = g.by[0].value, g.by[1].value
        if tag is not None and g.attempts > top.get(preset, (0, ""))[0]:
            top[preset] = (g.attempts, tag)
    assert {p: t for p, (_, t) in top.items()} == {
        "CYBERPUNK_DARK": "TOO_DARK", "MINIMAL": "OFF_BRAND", "BLUEPRINT": "TEXT_GLITCH"}


def test_failure_rate_by_style_preset(hub):
    rows = hub.analytics.failure_rate("style_preset")
    assert [r.value for r in rows] == ["CYBERPUNK_DARK", "MINIMAL", "BLUEPRINT"]
    dark = rows[0]
    assert (dark.attempts, dark.rated, dark.negative) == (50, 50, 22)  # 20 originals + 2 failed fixes
    assert dark.failure_rate == pytest.approx(22 / 50)
    assert dark.failure_low < dark.failure_rate < dark.failure_high


def test_golden_assets_with_efficiency_below_0_08(hub):
    rows = hub.analytics.golden(["efficiency<0.08"], limit=100)
    assert rows and all(r.context["efficiency"] < 0.08 and r.positives > r.negatives for r in rows)
    # Every positively judged image under 0.08, newest first: 20 dark originals with
    # efficiency 0.05-0.07 of which 12 liked, 16 blueprints liked, 8 accepted fixes.
    assert len(rows) == 12 + 16 + 8
    assert [r.created_at for r in rows] == sorted((r.created_at for r in rows), reverse=True)


def test_did_corrections_fix_it(hub):
    r = hub.analytics.corrections()
    assert (r.regenerated, r.fixed) == (10, 8)
    assert r.fix_rate == pytest.approx(0.8)
    assert r.iterations[2] == 8  # those trees first succeeded at the second attempt


def test_what_drives_failure(hub):
    d = hub.analytics.drivers(min_rated=5)
    keys = [f"{x.source}.{x.key}" for x in d.drivers]
    # Demand decides (cost is demand x 480: the same signal); efficiency was not built to
    # matter, and over all presets the style's intervals still overlap (0.44 of 50, 0.44 of
    # 80, 0.20 of 20): said so rather than ranked as a finding.
    assert d.drivers[0].differs and keys[0] in ("context.demand_kw", "context.cost_eur")
    assert "context.demand_kw" not in d.no_difference
    assert {"context.efficiency", "config.style_preset"} <= set(d.no_difference)
    kw = next(x for x in d.drivers if x.key == "demand_kw")
    assert kw.kind == "bins" and len(kw.edges) == 3 and kw.spread > 0.4
    assert d.rated == 150


def test_find_by_config_and_context_with_keyset_pages(hub):
    found = hub.find(["style_preset=MINIMAL", "demand_kw>500"], limit=100)
    assert len(found) == 40 and all(g.context["demand_kw"] > 500 for g in found)
    first = hub.find({"style_preset": "MINIMAL", "demand_kw": {"gt": 500}}, limit=15)
    second = hub.find({"style_preset": "MINIMAL", "demand_kw": {"gt": 500}}, limit=15, after=first[-1].id)
    third = hub.find({"style_preset": "MINIMAL", "demand_kw": {"gt": 500}}, limit=15, after=second[-1].id)
    assert [g.id for g in first + second + third] == [g.id for g in found]
    assert len(third) == 10
    rejected = hub.find(["style_preset=MINIMAL"], filters={"verdict": ["NEGATIVE"], "tags": ["OFF_BRAND"]}, limit=100)
    assert len(rejected) == 35


def test_the_cli_asks_the_seed_question(hub, db_url):
    env = {**__import__("os").environ, "LEARNLOOP_DATABASE_URL": db_url, "LEARNLOOP_TENANT": "nexo",
           "LEARNLOOP_PROJECT": "pyrolysis-hub"}
    args = ["stats", "breakdown", "--by", "style_preset", "--by", "demand_kw:bands=0,100,500",
            "--where", "audience=INVESTOR", "--json"]
    p = subprocess.run([sys.executable, "-m", "learnloop.cli.main", *args], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    b = json.loads(p.stdout)
    assert [d["label"] for d in b["dimensions"]] == ["config.style_preset", "context.demand_kw"]
    assert all(g["by"][0]["value"] != "BLUEPRINT" for g in b["groups"])  # engineers filtered out
    assert b["total"]["attempts"] == 130
    p = subprocess.run([sys.executable, "-m", "learnloop.cli.main", "stats", "drivers", "--min-rated", "5"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "style_preset" in p.stdout


# -- bad input: library, API, CLI --------------------------------------------------------

BAD = [
    ({"by": [{"kind": "colour", "key": "x"}]}, "unknown dimension kind 'colour'"),
    ({"by": ["demand_kw:bands=500,100"]}, "strictly increasing"),
    ({"by": ["demand_kw:bands=0,lots"]}, "band edges must be numbers"),
    ({"by": ["style_preset", "model", "day"]}, "at most 2 dimensions"),
    ({"by": ["day:tz=Mars/Olympus_Mons"]}, "unknown time zone 'Mars/Olympus_Mons'"),
    ({"by": ["demand_kw:bins=1"]}, "bins must be a whole number from 2"),
    ({"where": {"audience'; DROP TABLE learnloop.generations; --": "x"}}, "never run as SQL"),
    ({"by": ["style_preset'); DELETE FROM learnloop.feedback; --"]}, "never run as SQL"),
]


@pytest.mark.parametrize(("ask", "message"), BAD)
def test_bad_input_is_a_specific_error_in_the_library(hub, ask, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        hub.analytics.breakdown(ask.get("by", []), ask.get("where"))
    assert hub.analytics.failure_rate("style_preset")  # nothing was harmed


@pytest.fixture(scope="module")
def api(client, hub, tmp_path_factory):
    home = tmp_path_factory.mktemp("api-analytics")
    app = create_app(get_settings(home=home, archive_root=str(home / "archive")), client=client, archive=False)
    _, key = hub.events.create_key("analyst", ["read"])
    with TestClient(app) as tc:
        yield tc, {"Authorization": f"Bearer {key}", "X-Learnloop-Project": "pyrolysis-hub"}


@pytest.mark.parametrize(("ask", "message"), BAD)
def test_bad_input_is_a_422_problem_in_the_api(api, ask, message):
    tc, h = api
    r = tc.post("/v1/analytics/breakdown", headers=h, json=ask)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert message in r.json()["detail"]


def test_api_breakdown_get_and_post_agree(api):
    tc, h = api
    g = tc.get("/v1/analytics/breakdown", headers=h,
               params={"by": ["style_preset", "demand_kw:bands=0,100,500"], "where": "audience=INVESTOR"})
    p = tc.post("/v1/analytics/breakdown", headers=h,
                json={"by": ["style_preset", "demand_kw:bands=0,100,500"], "where": {"audience": "INVESTOR"}})
    assert g.status_code == p.status_code == 200
    assert g.json() == p.json()
    assert g.json()["total"]["attempts"] == 130
    d = tc.get("/v1/analytics/drivers", headers=h, params={"min_rated": 5})
    assert d.status_code == 200 and d.json()["rated"] == 150
    f = tc.get("/v1/generations", headers=h, params={"where": ["style_preset=MINIMAL", "demand_kw>500"], "limit": 30})
    page2 = tc.get("/v1/generations", headers=h, params={"where": ["style_preset=MINIMAL", "demand_kw>500"], "limit": 30,
                                                        "after": f.json()["next_after"]})
    assert len(f.json()["items"]) == 30 and len(page2.json()["items"]) == 10 and page2.json()["next_after"] is None
    bad = tc.get("/v1/analytics/breakdown", headers=h, params={"by": "week:tz=Nowhere/Land"})
    assert bad.status_code == 422 and "unknown time zone" in bad.json()["detail"]


@pytest.mark.parametrize(("args", "message"), [
    (["--by", "demand_kw:colour=3"], "unknown dimension option 'colour'"),
    (["--by", "demand_kw:bands=500,100"], "strictly increasing"),
    (["--by", "style_preset", "--by", "model", "--by", "day"], "at most 2 dimensions"),
    (["--by", "day:tz=Mars/Olympus_Mons"], "unknown time zone"),
    (["--where", "audience';DROP TABLE x=1"], "never run as SQL"),
])
def test_bad_input_is_one_line_in_the_cli(db_url, args, message):
    env = {**__import__("os").environ, "LEARNLOOP_DATABASE_URL": db_url}
    p = subprocess.run([sys.executable, "-m", "learnloop.cli.main", "stats", "breakdown", *args], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert message in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
