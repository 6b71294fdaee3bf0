"""The bulk path: many generations in one transaction, by binary COPY.

Where the time goes, per row (see benchmarks/bench_logging.py): validating in Python,
encoding and copying the row, and copying its outbox event. Three things keep that near a
bare COPY:

* **A fast path for rows that are already canonical.** Most imported rows hold exactly the
  types the model would produce (str, int, dict...). ``_canonical`` checks those with plain
  type tests and the same limits as :class:`GenerationIn`; any row it is not sure of (a
  string id, a Decimal cost, an unknown key, a value out of range) goes through pydantic,
  so every error message is the model's own. tests/test_bulk_fast_path.py holds the two
  paths to the same answers.
* **Each JSON value is serialised once**: the bytes made to validate it are the bytes sent.
* **Writing overlaps validating.** A writer thread copies batch N and its events while
  this thread validates batch N+1 (psycopg releases the GIL while it waits
  on the server). Only one batch is ever in flight, and a failure on either side stops both
  before the transaction rolls back, so nothing is half-written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import psycopg

from ..errors import Conflict, NotFound
from ..events.outbox import notify_written
from ..store.database import Conn
from ..store.ids import uuid7s
from ..store.memory import gc_paused
from ..store.tenancy import Scope
from ..store.unique import violated_unique
from ..store.validation import json_bytes
from . import daymarks
from .models import MAX_TEXT, GenerationIn, parse

COLUMNS = (
    "tenant_id", "id", "project_id", "external_id", "kind", "user_ref", "session_ref",
    "parent_id", "root_id", "iteration", "context", "config", "prompt", "negative_prompt",
    "messages", "output_text", "output_url", "output_meta", "model", "provider", "tokens_in",
    "tokens_out", "latency_ms", "cost", "retrieved", "links", "created_at",
)
# jsonb columns are sent as ready-made binary jsonb (version byte 1 + the JSON text) under
# the bytea dumper, which passes bytes through in C; the server still parses and checks
# them with jsonb's own receive function, because COPY decodes by the column's type.
COPY_TYPES = [
    "uuid", "uuid", "uuid", "text", "text", "text", "text",
    "uuid", "uuid", "int4", "bytea", "bytea", "text", "text",
    "bytea", "text", "text", "bytea", "text", "text", "int4",
    "int4", "float8", "numeric", "bytea", "bytea", "timestamptz",
]
_COPY_SQL = "COPY learnloop.generations (" + ", ".join(COLUMNS) + ") FROM STDIN (FORMAT BINARY)"
# Each row's outbox event is copied right after the rows, in input order (so the identity
# column numbers them in input order too). Built here, its payload costs ~1 us a row; an
# INSERT ... SELECT that joined the rows just copied back by id cost the server 18 us a row
# against ~10 for this COPY.
_EVENTS_COPY_SQL = (
    "COPY learnloop.events (tenant_id, project_id, entity_type, entity_id, event_type, payload, actor)"
    " FROM STDIN (FORMAT BINARY)"
)
_EVENT_TYPES = ["uuid", "uuid", "text", "text", "text", "bytea", "text"]
# Each generation's analytics row (ledger m005), copied from the same record: the
# generation's analytic columns and a feedback summary of zeros.
_FACTS_COPY_SQL = (
    "COPY learnloop.verdicts (tenant_id, generation_id, project_id, parent_id, root_id, iteration, generated_at,"
    " feedback_count, sentiments, positives, negatives, rating_sum, rating_count, tags, sources,"
    " kind, model, provider, tokens_in, tokens_out, latency_ms, cost, config, context, output_meta)"
    " FROM STDIN (FORMAT BINARY)"
)
_FACTS_TYPES = ["uuid", "uuid", "uuid", "uuid", "uuid", "int4", "timestamptz", "int4", "int4", "int4", "int4",
                "int4", "int4", "text[]", "text[]", "text", "text", "text", "int4", "int4", "float8", "numeric",
                "bytea", "bytea", "bytea"]
_NO_FEEDBACK: tuple[Any, ...] = (0, 0, 0, 0, 0, 0, [], [])
_MARK_SQL = ("INSERT INTO learnloop.analytics_dirty (tenant_id, project_id, day)"
             " SELECT %s, p, d FROM unnest(%s::uuid[], %s::date[]) AS x(p, d)")

_PARENT_MARK_SQL = ("INSERT INTO learnloop.analytics_dirty (tenant_id, project_id, day)"
                    " SELECT DISTINCT p.tenant_id, p.project_id, (p.created_at AT TIME ZONE 'UTC')::date"
                    " FROM learnloop.generations p WHERE p.tenant_id = %s AND p.id = ANY(%s::uuid[])")


def _facts(rec: tuple[Any, ...]) -> tuple[Any, ...]:
    """The analytics row of a generation record (``COLUMNS`` order)."""
    return (rec[0], rec[1], rec[2], rec[7], rec[8], rec[9], rec[26], *_NO_FEEDBACK,
            rec[4], rec[18], rec[19], rec[20], rec[21], rec[22], rec[23], rec[11], rec[10], rec[17])
ANALYZE_AFTER = 10_000
_ANALYZE_SQL = (
    "ANALYZE learnloop.generations (tenant_id, project_id, id, external_id, kind, user_ref,"
    " session_ref, parent_id, root_id, iteration, model, provider, created_at)"
)


# -- validation ---------------------------------------------------------------------------

def _limit(field: str, kind: str) -> Any:
    """A bound declared on GenerationIn's field (max_length, le...), so the two cannot drift."""
    for m in GenerationIn.model_fields[field].metadata:
        if hasattr(m, kind):
            return getattr(m, kind)
    return None


# optional text field -> max characters (MAX_TEXT where the model declares none)
_TEXT = {
    name: _limit(name, "max_length") or MAX_TEXT
    for name in ("external_id", "user_ref", "session_ref", "prompt", "negative_prompt",
                 "output_text", "output_url", "model", "provider")
}
_KIND_MIN, _KIND_MAX = _limit("kind", "min_length"), _limit("kind", "max_length")
_INT_MAX = _limit("tokens_in", "le")
_OBJECTS = ("context", "config", "output_meta")
_KNOWN = frozenset(GenerationIn.model_fields)


class Row:
    """One validated generation, its JSON already serialised for COPY."""

    __slots__ = ("f", "json")

    def __init__(self, f: dict[str, Any], json: dict[str, bytes | None]) -> None:
        self.f = f
        self.json = json


def _canonical(d: Any) -> Row | None:
    """The row if every value already has the model's own type and passes its limits, else None."""
    if type(d) is not dict or not _KNOWN.issuperset(d):
        return None
    f: dict[str, Any] = {}
    kind = d.get("kind", "completion")
    if type(kind) is not str or not _KIND_MIN <= len(kind) <= _KIND_MAX or "\x00" in kind:
        return None
    f["kind"] = kind
    for name, limit in _TEXT.items():
        v = d.get(name)
        if v is not None and (type(v) is not str or len(v) > limit or "\x00" in v):
            return None
        f[name] = v
    for name in ("id", "parent_id"):
        v = d.get(name)
        if v is not None and type(v) is not UUID:
            return None
        f[name] = v
    for name in ("tokens_in", "tokens_out"):  # ge=0 on both
        v = d.get(name)
        if v is not None and (type(v) is not int or not 0 <= v <= _INT_MAX):
            return None
        f[name] = v
    v = d.get("latency_ms")
    if v is not None:
        if type(v) is int:
            v = float(v)
        if type(v) is not float or not (v >= 0 and math.isfinite(v)):
            return None
    f["latency_ms"] = v
    if d.get("cost") is not None:  # Decimal rounding rules: the model's job
        return None
    f["cost"] = None
    v = d.get("created_at")
    if v is not None and type(v) is not datetime:
        return None
    f["created_at"] = v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v  # as GenerationIn

    json: dict[str, bytes | None] = {}
    try:
        for name in _OBJECTS:
            v = d.get(name)
            if v is None:
                v = {}
            elif type(v) is not dict:
                return None
            f[name] = v
            json[name] = _plain_json(v)
        v = d.get("messages")
        if v is not None and (type(v) is not list or any(type(m) is not dict for m in v)):
            return None
        f["messages"] = v
        json["messages"] = None if v is None else _plain_json(v)
        v = d.get("retrieved")
        if v is None:
            v = []
        elif type(v) is not list:
            return None
        f["retrieved"] = v
        json["retrieved"] = _plain_json(v)
        v = d.get("links")
        if v is None:
            v = {}
        elif type(v) is not dict or any(type(x) is not str for x in v.values()):
            return None
        f["links"] = v
        json["links"] = _plain_json(v)
    except _NotPlain:
        return None
    return Row(f, json)


class _NotPlain(Exception):
    pass


def _plain_json(value: Any) -> bytes:
    """orjson's bytes for a value that needs no second look, else _NotPlain.

    orjson refuses non-string keys at any depth, integers beyond 64 bits and non-JSON
    types; a ``null`` may be a NaN it rewrote and an escaped U+0000 a NUL: all of those
    rows go to the model, which says exactly what is wrong or normalises them.
    """
    try:
        data = orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        raise _NotPlain from None
    if b"null" in data or b"\\u0000" in data:
        raise _NotPlain
    return data


def validate(item: Any) -> Row:
    """One input row, validated: by the fast path when it can, else by the model."""
    row = _canonical(item)
    if row is not None:
        return row
    g = parse(GenerationIn, item)
    f = dict(g.__dict__)
    json: dict[str, bytes | None] = {name: json_bytes(f[name], name) for name in (*_OBJECTS, "retrieved", "links")}
    json["messages"] = None if f["messages"] is None else json_bytes(f["messages"], "messages")
    return Row(f, json)


# -- writing ------------------------------------------------------------------------------

class _Writer:
    """Copies one batch at a time on a worker thread, in the caller's transaction."""

    def __init__(self, conn: Conn, tenant_id: UUID) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="learnloop-bulk")
        self.pending: Future[None] | None = None

    def submit(self, records: list[tuple[Any, ...]], events: list[tuple[Any, ...]]) -> None:
        self.wait()
        self.pending = self.pool.submit(self._write, records, events)

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def close(self) -> None:
        """Let any batch in flight end (its error, if any, is the caller's to surface)."""
        if self.pending is not None:
            try:
                self.pending.result()
            except Exception:
                pass
            self.pending = None
        self.pool.shutdown(wait=True)

    @staticmethod
    def _copy_facts(cur: psycopg.Cursor[Any], records: list[tuple[Any, ...]]) -> None:
        with cur.copy(_FACTS_COPY_SQL) as copy:
            copy.set_types(_FACTS_TYPES)
            for rec in records:
                copy.write_row(_facts(rec))
        if records and daymarks.kept(cur.connection):
            # The analytics rollup's day marks (ledger/daymarks.py): one per (project, UTC day).
            days = {(rec[0], rec[2], rec[26].astimezone(UTC).date()) for rec in records}
            for tenant in {d[0] for d in days}:
                mine = sorted((p, d) for t, p, d in days if t == tenant)
                cur.execute(_MARK_SQL, (tenant, [p for p, _ in mine], [d for _, d in mine]))
                # A child changes its parent's day too (the parent is regenerated: ledger m010).
                parents = sorted({rec[7] for rec in records if rec[0] == tenant and rec[7] is not None})
                if parents:
                    cur.execute(_PARENT_MARK_SQL, (tenant, parents))

    def _write(self, records: list[tuple[Any, ...]], events: list[tuple[Any, ...]]) -> None:
        try:
            with self.conn.cursor() as cur:
                with cur.copy(_COPY_SQL) as copy:
                    copy.set_types(COPY_TYPES)
                    for rec in records:
                        copy.write_row(rec)
                self._copy_facts(cur, records)
                with cur.copy(_EVENTS_COPY_SQL) as copy:
                    copy.set_types(_EVENT_TYPES)
                    for ev in events:
                        copy.write_row(ev)
            notify_written(self.conn, {ev[0] for ev in events})
        except psycopg.Error as exc:
            if violated_unique(exc) is None:
                raise
            raise Conflict(
                "this import holds a generation whose id or external_id is already stored "
                f"({exc.diag.message_detail or 'duplicate key'}); nothing was imported"
            ) from None


def bulk_log(
    conn: Conn,
    scope: Scope,
    rows: Iterable[GenerationIn | dict[str, Any]],
    *,
    skip_existing: bool = False,
    batch_size: int = 10_000,
) -> list[UUID]:
    """Insert many generations in one transaction; return their ids in input order.

    With ``skip_existing``, rows whose ``external_id`` is already stored in the project are
    skipped (and their stored id returned), which makes re-running an import a no-op.
    """
    ids: list[UUID] = []
    with gc_paused(), conn.transaction():
        now_row = conn.execute("SELECT now() AS now").fetchone()
        assert now_row is not None  # a SELECT without FROM returns exactly one row
        now = now_row["now"]
        batcher = _Batcher(conn, scope, skip_existing, now)
        writer = _Writer(conn, scope.tenant_id)
        try:
            for batch in _batches(rows, batch_size):
                out_ids, records, events = batcher.prepare([validate(r) for r in batch], writer)
                ids.extend(out_ids)
                if records:
                    writer.submit(records, events)
            writer.wait()
        finally:
            writer.close()
    if len(ids) >= ANALYZE_AFTER and not conn.info.transaction_status:
        # Fresh statistics right after a big load, or the planner can pick per-row loops
        # over the verdict aggregate until autovacuum gets round to it. Only the columns
        # joins and filters plan on: sampling the prompts and JSON documents as well took
        # 0.58 s of a 100k-row import instead of 0.10 s (autovacuum analyses them later).
        conn.execute(_ANALYZE_SQL)
    return ids


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for r in rows:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Batcher:
    """Lineage and idempotence across the batches of one call."""

    def __init__(self, conn: Conn, scope: Scope, skip_existing: bool, now: datetime) -> None:
        self.conn = conn
        self.scope = scope
        self.skip_existing = skip_existing
        self.now = now
        self.known: dict[UUID, tuple[UUID, int]] = {}  # id -> (root_id, iteration)
        self.seen_ext: set[str] = set()

    def _lookup(self, writer: _Writer, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        # The connection is the writer's while a batch is in flight; an earlier batch's
        # failure must surface before we read as if it had landed.
        writer.wait()
        return self.conn.execute(query, params).fetchall()

    def prepare(
        self, items: list[Row], writer: _Writer
    ) -> tuple[list[UUID], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """(ids in input order, generation rows to copy, their outbox events to copy)."""
        scope, known = self.scope, self.known
        existing: dict[str, UUID] = {}
        if self.skip_existing:
            ext = [r.f["external_id"] for r in items if r.f["external_id"]]
            if ext:
                for r in self._lookup(
                    writer,
                    "SELECT external_id, id, root_id, iteration FROM learnloop.generations"
                    " WHERE tenant_id = %s AND project_id = %s AND external_id = ANY(%s)",
                    (scope.tenant_id, scope.project_id, ext),
                ):
                    existing[r["external_id"]] = r["id"]
                    known[r["id"]] = (r["root_id"], r["iteration"])

        # Parents stored before this call.
        outside = {r.f["parent_id"] for r in items if r.f["parent_id"] and r.f["parent_id"] not in known}
        outside -= {r.f["id"] for r in items if r.f["id"]}
        if outside:
            for r in self._lookup(
                writer,
                "SELECT id, root_id, iteration FROM learnloop.generations WHERE tenant_id = %s AND id = ANY(%s)",
                (scope.tenant_id, list(outside)),
            ):
                known[r["id"]] = (r["root_id"], r["iteration"])

        out_ids: list[UUID] = []
        records: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        fresh = uuid7s(len(items))
        for row in items:
            f, js = row.f, row.json
            ext_id = f["external_id"]
            if ext_id:
                if ext_id in existing:
                    out_ids.append(existing[ext_id])
                    continue
                if ext_id in self.seen_ext:
                    raise Conflict(f"external_id {ext_id!r} appears twice in this import")
                self.seen_ext.add(ext_id)
            gid = f["id"] or next(fresh)
            if gid in known:
                raise Conflict(f"generation id {gid} appears twice in this import")
            parent = f["parent_id"]
            if parent is None:
                root, it = gid, 1
            else:
                if parent not in known:
                    raise NotFound(
                        f"parent generation {parent} does not exist in this tenant "
                        "(in a bulk import, a parent must come before its children)"
                    )
                proot, pit = known[parent]
                root, it = proot, pit + 1
            known[gid] = (root, it)
            out_ids.append(gid)
            msgs = js["messages"]
            records.append((
                scope.tenant_id, gid, scope.project_id, ext_id, f["kind"], f["user_ref"], f["session_ref"],
                parent, root, it, b"\x01" + js["context"], b"\x01" + js["config"], f["prompt"],  # type: ignore[operator]
                f["negative_prompt"], None if msgs is None else b"\x01" + msgs, f["output_text"],
                f["output_url"], b"\x01" + js["output_meta"], f["model"], f["provider"], f["tokens_in"],  # type: ignore[operator]
                f["tokens_out"], f["latency_ms"], f["cost"], b"\x01" + js["retrieved"],  # type: ignore[operator]
                b"\x01" + js["links"], f["created_at"] or self.now,  # type: ignore[operator]
            ))
            # The same payload a single log() writes, plus "bulk" (orjson writes UUIDs as text).
            payload = orjson.dumps({
                "kind": f["kind"], "model": f["model"], "parent_id": parent, "root_id": root,
                "iteration": it, "user_ref": f["user_ref"], "links": f["links"], "bulk": True,
            })
            events.append((scope.tenant_id, scope.project_id, "generation", str(gid), "generation.logged",
                           b"\x01" + payload, f["user_ref"]))
        return out_ids, records, events
