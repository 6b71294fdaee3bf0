"""Lineage: the tree of regenerations an attempt belongs to, and the path to a node.

Every node stores its ``root_id``, so a whole tree is one indexed query; the path from the
root is a short recursive walk up ``parent_id``.
"""

from __future__ import annotations

from uuid import UUID

from ..errors import NotFound
from ..store.database import Conn
from ..store.tenancy import Scope
from . import verdicts
from .generations import as_uuid
from .models import Generation, LineageNode

_TREE_SQL = """
SELECT g.*, p.name AS project, v.verdict, v.positives, v.negatives, v.avg_rating,
       ARRAY(SELECT DISTINCT t FROM learnloop.feedback f, unnest(f.tags) t
             WHERE f.tenant_id = %(t)s AND f.generation_id = g.id ORDER BY t) AS feedback_tags
FROM learnloop.generations g
JOIN learnloop.projects p ON p.tenant_id = g.tenant_id AND p.id = g.project_id
LEFT JOIN learnloop.generation_verdicts v ON v.tenant_id = g.tenant_id AND v.generation_id = g.id
WHERE g.tenant_id = %(t)s
  AND g.root_id = (SELECT root_id FROM learnloop.generations WHERE tenant_id = %(t)s AND id = %(id)s)
ORDER BY g.iteration, g.created_at, g.id
"""


def tree(conn: Conn, scope: Scope, generation_id: UUID | str) -> LineageNode:
    """The whole lineage tree containing ``generation_id``, from the root.

    Each node: the generation's fields, its feedback verdict and tags, and ``children``
    (oldest first).
    """
    gid = as_uuid(generation_id, "generation id")
    verdicts.settle(conn, scope.tenant_id)
    rows = conn.execute(_TREE_SQL, {"t": scope.tenant_id, "id": gid}).fetchall()
    if not rows:
        raise NotFound(f"generation {gid} does not exist in this tenant")
    nodes: dict[UUID, LineageNode] = {}
    root: LineageNode | None = None
    for r in rows:
        node = LineageNode.model_validate({**r, "positives": r["positives"] or 0, "negatives": r["negatives"] or 0})
        nodes[r["id"]] = node
        if r["parent_id"] is None:
            root = node
        else:
            nodes[r["parent_id"]].children.append(node)
    assert root is not None
    return root


def path(conn: Conn, scope: Scope, generation_id: UUID | str) -> list[Generation]:
    """Generations from the root down to ``generation_id`` (inclusive)."""
    gid = as_uuid(generation_id, "generation id")
    rows = conn.execute(
        "WITH RECURSIVE up AS ("
        "  SELECT g.*, 0 AS depth FROM learnloop.generations g WHERE g.tenant_id = %(t)s AND g.id = %(id)s"
        "  UNION ALL"
        "  SELECT g.*, up.depth + 1 FROM learnloop.generations g"
        # The recursive arm and the join name the tenant themselves: Citus routes a
        # recursive CTE only with a filter on the distribution column in each arm.
        "  JOIN up ON g.id = up.parent_id WHERE g.tenant_id = %(t)s"
        ") SELECT up.*, p.name AS project FROM up"
        " JOIN learnloop.projects p ON p.tenant_id = %(t)s AND p.id = up.project_id"
        " ORDER BY depth DESC",
        {"t": scope.tenant_id, "id": gid},
    ).fetchall()
    if not rows:
        raise NotFound(f"generation {gid} does not exist in this tenant")
    return [Generation.model_validate(r) for r in rows]


def flatten(node: LineageNode) -> list[LineageNode]:
    out = [node]
    for c in node.children:
        out.extend(flatten(c))
    return out
