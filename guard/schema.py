"""Handlers for what changes the schema, privileges and the server: the simple statement
kinds of :data:`guard.catalog.SIMPLE_STATEMENTS`, CREATE FUNCTION and RULE (their bodies are
walked), ALTER TABLE, DROP, GRANT/REVOKE, VACUUM/ANALYZE, ALTER SYSTEM and ALTER DATABASE … SET.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pgparse  # type: ignore[import-not-found]

from guard.catalog import (
    ALTER_TABLE_COMMANDS,
    FUNCTION_BINDING_STATEMENTS,
    SIMPLE_STATEMENTS,
    setting_concern,
)
from guard.tree import (
    DML,
    Node,
    contains,
    describe,
    dotted,
    kind_words,
    object_name,
    options,
    relation_name,
    role_name,
    strings,
    walk_dicts,
)
from guard.verdict import StatementClass

if TYPE_CHECKING:
    from guard.walk import Handler, Walker


def _simple(kind: str) -> Handler:
    statement_class, template = SIMPLE_STATEMENTS[kind]
    binds_functions = kind in FUNCTION_BINDING_STATEMENTS

    def handle(walker: Walker, body: Node) -> bool:
        if statement_class != "read":
            walker.add(statement_class, describe(template, body))
        if binds_functions:
            _binds_denied(walker, body, describe(template, body))
        return True

    return handle


def _binds_denied(walker: Walker, body: Node, what: str) -> None:
    """An aggregate, operator or cast made of a denied function calls it where its own name
    is used, out of the deny-list's sight."""
    parts = {field: value for field, value in body.items() if field != "defnames"}
    for node in walk_dicts(parts):
        name = str(node.get("String", {}).get("sval", "")).lower() if "String" in node else ""
        if name in walker.rules.denied:
            walker.add("opaque", f"{what} binds {name}")


def _set_elsewhere(walker: Walker, body: Node, where: str, otherwise: StatementClass) -> bool:
    setting = body.get("setstmt") or {}
    name = str(setting.get("name", "ALL"))
    verb = "RESET" if str(setting.get("kind")).startswith("VAR_RESET") else "SET"
    concern = None if name == "ALL" else setting_concern(name)
    if concern is None:
        walker.add(otherwise, f"{where} {verb} {name}")
    else:
        walker.add("privilege", f"{where} {verb} {name} ({concern})")
    # the SET inside is the database's or the server's, not this session's
    return False


def _create_function(walker: Walker, body: Node) -> bool:
    noun = "PROCEDURE" if body.get("is_procedure") else "FUNCTION"
    name = dotted(body.get("funcname"))
    walker.add("ddl", f"CREATE {noun} {name}")
    opts = options(body.get("options"))
    _security_definer(walker, opts, name)
    walker.walk({field: value for field, value in body.items() if field != "sql_body"})
    if "sql_body" in body:
        _function_body(walker, body["sql_body"], name)
        return False
    language = opts.get("language")
    lang = (strings([language]) or [""])[0].lower() if language else ""
    walker.deps.literals = True
    source = strings(opts.get("as", {}).get("List", {}).get("items"))
    if lang != "sql":
        walker.add("opaque", f"{noun.lower()} {name} in {lang or '?'} cannot be inspected")
        return False
    try:
        tree = pgparse.parse(source[0] if source else "")
    except pgparse.PGQueryError as exc:
        walker.add("opaque", f"body of {name} does not parse: {exc.message}")
        return False
    _function_body(walker, [entry["stmt"] for entry in tree], name)
    return False


def _function_body(walker: Walker, statements: object, name: str) -> None:
    walker.walk(statements)
    if contains(statements, DML):
        walker.add("destructive", f"body of {name} runs DML")


def _security_definer(walker: Walker, opts: dict[str, object], name: str) -> None:
    security = opts.get("security")
    if type(security) is dict and security.get("Boolean", {}).get("boolval"):
        walker.add("privilege", f"{name} runs with its owner's rights (SECURITY DEFINER)")


def _alter_function(walker: Walker, body: Node) -> bool:
    name = dotted(body.get("func", {}).get("objname"))
    walker.add("ddl", f"ALTER {kind_words(body)} {name}")
    _security_definer(walker, options(body.get("actions")), name)
    return True


def _rule(walker: Walker, body: Node) -> bool:
    name = f"{body.get('rulename', '?')} on {relation_name(body.get('relation'))}"
    walker.add("ddl", f"CREATE RULE {name}")
    if contains(body.get("actions"), DML):
        walker.add("destructive", f"RULE {name} runs DML")
    return True


def _alter_table(walker: Walker, body: Node) -> bool:
    name = relation_name(body.get("relation"))
    noun = kind_words(body)
    for item in body.get("cmds", []):
        command = item.get("AlterTableCmd", {})
        statement_class, words = ALTER_TABLE_COMMANDS.get(command.get("subtype"), ("ddl", ""))
        words = words.replace("{name}", str(command.get("name", "?")))
        if "newowner" in command:
            words += f" {role_name(command['newowner'])}"
        walker.add(statement_class, f"ALTER {noun} {name} {words}".rstrip())
    return True


def _drop(walker: Walker, body: Node) -> bool:
    names = ", ".join(object_name(o) for o in body.get("objects", []))
    walker.add("destructive", f"DROP {kind_words(body)} {names}")
    return False


def _grant(walker: Walker, body: Node) -> bool:
    granting = bool(body.get("is_grant"))
    granted = body.get("privileges") or body.get("granted_roles") or []
    what = ", ".join(g.get("AccessPriv", {}).get("priv_name", "?") for g in granted) or "ALL"
    grantees = body.get("grantees") or body.get("grantee_roles") or []
    whom = ", ".join(role_name(g) for g in grantees)
    on = ", ".join(object_name(o) for o in body.get("objects", []))
    what += f" ON {on}" if on else ""
    reason = f"GRANT {what} TO {whom}" if granting else f"REVOKE {what} FROM {whom}"
    walker.add("privilege", reason)
    return True


def _vacuum(walker: Walker, body: Node) -> bool:
    verb = "VACUUM" if body.get("is_vacuumcmd") else "ANALYZE"
    relations = [r.get("VacuumRelation", {}).get("relation") for r in body.get("rels", [])]
    names = ", ".join(relation_name(r) for r in relations)
    walker.add("ddl", f"{verb} {names}".rstrip())
    return True


HANDLERS: dict[str, Handler] = {kind: _simple(kind) for kind in SIMPLE_STATEMENTS}
HANDLERS.update(
    {
        "CreateFunctionStmt": _create_function,
        "AlterFunctionStmt": _alter_function,
        "RuleStmt": _rule,
        "AlterTableStmt": _alter_table,
        "DropStmt": _drop,
        "GrantStmt": _grant,
        "GrantRoleStmt": _grant,
        "VacuumStmt": _vacuum,
        "AlterSystemStmt": lambda walker, body: _set_elsewhere(
            walker, body, "ALTER SYSTEM", "privilege"
        ),
        "AlterDatabaseSetStmt": lambda walker, body: _set_elsewhere(
            walker, body, f"ALTER DATABASE {body.get('dbname', '?')}", "ddl"
        ),
    }
)
