"""Evaluating constant expressions of the parse tree, literals only.

:func:`evaluate` gives a Python value for an expression built from literals, casts,
comparisons, arithmetic and boolean logic, with SQL's three-valued logic (``None`` is NULL),
and :data:`UNKNOWN` for anything else (columns, parameters, function calls, subqueries).
It never guesses: an expression it cannot follow exactly is :data:`UNKNOWN` — casts that
round, pad, truncate or lose precision (``1.5::int``, ``char(n)``, ``varchar(n)``,
``name``, floating point), NaN and infinities, arithmetic whose exact result does not fit
in :data:`DIGITS` digits, numbers in any spelling but plain decimal.

Every read of a literal, or of a parameter (``$1``) where a literal could stand, is noted
in :class:`Dependencies`, so a verdict that depends on one is never shared between
statements that differ only there.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from decimal import Context, Decimal, DecimalException, Inexact, InvalidOperation, Overflow
from typing import Any, Final

from guard.tree import Node, strings


class Dependencies:
    """What a verdict depends on besides the statement's shape: the value of a literal (or a
    parameter: ``pgparse.normalize`` writes both as ``$n``), or the session's prepared
    statements."""

    __slots__ = ("literals", "prepared")

    def __init__(self) -> None:
        self.literals = False
        self.prepared = False


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()
VALUE_NODES = frozenset({"A_Const", "ParamRef"})

_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")
_BOOL_TYPES = frozenset({"bool", "boolean"})
# the integer types' ranges: a cast out of range is an error, not a value
_INTEGER_RANGES = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
# types that take a string unchanged (without a length: varchar(n) truncates)
_TEXT_TYPES = frozenset({"text", "varchar"})
_DECIMAL = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
DIGITS = 1000
# Arithmetic is exact or UNKNOWN: an inexact, overflowing or invalid result raises.
_EXACT = Context(prec=DIGITS, traps=[Inexact, Overflow, InvalidOperation])
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}
_ARITHMETIC: dict[str, Callable[[Decimal, Decimal], Decimal]] = {
    "+": _EXACT.add,
    "-": _EXACT.subtract,
    "*": _EXACT.multiply,
}


def parse_bool(text: str) -> bool | None:
    """PostgreSQL's boolean input: ``t``, ``yes``, ``on``, ``1``, unique prefixes, any case."""
    word = text.strip().lower()
    if not word:
        return None
    # "o" alone is ambiguous between on and off, as in PostgreSQL
    if word != "o":
        if any(w.startswith(word) for w in _TRUE_WORDS):
            return True
        if any(w.startswith(word) for w in _FALSE_WORDS):
            return False
    return None


def truth(value: object) -> object:
    """``value`` as a boolean: True, False, None (NULL) or UNKNOWN."""
    if value is None or value is UNKNOWN or type(value) is bool:
        return value
    if type(value) is str:
        parsed = parse_bool(value)
        return UNKNOWN if parsed is None else parsed
    return UNKNOWN


def evaluate(node: object, deps: Dependencies) -> object:
    """The value of a constant expression: bool, Decimal, str, None (NULL) or UNKNOWN."""
    if type(node) is not dict or len(node) != 1:
        return UNKNOWN
    ((kind, body),) = node.items()
    if kind in VALUE_NODES:
        deps.literals = True
        return _constant(body) if kind == "A_Const" else UNKNOWN
    if kind == "TypeCast":
        return _cast(evaluate(body.get("arg"), deps), body.get("typeName", {}))
    if kind == "BoolExpr":
        args = [truth(evaluate(a, deps)) for a in body.get("args", [])]
        return _logic(str(body.get("boolop")), args)
    if kind == "A_Expr":
        return _expression(body, deps)
    if kind == "NullTest":
        value = evaluate(body.get("arg"), deps)
        if value is UNKNOWN:
            return UNKNOWN
        return (value is None) == (body.get("nulltesttype") == "IS_NULL")
    if kind == "BooleanTest":
        value = truth(evaluate(body.get("arg"), deps))
        if value is UNKNOWN:
            return UNKNOWN
        test = str(body.get("booltesttype", ""))
        expected = {"TRUE": True, "FALSE": False, "UNKNOWN": None}.get(test.split("_")[-1])
        return (value is expected) != ("_NOT_" in test)
    return UNKNOWN


def _constant(body: Node) -> object:
    if body.get("isnull"):
        return None
    if "boolval" in body:
        return bool(body["boolval"].get("boolval", False))
    if "ival" in body:
        return Decimal(body["ival"].get("ival", 0))
    if "fval" in body:
        return _decimal(str(body["fval"].get("fval", "")))
    if "sval" in body:
        return str(body["sval"].get("sval", ""))
    return UNKNOWN


def _decimal(text: str) -> object:
    """A plain decimal number (surrounding space allowed, as numeric input allows)."""
    return Decimal(text) if _DECIMAL.fullmatch(text) else UNKNOWN


def _cast(value: object, type_name: Node) -> object:
    if value is None:
        return None
    names = strings(type_name.get("names"))
    target = names[-1] if names and names[0] in ("pg_catalog", names[-1]) else ""
    if "typmods" in type_name or "arrayBounds" in type_name:
        return UNKNOWN
    if target in _BOOL_TYPES:
        if type(value) is Decimal:
            return value != 0 if value == value.to_integral_value() else UNKNOWN
        return truth(value)
    limit = _INTEGER_RANGES.get(target)
    if limit is not None:
        if type(value) is str:
            value = Decimal(value) if _INTEGER.fullmatch(value) else UNKNOWN
        # a fraction would be rounded (half away from zero, or to even from float8)
        if type(value) is not Decimal or value != value.to_integral_value():
            return UNKNOWN
        return value if -limit <= value < limit else UNKNOWN
    if target == "numeric":
        return (
            _decimal(value) if type(value) is str else value if type(value) is Decimal else UNKNOWN
        )
    if target in _TEXT_TYPES and type(value) is str:
        return value
    return UNKNOWN


def _logic(boolop: str, args: list[object]) -> object:
    if boolop == "NOT_EXPR":
        value = args[0] if args else UNKNOWN
        return value if value is None or value is UNKNOWN else not value
    decisive = boolop == "OR_EXPR"  # True decides an OR, False decides an AND
    if decisive in args:
        return decisive
    if UNKNOWN in args:
        return UNKNOWN
    if None in args:
        return None
    return not decisive


def _expression(body: Node, deps: Dependencies) -> object:
    kind = body.get("kind")
    names = body.get("name", [])
    op = names[-1].get("String", {}).get("sval", "") if names else ""
    right = body.get("rexpr")
    if kind == "AEXPR_OP":
        if "lexpr" not in body:
            value = evaluate(right, deps)
            if type(value) is Decimal and op in ("-", "+"):
                return value.copy_negate() if op == "-" else value
            return UNKNOWN
        return _binary(op, evaluate(body["lexpr"], deps), evaluate(right, deps))
    left = evaluate(body.get("lexpr"), deps)
    if kind in ("AEXPR_DISTINCT", "AEXPR_NOT_DISTINCT"):
        other = evaluate(right, deps)
        if left is UNKNOWN or other is UNKNOWN:
            return UNKNOWN
        same = _binary("=", left, other) if left is not None and other is not None else None
        if same is None:
            same = left is None and other is None
        return same if same is UNKNOWN else same == (kind == "AEXPR_NOT_DISTINCT")
    items = right.get("List", {}).get("items", []) if type(right) is dict else []
    if kind == "AEXPR_IN" and items:
        results = [truth(_binary("=", left, evaluate(i, deps))) for i in items]
        found = _logic("OR_EXPR", results)
        return _logic("NOT_EXPR", [found]) if op == "<>" else found
    if kind in ("AEXPR_BETWEEN", "AEXPR_NOT_BETWEEN") and len(items) == 2:
        low, high = (evaluate(i, deps) for i in items)
        inside = _logic("AND_EXPR", [_binary(">=", left, low), _binary("<=", left, high)])
        return _logic("NOT_EXPR", [inside]) if kind == "AEXPR_NOT_BETWEEN" else inside
    return UNKNOWN


def _binary(op: str, left: object, right: object) -> object:
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    if left is None or right is None:
        return None
    left, right = _coerce(left, right)
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    if op in _ARITHMETIC and type(left) is Decimal and type(right) is Decimal:
        try:
            return _ARITHMETIC[op](left, right)
        except DecimalException:
            return UNKNOWN
    compare = _COMPARE.get(op)
    if compare is None:
        return UNKNOWN
    # text ordering depends on the collation; only equality is certain
    if type(left) is str and op not in ("=", "<>", "!="):
        return UNKNOWN
    return compare(left, right)


def _coerce(left: object, right: object) -> tuple[object, object]:
    """Bring two values to one type as PostgreSQL does with an untyped literal."""
    if type(left) is type(right):
        return left, right
    if type(left) is str:
        return _convert(left, type(right)), right
    if type(right) is str:
        return left, _convert(right, type(left))
    return UNKNOWN, UNKNOWN


def _convert(text: str, target: type) -> object:
    if target is Decimal:
        return _decimal(text)
    if target is bool:
        return truth(text)
    return UNKNOWN
