"""Curating dataset versions from the ledger.

A version is computed, then frozen: the filter selects generations (one SQL query, scoped
by tenant and project), each becomes an example (optionally PII-scrubbed), duplicates by
example hash are dropped (first one kept), a seeded hash of each example decides its
split, and the ordered items are hashed together with the filter and options. If the
latest version of that name has the same hash, it is returned instead of a new one
("creating the same version twice yields the same hash"). Otherwise version n+1 is
written — dataset row, membership rows (binary COPY) and its outbox event — in one
transaction, under an advisory lock on the name so two writers cannot both take n+1.

Preference datasets pair generations of one lineage tree (same ``root_id``):

* correction: a NEGATIVE attempt and the first POSITIVE later iteration of its tree;
* ranking: any two rated siblings whose average ratings differ (higher = chosen).

The prompt of a pair is the input of the earlier attempt: what the user first asked.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from ..errors import InvalidInput, NotFound
from ..events.outbox import emit
from ..ledger import verdicts
from ..ledger.generations import as_uuid
from ..ledger.models import parse
from ..store.database import Conn
from ..store.ids import uuid7
from ..store.tenancy import Scope, ensure_project
from .models import Dataset, DatasetFilter, DatasetOptions
from .pii import scrub, scrub_messages

HASH_PREFIX = "sha256:"
ROLES = ("system", "user", "assistant")
ITEM_TYPES = ["uuid", "uuid", "int4", "uuid", "uuid", "text", "text", "jsonb"]


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode()


def example_hash(example: dict[str, Any]) -> str:
    return HASH_PREFIX + hashlib.sha256(canonical(example)).hexdigest()


def split_of(ex_hash: str, options: DatasetOptions) -> str:
    """Seeded and order-independent: an example keeps its split when others come and go."""
    if options.validation <= 0:
        return "train"
    h = hashlib.sha256(f"{options.seed}:{ex_hash}".encode()).digest()
    return "validation" if int.from_bytes(h[:8], "big") / 2**64 < options.validation else "train"


# -- selection -------------------------------------------------------------------------------

def _where(conn: Conn, scope: Scope, f: DatasetFilter, *, ratings: bool = True) -> tuple[str, list[Any]]:
    project_id = scope.project_id
    if f.project is not None and f.project != scope.project:
        project_id = ensure_project(conn, scope.tenant_id, f.project, create=False)
    where = ["g.tenant_id = %s", "g.project_id = %s"]
    params: list[Any] = [scope.tenant_id, project_id]
    for col, val in (("model", f.model), ("kind", f.kind)):
        if val is not None:
            where.append(f"g.{col} = %s")
            params.append(val)
    if f.since is not None:
        where.append("g.created_at >= %s")
        params.append(f.since)
    if f.until is not None:
        where.append("g.created_at < %s")
        params.append(f.until)
    if f.links:
        where.append("g.links @> %s")
        params.append(Jsonb(f.links))
    if ratings:
        if f.verdict:
            where.append("v.verdict = ANY(%s)")
            params.append(f.verdict)
        if f.min_rating is not None:
            where.append("v.avg_rating >= %s")
            params.append(f.min_rating)
        if f.max_rating is not None:
            where.append("v.avg_rating <= %s")
            params.append(f.max_rating)
    for tag in f.tags:
        where.append(
            "EXISTS (SELECT 1 FROM learnloop.feedback t WHERE t.tenant_id = g.tenant_id"
            " AND t.generation_id = g.id AND t.tags @> ARRAY[%s]::text[])"
        )
        params.append(tag)
    if f.without_tags:
        where.append(
            "NOT EXISTS (SELECT 1 FROM learnloop.feedback t WHERE t.tenant_id = g.tenant_id"
            " AND t.generation_id = g.id AND t.tags && %s::text[])"
        )
        params.append(f.without_tags)
    if f.reviewed_only:
        where.append(
            "EXISTS (SELECT 1 FROM learnloop.feedback r WHERE r.tenant_id = g.tenant_id"
            " AND r.generation_id = g.id AND r.processed)"
        )
    return " AND ".join(where), params


_SELECT = (
    "SELECT g.id, g.parent_id, g.root_id, g.iteration, g.messages, g.prompt, g.output_text,"
    " v.verdict, v.avg_rating"
    " FROM learnloop.generations g"
    # LATERAL + OFFSET 0 (a planning fence) pushes the generation id into the view's GROUP BY: one index probe per
    # generation whatever the statistics say (a plain join, right after a bulk load with no
    # ANALYZE yet, was planned as a nested loop re-aggregating all feedback per row).
    " LEFT JOIN LATERAL (SELECT verdict, avg_rating FROM learnloop.generation_verdicts gv"
    "  WHERE gv.tenant_id = g.tenant_id AND gv.generation_id = g.id OFFSET 0) v ON true"
)


def _rows(conn: Conn, sql: str, params: list[Any]) -> Iterator[dict[str, Any]]:
    # A server-side cursor keeps memory flat for 100k+ generations; it needs a transaction,
    # which the caller holds.
    with conn.cursor(name=f"ds_{uuid7().hex}") as cur:
        cur.itersize = 2000
        cur.execute(sql, params)
        yield from cur


def prompt_messages(row: dict[str, Any]) -> list[dict[str, str]]:
    """The input of a generation as chat messages (its ``messages``, else its prompt)."""
    out: list[dict[str, str]] = []
    for m in row.get("messages") or []:
        if isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) and m["content"].strip():
            out.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"] == "user" for m in out) and row.get("prompt") and row["prompt"].strip():
        out.append({"role": "user", "content": row["prompt"]})
    return out


def _sft_examples(conn: Conn, scope: Scope, f: DatasetFilter, opts: DatasetOptions,
                  counts: Counter[str], pii: Counter[str]) -> Iterator[tuple[UUID, UUID | None, dict[str, Any]]]:
    where, params = _where(conn, scope, f)
    for row in _rows(conn, f"{_SELECT} WHERE {where} ORDER BY g.created_at, g.id", params):
        counts["matched"] += 1
        msgs = prompt_messages(row)
        out = row["output_text"]
        if not out or not out.strip() or not any(m["role"] == "user" for m in msgs):
            counts["skipped_incomplete"] += 1
            continue
        if opts.system is not None and not (msgs and msgs[0]["role"] == "system"):
            msgs = [{"role": "system", "content": opts.system}, *msgs]
        msgs = [*msgs, {"role": "assistant", "content": out}]
        if opts.scrub_pii:
            msgs = scrub_messages(msgs, pii)
        yield row["id"], None, {"messages": msgs}


def _preference_examples(conn: Conn, scope: Scope, f: DatasetFilter, opts: DatasetOptions,
                         counts: Counter[str], pii: Counter[str]) -> Iterator[tuple[UUID, UUID | None, dict[str, Any]]]:
    where, params = _where(conn, scope, f, ratings=False)
    trees: dict[UUID, list[dict[str, Any]]] = {}
    order: list[UUID] = []
    sql = f"{_SELECT} WHERE {where} AND g.output_text IS NOT NULL ORDER BY g.created_at, g.id"
    for row in _rows(conn, sql, params):
        counts["matched"] += 1
        if row["root_id"] not in trees:
            trees[row["root_id"]] = []
            order.append(row["root_id"])
        trees[row["root_id"]].append(row)
    for root in order:
        nodes = sorted(trees[root], key=lambda r: (r["iteration"], str(r["id"])))
        seen: set[tuple[UUID, UUID]] = set()
        pairs: list[tuple[dict[str, Any], dict[str, Any], str]] = []
        for i, bad in enumerate(nodes):
            if bad["verdict"] != "NEGATIVE":
                continue
            for good in nodes[i + 1:]:
                if good["iteration"] > bad["iteration"] and good["verdict"] == "POSITIVE":
                    pairs.append((good, bad, "correction"))
                    seen.add((good["id"], bad["id"]))
                    break
        rated = [n for n in nodes if n["avg_rating"] is not None]
        for i, a in enumerate(rated):
            for b in rated[i + 1:]:
                if a["avg_rating"] == b["avg_rating"]:
                    continue
                hi, lo = (a, b) if a["avg_rating"] > b["avg_rating"] else (b, a)
                if (hi["id"], lo["id"]) not in seen:
                    seen.add((hi["id"], lo["id"]))
                    pairs.append((hi, lo, "ranking"))
        for chosen, rejected, reason in pairs:
            first = chosen if chosen["iteration"] < rejected["iteration"] else rejected
            prompt = prompt_messages(first)
            if not prompt or not chosen["output_text"].strip() or not rejected["output_text"].strip():
                counts["skipped_incomplete"] += 1
                continue
            if opts.system is not None and prompt[0]["role"] != "system":
                prompt = [{"role": "system", "content": opts.system}, *prompt]
            ex = {"prompt": prompt, "chosen": chosen["output_text"], "rejected": rejected["output_text"],
                  "reason": reason}
            if opts.scrub_pii:
                ex["prompt"] = scrub_messages(prompt, pii)
                ex["chosen"] = scrub(ex["chosen"], pii)
                ex["rejected"] = scrub(ex["rejected"], pii)
            counts[f"pairs_{reason}"] += 1
            yield chosen["id"], rejected["id"], ex


# -- versions --------------------------------------------------------------------------------

def create(conn: Conn, scope: Scope, name: str, filter: DatasetFilter | dict[str, Any] | None = None,
           *, kind: str = "sft", options: DatasetOptions | dict[str, Any] | None = None,
           created_by: str | None = None) -> Dataset:
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "@" in name or "\x00" in name:
        raise InvalidInput("dataset name must be 1 to 200 characters, without '@' or NUL", field="name")
    if kind not in ("sft", "preference"):
        raise InvalidInput(f"unknown dataset kind {kind!r}: use 'sft' or 'preference'", field="kind")
    f = parse(DatasetFilter, filter or {})
    opts = parse(DatasetOptions, options or {})
    if kind == "preference" and (f.verdict or f.min_rating is not None or f.max_rating is not None):
        raise InvalidInput(
            "a preference dataset pairs good and bad answers itself; drop verdict/min_rating/max_rating",
            field="filter",
        )
    counts: Counter[str] = Counter()
    pii: Counter[str] = Counter()
    verdicts.settle(conn, scope.tenant_id)  # the filter reads verdicts; settled before the long transaction
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                     (f"dataset:{scope.tenant_id}:{scope.project_id}:{name}",))
        source = _sft_examples if kind == "sft" else _preference_examples
        items: list[tuple[Any, ...]] = []
        seen: set[str] = set()
        for gid, rid, ex in source(conn, scope, f, opts, counts, pii):
            h = example_hash(ex)
            if opts.dedupe and h in seen:
                counts["duplicates"] += 1
                continue
            seen.add(h)
            items.append((gid, rid, split_of(h, opts), h, ex))
        if not items:
            raise InvalidInput(_empty_message(kind, counts), field="filter", counts=dict(counts))

        hasher = hashlib.sha256(canonical({"kind": kind, "filter": f.normalised(), "options": opts.model_dump()}))
        for gid, rid, split, h, _ in items:
            hasher.update(f"\n{gid}|{rid or ''}|{split}|{h}".encode())
        content_hash = HASH_PREFIX + hasher.hexdigest()
        summary = {
            "matched": counts["matched"],
            "skipped_incomplete": counts["skipped_incomplete"],
            "duplicates": counts["duplicates"],
            "examples": len(items),
            "train": sum(1 for it in items if it[2] == "train"),
            "validation": sum(1 for it in items if it[2] == "validation"),
            "pii": {k: pii[k] for k in sorted(pii)},
        }
        if kind == "preference":
            summary["pairs_correction"] = counts["pairs_correction"]
            summary["pairs_ranking"] = counts["pairs_ranking"]

        latest = conn.execute(
            "SELECT *, true AS reused FROM learnloop.datasets WHERE tenant_id = %s AND project_id = %s AND name = %s"
            " ORDER BY version DESC LIMIT 1",
            (scope.tenant_id, scope.project_id, name),
        ).fetchone()
        if latest is not None and latest["content_hash"] == content_hash:
            return Dataset.model_validate(latest)
        version = 1 if latest is None else latest["version"] + 1
        did = uuid7()
        row = conn.execute(
            "INSERT INTO learnloop.datasets (tenant_id, id, project_id, name, version, kind, filter, options,"
            " content_hash, counts, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (scope.tenant_id, did, scope.project_id, name, version, kind, Jsonb(f.normalised()),
             Jsonb(opts.model_dump()), content_hash, Jsonb(summary), created_by),
        ).fetchone()
        with conn.cursor() as cur, cur.copy(
            "COPY learnloop.dataset_items (tenant_id, dataset_id, position, generation_id, rejected_id, split,"
            " example_hash, example) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(ITEM_TYPES)
            for pos, (gid, rid, split, h, ex) in enumerate(items):
                copy.write_row((scope.tenant_id, did, pos, gid, rid, split, h, Jsonb(ex)))
        emit(conn, scope.tenant_id, "dataset", did, "dataset.created",
             {"name": name, "version": version, "kind": kind, "content_hash": content_hash, "counts": summary},
             project_id=scope.project_id, actor=created_by)
    return Dataset.model_validate(row)


def _empty_message(kind: str, counts: Counter[str]) -> str:
    if counts["matched"] == 0:
        return "the filter matched no generations; no dataset was created"
    if kind == "preference":
        return (f"the filter matched {counts['matched']} generations but no preference pairs "
                "(needs a NEGATIVE attempt with a POSITIVE regeneration, or rated siblings); no dataset was created")
    return (f"the filter matched {counts['matched']} generations but none has both a user prompt and an "
            "output; no dataset was created")


def get(conn: Conn, scope: Scope, ref: UUID | str) -> Dataset:
    """By id, ``name`` (latest version) or ``name@version``."""
    sql = "SELECT * FROM learnloop.datasets WHERE tenant_id = %s AND project_id = %s"
    if isinstance(ref, UUID) or (isinstance(ref, str) and _looks_like_uuid(ref)):
        row = conn.execute(sql + " AND id = %s", (scope.tenant_id, scope.project_id, as_uuid(ref, "dataset id"))).fetchone()
    elif isinstance(ref, str) and ref:
        name, _, ver = ref.partition("@")
        if ver:
            if not ver.isdigit():
                raise InvalidInput(f"dataset version must be a number, got {ver!r}", field="dataset")
            row = conn.execute(sql + " AND name = %s AND version = %s",
                               (scope.tenant_id, scope.project_id, name, int(ver))).fetchone()
        else:
            row = conn.execute(sql + " AND name = %s ORDER BY version DESC LIMIT 1",
                               (scope.tenant_id, scope.project_id, name)).fetchone()
    else:
        raise InvalidInput("a dataset is named by its id, name, or name@version", field="dataset")
    if row is None:
        raise NotFound(f"no dataset {ref!s} in project {scope.project!r}")
    return Dataset.model_validate(row)


def _looks_like_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def list_versions(conn: Conn, scope: Scope, name: str | None = None) -> list[Dataset]:
    sql = "SELECT * FROM learnloop.datasets WHERE tenant_id = %s AND project_id = %s"
    params: list[Any] = [scope.tenant_id, scope.project_id]
    if name:
        sql += " AND name = %s"
        params.append(name)
    rows = conn.execute(sql + " ORDER BY name, version", params).fetchall()
    return [Dataset.model_validate(r) for r in rows]


def items(conn: Conn, scope: Scope, dataset_id: UUID, split: str | None = None) -> Iterator[dict[str, Any]]:
    """Membership rows in position order; the caller holds a transaction (server-side cursor)."""
    if split not in (None, "train", "validation"):
        raise InvalidInput(f"unknown split {split!r}: use train or validation", field="split")
    sql = ("SELECT position, generation_id, rejected_id, split, example_hash, example FROM learnloop.dataset_items"
           " WHERE tenant_id = %s AND dataset_id = %s")
    params: list[Any] = [scope.tenant_id, dataset_id]
    if split:
        sql += " AND split = %s"
        params.append(split)
    yield from _rows(conn, sql + " ORDER BY position", params)
