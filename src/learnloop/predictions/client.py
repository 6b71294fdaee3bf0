"""``client.predictions``: register model outputs, record real outcomes, report quality.

    p = ll.predictions.log(model_name="impago", model_version="2025-01", score=0.82,
                           subject={"loan": "456", "installment": "7"}, label="HIGH_RISK",
                           factors={"dias_mora_previos": 12})
    ll.predictions.outcome(p["id"], True)          # the installment was indeed missed
    ll.predictions.report("impago", "2025-01", threshold=0.5)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from . import metrics as _metrics
from . import registry as _reg


class Predictions:
    def __init__(self, client: Any) -> None:
        self._c = client

    def log(self, data: dict[str, Any] | None = None, /, **fields: Any) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            (pid,) = _reg.log(conn, self._c.scope, [data if data is not None else fields])
            return _reg.get(conn, self._c.scope, pid)

    def bulk_log(self, rows: Iterable[dict[str, Any]]) -> list[UUID]:
        with self._c.db.connection() as conn:
            return _reg.log(conn, self._c.scope, rows)

    def get(self, ref: UUID | str) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _reg.get(conn, self._c.scope, ref)

    def find(self, **filters: Any) -> list[dict[str, Any]]:
        """By ``subject={"loan": "456"}``, model_name, model_version."""
        with self._c.db.connection() as conn:
            return _reg.find(conn, self._c.scope, **filters)

    def outcome(self, ref: UUID | str, outcome: bool, *, note: str | None = None, at: datetime | None = None,
                replace: bool = False, actor: str | None = None) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _reg.record_outcome(conn, self._c.scope, ref, outcome, note=note, at=at, replace=replace,
                                       actor=actor)

    def report(self, model_name: str, model_version: str, *, threshold: float = 0.5, bins: int = 10) -> dict[str, Any]:
        with self._c.db.connection() as conn:
            return _metrics.report(conn, self._c.scope, model_name, model_version, threshold=threshold, bins=bins)

    def versions(self, model_name: str | None = None) -> list[dict[str, Any]]:
        with self._c.db.connection() as conn:
            return _metrics.versions(conn, self._c.scope, model_name)
