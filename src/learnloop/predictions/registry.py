"""Model predictions and their real outcomes (seed 001 #8/#9).

A prediction is a score in [0, 1] — the predicted probability of the positive outcome
(a default, a missed installment) — for a subject (``{"loan": "456", "client": "123"}``),
made by a model name and version, with the factors the model gave. The outcome is
recorded later, once: recording a different outcome again is a ``Conflict`` unless
``replace=True`` (so a mistyped batch cannot silently rewrite history).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import Conflict, InvalidInput, NotFound
from ..events.outbox import emit, emit_many
from ..ledger.generations import as_uuid
from ..ledger.models import parse
from ..store.database import Conn
from ..store.ids import uuid7
from ..store.tenancy import Scope
from ..store.unique import violated_unique
from ..store.validation import check_object, check_text

_COLS = ("id", "external_id", "model_name", "model_version", "subject", "score", "label", "factors", "outcome",
         "outcome_at", "outcome_note", "created_at")


class PredictionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(min_length=1, max_length=200)
    model_version: str = Field(min_length=1, max_length=200)
    score: float = Field(ge=0, le=1, allow_inf_nan=False, description="Probability of the positive outcome.")
    subject: dict[str, str] = Field(default_factory=dict)
    label: str | None = Field(None, max_length=200)
    factors: dict[str, Any] = Field(default_factory=dict)
    external_id: str | None = Field(None, max_length=500)
    created_at: datetime | None = None

    @field_validator("score", mode="before")
    @classmethod
    def _score(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0 <= v <= 1:
            raise InvalidInput(f"score must be a probability from 0 to 1, got {v!r}", field="score")
        return v

    @field_validator("subject", mode="before")
    @classmethod
    def _subject(cls, v: Any) -> Any:
        v = check_object(v, "subject")
        for k, val in v.items():
            if isinstance(val, bool) or not isinstance(val, str | int):
                raise InvalidInput(f"subject.{k} must be a string or integer id", field="subject")
        return {k: str(val) for k, val in v.items()}

    @field_validator("factors", mode="before")
    @classmethod
    def _factors(cls, v: Any) -> Any:
        return check_object(v, "factors")

    @field_validator("model_name", "model_version", "label", "external_id")
    @classmethod
    def _text(cls, v: str | None, info: Any) -> str | None:
        return check_text(v, info.field_name) if v is not None else v


def log(conn: Conn, scope: Scope, rows: Iterable[PredictionIn | dict[str, Any]]) -> list[UUID]:
    """One transaction for the whole batch; ids in input order."""
    parsed = [parse(PredictionIn, r) for r in rows]
    if not parsed:
        raise InvalidInput("no predictions given", field="predictions")
    ids = [uuid7() for _ in parsed]
    from psycopg.types.json import Jsonb

    with conn.transaction():
        try:
            with conn.cursor() as cur, cur.copy(
                "COPY learnloop.predictions (tenant_id, id, project_id, external_id, model_name, model_version,"
                " subject, score, label, factors, created_at) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["uuid", "uuid", "uuid", "text", "text", "text", "jsonb", "float8", "text", "jsonb",
                                "timestamptz"])
                now = datetime.now().astimezone()
                for pid, p in zip(ids, parsed, strict=True):
                    copy.write_row((scope.tenant_id, pid, scope.project_id, p.external_id, p.model_name,
                                    p.model_version, Jsonb(p.subject), p.score, p.label, Jsonb(p.factors),
                                    p.created_at or now))
        except psycopg.Error as exc:
            if violated_unique(exc) is None:
                raise
            raise Conflict(f"a prediction with this external_id already exists ({exc.diag.message_detail})") from None
        emit_many(conn, [
            (scope.tenant_id, scope.project_id, "prediction", pid, "prediction.logged",
             {"model": p.model_name, "version": p.model_version, "subject": p.subject, "score": p.score}, None)
            for pid, p in zip(ids, parsed, strict=True)
        ])
    return ids


def _resolve(conn: Conn, scope: Scope, ref: UUID | str) -> dict[str, Any]:
    if isinstance(ref, UUID) or _is_uuid(ref):
        row = conn.execute("SELECT * FROM learnloop.predictions WHERE tenant_id = %s AND project_id = %s AND id = %s",
                           (scope.tenant_id, scope.project_id, as_uuid(ref, "prediction id"))).fetchone()
    elif isinstance(ref, str) and ref:
        row = conn.execute("SELECT * FROM learnloop.predictions WHERE tenant_id = %s AND project_id = %s"
                           " AND external_id = %s", (scope.tenant_id, scope.project_id, ref)).fetchone()
    else:
        raise InvalidInput("a prediction is named by its id or external id", field="prediction")
    if row is None:
        raise NotFound(f"no prediction {ref!s} in project {scope.project!r}")
    return row


def _is_uuid(v: Any) -> bool:
    try:
        UUID(str(v))
    except ValueError:
        return False
    return True


def get(conn: Conn, scope: Scope, ref: UUID | str) -> dict[str, Any]:
    row = _resolve(conn, scope, ref)
    return {k: row[k] for k in _COLS}


def record_outcome(conn: Conn, scope: Scope, ref: UUID | str, outcome: bool, *,
                   note: str | None = None, at: datetime | None = None, replace: bool = False,
                   actor: str | None = None) -> dict[str, Any]:
    if not isinstance(outcome, bool):
        raise InvalidInput(f"outcome must be true or false, got {outcome!r}", field="outcome")
    if note is not None:
        check_text(note, "note")
    with conn.transaction():
        row = _resolve(conn, scope, ref)
        if row["outcome"] is not None and row["outcome"] != outcome and not replace:
            raise Conflict(f"prediction {row['id']} already has outcome {row['outcome']}; pass replace=True to change it")
        # now() only when no time was given: Citus refuses a non-IMMUTABLE function inside
        # COALESCE/CASE in an UPDATE, so the choice is made here, not in SQL.
        when = "now()" if at is None else "%(at)s"
        updated = conn.execute(
            "UPDATE learnloop.predictions SET outcome = %(outcome)s, outcome_at = " + when  # noqa: S608 - one of two constants
            + ", outcome_note = %(note)s WHERE tenant_id = %(tenant)s AND id = %(id)s RETURNING *",
            {"outcome": outcome, "at": at, "note": note, "tenant": scope.tenant_id, "id": row["id"]},
        ).fetchone()
        assert updated is not None  # the row _resolve found in this transaction; nothing deletes predictions
        row = updated
        emit(conn, scope.tenant_id, "prediction", row["id"], "prediction.outcome_recorded",
             {"outcome": outcome, "model": row["model_name"], "version": row["model_version"]},
             project_id=scope.project_id, actor=actor)
    return {k: row[k] for k in _COLS}


def find(conn: Conn, scope: Scope, *, subject: dict[str, Any] | None = None,
         model_name: str | None = None, model_version: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    from psycopg.types.json import Jsonb

    where = ["tenant_id = %s", "project_id = %s"]
    params: list[Any] = [scope.tenant_id, scope.project_id]
    if subject:
        where.append("subject @> %s")
        params.append(Jsonb({k: str(v) for k, v in check_object(subject, "subject").items()}))
    if model_name is not None:
        where.append("model_name = %s")
        params.append(model_name)
    if model_version is not None:
        where.append("model_version = %s")
        params.append(model_version)
    query = sql.SQL("SELECT * FROM learnloop.predictions WHERE {} ORDER BY created_at DESC, id DESC LIMIT %s").format(
        sql.SQL(" AND ").join(sql.SQL(w) for w in where))
    rows = conn.execute(query, [*params, limit]).fetchall()
    return [{k: r[k] for k in _COLS} for r in rows]
