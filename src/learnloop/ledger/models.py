"""What goes into and comes out of the ledger.

Input models validate everything before a byte is written: types, ranges, JSON shapes,
NUL characters. ``ValidationError`` from pydantic never escapes: ``parse`` turns it into
``InvalidInput`` naming the field. The same models are the HTTP API's request bodies.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import InvalidInput
from ..store.validation import check_json, check_object, check_text

Sentiment = Literal["POSITIVE", "NEGATIVE", "NEUTRAL"]
Source = Literal["user", "admin", "automatic"]
SENTIMENTS = ("POSITIVE", "NEGATIVE", "NEUTRAL")

MAX_TEXT = 10_000_000  # 10 MB of text per field is plenty; more is a mistake or an attack.


def _text(value: Any, field: str) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ValueError(f"is longer than {MAX_TEXT} characters")
        check_text(value, field)
    return value


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if type(data) is dict:
            for k, v in data.items():
                if type(v) is str and ("\x00" in v or len(v) > MAX_TEXT):
                    _text(v, k)
        return data


class GenerationIn(_In):
    """One AI attempt as the app logs it."""

    kind: str = Field("completion", min_length=1, max_length=50, examples=["image"])
    id: UUID | None = Field(None, description="Optional client-chosen id (UUID).")
    external_id: str | None = Field(None, max_length=500, description="The app's own id; unique per project.")
    parent_id: UUID | None = Field(None, description="The attempt this one regenerates.")
    user_ref: str | None = Field(None, max_length=500)
    session_ref: str | None = Field(None, max_length=500)
    context: dict[str, Any] = Field(default_factory=dict, examples=[{"demand_kw": 385, "efficiency": 0.06}])
    config: dict[str, Any] = Field(default_factory=dict, examples=[{"style_preset": "CYBERPUNK_DARK"}])
    prompt: str | None = None
    negative_prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    output_text: str | None = None
    output_url: str | None = Field(None, max_length=4000)
    output_meta: dict[str, Any] = Field(default_factory=dict, examples=[{"seed": 12345}])
    model: str | None = Field(None, max_length=200)
    provider: str | None = Field(None, max_length=200)
    tokens_in: int | None = Field(None, ge=0, le=2_000_000_000)
    tokens_out: int | None = Field(None, ge=0, le=2_000_000_000)
    latency_ms: float | None = Field(None, ge=0, allow_inf_nan=False)
    cost: Decimal | None = Field(None, ge=0, max_digits=18, decimal_places=8, allow_inf_nan=False)
    retrieved: list[Any] = Field(default_factory=list, description="Documents/chunks used as context.")
    links: dict[str, str] = Field(default_factory=dict, examples=[{"client": "123", "loan": "456"}])
    created_at: datetime | None = Field(None, description="When it happened (defaults to now; for imports). "
                                        "A time without a zone is read as UTC.")

    @field_validator("created_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        # Not the server session's zone: the same import must land on the same instants
        # whatever database it goes to (and bulk_log's binary COPY needs a zone).
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v

    @field_validator("context", "config", "output_meta", mode="before")
    @classmethod
    def _object(cls, v: Any, info: Any) -> Any:
        return check_object(v, info.field_name)

    @field_validator("messages", "retrieved", mode="before")
    @classmethod
    def _array(cls, v: Any, info: Any) -> Any:
        if v is None:
            return [] if info.field_name == "retrieved" else None
        if not isinstance(v, list | tuple):
            raise InvalidInput(f"{info.field_name} must be a JSON array", field=info.field_name)
        check_json(list(v), info.field_name)
        return list(v)

    @field_validator("links", mode="before")
    @classmethod
    def _links(cls, v: Any) -> Any:
        v = check_object(v, "links")
        out = {}
        for k, val in v.items():
            t = type(val)
            if t is str:
                out[k] = val
            elif t is int:
                out[k] = str(val)
            else:
                raise InvalidInput(f"links.{k} must be a string or integer id", field="links")
        return out


class FeedbackIn(_In):
    """One piece of feedback on a generation."""

    generation_id: UUID
    id: UUID | None = None
    sentiment: Sentiment | None = None
    rating: int | None = Field(None, ge=1, le=5)
    thumbs: Literal[-1, 1] | None = None
    tags: list[str] = Field(default_factory=list, max_length=100)
    comment: str | None = None
    instruction: str | None = None
    corrected_output: str | None = None
    source: Source = "user"
    author_ref: str | None = Field(None, max_length=500)
    created_at: datetime | None = None

    @field_validator("sentiment", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        if isinstance(v, str):
            up = v.strip().upper()
            if up not in SENTIMENTS:
                raise InvalidInput(
                    f"unknown sentiment {v!r}: use POSITIVE, NEGATIVE or NEUTRAL", field="sentiment"
                )
            return up
        return v

    @field_validator("rating", mode="before")
    @classmethod
    def _rating(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, int | str) or (isinstance(v, str) and not v.strip().isdigit()):
            raise InvalidInput(f"rating must be a whole number from 1 to 5, got {v!r}", field="rating")
        if not 1 <= int(v) <= 5:
            raise InvalidInput(f"rating must be from 1 to 5, got {v}", field="rating")
        return int(v)

    @field_validator("thumbs", mode="before")
    @classmethod
    def _thumbs(cls, v: Any) -> Any:
        mapping = {"up": 1, "down": -1, "+1": 1, "-1": -1, True: 1, False: -1}
        if isinstance(v, str | bool) and v in mapping:
            return mapping[v]
        return v

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str) or not isinstance(v, list | tuple):
            raise InvalidInput("tags must be a list of strings", field="tags")
        out: list[str] = []
        for t in v:
            if not isinstance(t, str) or not t.strip() or len(t) > 100:
                raise InvalidInput(f"each tag must be a non-empty string of at most 100 characters, got {t!r}", field="tags")
            check_text(t, "tags")
            t = t.strip()
            if t not in out:
                out.append(t)
        return out

    @model_validator(mode="after")
    def _derive_sentiment(self) -> FeedbackIn:
        # One verdict vocabulary for analytics: stars and thumbs imply a sentiment.
        if self.sentiment is None:
            if self.rating is not None:
                self.sentiment = "POSITIVE" if self.rating >= 4 else "NEGATIVE" if self.rating <= 2 else "NEUTRAL"
            elif self.thumbs is not None:
                self.sentiment = "POSITIVE" if self.thumbs > 0 else "NEGATIVE"
        return self


class Generation(BaseModel):
    """A stored generation."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    project: str | None = None
    project_id: UUID
    external_id: str | None = None
    kind: str
    user_ref: str | None = None
    session_ref: str | None = None
    parent_id: UUID | None = None
    root_id: UUID
    iteration: int
    context: dict[str, Any]
    config: dict[str, Any]
    prompt: str | None = None
    negative_prompt: str | None = None
    messages: list[Any] | None = None
    output_text: str | None = None
    output_url: str | None = None
    output_meta: dict[str, Any]
    model: str | None = None
    provider: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: float | None = None
    cost: Decimal | None = None
    retrieved: list[Any]
    links: dict[str, str]
    created_at: datetime


class Feedback(BaseModel):
    id: UUID
    generation_id: UUID
    sentiment: Sentiment | None = None
    rating: int | None = None
    thumbs: int | None = None
    tags: list[str]
    comment: str | None = None
    instruction: str | None = None
    corrected_output: str | None = None
    source: Source
    author_ref: str | None = None
    processed: bool
    processed_at: datetime | None = None
    processed_by: str | None = None
    review_notes: str | None = None
    improved: bool | None = None
    created_at: datetime


class ReviewItem(Feedback):
    """Feedback waiting for an admin, with the generation it is about (the whole story)."""

    project_id: UUID
    kind: str
    prompt: str | None = None
    output_text: str | None = None
    output_url: str | None = None
    model: str | None = None
    config: dict[str, Any]
    links: dict[str, str]
    root_id: UUID
    iteration: int


class LineageNode(Generation):
    """A generation in its lineage tree: its verdict, feedback tags and regenerations."""

    verdict: Sentiment | None = Field(None, description="null: no feedback yet.")
    positives: int
    negatives: int
    avg_rating: float | None = None
    feedback_tags: list[str]
    children: list[LineageNode] = Field(default_factory=list, description="Regenerations, oldest first.")


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` into ``model``; any problem becomes one InvalidInput sentence."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise InvalidInput(f"expected a JSON object for {model.__name__}, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except InvalidInput:
        raise
    except ValidationError as exc:
        raise InvalidInput(describe(exc), field=_loc(exc)) from None


def _loc(exc: ValidationError) -> str | None:
    errs = exc.errors()
    return ".".join(str(p) for p in errs[0]["loc"]) if errs and errs[0]["loc"] else None


def describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "input"
    msg = err["msg"]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, InvalidInput):
        return cause.message
    if err["type"] == "extra_forbidden":
        return f"unknown field {loc!r}"
    if err["type"] == "missing":
        return f"{loc} is required"
    return f"{loc}: {msg[0].lower() + msg[1:] if msg else 'is invalid'}"
