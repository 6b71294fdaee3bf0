"""The routing checker itself (tests/routing.py), on statements whose answer is known.

The check over every statement the suite sends runs at the end of each run
(tests/fix_routing.py); these make sure it can fail, and on what.
"""

from __future__ import annotations

import pytest

from .routing import Checker, to_server_placeholders

check = Checker(["generations", "feedback", "embeddings", "documents", "projects", "events"]).problems


@pytest.mark.parametrize("statement", [
    "SELECT * FROM learnloop.generations WHERE tenant_id = $1 AND id = $2",
    "SELECT * FROM learnloop.generations g WHERE (g.tenant_id, g.id) = ($1, $2)",
    # equalities reach a joined table inside one scope
    "SELECT * FROM learnloop.feedback f JOIN learnloop.generations g ON g.tenant_id = f.tenant_id"
    " AND g.id = f.generation_id WHERE f.tenant_id = $1",
    # a subquery naming the tenant itself
    "SELECT e.id, (SELECT d.title FROM learnloop.documents d WHERE d.tenant_id = $1 AND d.id = e.document_id)"
    " FROM learnloop.embeddings e WHERE e.tenant_id = $1",
    # a recursive CTE whose arms both name the tenant; the CTE itself is not a table
    "WITH RECURSIVE up AS (SELECT g.* FROM learnloop.generations g WHERE g.tenant_id = $1 AND g.id = $2"
    " UNION ALL SELECT g.* FROM learnloop.generations g JOIN up ON g.id = up.parent_id WHERE g.tenant_id = $1)"
    " SELECT * FROM up",
    "INSERT INTO learnloop.events (tenant_id, entity_type) VALUES ($1, 'x')",
    "INSERT INTO learnloop.feedback (tenant_id, id) SELECT $1, $2 FROM learnloop.generations g"
    " WHERE g.tenant_id = $1 AND g.id = $3",
    "UPDATE learnloop.feedback SET processed = true WHERE tenant_id = $1 AND id = $2",
    "DELETE FROM learnloop.documents WHERE tenant_id = $1 AND id = $2",
    "SELECT 1", "CREATE INDEX x ON learnloop.embeddings (id)", "NOTIFY learnloop_events",
    "COPY learnloop.events (tenant_id) FROM STDIN",
])
def test_routable(statement: str) -> None:
    assert check(statement) == []


@pytest.mark.parametrize(("statement", "table"), [
    ("SELECT * FROM learnloop.generations WHERE id = $1", "generations"),
    # under OR the equality does not hold for every row
    ("SELECT * FROM learnloop.generations WHERE tenant_id = $1 OR id = $2", "generations"),
    # many tenants are many shards
    ("SELECT * FROM learnloop.generations WHERE tenant_id = ANY($1)", "generations"),
    # a correlated subquery joined on the outer row's tenant: Citus plans it alone (issue 17)
    ("SELECT e.id, (SELECT d.title FROM learnloop.documents d WHERE d.tenant_id = e.tenant_id"
     " AND d.id = e.document_id) FROM learnloop.embeddings e WHERE e.tenant_id = $1", "documents"),
    ("SELECT 1 FROM learnloop.embeddings e WHERE e.tenant_id = $1 AND EXISTS (SELECT 1 FROM learnloop.feedback f"
     " WHERE f.tenant_id = e.tenant_id AND f.generation_id = e.owner_id)", "feedback"),
    # path()'s recursive arm joined on up.tenant_id only (issue 17)
    ("WITH RECURSIVE up AS (SELECT g.* FROM learnloop.generations g WHERE g.tenant_id = $1 AND g.id = $2"
     " UNION ALL SELECT g.* FROM learnloop.generations g JOIN up ON g.tenant_id = up.tenant_id"
     " AND g.id = up.parent_id) SELECT * FROM up", "generations"),
    # a subquery in FROM and a CTE arm are scopes of their own
    ("SELECT * FROM (SELECT * FROM learnloop.feedback) f WHERE f.tenant_id = $1", "feedback"),
    ("WITH x AS (SELECT * FROM learnloop.feedback) SELECT * FROM x WHERE tenant_id = $1", "feedback"),
    # an upsert's DO UPDATE may hide a subquery
    ("INSERT INTO learnloop.projects (tenant_id, id) VALUES ($1, $2) ON CONFLICT (tenant_id, id) DO UPDATE"
     " SET name = (SELECT max(name) FROM learnloop.projects)", "projects"),
    ("UPDATE learnloop.feedback SET processed = true WHERE id = $1", "feedback"),
    ("DELETE FROM learnloop.events WHERE txid < $1", "events"),
    ("INSERT INTO learnloop.events (entity_type) VALUES ('x')", "events"),
    ("INSERT INTO learnloop.events (tenant_id) SELECT tenant_id FROM ins", "events"),
    ("COPY learnloop.events TO STDOUT", "events"),
])
def test_not_routable(statement: str, table: str) -> None:
    problems = check(statement)
    assert problems and table in problems[0]


@pytest.mark.parametrize(("statement", "says"), [
    ("INSERT INTO learnloop.projects (tenant_id, id) VALUES ($1, $2) ON CONFLICT (tenant_id, id) DO UPDATE"
     " SET updated_at = now()", "DO UPDATE SET updated_at calls now()"),
    ("INSERT INTO learnloop.projects (tenant_id, id) VALUES ($1, $2) ON CONFLICT (tenant_id, id) DO UPDATE"
     " SET updated_at = CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP"),
    ("UPDATE learnloop.feedback SET processed_at = coalesce(processed_at, now()) WHERE tenant_id = $1",
     "inside COALESCE/CASE"),
    ("UPDATE learnloop.feedback SET processed_at = CASE WHEN $2 THEN clock_timestamp() END WHERE tenant_id = $1",
     "clock_timestamp()"),
])
def test_what_citus_refuses_is_named(statement: str, says: str) -> None:
    """Routed to one shard, but refused by Citus all the same (issue 17): caught without a cluster."""
    problems = check(statement)
    assert problems and says in problems[0]


@pytest.mark.parametrize("statement", [
    "INSERT INTO learnloop.projects (tenant_id, id) VALUES ($1, $2) ON CONFLICT (tenant_id, id) DO UPDATE"
    " SET updated_at = EXCLUDED.updated_at",
    "UPDATE learnloop.feedback SET processed_at = now() WHERE tenant_id = $1 AND processed_at IS NULL",
])
def test_what_citus_accepts_passes(statement: str) -> None:
    assert check(statement) == []


def test_placeholders_as_the_server_sees_them() -> None:
    assert to_server_placeholders("a = %s AND b = %s AND c LIKE 'x%%'") == "a = $1 AND b = $2 AND c LIKE 'x%'"
    assert to_server_placeholders("a = %(t)s AND b = %(id)s OR a = %(t)s") == "a = $1 AND b = $2 OR a = $1"
