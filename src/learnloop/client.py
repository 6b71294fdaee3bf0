"""The client: one object an app holds, scoped to a tenant and project.

    import learnloop
    ll = learnloop.connect()                      # embedded server, default tenant/project
    g = ll.log(kind="image", prompt="...", config={"style_preset": "CYBERPUNK_DARK"})
    ll.feedback(g.id, sentiment="NEGATIVE", tags=["TOO_DARK"])
    ll.analytics.failure_rate(by="style_preset")

``ll.scoped(tenant=..., project=...)`` returns a client on another tenant/project that
shares the same pool. Every method is a thin call into the capability modules with this
client's scope; those modules are where the SQL lives.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from .config import Settings, get_settings
from .ledger import feedback as _feedback
from .ledger import generations as _gen
from .ledger import lineage as _lineage
from .ledger.models import Feedback, FeedbackIn, Generation, GenerationIn, LineageNode, ReviewItem
from .store import migrations as _migrations
from .store.database import Database
from .store.tenancy import Scope, resolve


class Client:
    def __init__(self, db: Database, settings: Settings, tenant: str, project: str) -> None:
        self.db = db
        self.settings = settings
        self.tenant = tenant
        self.project = project
        self._scope: Scope | None = None
        self._lock = threading.Lock()

    # -- scope ---------------------------------------------------------------------------
    @property
    def scope(self) -> Scope:
        if self._scope is None:
            with self._lock:
                if self._scope is None:
                    with self.db.connection() as conn:
                        self._scope = resolve(conn, self.tenant, self.project)
        return self._scope

    def scoped(self, *, tenant: str | None = None, project: str | None = None) -> Client:
        return Client(self.db, self.settings, tenant or self.tenant, project or self.project)._resolved()

    def _resolved(self) -> Client:
        # Resolve the scope now, on a connection of its own: methods read self.scope while
        # holding a pooled connection, and resolving it lazily there needs a second one,
        # which deadlocks a pool of one (and a busy pool under load).
        _ = self.scope
        return self

    def projects(self) -> list[dict[str, Any]]:
        """The tenant's projects (id, name, created_at), by name."""
        from .store.tenancy import list_projects

        with self.db.connection() as conn:
            return list_projects(conn, self.scope.tenant_id)

    def create_project(self, name: str) -> dict[str, Any]:
        """A new project of this tenant; ``Conflict`` when the name is taken."""
        from .store.tenancy import create_project

        with self.db.connection() as conn:
            return create_project(conn, self.scope.tenant_id, name)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ledger --------------------------------------------------------------------------
    def log(self, data: GenerationIn | dict[str, Any] | None = None, /, *, project: str | None = None,
            **fields: Any) -> Generation:
        """Record one AI attempt. Pass a dict/GenerationIn or keyword fields."""
        payload = data if data is not None else fields
        with self.db.connection() as conn:
            return _gen.log(conn, self.scope, payload, project=project)

    def bulk_log(self, rows: Iterable[GenerationIn | dict[str, Any]], *, skip_existing: bool = False) -> list[UUID]:
        """Many generations in one transaction (binary COPY); returns ids in input order."""
        with self.db.connection() as conn:
            return _gen.bulk_log(conn, self.scope, rows, skip_existing=skip_existing)

    def get(self, generation_id: UUID | str) -> Generation:
        with self.db.connection() as conn:
            return _gen.get(conn, self.scope, generation_id)

    def find(self, where: Any = None, /, **filters: Any) -> list[Generation]:
        """Generations newest first: ``find("audience=INVESTOR", links={"loan": "456"})``.

        ``where``: config/context conditions (filter language or CLI form); also kind,
        user_ref, session_ref, model, links, ``filters=`` (verdict, tags, since...), and
        ``after=`` the last id of the previous page (keyset paging).
        """
        if where is not None:
            filters["where"] = where
        with self.db.connection() as conn:
            return _gen.find(conn, self.scope, **filters)

    def tree(self, generation_id: UUID | str) -> LineageNode:
        with self.db.connection() as conn:
            return _lineage.tree(conn, self.scope, generation_id)

    def path(self, generation_id: UUID | str) -> list[Generation]:
        with self.db.connection() as conn:
            return _lineage.path(conn, self.scope, generation_id)

    def feedback(self, generation_id: UUID | str | None = None, /, **fields: Any) -> Feedback:
        """Attach feedback: sentiment, rating, thumbs, tags, comment, instruction, ..."""
        data: FeedbackIn | dict[str, Any] = {"generation_id": generation_id, **fields} if generation_id is not None else fields
        if generation_id is not None:
            data["generation_id"] = str(_gen.as_uuid(generation_id, "generation id"))  # type: ignore[index]
        with self.db.connection() as conn:
            return _feedback.add(conn, self.scope, data)

    def bulk_feedback(self, rows: Iterable[FeedbackIn | dict[str, Any]]) -> int:
        with self.db.connection() as conn:
            return _feedback.bulk_add(conn, self.scope, rows)

    def feedback_for(self, generation_id: UUID | str) -> list[Feedback]:
        with self.db.connection() as conn:
            return _feedback.for_generation(conn, self.scope, generation_id)

    def review_queue(self, **options: Any) -> list[ReviewItem]:
        with self.db.connection() as conn:
            return _feedback.pending_review(conn, self.scope, **options)

    def mark_reviewed(self, feedback_id: UUID | str, *, notes: str | None = None,
                      improved: bool | None = None, by: str | None = None) -> Feedback:
        with self.db.connection() as conn:
            return _feedback.mark_processed(conn, self.scope, feedback_id, notes=notes, improved=improved, by=by)

    def mark_reviewed_many(self, feedback_ids: Iterable[UUID | str], *, notes: str | None = None,
                           improved: bool | None = None, by: str | None = None) -> list[Feedback]:
        """Mark several feedback rows reviewed at once, all or nothing (``NotFound`` names
        ids that are not this tenant's, and then nothing is marked)."""
        with self.db.connection() as conn:
            return _feedback.mark_processed_many(conn, self.scope, feedback_ids, notes=notes,
                                                 improved=improved, by=by)

    # -- analytics -----------------------------------------------------------------------
    @property
    def analytics(self) -> Analytics:
        return Analytics(self)

    # -- other capabilities (each facade lives in its own package) ------------------------
    @property
    def knowledge(self) -> Any:
        """Documents, app entities, embeddings and search (``learnloop.knowledge.client``)."""
        from .knowledge.client import Knowledge

        return Knowledge(self)

    @property
    def training(self) -> Any:
        """Datasets, exports, fine-tuning jobs, provenance (``learnloop.training.client``)."""
        from .training.client import Training

        return Training(self)

    @property
    def dictionary(self) -> Any:
        """Semantic dictionary and field catalog (``learnloop.dictionary.client``)."""
        from .dictionary.client import Dictionary

        return Dictionary(self)

    @property
    def predictions(self) -> Any:
        """Model predictions and outcomes (``learnloop.predictions.client``)."""
        from .predictions.client import Predictions

        return Predictions(self)

    @property
    def events(self) -> Any:
        """Outbox, archive, live stream (``learnloop.events.client``)."""
        from .events.client import Events

        return Events(self)

    @property
    def accounts(self) -> Any:
        """Installation keys, tenants, tenant settings, search stats (``learnloop.accounts.client``)."""
        from .accounts.client import Accounts

        return Accounts(self)

    @property
    def traces(self) -> Any:
        """OTLP spans kept as trees (``learnloop.traces``)."""
        from .traces import Traces

        return Traces(self)

    # -- admin ---------------------------------------------------------------------------
    def migrations(self) -> list[_migrations.MigrationState]:
        with self.db.connection() as conn:
            return _migrations.status(conn)


class Analytics:
    """``client.analytics.*``: see :mod:`learnloop.analytics` for definitions."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def breakdown(self, by: Any = (), where: Any = None, **opts: Any) -> Any:
        """Measures per group of up to two dimensions: ``breakdown(["style_preset",
        "demand_kw:bands=0,100,500"], "audience=INVESTOR")`` (see analytics.breakdown)."""
        from .analytics.breakdown import breakdown

        with self._c.db.connection() as conn:
            return breakdown(conn, self._c.scope, by, where, **opts)

    def drivers(self, where: Any = None, **opts: Any) -> Any:
        """Which config/context keys move the failure rate, ranked (see analytics.drivers)."""
        from .analytics.drivers import drivers

        with self._c.db.connection() as conn:
            return drivers(conn, self._c.scope, where, **opts)

    def failure_rate(self, by: str | Sequence[str], **opts: Any) -> Any:
        from .analytics import ledger as a

        with self._c.db.connection() as conn:
            return a.failure_rate(conn, self._c.scope, by, **opts)

    def golden(self, where: Sequence[Any] = (), **opts: Any) -> Any:
        from .analytics import ledger as a

        with self._c.db.connection() as conn:
            return a.golden(conn, self._c.scope, where, **opts)

    def tags(self, *, since: datetime | None = None, until: datetime | None = None, **opts: Any) -> Any:
        from .analytics import ledger as a

        with self._c.db.connection() as conn:
            return a.tag_frequencies(conn, self._c.scope, since=since, until=until, **opts)

    def corrections(self, **opts: Any) -> Any:
        from .analytics import ledger as a

        with self._c.db.connection() as conn:
            return a.corrections(conn, self._c.scope, **opts)

    def refresh(self, *, max_days: int | None = None) -> Any:
        """Bring the daily rollup up to date with this tenant's changed days (see
        analytics.rollup): breakdowns by a key, tag, column or UTC day then read one row per
        day and value instead of every generation. Answers are exact either way."""
        from .analytics.rollup import refresh

        with self._c.db.connection() as conn:
            return refresh(conn, self._c.scope, max_days=max_days)


def connect(
    url: str | None = None,
    *,
    tenant: str | None = None,
    project: str | None = None,
    migrate: bool = True,
    **settings: Any,
) -> Client:
    """Open a client.

    No ``url`` and no ``LEARNLOOP_DATABASE_URL``: the embedded PostgreSQL + pgvector under
    ``LEARNLOOP_HOME`` is started if needed. Pending migrations are applied unless
    ``migrate=False`` (then a schema that is behind raises ConfigurationError).
    """
    s = get_settings(**settings)
    db = Database.open(s, url=url, migrate=migrate)
    try:
        return Client(db, s, tenant or s.tenant, project or s.project)._resolved()
    except BaseException:
        db.close()
        raise
