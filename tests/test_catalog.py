"""Field catalog introspection against a real PostgreSQL database with a seed-001-like schema."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from learnloop.errors import DatabaseUnavailable, InvalidInput, NotFound

SCHEMA = """
CREATE TYPE estado_prestamo AS ENUM ('solicitado', 'activo', 'cancelado', 'en_mora');
CREATE TABLE clientes (
    id       serial PRIMARY KEY,
    cedula   varchar(20) NOT NULL UNIQUE,
    nombres  text NOT NULL,
    email    text,
    telefono varchar(30)
);
COMMENT ON COLUMN clientes.cedula IS 'Documento de identidad';
CREATE TABLE prestamos (
    id              serial PRIMARY KEY,
    cliente_id      integer NOT NULL REFERENCES clientes (id),
    monto           numeric(14, 2) NOT NULL,
    saldo_pendiente numeric(14, 2),
    estado          estado_prestamo NOT NULL DEFAULT 'solicitado',
    frecuencia      text CHECK (frecuencia IN ('semanal', 'quincenal', 'mensual')),
    creado_en       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prestamos_cliente_idx ON prestamos (cliente_id);
CREATE TABLE pagos (
    id          bigserial PRIMARY KEY,
    prestamo_id integer NOT NULL REFERENCES prestamos (id),
    monto       numeric(14, 2) NOT NULL,
    fecha       date NOT NULL
);
"""


@pytest.fixture(scope="module")
def app_db(pg_server):
    name = f"app_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = make_conninfo(pg_server, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return url


def by_key(rows):
    return {(r["table_name"], r["field_name"]): r for r in rows}


def test_introspection_reads_types_nullability_indexes_fks_and_values(client, app_db):
    rep = client.dictionary.introspect(app_db, "public")
    assert rep["tables"] == 3 and rep["fields"] == 16 and rep["new"] == 16 and rep["missing"] == []
    f = by_key(client.dictionary.fields())
    assert f[("clientes", "cedula")]["data_type"] == "character varying(20)"
    assert f[("clientes", "cedula")]["required"] is True and f[("clientes", "cedula")]["indexed"] is True
    assert f[("clientes", "cedula")]["db_comment"] == "Documento de identidad"
    assert f[("clientes", "email")]["required"] is False and f[("clientes", "email")]["indexed"] is False
    assert (f[("prestamos", "cliente_id")]["fk_table"], f[("prestamos", "cliente_id")]["fk_field"]) == ("clientes", "id")
    assert f[("prestamos", "cliente_id")]["indexed"] is True
    assert (f[("pagos", "prestamo_id")]["fk_table"], f[("pagos", "prestamo_id")]["indexed"]) == ("prestamos", False)
    assert f[("prestamos", "estado")]["allowed_values"] == ["solicitado", "activo", "cancelado", "en_mora"]
    assert f[("prestamos", "frecuencia")]["allowed_values"] == ["semanal", "quincenal", "mensual"]
    assert f[("pagos", "monto")]["data_type"] == "numeric(14,2)"
    assert f[("pagos", "id")]["data_type"] == "bigint"


def test_rerun_keeps_human_definitions_and_marks_dropped_columns(client, app_db):
    client.dictionary.introspect(app_db, "public")
    client.dictionary.describe("prestamos", "saldo_pendiente", definition="Lo que el cliente aún debe.",
                               notes="se recalcula con cada pago", example_values=["1500000.00"])
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute("ALTER TABLE prestamos ALTER COLUMN saldo_pendiente SET NOT NULL")
        conn.execute("ALTER TABLE clientes DROP COLUMN telefono")
        conn.execute("ALTER TABLE pagos ADD COLUMN metodo text")
    rep = client.dictionary.introspect(app_db, "public")
    assert rep["new"] == 1 and rep["missing"] == ["clientes.telefono"]
    s = client.dictionary.field("prestamos", "saldo_pendiente")
    assert s["definition"] == "Lo que el cliente aún debe."
    assert s["notes"] == "se recalcula con cada pago" and s["example_values"] == ["1500000.00"]
    assert s["required"] is True  # machine facts refreshed
    assert ("clientes", "telefono") not in by_key(client.dictionary.fields())
    gone = by_key(client.dictionary.fields(include_missing=True))[("clientes", "telefono")]
    assert gone["present"] is False
    with client.db.connection() as conn:
        n = conn.execute("SELECT count(*) AS n FROM learnloop.events WHERE event_type = 'catalog.introspected'").fetchone()
    assert n["n"] >= 2


def test_catalog_change_from_a_negative_rating(client, app_db):
    client.dictionary.introspect(app_db, "public")
    g = client.log(kind="chat", prompt="¿Qué significa estado en_mora?", output_text="No lo sé.")
    fb = client.feedback(g.id, rating=1)
    client.dictionary.describe("prestamos", "estado", because_of=fb.id, by="admin",
                               definition="Situación del préstamo; en_mora = alguna cuota vencida sin pagar.")
    (imp,) = client.dictionary.improvements(feedback_id=fb.id)
    assert imp["target_type"] == "catalog_field" and imp["action"] == "updated"
    assert imp["before"]["definition"] is None and imp["after"]["definition"].startswith("Situación")
    assert client.feedback_for(g.id)[0].improved is True


def test_unreachable_bad_url_unknown_schema(client, app_db):
    before = len(client.dictionary.fields(include_missing=True))
    with pytest.raises(DatabaseUnavailable, match="cannot reach"):
        client.dictionary.introspect("postgresql://nobody@127.0.0.1:1/none", "public")
    with pytest.raises(InvalidInput, match="not a valid PostgreSQL URL"):
        client.dictionary.introspect("this is = not a url", "public")
    with pytest.raises(NotFound, match="does not exist"):
        client.dictionary.introspect(app_db, "no_such_schema")
    with pytest.raises(NotFound):
        client.dictionary.describe("nope", "nada", definition="x")
    assert len(client.dictionary.fields(include_missing=True)) == before


def test_cli_catalog_introspect_and_list(client, app_db, cli_env):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "learnloop.cli.main", *args], env=cli_env,
                              capture_output=True, text=True, timeout=120)

    r = run("catalog", "introspect", app_db, "--schema", "public", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tables"] == 3
    r = run("catalog", "list", "--table", "prestamos", "--json")
    assert {x["field_name"] for x in json.loads(r.stdout)} >= {"cliente_id", "estado", "monto"}
    r = run("catalog", "introspect", "postgresql://nobody@127.0.0.1:1/none")
    assert r.returncode == 1 and r.stderr.startswith("Error: cannot reach the database")
