"""``client.training``: datasets, exports, fine-tuning jobs and provenance.

    ds = ll.training.create_dataset("good-answers", {"verdict": "POSITIVE"}, options={"scrub_pii": True})
    ll.training.export(ds.id, "train.jsonl", fmt="chat")
    job = ll.training.start_job(ds.id, base_model="gpt-4o-mini-2024-07-18", hyperparameters={"n_epochs": 3})
    ll.training.sync(job.id)
    ll.training.trained_on(job.result_model)

Each method is one call into the module that owns the SQL, on this client's scope.
"""

from __future__ import annotations

import os
from typing import Any
from uuid import UUID

from . import datasets as _ds
from . import export as _export
from . import finetune as _ft
from . import provenance as _prov
from .models import Dataset, Job


class Training:
    def __init__(self, client: Any) -> None:
        self._c = client

    def _provider(self, provider: Any) -> Any:
        return provider if provider is not None else _ft.OpenAIFineTuning.from_settings(self._c.settings)

    # -- datasets ------------------------------------------------------------------------
    def create_dataset(self, name: str, filter: dict[str, Any] | None = None, *, kind: str = "sft",
                       options: dict[str, Any] | None = None, created_by: str | None = None) -> Dataset:
        """A new immutable version of ``name`` (or the latest one if nothing changed)."""
        with self._c.db.connection() as conn:
            return _ds.create(conn, self._c.scope, name, filter, kind=kind, options=options, created_by=created_by)

    def dataset(self, ref: UUID | str) -> Dataset:
        with self._c.db.connection() as conn:
            return _ds.get(conn, self._c.scope, ref)

    def datasets(self, name: str | None = None) -> list[Dataset]:
        with self._c.db.connection() as conn:
            return _ds.list_versions(conn, self._c.scope, name)

    def items(self, ref: UUID | str, split: str | None = None) -> list[dict[str, Any]]:
        with self._c.db.connection() as conn:
            ds = _ds.get(conn, self._c.scope, ref)
            with conn.transaction():
                return list(_ds.items(conn, self._c.scope, ds.id, split))

    def export(self, ref: UUID | str, path: str | os.PathLike[str], *, fmt: str = "chat",
               split: str | None = None, max_tokens: int = _export.DEFAULT_MAX_TOKENS) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _export.export(conn, self._c.scope, ref, path, fmt=fmt, split=split, max_tokens=max_tokens)

    # -- fine-tuning jobs ----------------------------------------------------------------
    def start_job(self, dataset: UUID | str, *, base_model: str, hyperparameters: dict[str, Any] | None = None,
                  suffix: str | None = None, seed: int | None = None, provider: Any = None,
                  actor: str | None = None) -> Job:
        prov = self._provider(provider)
        with self._c.db.connection() as conn:
            return _ft.start(conn, self._c.scope, prov, dataset, base_model=base_model,
                             hyperparameters=hyperparameters, suffix=suffix, seed=seed, actor=actor)

    def sync(self, job: UUID | str, *, provider: Any = None) -> Job:
        prov = self._provider(provider)
        with self._c.db.connection() as conn:
            return _ft.sync(conn, self._c.scope, prov, job)

    def sync_all(self, *, provider: Any = None) -> list[Job]:
        """Poll every pending/running job once; a job whose poll fails keeps its status."""
        prov = self._provider(provider)
        out = []
        for j in self.jobs(status="pending") + self.jobs(status="running"):
            if j.provider_job_id is None:
                continue
            try:
                out.append(self.sync(j.id, provider=prov))
            except _ft.ProviderError:
                out.append(self.job(j.id))
        return out

    def cancel(self, job: UUID | str, *, provider: Any = None) -> Job:
        prov = self._provider(provider)
        with self._c.db.connection() as conn:
            return _ft.cancel(conn, self._c.scope, prov, job)

    def job(self, ref: UUID | str) -> Job:
        with self._c.db.connection() as conn:
            return _ft.get(conn, self._c.scope, ref)

    def jobs(self, *, status: str | None = None, limit: int = 100) -> list[Job]:
        with self._c.db.connection() as conn:
            return _ft.list_jobs(conn, self._c.scope, status=status, limit=limit)

    def job_events(self, ref: UUID | str) -> list[dict[str, Any]]:
        with self._c.db.connection() as conn:
            return _ft.job_events(conn, self._c.scope, ref)

    # -- provenance ----------------------------------------------------------------------
    def trained_on(self, model: str) -> list[dict[str, Any]]:
        """Which generations trained ``model``."""
        with self._c.db.connection() as conn:
            return _prov.trained_on(conn, self._c.scope, model)

    def trace(self, generation_id: UUID | str) -> dict[str, Any]:
        """Which datasets and models a generation helped build, and the job behind its own model."""
        with self._c.db.connection() as conn:
            return _prov.trace(conn, self._c.scope, generation_id)

    def used_by(self, model: str) -> list[dict[str, Any]]:
        """Generations logged with a fine-tuned model, linked back to its job."""
        with self._c.db.connection() as conn:
            return _prov.used_by(conn, self._c.scope, model)
