"""App-defined events: an app's own domain events in learnloop's outbox.

    ll.events.emit("goal.completed", entity=("goal", "g-17"), user="u-3", payload={"score": 0.9})

They travel exactly like learnloop's own events (same table, same transaction rules), so
they reach the Parquet archive, DuckDB, the live WebSocket stream and the broker relay. In
the archive, ``entity`` is the ``entity_type`` / ``entity_id`` columns and ``user`` the
``actor`` column, so per-user and per-entity reports need no JSON extraction.

Rules (checked before anything is written):

* the type matches ``EVENT_TYPE_PATTERN``: lowercase dotted words, at least two
  (``goal.created``, ``code_review.score.updated``), at most 100 characters;
* its first word is not one of learnloop's own (``RESERVED_PREFIXES``), so a consumer
  can always tell an app's ``feedback.added`` from learnloop's;
* the payload is a JSON object of at most ``MAX_PAYLOAD_BYTES`` once serialized: events
  carry identifiers and small facts; big texts belong in an entity or a document.

Without an entity, the event's entity is ``(<first word of the type>, "")``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from ..errors import InvalidInput
from ..store.database import Conn
from ..store.validation import check_text, json_bytes

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
_TYPE_RE = re.compile(EVENT_TYPE_PATTERN)
MAX_TYPE_CHARS = 100
MAX_PAYLOAD_BYTES = 64 * 1024
# The first word of every event type learnloop writes itself (and a few it will).
RESERVED_PREFIXES = frozenset({
    "api_key", "catalog", "catalog_field", "dataset", "dictionary_term", "document", "embeddings",
    "entity", "feedback", "finetune_job", "generation", "improvement", "installation", "learnloop",
    "prediction", "project", "review", "search", "search_metrics", "tenant",
})


def check_event_type(event_type: Any) -> str:
    if not isinstance(event_type, str) or not event_type:
        raise InvalidInput("event type must be a non-empty string such as 'goal.created'", field="type")
    if len(event_type) > MAX_TYPE_CHARS or not _TYPE_RE.fullmatch(event_type):
        raise InvalidInput(
            f"event type {event_type[:120]!r} does not match {EVENT_TYPE_PATTERN} "
            f"(lowercase dotted words, at least two, at most {MAX_TYPE_CHARS} characters, e.g. 'goal.created')",
            field="type")
    prefix = event_type.split(".", 1)[0]
    if prefix in RESERVED_PREFIXES:
        raise InvalidInput(f"event types starting with {prefix!r} are learnloop's own; "
                           "name your event after your app's entity (e.g. 'goal.created')", field="type")
    return event_type


def check_payload(payload: Any) -> dict[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise InvalidInput("event payload must be a JSON object", field="payload")
    payload = dict(payload)
    size = len(json_bytes(payload, "payload"))  # also refuses NaN, NUL, non-JSON values
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidInput(f"event payload is {size:,} bytes as JSON; the limit is {MAX_PAYLOAD_BYTES:,} "
                           "(put large texts in an entity or a document and refer to it)", field="payload")
    return payload


def parse_entity(entity: Any, event_type: str) -> tuple[str, str]:
    """``("goal", "g-17")``, ``{"type": ..., "id": ...}`` or None."""
    if entity is None:
        return event_type.split(".", 1)[0], ""
    if isinstance(entity, Mapping):
        etype, eid = entity.get("type"), entity.get("id")
    elif isinstance(entity, Sequence) and not isinstance(entity, str) and len(entity) == 2:
        etype, eid = entity
    else:
        raise InvalidInput("entity must be a pair (entity_type, entity_id)", field="entity")
    if isinstance(eid, int) and not isinstance(eid, bool):
        eid = str(eid)
    if not isinstance(etype, str) or not 1 <= len(etype) <= 100:
        raise InvalidInput("entity type must be a string of 1 to 100 characters", field="entity_type")
    if not isinstance(eid, str) or not 1 <= len(eid) <= 500:
        raise InvalidInput("entity id must be a string of 1 to 500 characters", field="entity_id")
    check_text(etype, "entity_type")
    check_text(eid, "entity_id")
    return etype, eid


def check_user(user: Any) -> str | None:
    if user is None:
        return None
    if isinstance(user, int) and not isinstance(user, bool):
        user = str(user)
    if not isinstance(user, str) or not 1 <= len(user) <= 500:
        raise InvalidInput("user must be a string of 1 to 500 characters", field="user")
    check_text(user, "user")
    return user


def emit(conn: Conn, tenant_id: UUID, project_id: UUID, event_type: str, *, entity: Any = None,
         payload: Any = None, user: Any = None) -> dict[str, Any]:
    """Validate and write one app event; returns the stored row (id, created_at, ...).

    Runs in the caller's transaction when there is one, so an app that writes its own
    rows on the same connection gets the outbox guarantee for its events too.
    """
    etype = check_event_type(event_type)
    body = check_payload(payload)
    ent_type, ent_id = parse_entity(entity, etype)
    actor = check_user(user)
    row = conn.execute(
        "INSERT INTO learnloop.events (tenant_id, project_id, entity_type, entity_id, event_type, payload, actor)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id, event_type, entity_type, entity_id, actor AS user, payload, created_at",
        (tenant_id, project_id, ent_type, ent_id, etype, Jsonb(body), actor),
    ).fetchone()
    assert row is not None
    return dict(row)
