"""Provenance, both directions, from membership rows and job records (seed 004).

* ``trained_on(model)``: the generations in the dataset version of the job(s) whose
  resulting model is ``model`` (for a preference pair both sides count, with their role);
* ``trace(generation)``: the dataset versions that hold a generation, the jobs (and
  models) trained on them, and — the loop closing — the job that produced the model the
  generation was itself logged with (``generations.model = finetune_jobs.result_model``);
* ``used_by(model)``: generations logged with a fine-tuned model, each linked to its job.

All three are plain joins on tenant-leading indexes; nothing is copied, so provenance
cannot drift from what was trained.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ..errors import InvalidInput, NotFound
from ..ledger.generations import as_uuid
from ..store.database import Conn
from ..store.tenancy import Scope


def _model(model: Any) -> str:
    if not isinstance(model, str) or not model or "\x00" in model:
        raise InvalidInput("model must be a model name", field="model")
    return model


def trained_on(conn: Conn, scope: Scope, model: str, *, limit: int = 100_000) -> list[dict[str, Any]]:
    model = _model(model)
    jobs = conn.execute(
        "SELECT id FROM learnloop.finetune_jobs WHERE tenant_id = %s AND result_model = %s",
        (scope.tenant_id, model),
    ).fetchall()
    if not jobs:
        raise NotFound(f"no fine-tuning job in this tenant produced model {model!r}")
    return conn.execute(
        """
        SELECT m.generation_id, m.role, m.split, j.id AS job_id, j.status AS job_status,
               d.name AS dataset, d.version AS dataset_version, g.created_at AS generation_created_at
        FROM learnloop.finetune_jobs j
        JOIN learnloop.datasets d ON d.tenant_id = j.tenant_id AND d.id = j.dataset_id
        CROSS JOIN LATERAL (
            SELECT i.generation_id, CASE WHEN i.rejected_id IS NULL THEN 'example' ELSE 'chosen' END AS role,
                   i.split, i.position
            FROM learnloop.dataset_items i WHERE i.tenant_id = %(t)s AND i.dataset_id = j.dataset_id
            UNION ALL
            SELECT i.rejected_id, 'rejected', i.split, i.position
            FROM learnloop.dataset_items i
            WHERE i.tenant_id = %(t)s AND i.dataset_id = j.dataset_id AND i.rejected_id IS NOT NULL
        ) m
        JOIN learnloop.generations g ON g.tenant_id = j.tenant_id AND g.id = m.generation_id
        WHERE j.tenant_id = %(t)s AND j.result_model = %(model)s
        ORDER BY j.id, m.position, m.role
        LIMIT %(limit)s
        """,
        {"t": scope.tenant_id, "model": model, "limit": limit},
    ).fetchall()


def trace(conn: Conn, scope: Scope, generation_id: UUID | str) -> dict[str, Any]:
    gid = as_uuid(generation_id, "generation id")
    g = conn.execute("SELECT id, model FROM learnloop.generations WHERE tenant_id = %s AND id = %s",
                     (scope.tenant_id, gid)).fetchone()
    if g is None:
        raise NotFound(f"generation {gid} does not exist in this tenant")
    datasets = conn.execute(
        """
        SELECT d.id, d.name, d.version, d.kind, d.content_hash, i.split,
               CASE WHEN i.rejected_id = %(g)s THEN 'rejected'
                    WHEN i.rejected_id IS NOT NULL THEN 'chosen' ELSE 'example' END AS role
        FROM learnloop.dataset_items i
        JOIN learnloop.datasets d ON d.tenant_id = i.tenant_id AND d.id = i.dataset_id
        WHERE i.tenant_id = %(t)s AND (i.generation_id = %(g)s OR i.rejected_id = %(g)s)
        ORDER BY d.name, d.version
        """,
        {"t": scope.tenant_id, "g": gid},
    ).fetchall()
    jobs = conn.execute(
        """
        SELECT j.id, j.status, j.base_model, j.result_model, j.provider_job_id, d.name AS dataset,
               d.version AS dataset_version
        FROM learnloop.finetune_jobs j
        JOIN learnloop.datasets d ON d.tenant_id = j.tenant_id AND d.id = j.dataset_id
        WHERE j.tenant_id = %(t)s AND EXISTS (
            SELECT 1 FROM learnloop.dataset_items i
            WHERE i.tenant_id = %(t)s AND i.dataset_id = j.dataset_id
              AND (i.generation_id = %(g)s OR i.rejected_id = %(g)s))
        ORDER BY j.created_at
        """,
        {"t": scope.tenant_id, "g": gid},
    ).fetchall()
    produced_by = None
    if g["model"]:
        produced_by = conn.execute(
            "SELECT id, status, base_model, result_model, dataset_id FROM learnloop.finetune_jobs"
            " WHERE tenant_id = %s AND result_model = %s ORDER BY created_at DESC LIMIT 1",
            (scope.tenant_id, g["model"]),
        ).fetchone()
    return {
        "generation_id": gid,
        "model": g["model"],
        "datasets": datasets,
        "trained_jobs": jobs,
        "models_trained": sorted({j["result_model"] for j in jobs if j["result_model"]}),
        "logged_with_job": produced_by,
    }


def used_by(conn: Conn, scope: Scope, model: str, *, limit: int = 1000) -> list[dict[str, Any]]:
    model = _model(model)
    return conn.execute(
        """
        SELECT g.id AS generation_id, g.created_at, j.id AS job_id, j.dataset_id
        FROM learnloop.generations g
        JOIN LATERAL (
            SELECT id, dataset_id FROM learnloop.finetune_jobs
            WHERE tenant_id = %(t)s AND result_model = g.model ORDER BY created_at DESC LIMIT 1
        ) j ON true
        WHERE g.tenant_id = %(t)s AND g.model = %(model)s
        ORDER BY g.created_at DESC LIMIT %(limit)s
        """,
        {"t": scope.tenant_id, "model": model, "limit": limit},
    ).fetchall()
