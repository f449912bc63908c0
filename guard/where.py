"""Whether a WHERE clause (or a MERGE join condition) can match every row of its target.

A clause is judged tautological — the statement is treated as if it had no WHERE — when
any of these holds:

* it never looks at the target's rows (no column of the target, no ``CURRENT OF``) and is
  not provably false or NULL: ``true``, ``1=1``, ``'a'='a'``, ``NOT false``, ``1 <> 2``,
  ``now() > '2000-01-01'``, ``$1``, ``EXISTS (SELECT 1 FROM other)``, ``other.flag`` in
  ``DELETE … USING other``. Such a clause selects all rows or none;
* an ``OR`` with any such side (``x OR true``), an ``AND`` whose sides all are;
* it compares a column expression with itself (``id = id``, ``id >= id``, ``id IS NOT
  DISTINCT FROM id``) or matches it against a pattern of only ``%`` (``name LIKE '%'``),
  true for every row but those with NULLs.

A column is counted as the target's when it is unqualified or qualified with the target's
name (its alias when it has one). Conditions on data (``id IS NOT NULL``, ``id > 0``) are
not tautologies: they depend on the rows.
"""

from __future__ import annotations

from guard.tree import Node, strings, walk_dicts
from guard.values import UNKNOWN, VALUE_NODES, Dependencies, evaluate, truth

_SELF_COMPARISONS = frozenset({"=", "<=", ">="})


def target_names(rangevar: object) -> frozenset[str]:
    """The names a statement's columns may use to qualify its target table."""
    if type(rangevar) is not dict:
        return frozenset()
    alias = rangevar.get("alias", {}).get("aliasname")
    return frozenset({alias} if alias else {rangevar.get("relname", "")})


def may_match_all(expr: object, target: frozenset[str], deps: Dependencies) -> bool:
    """Whether ``expr`` may be true for every row of ``target`` (see the module docstring)."""
    if not _refers_to(expr, target):
        value = truth(evaluate(expr, deps))
        return value is True or value is UNKNOWN
    if type(expr) is not dict or len(expr) != 1:
        return False
    ((kind, body),) = expr.items()
    if kind == "BoolExpr":
        args = body.get("args", [])
        if body.get("boolop") == "OR_EXPR":
            return any(may_match_all(a, target, deps) for a in args)
        if body.get("boolop") == "AND_EXPR":
            return all(may_match_all(a, target, deps) for a in args)
        return False
    if kind == "BooleanTest" and body.get("booltesttype") in ("IS_TRUE", "IS_NOT_FALSE"):
        return may_match_all(body.get("arg"), target, deps)
    if kind == "A_Expr":
        return _always_true_comparison(body, deps)
    return False


def _refers_to(expr: object, target: frozenset[str]) -> bool:
    for node in walk_dicts(expr):
        if "CurrentOfExpr" in node:
            return True
        column = node.get("ColumnRef")
        if type(column) is dict:
            fields = column.get("fields", [])
            qualifiers = strings(fields[:-1])
            if len(fields) < 2 or not target.isdisjoint(qualifiers):
                return True
    return False


def _always_true_comparison(body: Node, deps: Dependencies) -> bool:
    kind = body.get("kind")
    op = (strings(body.get("name")) or [""])[-1]
    left, right = body.get("lexpr"), body.get("rexpr")
    if (kind == "AEXPR_OP" and op in _SELF_COMPARISONS) or kind == "AEXPR_NOT_DISTINCT":
        return _same(left, right, deps)
    if kind in ("AEXPR_LIKE", "AEXPR_ILIKE") and op in ("~~", "~~*"):
        pattern = evaluate(right, deps)
        return type(pattern) is str and pattern != "" and set(pattern) == {"%"}
    return False


def _same(left: object, right: object, deps: Dependencies) -> bool:
    """Whether two expressions are written alike, positions aside. Literals and parameters
    count only when everything else matches, so ``id = 5`` does not depend on the 5."""
    if left is None or right is None:
        return False
    if _shape(left, mask=True) != _shape(right, mask=True):
        return False
    if any(not VALUE_NODES.isdisjoint(node) for node in (*walk_dicts(left), *walk_dicts(right))):
        deps.literals = True
    return _shape(left, mask=False) == _shape(right, mask=False)


def _shape(node: object, *, mask: bool) -> object:
    """``node`` without positions, and with every literal and parameter alike if ``mask``."""
    if type(node) is dict:
        if mask and len(node) == 1 and not VALUE_NODES.isdisjoint(node):
            return "value"
        return {k: _shape(v, mask=mask) for k, v in node.items() if k != "location"}
    if type(node) is list:
        return [_shape(v, mask=mask) for v in node]
    return node
