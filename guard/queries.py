"""Handlers for what reads and changes rows and the session: SELECT, INSERT, UPDATE,
DELETE, MERGE, CTEs, EXPLAIN, EXECUTE, COPY, SET and transaction modes, and function calls
(the deny-list and ``set_config``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard.catalog import DATA_CHANGING_FUNCTIONS, is_safety_setting
from guard.tree import DML, VERBS, Node, node_type, options, relation_name, strings
from guard.values import evaluate, parse_bool
from guard.where import may_match_all, target_names

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
    if where is None:
        walker.add("destructive", f"{verb} without WHERE on {name}")
    elif may_match_all(where, target_names(relation), walker.deps):
        walker.add("destructive", f"tautological WHERE in {verb} on {name}")
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
    actions = {c.get("MergeWhenClause", {}).get("commandType") for c in clauses}
    if "CMD_DELETE" in actions:
        walker.add("destructive", f"MERGE … WHEN … THEN DELETE on {name}")
    if "CMD_UPDATE" in actions and may_match_all(
        body.get("joinCondition"), target_names(relation), walker.deps
    ):
        walker.add("destructive", f"tautological join condition in MERGE … UPDATE on {name}")
    walker.add("write", f"MERGE into {name}")
    return True


def _cte(walker: Walker, body: Node) -> bool:
    if node_type(body.get("ctequery")) in DML:
        walker.add("destructive", "DML inside a CTE")
    return True


_EXECUTES_CHANGES = DML | {"ExecuteStmt"}


def _explain(walker: Walker, body: Node) -> bool:
    opts = options(body.get("options"))
    if "analyze" not in opts or not _option_is_on(walker, opts["analyze"]):
        return False
    query = body.get("query")
    kind = node_type(query) or ""
    if walker.class_of(query) in ("write", "destructive") and kind in _EXECUTES_CHANGES:
        walker.add("destructive", f"EXPLAIN ANALYZE executes the {VERBS[kind]}")
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


def _variable_set(walker: Walker, body: Node) -> bool:
    kind = body.get("kind")
    name = str(body.get("name", ""))
    if kind == "VAR_SET_MULTI":
        _transaction_modes(walker, body.get("args"))
    elif kind != "VAR_RESET_ALL" and is_safety_setting(name):
        verb = "RESET" if kind == "VAR_RESET" else "SET LOCAL" if body.get("is_local") else "SET"
        walker.add("privilege", f"{verb} {name}")
    return True


def _transaction(walker: Walker, body: Node) -> bool:
    _transaction_modes(walker, body.get("options"))
    return True


def _transaction_modes(walker: Walker, items: object) -> None:
    """READ WRITE can undo a read-only default the operator set; other modes are harmless."""
    mode = options(items).get("transaction_read_only")
    if mode is not None and evaluate(mode, walker.deps) == 0:
        walker.add("privilege", "READ WRITE overrides a read-only transaction default")


def _function_call(walker: Walker, body: Node) -> bool:
    name = (strings(body.get("funcname")) or [""])[-1].lower()
    if name == "set_config":
        _set_config(walker, body.get("args") or [None])
    elif name in walker.denied:
        walker.add("opaque", f"calls {name}")
    elif name in DATA_CHANGING_FUNCTIONS:
        walker.add("write", f"calls {name}, which changes data")
    return True


def _set_config(walker: Walker, args: list[object]) -> None:
    setting = evaluate(args[0], walker.deps)
    if type(setting) is str and is_safety_setting(setting):
        walker.add("privilege", f"set_config of {setting.lower()}")
    elif type(setting) is not str:
        walker.add("opaque", "set_config of a setting named at run time")
    elif "set_config" in walker.denied:
        walker.add("opaque", "calls set_config")


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
    "VariableSetStmt": _variable_set,
    "TransactionStmt": _transaction,
    "FuncCall": _function_call,
}
