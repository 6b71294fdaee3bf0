"""Fine-tuning jobs on an OpenAI-compatible API, recorded in ``learnloop.finetune_jobs``.

The job row is written *before* anything is sent, so nothing is lost: if uploading the
file or creating the remote job fails or times out, the row is marked ``failed`` with the
provider's own message (and an outbox event), then ``ProviderError`` is raised naming
the job. A failed *poll* (``sync``) is different: the remote job may well still be
running, so the row keeps its status and records ``sync_error``; the next sync clears it.

Provider statuses map onto ours: validating_files/queued -> pending, running -> running,
succeeded, failed, cancelled. Progress comes from the provider's step events
(``data.step / data.total_steps``); a succeeded job is at 100.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from ..config import Settings
from ..errors import ConfigurationError, InvalidInput, NotFound, ProviderError, provider_message
from ..events.outbox import emit
from ..ledger.generations import as_uuid
from ..store.database import Conn
from ..store.ids import uuid7
from ..store.tenancy import Scope
from . import datasets as _ds
from . import export as _export
from .models import Job

log = logging.getLogger(__name__)

STATUS_MAP = {
    "validating_files": "pending",
    "queued": "pending",
    "pending": "pending",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
FINAL = ("succeeded", "failed", "cancelled")
HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier", "beta")


class OpenAIFineTuning:
    """The few calls learnloop makes, through the official ``openai`` client."""

    name = "openai"

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 0) -> None:
        try:
            import openai
        except ImportError as exc:  # the training extra is not installed
            raise ConfigurationError("fine-tuning needs the openai package: pip install 'learnloop[training]'") from exc
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ConfigurationError(
                "no API key for the fine-tuning provider: set LEARNLOOP_FINETUNE_API_KEY or OPENAI_API_KEY"
            )
        self.base_url = base_url
        self._openai = openai
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout, max_retries=max_retries)

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIFineTuning:
        return cls(base_url=settings.finetune_base_url, api_key=settings.finetune_api_key,
                   timeout=settings.finetune_timeout)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        o = self._openai
        try:
            return fn()
        except o.APITimeoutError:
            raise ProviderError(f"{what}: the provider did not answer in time (timeout)") from None
        except o.APIConnectionError as exc:
            raise ProviderError(f"{what}: cannot reach the provider ({exc.__cause__ or exc})") from None
        except o.APIStatusError as exc:
            raise ProviderError(f"{what}: provider answered {exc.status_code}: {provider_message(exc)}",
                                status_code=exc.status_code) from None

    def upload(self, path: Path) -> str:
        with path.open("rb") as fh:
            f = self._call("uploading the training file", lambda: self._client.files.create(file=fh, purpose="fine-tune"))
        return str(f.id)

    def create(self, *, model: str, training_file: str, validation_file: str | None, method: str,
               hyperparameters: dict[str, Any], suffix: str | None, seed: int | None) -> Any:
        kwargs: dict[str, Any] = {
            "model": model,
            "training_file": training_file,
            "method": {"type": method, method: {"hyperparameters": hyperparameters}},
        }
        if validation_file:
            kwargs["validation_file"] = validation_file
        if suffix:
            kwargs["suffix"] = suffix
        if seed is not None:
            kwargs["seed"] = seed
        return self._call("creating the fine-tuning job", lambda: self._client.fine_tuning.jobs.create(**kwargs))

    def retrieve(self, job_id: str) -> Any:
        return self._call("reading the job status", lambda: self._client.fine_tuning.jobs.retrieve(job_id))

    def events(self, job_id: str, limit: int = 100) -> list[Any]:
        page = self._call("listing the job events",
                          lambda: self._client.fine_tuning.jobs.list_events(job_id, limit=limit))
        return list(page.data)

    def cancel(self, job_id: str) -> Any:
        return self._call("cancelling the job", lambda: self._client.fine_tuning.jobs.cancel(job_id))



def _row(conn: Conn, scope: Scope, job_id: UUID) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM learnloop.finetune_jobs WHERE tenant_id = %s AND id = %s",
                       (scope.tenant_id, job_id)).fetchone()
    if row is None:
        raise NotFound(f"no fine-tuning job {job_id} in this tenant")
    return row


def resolve_job(conn: Conn, scope: Scope, ref: UUID | str) -> UUID:
    """A job by our id or by the provider's job id (``ftjob-...``)."""
    if isinstance(ref, str) and not _ds._looks_like_uuid(ref):
        row = conn.execute("SELECT id FROM learnloop.finetune_jobs WHERE tenant_id = %s AND provider_job_id = %s",
                           (scope.tenant_id, ref)).fetchone()
        if row is None:
            raise NotFound(f"no fine-tuning job {ref!r} in this tenant")
        return row["id"]
    return as_uuid(ref, "job id")


def get(conn: Conn, scope: Scope, ref: UUID | str) -> Job:
    return Job.model_validate(_row(conn, scope, resolve_job(conn, scope, ref)))


def list_jobs(conn: Conn, scope: Scope, *, status: str | None = None, limit: int = 100) -> list[Job]:
    sql = "SELECT * FROM learnloop.finetune_jobs WHERE tenant_id = %s AND project_id = %s"
    params: list[Any] = [scope.tenant_id, scope.project_id]
    if status is not None:
        if status not in STATUS_MAP.values():
            raise InvalidInput(f"unknown status {status!r}", field="status")
        sql += " AND status = %s"
        params.append(status)
    rows = conn.execute(sql + " ORDER BY created_at DESC, id DESC LIMIT %s", [*params, limit]).fetchall()
    return [Job.model_validate(r) for r in rows]


def job_events(conn: Conn, scope: Scope, ref: UUID | str) -> list[dict[str, Any]]:
    jid = resolve_job(conn, scope, ref)
    _row(conn, scope, jid)
    return conn.execute(
        "SELECT provider_event_id, level, message, data, created_at FROM learnloop.finetune_events"
        " WHERE tenant_id = %s AND job_id = %s ORDER BY created_at, provider_event_id",
        (scope.tenant_id, jid),
    ).fetchall()


def _check_hyper(hp: dict[str, Any] | None) -> dict[str, Any]:
    hp = dict(hp or {})
    if "epochs" in hp:
        hp["n_epochs"] = hp.pop("epochs")
    if "learning_rate" in hp:
        hp["learning_rate_multiplier"] = hp.pop("learning_rate")
    for k, v in hp.items():
        if k not in HYPERPARAMETERS:
            raise InvalidInput(f"unknown hyper-parameter {k!r}: use {', '.join(HYPERPARAMETERS)}", field="hyperparameters")
        if v != "auto" and (isinstance(v, bool) or not isinstance(v, int | float) or v <= 0):
            raise InvalidInput(f"hyper-parameter {k} must be a positive number or 'auto', got {v!r}", field="hyperparameters")
    return hp


def _update(conn: Conn, scope: Scope, job_id: UUID, fields: dict[str, Any]) -> dict[str, Any]:
    from psycopg import sql

    sets = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in fields)
    q = sql.SQL("UPDATE learnloop.finetune_jobs SET {}, updated_at = now() WHERE tenant_id = %(t)s AND id = %(i)s"
                " RETURNING *").format(sets)
    row = conn.execute(q, {**fields, "t": scope.tenant_id, "i": job_id}).fetchone()
    if row is None:  # every caller read or inserted the job first, and nothing deletes jobs
        raise NotFound(f"no fine-tuning job {job_id} in this tenant")
    return row


def start(conn: Conn, scope: Scope, provider: OpenAIFineTuning, dataset_ref: Any, *,
          base_model: str, hyperparameters: dict[str, Any] | None = None, suffix: str | None = None,
          seed: int | None = None, actor: str | None = None) -> Job:
    """Record a job, export the dataset, upload it, create the remote job; see module doc."""
    if not isinstance(base_model, str) or not base_model.strip() or "\x00" in base_model:
        raise InvalidInput("base_model must be a model name, e.g. gpt-4o-mini-2024-07-18", field="base_model")
    hp = _check_hyper(hyperparameters)
    ds = _ds.get(conn, scope, dataset_ref)
    method = "supervised" if ds.kind == "sft" else "dpo"
    fmt = "chat" if ds.kind == "sft" else "openai-preference"
    jid = uuid7()
    with conn.transaction():
        conn.execute(
            "INSERT INTO learnloop.finetune_jobs (tenant_id, id, project_id, dataset_id, provider, base_url,"
            " status, base_model, example_count, hyperparameters) VALUES (%s, %s, %s, %s, %s, %s, 'pending', %s, %s, %s)",
            (scope.tenant_id, jid, scope.project_id, ds.id, provider.name, provider.base_url, base_model,
             ds.counts.get("examples", 0), Jsonb(hp)),
        )
        emit(conn, scope.tenant_id, "finetune_job", jid, "finetune_job.created",
             {"dataset_id": str(ds.id), "dataset": f"{ds.name}@{ds.version}", "base_model": base_model,
              "provider": provider.name}, project_id=scope.project_id, actor=actor)
    try:
        with tempfile.TemporaryDirectory(prefix="learnloop-ft-") as tmp:
            train_path = Path(tmp) / f"{ds.name}-{ds.version}-train.jsonl"
            _export.export(conn, scope, ds.id, train_path, fmt=fmt, split="train")
            training_file = provider.upload(train_path)
            validation_file = None
            if ds.counts.get("validation"):
                val_path = Path(tmp) / f"{ds.name}-{ds.version}-validation.jsonl"
                _export.export(conn, scope, ds.id, val_path, fmt=fmt, split="validation")
                validation_file = provider.upload(val_path)
            remote = provider.create(model=base_model, training_file=training_file, validation_file=validation_file,
                                     method=method, hyperparameters=hp, suffix=suffix, seed=seed)
    except (ProviderError, InvalidInput) as exc:
        with conn.transaction():
            _update(conn, scope, jid, {"status": "failed", "error": exc.message, "finished_at": datetime.now(UTC)})
            emit(conn, scope.tenant_id, "finetune_job", jid, "finetune_job.failed", {"error": exc.message},
                 project_id=scope.project_id, actor=actor)
        raise type(exc)(f"fine-tuning job {jid} failed: {exc.message}", job_id=str(jid)) from None
    with conn.transaction():
        _apply_remote(conn, scope, jid, remote, extra={"training_file_id": training_file,
                                                       "validation_file_id": validation_file}, actor=actor)
    return get(conn, scope, jid)


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else None


def _apply_remote(conn: Conn, scope: Scope, jid: UUID, remote: Any, *,
                  extra: dict[str, Any] | None = None, progress: float | None = None,
                  actor: str | None = None) -> dict[str, Any]:
    before = _row(conn, scope, jid)
    status = STATUS_MAP.get(str(remote.status))
    if status is None:
        raise ProviderError(f"the provider reported an unknown job status {remote.status!r}")
    fields: dict[str, Any] = {
        "provider_job_id": remote.id,
        "provider_status": str(remote.status),
        "status": status,
        "result_model": remote.fine_tuned_model or before["result_model"],
        "trained_tokens": remote.trained_tokens,
        "sync_error": None,
        "synced_at": datetime.now(UTC),
        **(extra or {}),
    }
    hp = getattr(remote, "hyperparameters", None)
    if hp is not None:
        resolved = {k: v for k, v in hp.model_dump().items() if v is not None}
        fields["hyperparameters"] = Jsonb({**before["hyperparameters"], **resolved})
    if status == "running" and before["started_at"] is None:
        fields["started_at"] = datetime.now(UTC)
    if status in FINAL:
        fields["finished_at"] = _ts(remote.finished_at) or datetime.now(UTC)
    if status == "succeeded":
        fields["progress"] = 100.0
    elif progress is not None:
        fields["progress"] = max(before["progress"], min(100.0, progress))
    if status == "failed":
        err = remote.error
        fields["error"] = (getattr(err, "message", None) or "the provider reported the job failed") if err else \
            "the provider reported the job failed"
    row = _update(conn, scope, jid, fields)
    if before["status"] != status or before["provider_job_id"] != remote.id:
        emit(conn, scope.tenant_id, "finetune_job", jid, f"finetune_job.{status}",
             {"from": before["status"], "to": status, "provider_job_id": remote.id,
              "result_model": row["result_model"], "error": row["error"]},
             project_id=row["project_id"], actor=actor)
    return row


def sync(conn: Conn, scope: Scope, provider: OpenAIFineTuning, ref: UUID | str,
         actor: str | None = None) -> Job:
    """Poll the provider once: status, resulting model, new events, progress."""
    jid = resolve_job(conn, scope, ref)
    row = _row(conn, scope, jid)
    if row["provider_job_id"] is None:
        raise InvalidInput(f"job {jid} was never created at the provider ({row['status']}: {row['error']})", field="job")
    if row["status"] in FINAL and row["synced_at"] is not None and row["result_model"] is not None:
        return Job.model_validate(row)
    try:
        remote = provider.retrieve(row["provider_job_id"])
        events = provider.events(row["provider_job_id"])
    except ProviderError as exc:
        with conn.transaction():
            _update(conn, scope, jid, {"sync_error": exc.message})
            emit(conn, scope.tenant_id, "finetune_job", jid, "finetune_job.sync_failed", {"error": exc.message},
                 project_id=row["project_id"], actor=actor)
        raise ProviderError(f"could not sync fine-tuning job {jid}: {exc.message} (its status is kept)",
                            job_id=str(jid)) from None
    progress = None
    for ev in events:
        data = ev.data if isinstance(getattr(ev, "data", None), dict) else {}
        step, total = data.get("step"), data.get("total_steps")
        if isinstance(step, int | float) and isinstance(total, int | float) and total > 0:
            progress = max(progress or 0.0, 100.0 * step / total)
    with conn.transaction():
        new_events = 0
        for ev in events:
            cur = conn.execute(
                "INSERT INTO learnloop.finetune_events (tenant_id, job_id, provider_event_id, level, message, data,"
                " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (scope.tenant_id, jid, ev.id, ev.level, (ev.message or "").replace("\x00", ""),
                 Jsonb(ev.data) if getattr(ev, "data", None) is not None else None,
                 _ts(ev.created_at) or datetime.now(UTC)),
            )
            new_events += cur.rowcount
        after = _apply_remote(conn, scope, jid, remote, progress=progress, actor=actor)
        emit(conn, scope.tenant_id, "finetune_job", jid, "finetune_job.synced",
             {"status": after["status"], "progress": after["progress"], "new_events": new_events},
             project_id=row["project_id"], actor=actor)
    return get(conn, scope, jid)


def cancel(conn: Conn, scope: Scope, provider: OpenAIFineTuning, ref: UUID | str,
           actor: str | None = None) -> Job:
    jid = resolve_job(conn, scope, ref)
    row = _row(conn, scope, jid)
    if row["status"] in FINAL:
        from ..errors import Conflict

        raise Conflict(f"job {jid} is already {row['status']}")
    if row["provider_job_id"] is None:
        raise InvalidInput(f"job {jid} was never created at the provider", field="job")
    remote = provider.cancel(row["provider_job_id"])
    with conn.transaction():
        _apply_remote(conn, scope, jid, remote, actor=actor)
    return get(conn, scope, jid)
