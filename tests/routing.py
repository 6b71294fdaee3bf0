"""Static routing check: does every tenant-keyed table reference name its tenant?

Citus routes a statement to one shard only when every distributed table it reads or writes
carries ``tenant_id = <constant or parameter>``, and it plans each subquery, CTE arm and
recursive arm on its own: a correlated ``d.tenant_id = e.tenant_id`` pins nothing there.
This module parses statements with pglast (PostgreSQL's own parser) and reports each
reference to a tenant-keyed table whose scope has no such equality. Inside one scope an
equality may reach a table through joins (``a.tenant_id = b.tenant_id AND b.tenant_id =
$1``): PostgreSQL's equivalence classes give both scans the constant, and Citus reads them.

Used by ``tests/fix_routing.py`` over every statement the test suite sends, and by
``tests/test_routing.py`` on hand-written ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, SetOperation
from pglast.parser import ParseError

TENANT = "tenant_id"


@dataclass
class _Ref:
    table: str
    alias: str


@dataclass
class _Scope:
    refs: list[_Ref] = field(default_factory=list)
    conds: list[ast.Node] = field(default_factory=list)


def _children(node: ast.Node) -> Iterator[ast.Node]:
    for name in node:
        if name == "ancestors":
            continue
        value = getattr(node, name, None)
        if isinstance(value, ast.Node):
            yield value
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, ast.Node):
                    yield item
                elif isinstance(item, tuple):  # valuesLists: a tuple of rows
                    yield from (i for i in item if isinstance(i, ast.Node))


_PLACEHOLDER = re.compile(r"%%|%\((?P<name>[^)]+)\)[sbt]|%[sbt]")


def to_server_placeholders(query: str) -> str:
    """psycopg's ``%s`` / ``%(name)s`` placeholders as the ``$n`` the server receives."""
    names: dict[str, int] = {}
    count = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal count
        if m.group(0) == "%%":
            return "%"
        name = m.group("name")
        if name is not None:
            if name not in names:
                count += 1
                names[name] = count
            return f"${names[name]}"
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(repl, query)


class Checker:
    """Finds tenant-keyed table references without a tenant equality in their scope."""

    def __init__(self, tenant_tables: Iterable[str]) -> None:
        self.tables = frozenset(tenant_tables)

    def problems(self, query: str) -> list[str]:
        try:
            stmts = parse_sql(query)
        except ParseError as exc:
            return [f"does not parse: {exc}"]
        out: list[str] = []
        for raw in stmts:
            self._walk(raw.stmt, frozenset(), out)
        return out

    # -- traversal: every SELECT / INSERT / UPDATE / DELETE is a scope of its own ----------
    def _walk(self, node: ast.Node, ctes: frozenset[str], out: list[str]) -> None:
        if isinstance(node, ast.SelectStmt):
            self._select(node, ctes, out)
        elif isinstance(node, ast.InsertStmt):
            self._insert(node, ctes, out)
        elif isinstance(node, ast.UpdateStmt):
            self._update(node, ctes, out)
        elif isinstance(node, ast.DeleteStmt):
            self._delete(node, ctes, out)
        elif isinstance(node, ast.CopyStmt):
            if node.query is not None:
                self._walk(node.query, ctes, out)
            elif not node.is_from and node.relation is not None and self._keyed(node.relation, ctes):
                out.append(f"COPY {node.relation.relname} TO reads every tenant")
        elif isinstance(node, ast.ExplainStmt):
            self._walk(node.query, ctes, out)
        # Other utility statements (DDL, SET, LISTEN, NOTIFY...) touch no tenant's rows.

    def _with(self, with_clause: ast.WithClause | None, ctes: frozenset[str], out: list[str]) -> frozenset[str]:
        if with_clause is None:
            return ctes
        ctes = ctes | {c.ctename for c in with_clause.ctes}
        for cte in with_clause.ctes:
            self._walk(cte.ctequery, ctes, out)
        return ctes

    def _nested(self, nodes: Iterable[ast.Node | None], ctes: frozenset[str], out: list[str]) -> None:
        """Check the statements nested in expressions (sublinks), each as its own scope."""
        stack = [n for n in nodes if n is not None]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.SelectStmt | ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt):
                self._walk(node, ctes, out)
                continue
            stack.extend(_children(node))

    def _select(self, node: ast.SelectStmt, ctes: frozenset[str], out: list[str]) -> None:
        ctes = self._with(node.withClause, ctes, out)
        if node.op != SetOperation.SETOP_NONE:
            self._walk(node.larg, ctes, out)
            self._walk(node.rarg, ctes, out)
            return
        scope = _Scope()
        others = self._from(node.fromClause or (), scope, ctes, out)
        if node.whereClause is not None:
            scope.conds.append(node.whereClause)
        self._judge(scope, "SELECT", out)
        self._nested(
            [*others, *(node.targetList or ()), node.whereClause, *(node.groupClause or ()),
             node.havingClause, *(node.sortClause or ()), node.limitCount, node.limitOffset,
             *(v for row in node.valuesLists or () for v in row)],
            ctes, out)

    def _insert(self, node: ast.InsertStmt, ctes: frozenset[str], out: list[str]) -> None:
        ctes = self._with(node.withClause, ctes, out)
        target = node.relation.relname
        if self._keyed(node.relation, ctes):
            cols = [c.name for c in node.cols or ()]
            if TENANT not in cols:
                out.append(f"INSERT INTO {target} names no tenant_id")
            elif node.selectStmt is not None:
                self._insert_source(node.selectStmt, cols.index(TENANT), target, ctes, out)
        if node.selectStmt is not None:
            self._walk(node.selectStmt, ctes, out)
        conflict = node.onConflictClause
        extra = [*(node.returningClause.exprs if node.returningClause else ())]
        if conflict is not None:
            extra += [*(conflict.targetList or ()), conflict.whereClause]
            if self._keyed(node.relation, ctes):
                for target in conflict.targetList or ():
                    if (fn := _volatile_call(target.val)) is not None:
                        out.append(f"INSERT INTO {target} ... DO UPDATE SET {target.name} calls {fn}:"
                                   " Citus refuses functions that are not IMMUTABLE there (use EXCLUDED.<column>)")
        self._nested(extra, ctes, out)

    def _insert_source(self, select: ast.SelectStmt, at: int, target: str, ctes: frozenset[str], out: list[str]) -> None:
        if select.valuesLists:
            for row in select.valuesLists:
                if not _is_value(row[at]):
                    out.append(f"INSERT INTO {target}: tenant_id is not a constant or parameter")
            return
        if select.op != SetOperation.SETOP_NONE or not select.targetList:
            out.append(f"INSERT INTO {target} ... SELECT: cannot see which tenant")
            return
        expr = select.targetList[at].val
        if _is_value(expr):
            return
        scope = _Scope()
        self._from(select.fromClause or (), scope, ctes, [])
        if select.whereClause is not None:
            scope.conds.append(select.whereClause)
        pinned = self._pinned(scope)
        col = _column(expr)
        if col is None or col[1] != TENANT or self._resolve(col[0], scope) not in pinned:
            out.append(f"INSERT INTO {target} ... SELECT: tenant_id not taken from a pinned tenant")

    def _update(self, node: ast.UpdateStmt, ctes: frozenset[str], out: list[str]) -> None:
        ctes = self._with(node.withClause, ctes, out)
        if self._keyed(node.relation, ctes):
            for target in node.targetList or ():
                for branch in _walk_nodes(target.val):
                    if isinstance(branch, ast.CoalesceExpr | ast.CaseExpr) and (fn := _volatile_call(branch)):
                        table = node.relation.relname
                        out.append(f"{table}: SET {target.name} calls {fn} inside COALESCE/CASE in an UPDATE;"
                                   " Citus refuses functions that are not IMMUTABLE there")
                        break
        scope = _Scope()
        self._from((node.relation,), scope, ctes, out)
        others = self._from(node.fromClause or (), scope, ctes, out)
        if node.whereClause is not None:
            scope.conds.append(node.whereClause)
        self._judge(scope, "UPDATE", out)
        self._nested([*others, *(node.targetList or ()), node.whereClause,
                      *(node.returningClause.exprs if node.returningClause else ())], ctes, out)

    def _delete(self, node: ast.DeleteStmt, ctes: frozenset[str], out: list[str]) -> None:
        ctes = self._with(node.withClause, ctes, out)
        scope = _Scope()
        self._from((node.relation,), scope, ctes, out)
        others = self._from(node.usingClause or (), scope, ctes, out)
        if node.whereClause is not None:
            scope.conds.append(node.whereClause)
        self._judge(scope, "DELETE", out)
        self._nested([*others, node.whereClause,
                      *(node.returningClause.exprs if node.returningClause else ())], ctes, out)

    # -- one scope -------------------------------------------------------------------------
    def _keyed(self, rv: ast.RangeVar, ctes: frozenset[str]) -> bool:
        if rv.schemaname is None and rv.relname in ctes:
            return False
        return rv.relname in self.tables and rv.schemaname in (None, "learnloop")

    def _from(self, items: Iterable[ast.Node], scope: _Scope, ctes: frozenset[str], out: list[str]) -> list[ast.Node]:
        """Collect this scope's table references and join conditions; return what else
        (subqueries in FROM, function arguments) must be checked as scopes of their own."""
        others: list[ast.Node] = []
        for item in items:
            if isinstance(item, ast.RangeVar):
                if self._keyed(item, ctes):
                    alias = item.alias.aliasname if item.alias else item.relname
                    scope.refs.append(_Ref(item.relname, alias))
            elif isinstance(item, ast.JoinExpr):
                others += self._from((item.larg, item.rarg), scope, ctes, out)
                if item.quals is not None:
                    scope.conds.append(item.quals)
                    others.append(item.quals)
            elif isinstance(item, ast.RangeSubselect):
                self._walk(item.subquery, ctes, out)
            else:
                others.append(item)
        return others

    def _judge(self, scope: _Scope, kind: str, out: list[str]) -> None:
        if not scope.refs:
            return
        pinned = self._pinned(scope)
        for ref in scope.refs:
            if ref.alias not in pinned:
                name = ref.table if ref.alias == ref.table else f"{ref.table} {ref.alias}"
                out.append(f"{kind} reads {name} without tenant_id = <constant> in its scope")

    def _resolve(self, qualifier: str | None, scope: _Scope) -> str | None:
        if qualifier is not None:
            return qualifier if any(r.alias == qualifier for r in scope.refs) else None
        return scope.refs[0].alias if len(scope.refs) == 1 else None

    def _pinned(self, scope: _Scope) -> set[str]:
        pinned: set[str] = set()
        links: list[tuple[str, str]] = []
        for cond in scope.conds:
            for left, right in _equalities(cond):
                lcol, rcol = _column(left), _column(right)
                for col, other in ((lcol, right), (rcol, left)):
                    if col is not None and col[1] == TENANT and _is_value(other):
                        alias = self._resolve(col[0], scope)
                        if alias is not None:
                            pinned.add(alias)
                if lcol and rcol and lcol[1] == TENANT and rcol[1] == TENANT:
                    a, b = self._resolve(lcol[0], scope), self._resolve(rcol[0], scope)
                    if a and b:
                        links.append((a, b))
        grew = True
        while grew:
            grew = False
            for a, b in links:
                if (a in pinned) != (b in pinned):
                    pinned |= {a, b}
                    grew = True
        return pinned


# Functions learnloop might call that are not IMMUTABLE, by name (pglast cannot know volatility).
_NOT_IMMUTABLE = frozenset({"now", "clock_timestamp", "statement_timestamp", "transaction_timestamp", "timeofday",
                            "random", "gen_random_uuid", "txid_current", "pg_current_xact_id"})


def _walk_nodes(node: ast.Node | None) -> Iterator[ast.Node]:
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        yield n
        stack.extend(_children(n))


def _volatile_call(node: ast.Node | None) -> str | None:
    """The first non-IMMUTABLE call in ``node`` (``now()``, ``CURRENT_TIMESTAMP``...), if any."""
    for n in _walk_nodes(node):
        if isinstance(n, ast.SQLValueFunction):
            return n.op.name.removeprefix("SVFOP_")
        if isinstance(n, ast.FuncCall) and n.funcname[-1].sval in _NOT_IMMUTABLE:
            return f"{n.funcname[-1].sval}()"
    return None


def _conjuncts(node: ast.Node) -> Iterator[ast.Node]:
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        for arg in node.args:
            yield from _conjuncts(arg)
    else:
        yield node


def _equalities(node: ast.Node) -> Iterator[tuple[ast.Node, ast.Node]]:
    """(left, right) of each top-level ``=`` (rows compared element by element)."""
    for c in _conjuncts(node):
        if isinstance(c, ast.A_Expr) and c.kind == A_Expr_Kind.AEXPR_OP and len(c.name) == 1 \
                and c.name[0].sval == "=":
            left, right = c.lexpr, c.rexpr
            if isinstance(left, ast.RowExpr) and isinstance(right, ast.RowExpr) \
                    and len(left.args) == len(right.args):
                yield from zip(left.args, right.args, strict=True)
            else:
                yield left, right
        elif isinstance(c, ast.A_Expr) and c.kind == A_Expr_Kind.AEXPR_IN \
                and isinstance(c.rexpr, tuple) and len(c.rexpr) == 1:
            yield c.lexpr, c.rexpr[0]


def _strip(node: ast.Node) -> ast.Node:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return node


def _is_value(node: ast.Node) -> bool:
    return isinstance(_strip(node), ast.ParamRef | ast.A_Const)


def _column(node: ast.Node) -> tuple[str | None, str] | None:
    node = _strip(node)
    if not isinstance(node, ast.ColumnRef):
        return None
    names = [f.sval for f in node.fields if isinstance(f, ast.String)]
    if len(names) != len(node.fields) or not names:
        return None
    return (names[-2] if len(names) >= 2 else None, names[-1])
