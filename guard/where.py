"""Whether a WHERE clause (or a MERGE join condition) provably limits its target's rows.

UPDATE, DELETE and MERGE … UPDATE are ``write`` only when their condition does; any other
condition — one the gateway cannot prove selects fewer than every row — is treated as no
condition at all (``destructive``). A condition limits the target's rows when it is:

* a comparison of a *target column* with a *value*: ``=``, ``<``, ``>``, ``<=``, ``>=``,
  ``IS NOT DISTINCT FROM``, ``= ANY (…)``, ``IN (v, …)``, ``BETWEEN v AND w`` (also
  SYMMETRIC), ``LIKE``/``ILIKE`` with a literal pattern that starts with an ordinary
  character (``'abc%'``); ``col IS NULL``; a boolean column alone (``active``, ``NOT
  active``);
* ``col IN (SELECT other.c FROM other …)`` / ``col = ANY (SELECT …)`` over *other* tables
  whose select list names its columns with their table; ``EXISTS (SELECT … FROM other
  WHERE …)`` whose WHERE limits the target's rows by these rules, with ``other``'s columns
  as values; ``WHERE CURRENT OF cursor``;
* a constant condition that is false or NULL (``false``, ``1 = 2``), as
  :func:`guard.values.evaluate` proves;
* an AND with at least one such conjunct; an OR all of whose branches are such, unless
  they bound one column from below and from above (``id > 0 OR id <= 0``).

A *target column* is a column of the target, optionally cast: unqualified (only when
FROM/USING names no other table, which could own a column of that name) or qualified with
the target's name (its alias when it has one). A *value* is an expression without
subqueries whose columns all belong to *other* tables: tables of FROM/USING (or the MERGE
source) named unlike the target, unlike the statement's CTEs, or subqueries and VALUES
that read no such table. Literals, parameters and functions of them (``now() - interval
'1 day'``) are values. So ``id = 7``, ``id = $1``, ``created_at < '2020-01-01'``,
``t.id = u.id`` limit; ``id = id``, ``id + 0 = id``, ``id IS NOT NULL``, ``NOT (id <>
5)``, ``id > 0 OR id <= 0``, ``t.id = t2.id`` over ``USING t t2`` do not. Which rows a
comparison keeps depends on the data, so ``id > 0`` is a ``write`` even where every id is
positive: the rule tells real conditions from conditions that only look like ones.
"""

from __future__ import annotations

from guard.tree import Node, node_type, strings, walk_dicts
from guard.values import Dependencies, evaluate

_COMPARISONS = frozenset({"=", "<", ">", "<=", ">="})
_UPPER_BOUNDS = frozenset({"<", "<="})
_BOUNDS = _UPPER_BOUNDS | {">", ">="}
_LIKE_WILDCARDS = frozenset("%_\\")


class Scope:
    """The names a condition's columns may be qualified with: the target's and those of
    other tables it may be compared with."""

    __slots__ = ("others", "target", "unqualified", "unsafe")

    def __init__(
        self, target: str, others: frozenset[str], unsafe: frozenset[str], *, unqualified: bool
    ) -> None:
        self.target = target  # the target's alias, or its name
        self.others = others
        self.unsafe = unsafe  # relation names that may be the target: its own, the CTEs'
        self.unqualified = unqualified  # whether an unqualified column is the target's


def scope_of(rangevar: object, sources: object, with_clause: Node | None) -> Scope:
    """The scope of a DML statement's condition: its target, the items of its FROM/USING
    (or MERGE source) in ``sources``, and its WITH clause."""
    target = rangevar if type(rangevar) is dict else {}
    relname = str(target.get("relname", ""))
    ctes = [c.get("CommonTableExpr", {}) for c in (with_clause or {}).get("ctes", [])]
    unsafe = frozenset({relname, *(str(c.get("ctename", "")) for c in ctes)})
    alias = target.get("alias", {}).get("aliasname") or relname
    others, any_source = _others(sources, unsafe)
    return Scope(alias, others - {alias}, unsafe, unqualified=not any_source)


def _others(sources: object, unsafe: frozenset[str]) -> tuple[frozenset[str], bool]:
    """The names of the FROM items in ``sources`` that cannot be the target, and whether
    there are any FROM items at all."""
    others: set[str] = set()
    stack = list(sources) if type(sources) is list else [sources]
    any_source = False
    while stack:
        item = stack.pop()
        kind = node_type(item)
        if kind is None:
            continue
        any_source = True
        body = item[kind]  # type: ignore[index]
        if kind == "JoinExpr":
            stack += [body.get("larg"), body.get("rarg")]
        elif kind == "RangeVar" and body.get("relname") not in unsafe:
            others.add(body.get("alias", {}).get("aliasname") or body.get("relname"))
        elif kind == "RangeSubselect" and not _reads(body.get("subquery"), unsafe):
            others.add(body.get("alias", {}).get("aliasname", ""))
    return frozenset(others - {""}), any_source


def limits_rows(expr: object, scope: Scope, deps: Dependencies) -> bool:
    """Whether ``expr`` provably limits the target's rows (see the module docstring)."""
    kind = node_type(expr)
    if kind is None:
        return False
    body = expr[kind]  # type: ignore[index]
    if kind == "BoolExpr":
        args = body.get("args", [])
        if body.get("boolop") == "AND_EXPR":
            return any(limits_rows(a, scope, deps) for a in args)
        if body.get("boolop") == "OR_EXPR":
            return all(limits_rows(a, scope, deps) for a in args) and not _brackets(args, scope)
        if len(args) == 1 and _is_column(args[0], scope):
            return True
    elif kind == "CurrentOfExpr" or _is_column(expr, scope):
        return True
    elif kind == "A_Expr":
        if _limiting_comparison(body, scope, deps):
            return True
    elif kind == "NullTest":
        return body.get("nulltesttype") == "IS_NULL" and _is_column(body.get("arg"), scope)
    elif kind == "SubLink":
        return _limiting_sublink(body, scope, deps)
    if not _is_value(expr, scope):
        return False
    value = evaluate(expr, deps)  # a constant: false and NULL select nothing
    return value is False or value is None


def _limiting_comparison(body: Node, scope: Scope, deps: Dependencies) -> bool:
    kind = body.get("kind")
    op = _operator(body.get("name"))
    left, right = body.get("lexpr"), body.get("rexpr")
    if kind == "AEXPR_OP" and op in _COMPARISONS and not _is_column(left, scope):
        left, right = right, left
    if not _is_column(left, scope):
        return False
    if kind in ("AEXPR_OP", "AEXPR_OP_ANY") and op in _COMPARISONS:
        return (kind == "AEXPR_OP" or op == "=") and _is_value(right, scope)
    if kind == "AEXPR_NOT_DISTINCT":
        return _is_value(right, scope)
    if kind in ("AEXPR_IN", "AEXPR_BETWEEN", "AEXPR_BETWEEN_SYM"):
        items = right.get("List", {}).get("items", []) if type(right) is dict else []
        return bool(items) and op != "<>" and all(_is_value(i, scope) for i in items)
    if kind in ("AEXPR_LIKE", "AEXPR_ILIKE") and op in ("~~", "~~*"):
        pattern = evaluate(right, deps)
        return type(pattern) is str and pattern != "" and pattern[0] not in _LIKE_WILDCARDS
    return False


def _brackets(branches: list[object], scope: Scope) -> bool:
    """Whether ``branches`` of an OR compare one column from below and from above
    (``id > 0 OR id <= 0``): together they may cover every value."""
    seen: dict[object, set[bool]] = {}
    for branch in branches:
        body = branch.get("A_Expr") if type(branch) is dict else None
        op = _operator(body.get("name")) if type(body) is dict else None
        if body is None or body.get("kind") != "AEXPR_OP" or op not in _BOUNDS:
            continue
        for side, column in (("lexpr", True), ("rexpr", False)):
            if _is_column(body.get(side), scope):
                # "col < v" and "v > col" bound it from above
                upper = (op in _UPPER_BOUNDS) == column
                seen.setdefault(_column_name(body[side]), set()).add(upper)
    return any(len(directions) == 2 for directions in seen.values())


def _column_name(expr: object) -> object:
    while node_type(expr) == "TypeCast":
        expr = expr["TypeCast"].get("arg")  # type: ignore[index]
    return tuple(strings(expr["ColumnRef"].get("fields")))  # type: ignore[index]


def _limiting_sublink(body: Node, scope: Scope, deps: Dependencies) -> bool:
    subquery = body.get("subselect", {}).get("SelectStmt")
    if type(subquery) is not dict or "withClause" in subquery or "larg" in subquery:
        return False
    sources = subquery.get("fromClause")
    others, any_source = _others(sources, scope.unsafe)
    if not any_source or _reads(sources, scope.unsafe) or _shadows(sources, scope.target):
        return False
    link = body.get("subLinkType")
    if link == "EXISTS_SUBLINK":
        within = Scope(scope.target, others, scope.unsafe, unqualified=False)
        return limits_rows(subquery.get("whereClause"), within, deps)
    names = body.get("operName")
    if link == "ANY_SUBLINK" and (names is None or _operator(names) == "="):
        selected = walk_dicts(subquery.get("targetList"))
        columns = [n["ColumnRef"] for n in selected if "ColumnRef" in n]
        qualified = all(_qualifier(c) in others for c in columns)
        return qualified and _is_column(body.get("testexpr"), scope)
    return False


def _is_column(expr: object, scope: Scope) -> bool:
    """Whether ``expr`` is a column of the target, optionally cast."""
    while node_type(expr) == "TypeCast":
        expr = expr["TypeCast"].get("arg")  # type: ignore[index]
    if node_type(expr) != "ColumnRef":
        return False
    column = expr["ColumnRef"]  # type: ignore[index]
    fields = column.get("fields", [])
    if len(fields) == 1:
        return scope.unqualified and "String" in fields[0]
    return _qualifier(column) == scope.target and "String" in fields[-1]


def _is_value(expr: object, scope: Scope) -> bool:
    """Whether ``expr`` reads no column of the target and holds no subquery."""
    for node in walk_dicts(expr):
        if "SubLink" in node:
            return False
        column = node.get("ColumnRef")
        if type(column) is dict and _qualifier(column) not in scope.others:
            return False
    return True


def _qualifier(column: Node) -> str | None:
    names = strings(column.get("fields", [])[:-1])
    return names[-1] if names else None


def _operator(names: object) -> str | None:
    parts = strings(names)
    if not parts or (len(parts) == 2 and parts[0] != "pg_catalog") or len(parts) > 2:
        return None
    return parts[-1]


def _reads(tree: object, names: frozenset[str]) -> bool:
    """Whether ``tree`` names a relation (or CTE) called one of ``names`` anywhere."""
    return any(node.get("relname") in names for node in walk_dicts(tree))


def _shadows(sources: object, name: str) -> bool:
    """Whether a FROM item of a subquery takes the target's name, so that ``name.col``
    inside it is not the target's column."""
    return any(
        node.get("aliasname") == name or node.get("relname") == name for node in walk_dicts(sources)
    )
