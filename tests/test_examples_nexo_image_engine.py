"""examples/nexo_image_engine (seed 000): generations with telemetry and engine config,
negative feedback with tags and instructions, regenerations, and the seed's analytics."""

from __future__ import annotations

from typing import Any

import pytest
from examples.nexo_image_engine.app import run

import learnloop


@pytest.fixture(scope="module")
def result(client: learnloop.Client) -> dict[str, Any]:
    return run(client.scoped(tenant="nexo", project="image-engine"), out=lambda _: None)


def test_failure_rate_by_style_preset(result: dict[str, Any]) -> None:
    got = {r.value: (r.negative, r.rated) for r in result["rates"]}
    assert got == {"CYBERPUNK_DARK": (3, 5), "BLUEPRINT": (1, 4), "WATERCOLOR": (1, 2)}
    assert [r.value for r in result["rates"]][0] == "CYBERPUNK_DARK"  # worst first


def test_golden_assets_under_efficiency(result: dict[str, Any]) -> None:
    assert sorted((g.config["style_preset"], g.config["audience"]) for g in result["golden"]) == [
        ("BLUEPRINT", "engineers"), ("BLUEPRINT", "public"), ("CYBERPUNK_DARK", "investors"), ("WATERCOLOR", "public")]
    assert all(g.context["efficiency"] < 0.08 and g.positives > g.negatives for g in result["golden"])


def test_tags_and_corrections(result: dict[str, Any]) -> None:
    assert {t.tag: t.count for t in result["tags"]} == {"TOO_DARK": 2, "UNREADABLE_LABELS": 1, "TOO_TECHNICAL": 1,
                                                        "OFF_BRAND": 1}
    c = result["corrections"]
    assert (c.negative, c.regenerated, c.fixed) == (5, 3, 2)
    assert [p.iteration for p in result["path"]] == [1, 2]
    assert "brighter" in (result["path"][1].prompt or "")
