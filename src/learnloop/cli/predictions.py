"""Prediction commands: ``predict log|outcome|report|list|versions``."""

from __future__ import annotations

from typing import Any

import click

from ._common import echo_json, get_client, json_flag, json_option, table
from .ledger import _pair


@click.group()
def predict() -> None:
    """Model predictions (risk, default...) with their real outcomes."""


@predict.command("log")
@click.option("--model", "model_name", required=True)
@click.option("--version", "model_version", required=True)
@click.option("--score", type=float, required=True, help="Probability of the positive outcome, 0-1.")
@click.option("--subject", "subject", multiple=True, help="TYPE=ID, e.g. --subject loan=456 (repeatable).")
@click.option("--label")
@click.option("--factors", help="JSON object.")
@click.option("--external-id")
@json_flag
@click.pass_context
def predict_log(ctx: click.Context, subject: tuple[str, ...], factors: str | None, as_json: bool,
                **fields: Any) -> None:
    """Register one prediction; prints its id."""
    data = {k: v for k, v in fields.items() if v is not None}
    data["subject"] = dict(_pair(x, "--subject") for x in subject)
    if factors is not None:
        data["factors"] = json_option(factors, "factors")
    p = get_client(ctx).predictions.log(data)
    echo_json(p) if as_json else click.echo(str(p["id"]))


@predict.command("outcome")
@click.argument("prediction")
@click.argument("outcome", type=click.Choice(["true", "false", "1", "0", "yes", "no"], case_sensitive=False))
@click.option("--note")
@click.option("--replace", is_flag=True, help="Overwrite an outcome already recorded.")
@json_flag
@click.pass_context
def predict_outcome(ctx: click.Context, prediction: str, outcome: str, note: str | None, replace: bool,
                    as_json: bool) -> None:
    """Record what really happened for PREDICTION (id or external id)."""
    value = outcome.lower() in ("true", "1", "yes")
    p = get_client(ctx).predictions.outcome(prediction, value, note=note, replace=replace)
    echo_json(p) if as_json else click.echo(f"{p['id']} outcome={p['outcome']}")


@predict.command("report")
@click.argument("model_name")
@click.argument("model_version")
@click.option("--threshold", default=0.5, show_default=True)
@click.option("--bins", default=10, show_default=True)
@json_flag
@click.pass_context
def predict_report(ctx: click.Context, model_name: str, model_version: str, threshold: float, bins: int,
                   as_json: bool) -> None:
    """Accuracy, precision/recall at a threshold, ROC AUC, Brier and calibration of a model version."""
    r = get_client(ctx).predictions.report(model_name, model_version, threshold=threshold, bins=bins)
    if as_json:
        echo_json(r)
        return
    for k in ("predictions", "with_outcome", "threshold", "accuracy", "precision", "recall", "roc_auc", "brier",
              "base_rate", "confusion"):
        v = r[k]
        click.echo(f"{k:>16}: {v:.4f}" if isinstance(v, float) else f"{k:>16}: {v}")
    table(r["calibration"], ["low", "high", "count", "mean_predicted", "observed_rate"], title="calibration")


@predict.command("list")
@click.option("--subject", "subject", multiple=True, help="TYPE=ID (repeatable).")
@click.option("--model", "model_name")
@click.option("--version", "model_version")
@click.option("--limit", default=50, show_default=True)
@json_flag
@click.pass_context
def predict_list(ctx: click.Context, subject: tuple[str, ...], as_json: bool, **filters: Any) -> None:
    """Predictions, newest first (e.g. every score for loan 456)."""
    f = {k: v for k, v in filters.items() if v is not None}
    if subject:
        f["subject"] = dict(_pair(x, "--subject") for x in subject)
    rows = get_client(ctx).predictions.find(**f)
    if as_json:
        echo_json(rows)
    else:
        table(rows, ["id", "model_name", "model_version", "subject", "score", "label", "outcome", "created_at"],
              title=f"{len(rows)} predictions")


@predict.command("versions")
@click.option("--model", "model_name")
@json_flag
@click.pass_context
def predict_versions(ctx: click.Context, model_name: str | None, as_json: bool) -> None:
    """Model versions with prediction and outcome counts."""
    rows = get_client(ctx).predictions.versions(model_name)
    if as_json:
        echo_json(rows)
    else:
        table(rows, ["model_name", "model_version", "predictions", "with_outcome", "last_at"], title="versions")
