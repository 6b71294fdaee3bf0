"""Field catalog: what each column of the app's database means (seed 001 #6).

``introspect(url, schema)`` reads the target database's own catalogs (``pg_attribute``,
``pg_index``, ``pg_constraint``, ``pg_enum``, column comments) over a read-only
connection and upserts one row per column. Machine facts are refreshed on every run:
data type, required (NOT NULL), indexed (the column is part of any index), foreign key
target, database comment, allowed values (enum labels, or the literals of a one-column
``CHECK (col IN (...))``; when none are found a hand-set list is kept). Human-written
``definition``, ``notes`` and ``example_values`` are never touched. Columns that were
catalogued but are gone are kept with ``present = false``. Rows are never sampled from
the target database (its rows may hold personal data).

The whole run is one transaction on our side and one outbox event.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..errors import DatabaseUnavailable, InvalidInput, NotFound
from ..events.outbox import emit
from ..store.database import Conn
from ..store.ids import uuid7
from ..store.tenancy import Scope
from ..store.validation import check_json, check_text
from . import improvements as _imp

_COLUMNS = """
SELECT c.relname AS table_name, a.attname AS field_name, a.attnum,
       format_type(a.atttypid, a.atttypmod) AS data_type,
       a.attnotnull AS required,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND a.attnum = ANY (i.indkey)) AS indexed,
       col_description(c.oid, a.attnum) AS db_comment,
       (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = a.atttypid)
           AS enum_values
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY c.relname, a.attnum
"""

_FKS = """
SELECT c.relname AS table_name, a.attname AS field_name,
       CASE WHEN fn.nspname = %(s)s THEN fc.relname ELSE fn.nspname || '.' || fc.relname END AS fk_table,
       fa.attname AS fk_field
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class fc ON fc.oid = con.confrelid
JOIN pg_namespace fn ON fn.oid = fc.relnamespace
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(attnum, fattnum)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = k.fattnum
WHERE con.contype = 'f' AND n.nspname = %(s)s
"""

_CHECKS = """
SELECT c.relname AS table_name, a.attname AS field_name, pg_get_constraintdef(con.oid) AS def
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
WHERE con.contype = 'c' AND n.nspname = %s AND array_length(con.conkey, 1) = 1
"""

_LITERAL = re.compile(r"'((?:[^']|'')*)'::")


def allowed_from_check(definition: str) -> list[str] | None:
    """Literals of ``CHECK (col = ANY (ARRAY['a'::text, ...]))`` (how PostgreSQL prints ``IN``)."""
    if "ANY (" not in definition and "ANY ((" not in definition:
        return None
    values = [v.replace("''", "'") for v in _LITERAL.findall(definition)]
    return values or None


def read_schema(url: str, schema: str, timeout: int = 5) -> list[dict[str, Any]]:
    """Every column of ``schema`` at ``url`` with its machine facts."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("the catalog source needs a PostgreSQL URL", field="url")
    if not isinstance(schema, str) or not schema or "\x00" in schema:
        raise InvalidInput("schema must be a schema name, e.g. public", field="schema")
    try:
        conn = psycopg.connect(url, connect_timeout=timeout, autocommit=False, row_factory=dict_row)
    except psycopg.ProgrammingError as exc:
        raise InvalidInput(f"not a valid PostgreSQL URL: {exc}", field="url") from None
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["connection failed"])[0]
        raise DatabaseUnavailable(f"cannot reach the database to introspect: {first}") from None
    with conn:
        conn.execute("SET TRANSACTION READ ONLY")
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
            raise NotFound(f"schema {schema!r} does not exist in that database")
        cols = conn.execute(_COLUMNS, (schema,)).fetchall()
        fks = {(r["table_name"], r["field_name"]): r for r in conn.execute(_FKS, {"s": schema}).fetchall()}
        checks: dict[tuple[str, str], list[str]] = {}
        for r in conn.execute(_CHECKS, (schema,)).fetchall():
            vals = allowed_from_check(r["def"])
            if vals:
                checks[(r["table_name"], r["field_name"])] = vals
        conn.rollback()
    if not cols:
        raise NotFound(f"schema {schema!r} has no tables or views to catalogue")
    out = []
    for c in cols:
        key = (c["table_name"], c["field_name"])
        fk = fks.get(key)
        out.append({
            "table_name": c["table_name"], "field_name": c["field_name"], "data_type": c["data_type"],
            "required": c["required"], "indexed": c["indexed"], "db_comment": c["db_comment"],
            "fk_table": fk["fk_table"] if fk else None, "fk_field": fk["fk_field"] if fk else None,
            "allowed_values": c["enum_values"] or checks.get(key),
        })
    return out


_UPSERT = """
INSERT INTO learnloop.catalog_fields (tenant_id, id, project_id, schema_name, table_name, field_name, data_type,
    required, indexed, fk_table, fk_field, allowed_values, db_comment, present, introspected_at)
VALUES (%(t)s, %(id)s, %(p)s, %(schema)s, %(table_name)s, %(field_name)s, %(data_type)s, %(required)s,
    %(indexed)s, %(fk_table)s, %(fk_field)s, %(allowed_values)s, %(db_comment)s, true, now())
ON CONFLICT (tenant_id, project_id, schema_name, table_name, field_name) DO UPDATE SET
    data_type = EXCLUDED.data_type, required = EXCLUDED.required, indexed = EXCLUDED.indexed,
    fk_table = EXCLUDED.fk_table, fk_field = EXCLUDED.fk_field,
    allowed_values = coalesce(EXCLUDED.allowed_values, catalog_fields.allowed_values),
    db_comment = EXCLUDED.db_comment, present = true, introspected_at = EXCLUDED.introspected_at,
    updated_at = EXCLUDED.updated_at
RETURNING (xmax = 0) AS inserted
"""


def introspect(conn: Conn, scope: Scope, url: str, schema: str = "public", *,
               by: str | None = None) -> dict[str, Any]:
    cols = read_schema(url, schema)
    inserted = 0
    with conn.transaction():
        for c in cols:
            row = conn.execute(_UPSERT, {
                **c, "t": scope.tenant_id, "id": uuid7(), "p": scope.project_id, "schema": schema,
                "allowed_values": Jsonb(c["allowed_values"]) if c["allowed_values"] else None,
            }).fetchone()
            assert row is not None  # an upsert whose DO UPDATE has no WHERE returns its row
            inserted += bool(row["inserted"])
        gone = conn.execute(
            "UPDATE learnloop.catalog_fields SET present = false, updated_at = now()"
            " WHERE tenant_id = %s AND project_id = %s AND schema_name = %s AND present"
            " AND NOT ((table_name, field_name) IN (SELECT * FROM unnest(%s::text[], %s::text[])))"
            " RETURNING table_name, field_name",
            (scope.tenant_id, scope.project_id, schema, [c["table_name"] for c in cols],
             [c["field_name"] for c in cols]),
        ).fetchall()
        report = {
            "schema": schema,
            "tables": len({c["table_name"] for c in cols}),
            "fields": len(cols),
            "new": inserted,
            "refreshed": len(cols) - inserted,
            "missing": [f"{r['table_name']}.{r['field_name']}" for r in gone],
        }
        emit(conn, scope.tenant_id, "catalog", schema, "catalog.introspected", report,
             project_id=scope.project_id, actor=by)
    return report


HUMAN_FIELDS = ("definition", "notes", "allowed_values", "example_values", "data_type")


def _field_row(conn: Conn, scope: Scope, table: str, field: str, schema: str) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT * FROM learnloop.catalog_fields WHERE tenant_id = %s AND project_id = %s AND schema_name = %s"
        " AND table_name = %s AND field_name = %s",
        (scope.tenant_id, scope.project_id, schema, table, field),
    ).fetchone()


def get_field(conn: Conn, scope: Scope, table: str, field: str, schema: str = "public") -> dict[str, Any]:
    row = _field_row(conn, scope, table, field, schema)
    if row is None:
        raise NotFound(f"no catalog entry for {schema}.{table}.{field}")
    return _public(row)


def describe(conn: Conn, scope: Scope, table: str, field: str, *, schema: str = "public",
             create: bool = False, because_of: UUID | str | None = None, note: str | None = None,
             by: str | None = None, **changes: Any) -> dict[str, Any]:
    """Set the human part of a field (definition, notes, allowed/example values)."""
    for name, v in (("table", table), ("field", field), ("schema", schema)):
        if not isinstance(v, str) or not v or len(v) > 200:
            raise InvalidInput(f"{name} must be a name of 1 to 200 characters", field=name)
        check_text(v, name)
    unknown = set(changes) - set(HUMAN_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown catalog field {sorted(unknown)[0]!r}; use {', '.join(HUMAN_FIELDS)}",
                           field="changes")
    if not changes:
        raise InvalidInput("nothing to change", field="changes")
    for k in ("allowed_values", "example_values"):
        if k in changes and changes[k] is not None and not isinstance(changes[k], list):
            raise InvalidInput(f"{k} must be a list", field=k)
    for k, v in changes.items():
        check_json(v, k)
    with conn.transaction():
        fid = _imp.check_feedback(conn, scope, because_of) if because_of is not None else None
        before = _field_row(conn, scope, table, field, schema)
        if before is None:
            if not create:
                raise NotFound(f"no catalog entry for {schema}.{table}.{field}; introspect first or pass create=True")
            conn.execute(
                "INSERT INTO learnloop.catalog_fields (tenant_id, id, project_id, schema_name, table_name, field_name)"
                " VALUES (%s, %s, %s, %s, %s, %s)", (scope.tenant_id, uuid7(), scope.project_id, schema, table, field))
        from psycopg import sql

        sets = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in changes)
        params = {k: (Jsonb(v) if k in ("allowed_values", "example_values") and v is not None else v)
                  for k, v in changes.items()}
        row = conn.execute(
            sql.SQL("UPDATE learnloop.catalog_fields SET {}, updated_at = now() WHERE tenant_id = %(t)s"
                    " AND project_id = %(p)s AND schema_name = %(s)s AND table_name = %(tb)s AND field_name = %(f)s"
                    " RETURNING *").format(sets),
            {**params, "t": scope.tenant_id, "p": scope.project_id, "s": schema, "tb": table, "f": field},
        ).fetchone()
        assert row is not None  # found or inserted above, in this transaction; nothing deletes fields
        emit(conn, scope.tenant_id, "catalog_field", row["id"], "catalog_field.described",
             {"table": table, "field": field, "changed": sorted(changes)}, project_id=scope.project_id, actor=by)
        if fid is not None:
            _imp.record(conn, scope, fid, "catalog_field", row["id"], "updated" if before else "created",
                        _jsonable(_public(before)) if before else None, _jsonable(_public(row)), note=note, by=by)
    return _public(row)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("tenant_id", "project_id")}


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, UUID) else v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in d.items()}


def list_fields(conn: Conn, scope: Scope, *, table: str | None = None, schema: str | None = None,
                include_missing: bool = False) -> list[dict[str, Any]]:
    sql = "SELECT * FROM learnloop.catalog_fields WHERE tenant_id = %s AND project_id = %s"
    params: list[Any] = [scope.tenant_id, scope.project_id]
    if table:
        sql += " AND table_name = %s"
        params.append(table)
    if schema:
        sql += " AND schema_name = %s"
        params.append(schema)
    if not include_missing:
        sql += " AND present"
    return [_public(r) for r in conn.execute(sql + " ORDER BY schema_name, table_name, field_name", params).fetchall()]
