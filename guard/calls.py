"""What code an expression runs: function calls, operators, casts and attribute notation,
judged against the allow-list of :mod:`guard.builtins` and the caller's own lists.

A ``read`` may run only:

* pg_catalog functions and aggregates on the allow-list, called unqualified or as
  ``pg_catalog.f``, and functions named in ``allowed_functions``;
* pg_catalog operator symbols on the allow-list (written plainly or as
  ``OPERATOR(pg_catalog.op)``); ``OPERATOR(other_schema.op)`` is never allowed, nor a
  plain symbol the target overloads with an operator of its own that runs code that is not
  a read (``target_operators``): the parse tree has no types, so which overload answers is
  not known, and the search path may reach the target's. That covers the operators SQL
  finds by name without writing them: BETWEEN's ``>=``/``<=`` (NOT BETWEEN's ``<``/``>``),
  and the ``=`` of ``IN (subquery)``, ``CASE x WHEN`` and ``JOIN … USING``/``NATURAL``;
* casts to built-in types (pg_catalog, and information_schema when written with it): a
  cast to any other type may run a domain's CHECK or a user-written cast function.

Functions that change data or signal other sessions (:data:`guard.catalog.WRITE_FUNCTIONS`)
make a ``write``; a denied function (matched on its unqualified name in any case) and
anything else not allowed make the statement ``opaque``. A denied name stays denied even
when ``allowed_functions`` names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from guard import builtins
from guard.builtins import WRITE_FUNCTIONS
from guard.settings import set_config
from guard.tree import Node, strings, walk_dicts
from guard.verdict import Finding

if TYPE_CHECKING:
    from guard.walk import Handler, Walker

_CATALOG = (None, "pg_catalog")
# TABLESAMPLE methods that ship with PostgreSQL (extensions add others, in C).
_SAMPLING = frozenset({"bernoulli", "system"})


class CallRules:
    """The caller's lists, folded for lookup; shared by every walk of one classifier."""

    __slots__ = (
        "allowed_any",
        "allowed_bare",
        "allowed_in",
        "calls",
        "denied",
        "functions",
        "operators",
        "overloads",
        "relations",
        "target",
        "types",
    )

    def __init__(
        self,
        *,
        denied: Iterable[str],
        allowed: Iterable[str] = (),
        target: Iterable[str] = (),
        relations: Mapping[str, Finding] | None = None,
        calls: Mapping[str, Finding] | None = None,
        operators: Mapping[str, Finding] | None = None,
    ) -> None:
        self.denied = frozenset(_unqualified(name) for name in denied)
        # Built-ins that run the target's own code there (a record conversion checking a
        # domain), by unqualified lower-case name.
        self.calls = dict(calls or {})
        allowed = [name.lower() for name in allowed]
        # "schema.f" allows f written with that schema or without one; "f" anywhere
        self.allowed_in = frozenset(tuple(n.rsplit(".", 1)) for n in allowed if "." in n)
        self.allowed_any = frozenset(n for n in allowed if "." not in n)
        self.allowed_bare = frozenset(name for _, name in self.allowed_in)
        # A function of the target's own may answer an unqualified call of a built-in's
        # name (a better-matching overload), or a column reference (attribute notation).
        self.target = frozenset(_unqualified(name) for name in target)
        # Views of the target whose definitions are not reads, by "schema.view" and "view".
        self.relations = dict(relations or {})
        # Operator symbols the target overloads with code that is not a read.
        self.overloads = dict(operators or {})
        self.functions = builtins.read_functions()
        self.operators = builtins.read_operators()
        self.types = builtins.builtin_types()

    def function(self, names: object) -> Finding | None:
        """What calling the function named by the ``String`` list ``names`` calls for
        (None: a read). ``set_config`` is the caller's to judge."""
        parts = strings(names)
        name = parts[-1] if parts else ""
        schema = parts[-2].lower() if len(parts) > 1 else None
        lowered = name.lower()
        if lowered in self.denied:
            return "opaque", f"calls {lowered}"
        if lowered in self.calls and schema in _CATALOG:
            return self.calls[lowered]
        if schema in _CATALOG and name in WRITE_FUNCTIONS:
            return "write", f"calls {name}, which {WRITE_FUNCTIONS[name]}"
        if self._allowed(schema, lowered):
            return None
        builtin = schema in _CATALOG and name in self.functions
        if builtin and (schema is not None or lowered not in self.target):
            return None
        shown = ".".join(parts)
        return "opaque", f"calls {shown}(), which is not a known side-effect-free built-in"

    def attribute(self, name: str) -> Finding | None:
        """``x.name`` is ``name(x)`` when ``x`` has no column ``name``."""
        lowered = name.lower()
        if lowered in self.denied or (lowered in self.target and not self._allowed(None, lowered)):
            return "opaque", f"{name} may call function {name}() by attribute notation"
        return None

    def relation(self, body: Node) -> Finding | None:
        """Reading a view runs its definition: what that definition calls for."""
        if not self.relations:
            return None
        name = str(body.get("relname", "")).lower()
        schema = body.get("schemaname")
        key = f"{str(schema).lower()}.{name}" if schema else name
        return self.relations.get(key)

    def operator(self, names: object) -> Finding | None:
        parts = strings(names)
        if len(parts) == 1 and parts[0] in self.overloads:
            return self.overloads[parts[0]]
        if parts[-1:] and parts[-1] in self.operators and parts[:-1] in ([], ["pg_catalog"]):
            return None
        shown = ".".join(parts)
        return "opaque", f"uses operator {shown}, which is not a known side-effect-free built-in"

    def implied(self, symbol: str) -> Finding | None:
        """An operator SQL looks up by name without its being written (BETWEEN's, IN's)."""
        return self.overloads.get(symbol)

    def cast(self, names: object) -> Finding | None:
        parts = strings(names)
        qualified = ".".join(parts) if len(parts) > 1 else f"pg_catalog.{''.join(parts)}"
        if qualified in self.types:
            return None
        shown = ".".join(parts)
        return "opaque", f"casts to {shown}, which is not a built-in type"

    def sampling(self, names: object) -> Finding | None:
        parts = strings(names)
        if len(parts) == 1 and parts[0] in _SAMPLING:
            return None
        return "opaque", f"TABLESAMPLE {'.'.join(parts)} runs an extension's sampling method"

    def _allowed(self, schema: str | None, name: str) -> bool:
        if name in self.allowed_any:
            return True
        if schema is None:
            return name in self.allowed_bare
        return (schema, name) in self.allowed_in


def _unqualified(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower()


def _add(walker: Walker, finding: Finding | None) -> None:
    if finding is not None:
        walker.findings.append(finding)


def _function_call(walker: Walker, body: Node) -> bool:
    names = body.get("funcname")
    parts = strings(names)
    if [p.lower() for p in parts] in (["set_config"], ["pg_catalog", "set_config"]):
        set_config(walker, body.get("args") or [None], "set_config" in walker.rules.denied)
    else:
        _add(walker, walker.rules.function(names))
    return True


def _column(walker: Walker, body: Node) -> bool:
    fields = body.get("fields", [])
    if len(fields) > 1 and "String" in fields[-1]:
        _add(walker, walker.rules.attribute(fields[-1]["String"].get("sval", "")))
    return True


def _indirection(walker: Walker, body: Node) -> bool:
    for item in body.get("indirection", []):
        if "String" in item:
            _add(walker, walker.rules.attribute(item["String"].get("sval", "")))
    return True


# BETWEEN's "name" is the keyword; it is rewritten to comparisons found by name.
_BETWEEN = {
    "AEXPR_BETWEEN": (">=", "<="),
    "AEXPR_BETWEEN_SYM": (">=", "<="),
    "AEXPR_NOT_BETWEEN": ("<", ">"),
    "AEXPR_NOT_BETWEEN_SYM": ("<", ">"),
}


def _operator(walker: Walker, body: Node) -> bool:
    between = _BETWEEN.get(str(body.get("kind", "")))
    if between is None:
        _add(walker, walker.rules.operator(body.get("name")))
    else:
        for symbol in between:
            _add(walker, walker.rules.implied(symbol))
    return True


def _sublink(walker: Walker, body: Node) -> bool:
    names = body.get("operName")
    if names is not None:
        _add(walker, walker.rules.operator(names))
    elif body.get("subLinkType") == "ANY_SUBLINK":  # IN (subquery) compares with =
        _add(walker, walker.rules.implied("="))
    return True


def _case(walker: Walker, body: Node) -> bool:
    if body.get("arg") is not None:  # CASE x WHEN y: x = y
        _add(walker, walker.rules.implied("="))
    return True


def _join(walker: Walker, body: Node) -> bool:
    if body.get("usingClause") or body.get("isNatural"):  # USING (c): l.c = r.c
        _add(walker, walker.rules.implied("="))
    return True


def _cast(walker: Walker, body: Node) -> bool:
    type_name = body.get("typeName")
    if type(type_name) is dict:
        _add(walker, walker.rules.cast(type_name.get("names")))
    return True


def _relation(walker: Walker, body: Node) -> bool:
    _add(walker, walker.rules.relation(body))
    return True


def _declared_types(walker: Walker, body: Node) -> bool:
    """A column definition list in FROM (``f(…) AS r(a t)``, ``ROWS FROM``, ``XMLTABLE …
    COLUMNS``) reads values as those types: a domain's CHECK runs there without any cast
    in sight, so the types must be built-in for a read."""
    for node in walk_dicts([body.get("coldeflist"), body.get("functions"), body.get("columns")]):
        if "colname" in node:
            _declared(walker, node.get("typeName"))
    return True


def _prepare_types(walker: Walker, body: Node) -> bool:
    """PREPARE's parameter types: a value bound to a domain runs its CHECK."""
    for item in body.get("argtypes", []):
        if type(item) is dict:
            _declared(walker, item.get("TypeName"))
    return True


def _declared(walker: Walker, type_name: object) -> None:
    if type(type_name) is dict and walker.rules.cast(type_name.get("names")) is not None:
        shown = ".".join(strings(type_name.get("names")))
        _add(walker, ("opaque", f"reads a value as {shown}, which is not a built-in type"))


def _field(field: str, judge: str) -> Handler:
    """A handler that judges ``body[field]`` with the rule named ``judge``."""

    def handle(walker: Walker, body: Node) -> bool:
        value = body.get(field)
        if value is not None:
            _add(walker, getattr(walker.rules, judge)(value))
        return True

    return handle


HANDLERS: dict[str, Handler] = {
    "FuncCall": _function_call,
    "ColumnRef": _column,
    "A_Indirection": _indirection,
    "A_Expr": _operator,
    "TypeCast": _cast,
    "XmlSerialize": _cast,
    "output": _cast,  # JSON functions' RETURNING type
    "SubLink": _sublink,
    "CaseExpr": _case,
    "JoinExpr": _join,
    "SortBy": _field("useOp", "operator"),
    "RangeTableSample": _field("method", "sampling"),
    "RangeFunction": _declared_types,
    "RangeVar": _relation,
    "RangeTableFunc": _declared_types,
    "PrepareStmt": _prepare_types,
}
"""Handlers for the nodes that run code: calls, operators, casts, attribute notation."""
