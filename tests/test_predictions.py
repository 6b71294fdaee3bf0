"""Predictions: registry, outcomes, and metrics checked against hand computation."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from learnloop.errors import Conflict, InvalidInput, NotFound


def auc_by_pairs(scores, labels):
    """ROC AUC as the probability a random positive outranks a random negative (ties count 1/2)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.fixture(scope="module")
def scored(client):
    rng = random.Random(42)
    rows, truth = [], []
    for i in range(300):
        score = round(rng.random(), 3)
        outcome = rng.random() < score * 0.8 + 0.1  # informative but imperfect
        rows.append({"model_name": "impago", "model_version": "v1", "score": score,
                     "subject": {"loan": str(1000 + i), "client": str(i % 40), "installment": str(i % 12 + 1)},
                     "label": "HIGH_RISK" if score >= 0.5 else "LOW_RISK", "factors": {"dias_mora": i % 30},
                     "external_id": f"imp-{i}"})
        truth.append(outcome)
    ids = client.predictions.bulk_log(rows)
    for pid, outcome in zip(ids[:250], truth[:250], strict=True):  # 50 still awaiting their outcome
        client.predictions.outcome(pid, outcome)
    return rows, truth, ids


def test_report_matches_hand_computation(client, scored):
    rows, truth, _ = scored
    s = [r["score"] for r in rows[:250]]
    y = truth[:250]
    t = 0.6
    tp = sum(1 for a, b in zip(s, y, strict=True) if a >= t and b)
    fp = sum(1 for a, b in zip(s, y, strict=True) if a >= t and not b)
    tn = sum(1 for a, b in zip(s, y, strict=True) if a < t and not b)
    fn = sum(1 for a, b in zip(s, y, strict=True) if a < t and b)
    r = client.predictions.report("impago", "v1", threshold=t, bins=5)
    assert (r["predictions"], r["with_outcome"], r["awaiting_outcome"]) == (300, 250, 50)
    assert r["confusion"] == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    assert r["accuracy"] == pytest.approx((tp + tn) / 250)
    assert r["precision"] == pytest.approx(tp / (tp + fp))
    assert r["recall"] == pytest.approx(tp / (tp + fn))
    assert r["brier"] == pytest.approx(sum((a - b) ** 2 for a, b in zip(s, y, strict=True)) / 250)
    assert r["roc_auc"] == pytest.approx(auc_by_pairs(s, y))
    assert 0.6 < r["roc_auc"] < 1  # the scores are informative
    # Calibration: 5 equal bins, the last one including 1.0.
    for b in r["calibration"]:
        members = [(a, o) for a, o in zip(s, y, strict=True) if min(int(a * 5) + 1, 5) == b["bin"]]
        assert b["count"] == len(members)
        assert b["mean_predicted"] == pytest.approx(sum(a for a, _ in members) / len(members))
        assert b["observed_rate"] == pytest.approx(sum(o for _, o in members) / len(members))
    assert sum(b["count"] for b in r["calibration"]) == 250


def test_undefined_metrics_are_none_not_errors(client):
    client.predictions.log(model_name="riesgo", model_version="v0", score=0.9, subject={"loan": "1"})
    r = client.predictions.report("riesgo", "v0")
    assert r["with_outcome"] == 0 and r["accuracy"] is None and r["calibration"] == []
    p = client.predictions.find(model_name="riesgo")[0]
    client.predictions.outcome(p["id"], True)
    r = client.predictions.report("riesgo", "v0", threshold=0.95)
    assert r["roc_auc"] is None  # one class only
    assert r["precision"] is None and r["recall"] == 0.0 and r["brier"] == pytest.approx(0.01)


def test_find_by_subject_and_outcome_rules(client, scored):
    _, _, ids = scored
    (p,) = client.predictions.find(subject={"loan": 1007})
    assert p["id"] == ids[7] and p["subject"]["installment"] == "8" and p["factors"] == {"dias_mora": 7}
    last = client.predictions.get("imp-299")
    assert last["outcome"] is None
    done = client.predictions.outcome("imp-299", False, note="pagó a tiempo")
    assert done["outcome"] is False and done["outcome_note"] == "pagó a tiempo"
    client.predictions.outcome("imp-299", False)  # same value again is fine
    with pytest.raises(Conflict, match="already has outcome"):
        client.predictions.outcome("imp-299", True)
    assert client.predictions.outcome("imp-299", True, replace=True)["outcome"] is True


def test_bad_input(client, scored):
    with pytest.raises(NotFound):
        client.predictions.outcome("01900000-0000-7000-8000-000000000000", True)
    with pytest.raises(NotFound):
        client.predictions.outcome("no-such-external-id", True)
    with pytest.raises(InvalidInput, match="true or false"):
        client.predictions.outcome("imp-1", "yes")
    with pytest.raises(InvalidInput, match="probability"):
        client.predictions.log(model_name="m", model_version="1", score=1.5)
    with pytest.raises(InvalidInput, match="probability"):
        client.predictions.log(model_name="m", model_version="1", score=float("nan"))
    with pytest.raises(NotFound):
        client.predictions.report("impago", "v999")
    n = len(client.predictions.find(limit=10_000))
    with pytest.raises(InvalidInput):  # one bad row: nothing of the batch is written
        client.predictions.bulk_log([{"model_name": "m", "model_version": "1", "score": 0.2},
                                     {"model_name": "m", "model_version": "1", "score": -0.1}])
    with pytest.raises(Conflict):
        client.predictions.bulk_log([{"model_name": "m", "model_version": "1", "score": 0.2, "external_id": "imp-3"}])
    assert len(client.predictions.find(limit=10_000)) == n


def test_outcome_emits_event(client, scored):
    _, _, ids = scored
    with client.db.connection() as conn:
        types = [r["event_type"] for r in conn.execute(
            "SELECT event_type FROM learnloop.events WHERE entity_type = 'prediction' AND entity_id = %s ORDER BY id",
            (str(ids[0]),)).fetchall()]
    assert types == ["prediction.logged", "prediction.outcome_recorded"]


def test_cli_predict(client, scored, cli_env):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "learnloop.cli.main", *args], env=cli_env,
                              capture_output=True, text=True, timeout=120)

    r = run("predict", "log", "--model", "cli", "--version", "1", "--score", "0.7", "--subject", "loan=9",
            "--factors", '{"x": 1}')
    assert r.returncode == 0, r.stderr
    pid = r.stdout.strip()
    assert run("predict", "outcome", pid, "true").returncode == 0
    r = run("predict", "report", "cli", "1", "--json")
    assert json.loads(r.stdout)["accuracy"] == 1.0
    r = run("predict", "outcome", "nope", "true")
    assert r.returncode == 1 and r.stderr.startswith("Error: no prediction nope")
