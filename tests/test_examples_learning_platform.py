"""examples/learning_platform (seed 003): goals, tasks and code snapshots as entities,
"similar completed goals of this user", "validated code with score > 0.8", the app's
domain events through the live WebSocket view, the Parquet archive (DuckDB report) and a
RabbitMQ consumer (when the broker at 127.0.0.1:5672 is up; required under CI=true)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from examples.learning_platform.main import broker_up, run

import learnloop


@pytest.fixture(scope="module")
def result(client: learnloop.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not broker_up() and os.environ.get("CI") == "true":
        pytest.fail("RabbitMQ is not reachable at 127.0.0.1:5672")
    ll = client.scoped(tenant="learning-platform", project="platform")
    lines: list[str] = []
    out = run(ll, archive_root=str(tmp_path_factory.mktemp("lp") / "archive"), out=lines.append)
    out["lines"] = lines
    return out


def test_domain_events_reach_the_live_view_in_order(result: dict[str, Any]) -> None:
    assert result["emitted"] == 30
    live = result["live"]
    ids = [e["id"] for e in live]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 19  # created 6, task done 5, validated 4, goal done 4
    assert [e["event_type"] for e in live].count("goal.completed") == 4
    assert live[0]["entity_type"] == "goal" and live[0]["actor"] == "ana"


def test_similar_completed_goals_of_this_user(result: dict[str, Any]) -> None:
    goals = [g["goal_id"] for g in result["similar"]]
    assert goals[0] == "g-ana-1"  # the FastAPI goal, for "build web APIs in Python"
    assert set(goals) <= {"g-ana-1", "g-ana-2"}, "only ana's, only completed (g-ana-3 is active)"


def test_validated_code_above_the_score(result: dict[str, Any]) -> None:
    code = result["code"]
    assert code[0]["snapshot_id"] == "c-1"
    assert all(c["score"] > 0.8 for c in code) and "c-2" not in {c["snapshot_id"] for c in code}


def test_archive_report_and_productivity(result: dict[str, Any]) -> None:
    r = result["report"]
    assert (r["goals_created"], r["goals_completed"], r["tasks_completed"], r["code_validated"]) == (6, 4, 5, 4)
    assert r["avg_validation_score"] == pytest.approx((0.95 + 0.55 + 0.9 + 0.85) / 4)
    by_user = {row["user"]: row for row in result["productivity"]}
    assert (by_user["ana"]["tasks_completed"], by_user["ana"]["minutes"]) == (3, 125)
    assert by_user["ben"]["tasks_completed"] == 1


def test_rabbitmq_consumer_scores_users(result: dict[str, Any]) -> None:
    if not result["points"]:
        pytest.skip("RabbitMQ is not reachable at 127.0.0.1:5672 (required when CI=true)")
    assert result["points"] == {"ana": 167.0, "ben": 71.0, "cleo": 77.0}
