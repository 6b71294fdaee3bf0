"""The Parquet event archive: hive partitions, whole files, exactly once.

Layout under the archive root (a local folder or any URI pyarrow opens, e.g. ``s3://``)::

    tenant=<encoded name>/year=2026/month=03/day=07/part-000000000042-00000.parquet

Invariants:

* **Whole files.** A file is written under a temporary name (``.….tmp``, which no reader
  globs) and renamed into place; a killed archiver leaves at most a temp file, which the
  next run deletes.
* **Exactly once by event id.** A pass archives the events whose transactions finished
  before it started: ``watermark <= txid < horizon`` (see :mod:`.cursor`). The batch and
  its bounds are committed *before* any file is written; its files are named after it. A
  crashed batch is redone with the same bounds, producing the same events (its leftover
  files are deleted first, never added to). The watermark moves to the batch's upper
  bound in the same transaction that marks it done. A late-committing transaction keeps
  the horizon below its txid, so its events wait for the next pass instead of being
  skipped.
* **Safe partition values.** A tenant name is percent-encoded down to ``[A-Za-z0-9_-]``
  plus ``%XX``, so no value can contain ``/`` or ``..``; ``decode_value`` reverses it
  exactly. A name whose encoding would exceed a path component's limit is stored as
  ``~<tenant uuid>`` (``~`` is never produced by the encoder); the name is in every row.
* **Compaction** writes one file for many small ones, recording in its Parquet metadata
  which files it replaces; sources still present at the next run (a crash between rename
  and delete) are deleted then, so their rows are never counted twice for long.

One archiver runs at a time (a PostgreSQL advisory lock).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import Conflict, InvalidInput
from ..store.database import Database

log = logging.getLogger(__name__)

LOCK_KEY = 7_162_024_005
STATE = "default"
MAX_COMPONENT = 200  # bytes for "tenant=<value>"; file systems allow 255
SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
REPLACES_KEY = b"learnloop.replaces"

SCHEMA = pa.schema([
    ("tenant", pa.string()),
    ("tenant_id", pa.string()),
    ("id", pa.int64()),
    ("project", pa.string()),
    ("project_id", pa.string()),
    ("entity_type", pa.string()),
    ("entity_id", pa.string()),
    ("event_type", pa.string()),
    ("payload", pa.string()),  # JSON text: DuckDB reads it with json_extract
    ("actor", pa.string()),
    ("txid", pa.int64()),
    ("created_at", pa.timestamp("us", tz="UTC")),
])


# -- partition values ------------------------------------------------------------------------

def encode_value(value: str) -> str:
    """Percent-encode everything but ``[A-Za-z0-9_-]`` (so ``.``, ``/``, ``%`` and ``~`` too)."""
    if not isinstance(value, str) or not value:
        raise InvalidInput("a partition value must be a non-empty string")
    return "".join(c if c in SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in value)


def decode_value(text: str) -> str:
    return unquote(text, errors="strict")


def tenant_dir(tenant: str, tenant_id: Any) -> str:
    enc = encode_value(tenant)
    if len(enc.encode()) + len("tenant=") > MAX_COMPONENT:
        enc = f"~{tenant_id}"
    return f"tenant={enc}"


def partition_dir(tenant: str, tenant_id: Any, day: datetime) -> str:
    return f"{tenant_dir(tenant, tenant_id)}/year={day.year:04d}/month={day.month:02d}/day={day.day:02d}"


# -- the file system -------------------------------------------------------------------------

@dataclass
class ArchiveRoot:
    """A file system and a base path in it; every path we touch is checked to stay inside."""

    fs: pafs.FileSystem
    base: str
    uri: str

    @classmethod
    def open(cls, root: str | Path) -> ArchiveRoot:
        text = str(root)
        if "://" in text:
            try:
                fs, base = pafs.FileSystem.from_uri(text)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidInput(f"cannot open archive root {text!r}: {exc}") from None
            base = base.rstrip("/")
        else:
            p = Path(text).expanduser().resolve()
            fs, base = pafs.LocalFileSystem(), p.as_posix()
        fs.create_dir(base, recursive=True)
        return cls(fs, base, text)

    def path(self, rel: str) -> str:
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise InvalidInput(f"archive path {rel!r} would leave the archive root")
        return f"{self.base}/{rel}"

    def files(self, under: str = "", suffix: str = ".parquet") -> list[pafs.FileInfo]:
        where = self.path(under) if under else self.base
        sel = pafs.FileSelector(where, recursive=True, allow_not_found=True)
        return sorted((i for i in self.fs.get_file_info(sel)
                       if i.type == pafs.FileType.File and i.base_name.endswith(suffix)),
                      key=lambda i: i.path)

    def write_whole(self, rel_dir: str, name: str, table: pa.Table,
                    metadata: dict[bytes, bytes] | None = None) -> str:
        """Write ``table`` to ``rel_dir/name`` through a temp file and a rename."""
        d = self.path(rel_dir)
        self.fs.create_dir(d, recursive=True)
        tmp = f"{d}/.{name}.{uuid.uuid4().hex}.tmp"
        if metadata:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
        try:
            with self.fs.open_output_stream(tmp) as out:
                pq.write_table(table, out, compression="zstd")
            self.fs.move(tmp, f"{d}/{name}")
        except BaseException:
            _quietly(self.fs.delete_file, tmp)
            raise
        return f"{d}/{name}"

    def remove_temps(self) -> int:
        temps = self.files(suffix=".tmp")
        for t in temps:
            _quietly(self.fs.delete_file, t.path)
        return len(temps)


def _quietly(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except (FileNotFoundError, OSError):
        pass


# -- archiving -------------------------------------------------------------------------------

_BATCH_SQL = """
SELECT t.name AS tenant, e.tenant_id::text AS tenant_id, e.id, p.name AS project,
       e.project_id::text AS project_id, e.entity_type, e.entity_id, e.event_type,
       e.payload::text AS payload, e.actor, e.txid::text::bigint AS txid, e.created_at
FROM learnloop.events e
JOIN learnloop.tenants t ON t.id = e.tenant_id
LEFT JOIN learnloop.projects p ON p.tenant_id = e.tenant_id AND p.id = e.project_id
WHERE e.txid >= %s::text::xid8 AND e.txid < %s::text::xid8
ORDER BY e.tenant_id, e.id
"""


@dataclass
class PassResult:
    events: int = 0
    files: int = 0
    batches: int = 0
    redone: int = 0
    temps_removed: int = 0
    compacted: int = 0
    seconds: float = 0.0
    paths: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "paths"}


class Archiver:
    def __init__(self, db: Database, root: str | Path, *, chunk_rows: int = 200_000) -> None:
        self.db = db
        self.root = ArchiveRoot.open(root)
        self.chunk_rows = chunk_rows

    # A session advisory lock needs one connection held for the whole pass.
    def _locked(self) -> Any:
        archiver = self

        class _Lock:
            def __enter__(self) -> None:
                self.cm = archiver.db.connection()
                conn = self.cm.__enter__()
                row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (LOCK_KEY,)).fetchone()
                if not row or not row["ok"]:
                    self.cm.__exit__(None, None, None)
                    raise Conflict("another archiver is running on this database; try again later")
                self.conn = conn

            def __exit__(self, *exc: Any) -> None:
                try:
                    self.conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
                finally:
                    self.cm.__exit__(*exc)

        return _Lock()

    def run(self, *, compact: bool = False) -> PassResult:
        """One archive pass: finish a crashed batch, archive what is stable, optionally compact."""
        t0 = time.perf_counter()
        res = PassResult()
        with self._locked():
            res.temps_removed = self.root.remove_temps()
            self._repair_compactions()
            with self.db.connection() as conn:
                conn.execute("INSERT INTO learnloop.archive_state (name) VALUES (%s) ON CONFLICT DO NOTHING", (STATE,))
                pending = conn.execute(
                    "SELECT id, from_xid::text::bigint AS lo, to_xid::text::bigint AS hi"
                    " FROM learnloop.archive_batches WHERE state_name = %s AND status = 'writing' ORDER BY id",
                    (STATE,),
                ).fetchall()
            for b in pending:
                # Files a crashed run wrote for this batch are replaced as a whole: the
                # redo may cut chunks differently (another chunk_rows), so same names
                # alone would not be enough.
                prefix = f"part-{b['id']:012d}-"
                for f in self.root.files():
                    if f.base_name.startswith(prefix):
                        _quietly(self.root.fs.delete_file, f.path)
                self._write_batch(b["id"], b["lo"], b["hi"], res)
                res.redone += 1
            batch = self._new_batch()
            if batch is not None:
                self._write_batch(*batch, res)
            if compact:
                res.compacted = self._compact()
        res.seconds = time.perf_counter() - t0
        return res

    def _new_batch(self) -> tuple[int, int, int] | None:
        with self.db.transaction() as conn:
            st = conn.execute(
                "SELECT watermark::text::bigint AS w FROM learnloop.archive_state WHERE name = %s FOR UPDATE",
                (STATE,),
            ).fetchone()
            assert st is not None
            lo = int(st["w"])
            row = conn.execute("SELECT learnloop.event_horizon()::text::bigint AS x").fetchone()
            assert row is not None
            hi = int(row["x"])
            # Our own transaction holds an xid only once it writes; xmin is at most our xid.
            if hi <= lo:
                return None
            any_rows = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM learnloop.events WHERE txid >= %s::text::xid8"
                " AND txid < %s::text::xid8) AS any",
                (str(lo), str(hi)),
            ).fetchone()
            if not any_rows or not any_rows["any"]:
                conn.execute(
                    "UPDATE learnloop.archive_state SET watermark = %s::text::xid8, updated_at = now() WHERE name = %s",
                    (str(hi), STATE),
                )
                return None
            b = conn.execute(
                "INSERT INTO learnloop.archive_batches (state_name, from_xid, to_xid)"
                " VALUES (%s, %s::text::xid8, %s::text::xid8) RETURNING id",
                (STATE, str(lo), str(hi)),
            ).fetchone()
            assert b is not None
            return int(b["id"]), lo, hi

    def _write_batch(self, batch_id: int, lo: int, hi: int, res: PassResult) -> None:
        buffers: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        seq: dict[str, int] = defaultdict(int)
        n = files = 0

        def flush(part: str) -> None:
            nonlocal files
            rows = buffers.pop(part)
            name = f"part-{batch_id:012d}-{seq[part]:05d}.parquet"
            seq[part] += 1
            res.paths.append(self.root.write_whole(part, name, _table(rows)))
            files += 1

        with self.db.connection() as conn, conn.transaction():
            with conn.cursor(name=f"archive_{batch_id}") as cur:
                cur.itersize = 5000
                cur.execute(_BATCH_SQL, (str(lo), str(hi)))
                for r in cur:
                    ts: datetime = r["created_at"].astimezone(UTC)
                    part = partition_dir(r["tenant"], r["tenant_id"], ts)
                    buffers[part].append((r["tenant"], r["tenant_id"], r["id"], r["project"], r["project_id"],
                                          r["entity_type"], r["entity_id"], r["event_type"], r["payload"],
                                          r["actor"], r["txid"], ts))
                    n += 1
                    if len(buffers[part]) >= self.chunk_rows:
                        flush(part)
        for part in sorted(buffers):
            flush(part)
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE learnloop.archive_batches SET status = 'done', events = %s, files = %s,"
                " finished_at = now() WHERE id = %s",
                (n, files, batch_id),
            )
            conn.execute(
                "UPDATE learnloop.archive_state SET watermark = greatest(watermark, %s::text::xid8),"
                " archived = archived + %s, updated_at = now() WHERE name = %s",
                (str(hi), n, STATE),
            )
        res.events += n
        res.files += files
        res.batches += 1

    # -- compaction --------------------------------------------------------------------------
    def _compact(self, *, min_files: int = 4, max_bytes: int = 64 * 1024 * 1024) -> int:
        by_dir: dict[str, list[pafs.FileInfo]] = defaultdict(list)
        for f in self.root.files():
            if f.size is not None and f.size < max_bytes:
                by_dir[f.path.rsplit("/", 1)[0]].append(f)
        done = 0
        for d, fs in sorted(by_dir.items()):
            if len(fs) < min_files:
                continue
            table = pa.concat_tables([_read(self.root.fs, f.path) for f in fs]).sort_by("id")
            rel = d[len(self.root.base) + 1:]
            names = [f.base_name for f in fs]
            self.root.write_whole(rel, f"compact-{uuid.uuid4().hex}.parquet", table,
                                  {REPLACES_KEY: json.dumps(names).encode()})
            for f in fs:
                _quietly(self.root.fs.delete_file, f.path)
            done += len(fs)
        return done

    def _repair_compactions(self) -> None:
        """Delete sources a crashed compaction left behind (their rows are in its output)."""
        existing = {f.path for f in self.root.files()}
        for path in sorted(existing):
            if not path.rsplit("/", 1)[1].startswith("compact-"):
                continue
            meta = pq.read_schema(path, filesystem=self.root.fs).metadata or {}
            for name in json.loads(meta.get(REPLACES_KEY, b"[]")):
                src = f"{path.rsplit('/', 1)[0]}/{name}"
                if src in existing and src != path:
                    _quietly(self.root.fs.delete_file, src)

    # -- retention ---------------------------------------------------------------------------
    def prune(self, *, older_than_days: float) -> int:
        """Delete outbox rows that are archived, older than N days, and (if a relay runs)
        already confirmed by the broker. Returns the number deleted."""
        if older_than_days < 0:
            raise InvalidInput("retention must be >= 0 days", field="older_than_days")
        cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
        # The archiver's and relays' positions are read first and the DELETE gets them as
        # values: on Citus the outbox is distributed while archive_state and relay_state
        # are plain coordinator tables, and one statement cannot join the two kinds.
        with self.db.transaction() as conn:
            st = conn.execute(
                "SELECT watermark::text AS w FROM learnloop.archive_state WHERE name = %s",
                (STATE,),
            ).fetchone()
            if st is None:
                return 0
            # The slowest relay: an event is pruned only once every relay published it.
            # Positions only move forward, so a value read a moment ago stays safe.
            relay = conn.execute(
                "SELECT last_txid::text AS t, last_id FROM learnloop.relay_state"
                " ORDER BY last_txid, last_id LIMIT 1"
            ).fetchone()
            where = "e.txid < %s::text::xid8 AND e.created_at < %s"
            params: list[Any] = [st["w"], cutoff]
            if relay is not None:
                where += " AND (e.txid, e.id) <= (%s::text::xid8, %s)"
                params += [relay["t"], relay["last_id"]]
            cur = conn.execute("DELETE FROM learnloop.events e WHERE " + where, params)  # noqa: S608 - constant fragments
            return cur.rowcount


def _read(fs: pafs.FileSystem, path: str) -> pa.Table:
    return pq.read_table(path, filesystem=fs, schema=SCHEMA)


def _table(rows: Iterable[tuple[Any, ...]]) -> pa.Table:
    cols = list(zip(*rows, strict=True))
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols, SCHEMA, strict=True)],
                                schema=SCHEMA)


def status(db: Database) -> dict[str, Any]:
    """Watermark, archived count and lag (age of the oldest event not yet archived)."""
    # Two statements: archive_state is a coordinator table, the outbox distributed on Citus.
    with db.connection() as conn:
        row = conn.execute(
            "SELECT s.watermark::text AS watermark, s.archived, s.updated_at"
            " FROM (SELECT 1) one LEFT JOIN learnloop.archive_state s ON s.name = %s",
            (STATE,),
        ).fetchone()
        out = dict(row or {})
        lag = conn.execute(
            "SELECT extract(epoch FROM now() - min(e.created_at)) AS lag_seconds FROM learnloop.events e"
            " WHERE e.txid >= %s::text::xid8",
            (out.get("watermark") or "0",),
        ).fetchone()
    out["lag_seconds"] = float(lag["lag_seconds"]) if lag and lag["lag_seconds"] is not None else 0.0
    return out
