"""Quality of a model version against the outcomes recorded so far.

Only predictions with a known outcome count. At a threshold ``t`` a prediction is
positive when ``score >= t``. Definitions:

* accuracy = (TP + TN) / n; precision = TP / (TP + FP); recall = TP / (TP + FN)
  (``None`` when the denominator is 0);
* Brier score = mean((score - outcome)^2), lower is better, 0.25 = always saying 0.5;
* ROC AUC from scikit-learn's ``roc_auc_score`` (``None`` while only one outcome class
  has been seen: it is undefined then);
* calibration table: ``bins`` equal-width score bins (the last includes 1.0); per bin
  the count, the mean predicted score and the observed positive rate.

Confusion counts, Brier and the calibration table are computed by PostgreSQL; only the
AUC needs the scores in Python.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput, NotFound
from ..store.database import Conn
from ..store.tenancy import Scope

_COUNTS = """
SELECT count(*) AS n,
       count(*) FILTER (WHERE score >= %(th)s AND outcome) AS tp,
       count(*) FILTER (WHERE score >= %(th)s AND NOT outcome) AS fp,
       count(*) FILTER (WHERE score < %(th)s AND NOT outcome) AS tn,
       count(*) FILTER (WHERE score < %(th)s AND outcome) AS fn,
       avg((score - outcome::int) ^ 2) AS brier,
       avg(outcome::int) AS base_rate
FROM learnloop.predictions
WHERE tenant_id = %(t)s AND project_id = %(p)s AND model_name = %(m)s AND model_version = %(v)s
  AND outcome IS NOT NULL
"""

_CALIBRATION = """
SELECT least(width_bucket(score, 0, 1, %(b)s), %(b)s) AS bin, count(*) AS count,
       avg(score) AS mean_predicted, avg(outcome::int) AS observed_rate
FROM learnloop.predictions
WHERE tenant_id = %(t)s AND project_id = %(p)s AND model_name = %(m)s AND model_version = %(v)s
  AND outcome IS NOT NULL
GROUP BY 1 ORDER BY 1
"""


def report(conn: Conn, scope: Scope, model_name: str, model_version: str, *,
           threshold: float = 0.5, bins: int = 10) -> dict[str, Any]:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise InvalidInput("threshold must be from 0 to 1", field="threshold")
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 100:
        raise InvalidInput("bins must be a whole number from 2 to 100", field="bins")
    base = {"t": scope.tenant_id, "p": scope.project_id, "m": model_name, "v": model_version}
    counted = conn.execute(
        "SELECT count(*) AS n FROM learnloop.predictions WHERE tenant_id = %(t)s AND project_id = %(p)s"
        " AND model_name = %(m)s AND model_version = %(v)s", base).fetchone()
    assert counted is not None  # an aggregate without GROUP BY returns exactly one row
    total = counted["n"]
    if total == 0:
        raise NotFound(f"no predictions by {model_name} version {model_version} in project {scope.project!r}")
    c = conn.execute(_COUNTS, {**base, "th": threshold}).fetchone()
    assert c is not None  # likewise (_COUNTS is all aggregates)
    n = c["n"]
    out: dict[str, Any] = {
        "model_name": model_name, "model_version": model_version, "threshold": threshold,
        "predictions": total, "with_outcome": n, "awaiting_outcome": total - n,
    }
    if n == 0:
        return {**out, "accuracy": None, "precision": None, "recall": None, "roc_auc": None, "brier": None,
                "base_rate": None, "confusion": None, "calibration": []}
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    rows = conn.execute(
        "SELECT score, outcome FROM learnloop.predictions WHERE tenant_id = %(t)s AND project_id = %(p)s"
        " AND model_name = %(m)s AND model_version = %(v)s AND outcome IS NOT NULL", base).fetchall()
    labels = [int(r["outcome"]) for r in rows]
    auc = None
    if 0 < sum(labels) < len(labels):
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(labels, [r["score"] for r in rows]))
    cal = conn.execute(_CALIBRATION, {**base, "b": bins}).fetchall()
    return {
        **out,
        "accuracy": (tp + tn) / n,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "roc_auc": auc,
        "brier": float(c["brier"]),
        "base_rate": float(c["base_rate"]),
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
        "calibration": [
            {"bin": r["bin"], "low": (r["bin"] - 1) / bins, "high": r["bin"] / bins, "count": r["count"],
             "mean_predicted": float(r["mean_predicted"]), "observed_rate": float(r["observed_rate"])}
            for r in cal
        ],
    }


def versions(conn: Conn, scope: Scope, model_name: str | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT model_name, model_version, count(*) AS predictions, count(outcome) AS with_outcome,"
           " min(created_at) AS first_at, max(created_at) AS last_at FROM learnloop.predictions"
           " WHERE tenant_id = %s AND project_id = %s")
    params: list[Any] = [scope.tenant_id, scope.project_id]
    if model_name:
        sql += " AND model_name = %s"
        params.append(model_name)
    return conn.execute(sql + " GROUP BY 1, 2 ORDER BY 1, 2", params).fetchall()
