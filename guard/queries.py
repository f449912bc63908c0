"""Handlers for what reads and changes rows: SELECT, INSERT, UPDATE, DELETE, MERGE, CTEs,
EXPLAIN, EXECUTE and COPY.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard.tree import DML, VERBS, Node, node_type, options, relation_name
from guard.values import parse_bool
from guard.where import limits_rows, scope_of

if TYPE_CHECKING:
    from guard.walk import Handler, Walker

_LOCKS = {
    "LCS_FORKEYSHARE": "FOR KEY SHARE",
    "LCS_FORSHARE": "FOR SHARE",
    "LCS_FORNOKEYUPDATE": "FOR NO KEY UPDATE",
    "LCS_FORUPDATE": "FOR UPDATE",
}


def _select(walker: Walker, body: Node) -> bool:
    arms = [body]
    while arms:
        arm = arms.pop()
        into = arm.get("intoClause")
        if type(into) is dict:
            walker.add("ddl", f"SELECT INTO creates table {relation_name(into.get('rel'))}")
        for clause in arm.get("lockingClause", []):
            strength = clause.get("LockingClause", {}).get("strength")
            walker.add("write", f"SELECT … {_LOCKS.get(strength, 'FOR UPDATE')} locks rows")
        arms.extend(arm[side] for side in ("larg", "rarg") if type(arm.get(side)) is dict)
    return True


def _target(walker: Walker, relation: object, verb: str) -> str:
    """The name of the table a DML statement changes; changing a system catalog (notably
    ``UPDATE pg_settings``, which is SET in disguise) is a ``privilege`` matter."""
    name = relation_name(relation)
    if type(relation) is dict and str(relation.get("relname", "")).startswith("pg_"):
        walker.add("privilege", f"{verb} on system catalog {name}")
    return name


def _changes_rows(walker: Walker, body: Node, verb: str) -> bool:
    relation = body.get("relation")
    name = _target(walker, relation, verb)
    where = body.get("whereClause")
    sources = body.get("fromClause") or body.get("usingClause")
    if where is None:
        walker.add("destructive", f"{verb} without WHERE on {name}")
    elif not limits_rows(where, scope_of(relation, sources, body.get("withClause")), walker.deps):
        walker.add("destructive", f"WHERE of {verb} on {name} may match every row")
    else:
        walker.add("write", f"{verb} on {name}")
    return True


def _insert(walker: Walker, body: Node) -> bool:
    walker.add("write", f"INSERT into {_target(walker, body.get('relation'), 'INSERT')}")
    return True


def _merge(walker: Walker, body: Node) -> bool:
    relation = body.get("relation")
    name = _target(walker, relation, "MERGE")
    clauses = body.get("mergeWhenClauses", [])
    whens = [c.get("MergeWhenClause", {}) for c in clauses]
    actions = {when.get("commandType") for when in whens}
    if "CMD_DELETE" in actions:
        walker.add("destructive", f"MERGE … WHEN … THEN DELETE on {name}")
    if any(_unmatched_update(when) for when in whens):
        # every target row the source does not match: the join condition limits nothing
        walker.add("destructive", f"MERGE … NOT MATCHED BY SOURCE on {name} may match every row")
    scope = scope_of(relation, body.get("sourceRelation"), body.get("withClause"))
    if "CMD_UPDATE" in actions and not limits_rows(body.get("joinCondition"), scope, walker.deps):
        walker.add("destructive", f"join condition of MERGE … UPDATE on {name} may match every row")
    walker.add("write", f"MERGE into {name}")
    return True


def _unmatched_update(when: Node) -> bool:
    by_source = when.get("matchKind") == "MERGE_WHEN_NOT_MATCHED_BY_SOURCE"
    return by_source and when.get("commandType") == "CMD_UPDATE"


def _cte(walker: Walker, body: Node) -> bool:
    if node_type(body.get("ctequery")) in DML:
        walker.add("destructive", "DML inside a CTE")
    return True


_EXECUTES_CHANGES = DML | {"ExecuteStmt"}
# what a plain EXPLAIN takes from the statement it plans: what calls code
_RUNS_WHEN_PLANNED = frozenset({"opaque", "privilege"})


def _explain(walker: Walker, body: Node) -> bool:
    opts = options(body.get("options"))
    query = body.get("query")
    kind = node_type(query) or ""
    if "analyze" in opts and _option_is_on(walker, opts["analyze"]):
        if walker.class_of(query) in ("write", "destructive") and kind in _EXECUTES_CHANGES:
            walker.add("destructive", f"EXPLAIN ANALYZE executes the {VERBS[kind]}")
        return False
    # Planning runs code too: EXPLAIN EXECUTE evaluates the parameters, and the planner
    # folds calls of functions declared immutable. The statement itself is only planned.
    inner = walker.spawn()
    if kind == "ExecuteStmt":
        inner.walk(query["ExecuteStmt"].get("params"))  # type: ignore[index]
        walker.findings += inner.findings
    else:
        inner.walk(query)
        walker.findings += [f for f in inner.findings if f[0] in _RUNS_WHEN_PLANNED]
    return False


def _option_is_on(walker: Walker, arg: object) -> bool:
    """An option's boolean value; a value that cannot be read counts as on."""
    if arg is None:
        return True
    walker.deps.literals = True
    kind = node_type(arg)
    value = arg[kind] if type(arg) is dict and kind else {}
    if kind == "Boolean":
        return bool(value.get("boolval", False))
    if kind == "Integer":
        return bool(value.get("ival", 0))
    if kind == "String":
        return parse_bool(str(value.get("sval", ""))) is not False
    return True


def _execute(walker: Walker, body: Node) -> bool:
    walker.deps.prepared = True
    name = str(body.get("name", ""))
    remembered = walker.prepared.get(name)
    if remembered is None:
        walker.add("opaque", f"EXECUTE of an unknown prepared statement {name}")
    elif remembered != "read":
        walker.add(remembered, f"EXECUTE of prepared statement {name} ({remembered})")
    return True


def _copy(walker: Walker, body: Node) -> bool:
    direction = "FROM" if body.get("is_from") else "TO"
    if body.get("is_program"):
        walker.add("opaque", f"COPY … {direction} PROGRAM runs a shell command on the server")
    elif "filename" in body:
        walker.add("opaque", f"COPY … {direction} a file on the server")
    elif body.get("is_from"):
        walker.add("write", f"COPY into {relation_name(body.get('relation'))}")
    return True


HANDLERS: dict[str, Handler] = {
    "SelectStmt": _select,
    "InsertStmt": _insert,
    "UpdateStmt": lambda walker, body: _changes_rows(walker, body, "UPDATE"),
    "DeleteStmt": lambda walker, body: _changes_rows(walker, body, "DELETE"),
    "MergeStmt": _merge,
    "CommonTableExpr": _cte,
    "ExplainStmt": _explain,
    "ExecuteStmt": _execute,
    "CopyStmt": _copy,
}
