"""What an output expression does with the columns it reads: hands their values on
unchanged (the column itself, a cast to text, ``coalesce``, ``lower``, a concatenation with
punctuation …), counts them, or computes something else from them, which
:mod:`guard.transforms` calls a transform; and the words that describe one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from guard.tree import Node, node_type, strings, walk_dicts

# Functions whose result is one of their arguments, or all of them side by side: the
# masked value is still there, whole, for masking to find.
_KEEPING = frozenset(
    {
        "coalesce", "nullif", "greatest", "least", "min", "max", "any_value", "array_agg",
        "string_agg", "json_agg", "jsonb_agg", "to_json", "to_jsonb", "row_to_json",
        "json_build_array", "jsonb_build_array", "json_build_object", "jsonb_build_object",
        "json_object_agg", "jsonb_object_agg", "array", "row", "mode", "first_value",
        "last_value", "lag", "lead", "nth_value",
        # the same characters, in another case or without the blanks around them
        "lower", "upper", "btrim", "trim", "ltrim", "rtrim",
    }
)  # fmt: skip
# Functions whose result says nothing of the values: counts.
COUNTING = frozenset({"count"})
_TEXT_TYPES = frozenset(
    {"text", "varchar", "bpchar", "char", "character", "citext", "name", "json", "jsonb"}
)
Masked = Callable[[str], bool]
"""Whether a column name (lower case) holds sensitive values."""


def outputs(tree: object) -> Iterator[tuple[str | None, Node]]:
    """(alias, expression) of every SELECT target and RETURNING entry in ``tree`` (an
    UPDATE's SET list is a ``targetList`` too: it writes, and is not an output)."""
    set_lists = {
        id(d["UpdateStmt"].get("targetList"))
        for d in walk_dicts(tree)
        if type(d.get("UpdateStmt")) is dict
    }
    for body in walk_dicts(tree):
        for key in ("targetList", "returningList"):
            targets = body.get(key)
            if type(targets) is not list or id(targets) in set_lists:
                continue
            for target in targets:
                res = target.get("ResTarget") if type(target) is dict else None
                if res is None or "val" not in res:
                    continue
                value = res["val"]
                yield (res.get("name") or _own_name(value)), value


def _own_name(value: Node) -> str | None:
    if node_type(value) == "ColumnRef":
        fields = strings(value["ColumnRef"].get("fields"))
        return fields[-1].lower() if fields else None
    return None


def row_names(tree: object) -> frozenset[str]:
    """The relation names and aliases in ``tree``: a column reference to one of them is
    the whole row."""
    names = set()
    for body in walk_dicts(tree):
        rangevar = body.get("RangeVar")
        if type(rangevar) is dict:
            names.add(str(rangevar.get("relname", "")).lower())
            alias = rangevar.get("alias")
            if type(alias) is dict and alias.get("aliasname"):
                names.add(str(alias["aliasname"]).lower())
    return frozenset(names)


def _columns(value: object) -> Iterator[tuple[list[str], bool]]:
    """The column references in ``value``: their names, and whether it is a whole row."""
    for body in walk_dicts(value):
        ref = body.get("ColumnRef")
        if type(ref) is not dict:
            continue
        fields = ref.get("fields") or []
        star = any(type(f) is dict and "A_Star" in f for f in fields)
        yield [name.lower() for name in strings(fields)], star


def _is_masked(names: list[str], star: bool, masked: Masked, rows: frozenset[str]) -> bool:
    if star:
        return True
    if not names:
        return False
    last = names[-1]
    return masked(last) or (len(names) == 1 and last in rows)


def refers(value: Node, masked: Masked, rows: frozenset[str]) -> bool:
    return any(_is_masked(n, star, masked, rows) for n, star in _columns(value))


def keeps(value: object, masked: Masked, rows: frozenset[str]) -> bool:
    """Whether ``value`` hands on the masked values it reads unchanged."""
    kind = node_type(value)
    if kind is None:
        return True
    assert type(value) is dict
    body = value[kind]
    if kind in ("ColumnRef", "A_Const", "SubLink", "ParamRef"):
        return True  # a subquery's own outputs are judged on their own
    if kind == "TypeCast":
        type_names = strings(body.get("typeName", {}).get("names"))
        text = bool(type_names) and type_names[-1].lower() in _TEXT_TYPES
        return text and keeps(body.get("arg"), masked, rows)
    if kind == "FuncCall":
        name = (strings(body.get("funcname")) or [""])[-1].lower()
        if name in COUNTING:
            return True
        return name in _KEEPING and all(keeps(a, masked, rows) for a in body.get("args", []))
    if kind in ("CoalesceExpr", "MinMaxExpr", "RowExpr", "A_ArrayExpr"):
        items = body.get("args") or body.get("elements") or []
        return all(keeps(a, masked, rows) for a in items)
    if kind == "A_Expr" and strings(body.get("name")) == ["||"]:
        return all(_glue_safe(body.get(side), masked, rows) for side in ("lexpr", "rexpr"))
    if kind == "CaseExpr":
        results = [w["CaseWhen"].get("result") for w in body.get("args", []) if "CaseWhen" in w]
        return all(keeps(r, masked, rows) for r in [*results, body.get("defresult")])
    return not refers(value, masked, rows)


def _glue_safe(part: object, masked: Masked, rows: frozenset[str]) -> bool:
    """Whether ``part`` of a concatenation leaves the masked values beside it findable."""
    if node_type(part) == "A_Const":
        assert type(part) is dict
        text = str(part["A_Const"].get("sval", {}).get("sval", "x"))
        return not any(c.isalnum() for c in text)
    return type(part) is dict and refers(part, masked, rows) and keeps(part, masked, rows)


def describe(value: Node, masked: Masked, rows: frozenset[str], names: dict[str, str]) -> str:
    kind = node_type(value) or "expression"
    body = value.get(kind, {}) if kind else {}
    what = kind
    if kind == "FuncCall":
        what = (strings(body.get("funcname")) or ["function"])[-1] + "()"
    elif kind == "TypeCast":
        what = "cast to " + ((strings(body.get("typeName", {}).get("names")) or ["?"])[-1])
    elif kind == "A_Expr":
        what = "operator " + (strings(body.get("name")) or ["?"])[-1]
    columns = sorted(
        {
            _qualified(n, names) or "*"
            for n, star in _columns(value)
            if _is_masked(n, star, masked, rows)
        }
    )
    return f"{what} over masked column {', '.join(columns)}"


def _qualified(names: list[str], qualifiers: dict[str, str]) -> str:
    if not qualifiers:
        return ".".join(names)
    if len(names) == 1:
        relation = qualifiers.get("") or ""
        return f"{relation}.{names[0]}" if relation else names[0]
    return ".".join([*names[:-2], qualifiers.get(names[-2], names[-2]), names[-1]])
