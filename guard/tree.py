"""Reading libpg_query's JSON parse tree: names of things, and searches through a subtree.

A node is a one-key dict naming its type (``{"DeleteStmt": {...}}``); fields whose C type
is a specific struct (``SelectStmt.larg``, ``AlterSystemStmt.setstmt``, ``RangeVar``s, …)
hold the bare body instead. Default values (0, false, empty) are left out of the JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Node = dict[str, Any]

DML = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})
VERBS = {
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
    "ExecuteStmt": "prepared statement",
}
# objects that live on a table: named before the table
_OWN_NAME_FIELDS = ("trigname", "idxname", "rulename", "policy_name")
_NAME_FIELDS = (
    "extname",
    "dbname",
    "schemaname",
    "servername",
    "fdwname",
    "subname",
    "pubname",
    "tablespacename",
    "conditionname",
    "portalname",
    "name",
    "role",
)
_KIND_FIELDS = ("kind", "objtype", "objectType", "renameType", "removeType")


def node_type(node: object) -> str | None:
    """The type of a wrapped node (``"DeleteStmt"``), or None for anything else."""
    if type(node) is dict and len(node) == 1:
        key: str = next(iter(node))
        return key
    return None


def walk_dicts(root: object) -> Iterator[Node]:
    """Every dict in ``root``, depth first, without recursion."""
    stack = [root]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            yield item
            stack.extend(v for v in item.values() if type(v) is dict or type(v) is list)
        elif type(item) is list:
            stack.extend(item)


def contains(root: object, types: frozenset[str]) -> bool:
    """Whether a node of one of ``types`` occurs anywhere in ``root``."""
    return any(not types.isdisjoint(d) for d in walk_dicts(root))


def strings(items: object) -> list[str]:
    """The texts of a list of ``String`` nodes (other items are skipped)."""
    if type(items) is not list:
        return []
    return [i["String"].get("sval", "") for i in items if type(i) is dict and "String" in i]


def dotted(items: object) -> str:
    return ".".join(strings(items))


def relation_name(rangevar: object) -> str:
    """``schema.table`` of a bare RangeVar body."""
    if type(rangevar) is not dict:
        return "?"
    parts = (rangevar.get("catalogname"), rangevar.get("schemaname"), rangevar.get("relname"))
    return ".".join(p for p in parts if p) or "?"


def role_name(spec: object) -> str:
    if type(spec) is not dict:
        return "?"
    body: Node = spec.get("RoleSpec", spec)
    name = body.get("rolename")
    if name:
        return str(name)
    return str(body.get("roletype", "?")).removeprefix("ROLESPEC_")


def object_name(obj: object) -> str:
    """A readable name for one entry of a DROP/COMMENT/… object list."""
    if type(obj) is not dict or len(obj) != 1:
        return "?"
    ((kind, body),) = obj.items()
    if kind == "List":
        items = body.get("items", [])
        if all(type(i) is dict and "String" in i for i in items):
            return dotted(items)
        return " ".join(object_name(i) for i in items)
    if kind == "String":
        return str(body.get("sval", "?"))
    if kind == "TypeName":
        return dotted(body.get("names"))
    if kind == "ObjectWithArgs":
        return dotted(body.get("objname"))
    if kind == "RangeVar":
        return relation_name(body)
    if kind == "RoleSpec":
        return role_name(body)
    if kind == "Integer":
        return str(body.get("ival", 0))
    return "?"


def subject(body: Node) -> str:
    """The name of what a statement acts on, best effort ("" when it names nothing)."""
    for field in _OWN_NAME_FIELDS:
        if type(body.get(field)) is str:
            return str(body[field])
    if type(body.get("defnames")) is list:
        return dotted(body["defnames"])
    for field in ("relation", "view", "table"):
        if type(body.get(field)) is dict:
            return relation_name(body[field])
    if type(body.get("into")) is dict:
        return relation_name(body["into"].get("rel"))
    if type(body.get("relations")) is list:
        return ", ".join(object_name(r) for r in body["relations"])
    if type(body.get("roles")) is list:
        return ", ".join(role_name(r) for r in body["roles"])
    if type(body.get("role")) is dict:
        return role_name(body["role"])
    for field in ("objects", "object"):
        value = body.get(field)
        if type(value) is list:
            return ", ".join(object_name(o) for o in value)
        if value is not None:
            return object_name(value)
    if type(body.get("funccall")) is dict:
        return dotted(body["funccall"].get("funcname"))
    for field in _NAME_FIELDS:
        if type(body.get(field)) is str:
            return str(body[field])
    return ""


def kind_words(body: Node) -> str:
    """The object kind a statement names, in words ("MATERIALIZED VIEW")."""
    for field in _KIND_FIELDS:
        value = body.get(field)
        if type(value) is str and value.startswith("OBJECT_"):
            return value.removeprefix("OBJECT_").replace("_", " ")
    return "OBJECT"


def describe(template: str, body: Node) -> str:
    """Fill a reason template from :data:`guard.catalog.SIMPLE_STATEMENTS`."""
    name = subject(body)
    text = template.replace("{kind}", kind_words(body))
    if "{name}" in text:
        return text.replace("{name}", name or "?")
    return f"{text} {name}" if name else text


def options(items: object) -> dict[str, Any]:
    """A list of ``DefElem`` nodes as ``{defname: arg}`` (arg None when absent)."""
    found: dict[str, Any] = {}
    if type(items) is list:
        for item in items:
            if type(item) is dict and "DefElem" in item:
                elem = item["DefElem"]
                found[str(elem.get("defname", "")).lower()] = elem.get("arg")
    return found
