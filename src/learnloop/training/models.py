"""Inputs and outputs of the training capability: the curation filter, dataset versions, jobs.

``DatasetFilter`` is validated before any query runs and stored normalised with the
version, so two filters that mean the same thing hash the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import InvalidInput
from ..ledger.models import SENTIMENTS
from ..store.validation import check_object, check_text

Split = Literal["train", "validation"]
Kind = Literal["sft", "preference"]
JobStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]


class DatasetFilter(BaseModel):
    """Which generations of the ledger go into a dataset; every given condition must hold."""

    model_config = ConfigDict(extra="forbid")

    verdict: list[str] | None = Field(None, description="POSITIVE/NEGATIVE/NEUTRAL from generation_verdicts.")
    min_rating: float | None = Field(None, ge=1, le=5, description="Average star rating at least this.")
    max_rating: float | None = Field(None, ge=1, le=5)
    tags: list[str] = Field(default_factory=list, description="Feedback tags that must all be present.")
    without_tags: list[str] = Field(default_factory=list, description="Feedback tags that must be absent.")
    project: str | None = Field(None, description="Project name; default the client's project.")
    model: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    links: dict[str, str] = Field(default_factory=dict, description='e.g. {"loan": "456"}')
    reviewed_only: bool = Field(False, description="Only generations with feedback an admin has processed.")

    @field_validator("verdict", mode="before")
    @classmethod
    def _verdict(cls, v: Any) -> Any:
        if v is None:
            return None
        vals = [v] if isinstance(v, str) else v
        if not isinstance(vals, list | tuple) or not vals:
            raise InvalidInput("verdict must be POSITIVE, NEGATIVE, NEUTRAL or a list of them", field="verdict")
        out = []
        for x in vals:
            if not isinstance(x, str) or x.strip().upper() not in SENTIMENTS:
                raise InvalidInput(f"unknown verdict {x!r}: use POSITIVE, NEGATIVE or NEUTRAL", field="verdict")
            up = x.strip().upper()
            if up not in out:
                out.append(up)
        return sorted(out)

    @field_validator("tags", "without_tags", mode="before")
    @classmethod
    def _tags(cls, v: Any, info: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list | tuple) or not all(isinstance(t, str) and t.strip() for t in v):
            raise InvalidInput(f"{info.field_name} must be a list of non-empty strings", field=info.field_name)
        for t in v:
            check_text(t, info.field_name)
        return sorted({t.strip() for t in v})

    @field_validator("links", mode="before")
    @classmethod
    def _links(cls, v: Any) -> Any:
        v = check_object(v, "links")
        return {k: str(val) for k, val in v.items()}

    @field_validator("project", "model", "kind", mode="before")
    @classmethod
    def _plain(cls, v: Any, info: Any) -> Any:
        if v is not None:
            if not isinstance(v, str) or not v:
                raise InvalidInput(f"{info.field_name} must be a non-empty string", field=info.field_name)
            check_text(v, info.field_name)
        return v

    @model_validator(mode="after")
    def _ranges(self) -> DatasetFilter:
        if self.min_rating is not None and self.max_rating is not None and self.min_rating > self.max_rating:
            raise InvalidInput("min_rating is greater than max_rating: nothing could match", field="min_rating")
        if self.since and self.until and self.since >= self.until:
            raise InvalidInput("since is not before until: nothing could match", field="since")
        overlap = set(self.tags) & set(self.without_tags)
        if overlap:
            raise InvalidInput(f"tag {sorted(overlap)[0]!r} is both required and excluded", field="tags")
        return self

    def normalised(self) -> dict[str, Any]:
        """The filter as stored and hashed: defaults dropped, dates in ISO form."""
        return self.model_dump(mode="json", exclude_defaults=True)


class DatasetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dedupe: bool = True
    scrub_pii: bool = False
    validation: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction held out for validation.")
    seed: int = 0
    system: str | None = Field(None, max_length=100_000, description="System message prepended to every example.")

    @field_validator("system")
    @classmethod
    def _system(cls, v: str | None) -> str | None:
        if v is not None:
            check_text(v, "system")
            if not v.strip():
                raise InvalidInput("system prompt is empty; omit it instead", field="system")
        return v


class Dataset(BaseModel):
    id: UUID
    name: str
    version: int
    kind: Kind
    filter: dict[str, Any]
    options: dict[str, Any]
    content_hash: str
    counts: dict[str, Any]
    created_by: str | None = None
    created_at: datetime
    reused: bool = Field(False, description="True when an identical version already existed and was returned.")


class Job(BaseModel):
    id: UUID
    dataset_id: UUID
    provider: str
    base_url: str | None = None
    provider_job_id: str | None = None
    status: JobStatus
    provider_status: str | None = None
    base_model: str
    result_model: str | None = None
    training_file_id: str | None = None
    validation_file_id: str | None = None
    example_count: int
    progress: float
    trained_tokens: int | None = None
    error: str | None = None
    sync_error: str | None = None
    hyperparameters: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    synced_at: datetime | None = None


class JobEvent(BaseModel):
    """One provider event of a fine-tuning job, as last synced."""

    provider_event_id: str
    level: str | None = None
    message: str
    data: dict[str, Any] | None = Field(None, description="The provider's own event data.")
    created_at: datetime


Role = Literal["example", "chosen", "rejected"]


class TrainedOn(BaseModel):
    """A generation a fine-tuned model was trained on (provenance)."""

    generation_id: UUID
    role: Role = Field(description="example (sft), chosen or rejected (preference pairs).")
    split: Split
    job_id: UUID
    job_status: JobStatus
    dataset: str
    dataset_version: int
    generation_created_at: datetime


class DatasetUse(BaseModel):
    id: UUID
    name: str
    version: int
    kind: Kind
    content_hash: str
    split: Split
    role: Role


class TrainingJobUse(BaseModel):
    id: UUID
    status: JobStatus
    base_model: str
    result_model: str | None = None
    provider_job_id: str | None = None
    dataset: str
    dataset_version: int


class ProducingJob(BaseModel):
    id: UUID
    status: JobStatus
    base_model: str
    result_model: str | None = None
    dataset_id: UUID


class GenerationTraining(BaseModel):
    """Where one generation went: datasets, the jobs and models trained on them, and the job
    that produced the model it was logged with."""

    generation_id: UUID
    model: str | None = None
    datasets: list[DatasetUse]
    trained_jobs: list[TrainingJobUse]
    models_trained: list[str]
    logged_with_job: ProducingJob | None = None
