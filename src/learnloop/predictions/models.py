"""Typed outputs of the prediction registry (the library answers dicts with these keys; the
API serves them through these models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field


class Prediction(BaseModel):
    id: UUID
    external_id: str | None = None
    model_name: str
    model_version: str
    subject: dict[str, str] = Field(description="Business entities scored, e.g. {\"loan\": \"456\"}.")
    score: float = Field(description="Predicted probability of the positive outcome, 0-1.")
    label: str | None = None
    factors: dict[str, Any]
    outcome: bool | None = Field(None, description="What really happened; null: not known yet.")
    outcome_at: datetime | None = None
    outcome_note: str | None = None
    created_at: datetime


class ModelVersion(BaseModel):
    model_name: str
    model_version: str
    predictions: int
    with_outcome: int
    first_at: datetime
    last_at: datetime


class Confusion(BaseModel):
    tp: int
    fp: int
    tn: int
    fn: int


class CalibrationBin(BaseModel):
    bin: int
    low: float
    high: float
    count: int
    mean_predicted: float
    observed_rate: float


class Report(BaseModel):
    """A model version's quality against the outcomes recorded so far (nulls: no outcome yet)."""

    model_name: str
    model_version: str
    threshold: float
    predictions: int
    with_outcome: int
    awaiting_outcome: int
    accuracy: float | None
    precision: float | None
    recall: float | None
    roc_auc: float | None
    brier: float | None
    base_rate: float | None
    confusion: Confusion | None
    calibration: list[CalibrationBin]
