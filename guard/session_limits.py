"""Timeouts a session cannot lift: a resource's ``session_limits``.

A resource may fix ``statement_timeout``, ``lock_timeout`` and
``idle_in_transaction_session_timeout`` for every session. The gateway opens each target
connection with them as startup parameters (:func:`startup_values`), which outrank any
``ALTER ROLE``/``ALTER DATABASE … SET`` default, and refuses whatever the policy:

* a client's startup parameter naming one of them with another value
  (:func:`refused_startup`);
* a statement that could set one (:func:`lifted_setting`): ``SET``, ``SET LOCAL`` or
  ``SET … FROM CURRENT`` of it (any value: a shape of ``SET statement_timeout = 1`` is the
  shape of ``= 0``), ``set_config`` of it or of a setting named at run time (any position:
  a select list, FROM, WHERE, a CTE, a function's default), ``UPDATE pg_settings``, and any
  mention of it inside another statement — ``ALTER ROLE/DATABASE/SYSTEM … SET or RESET``,
  a function's own ``SET`` clause (which holds while the function runs);
* a DO block or a function body (strings the parser does not read) that names one.

The target does not report these settings (they are not ``GUC_REPORT``), so the refusal is
static. ``RESET``, ``SET … TO DEFAULT`` (also ``SET LOCAL``), ``RESET ALL`` and ``DISCARD
ALL`` pass: they return a setting to its session's startup value, which is the limit.
Code the policy lets run without the gateway seeing into it — a function on
``functions.allow``, a function made earlier, a DO block that spells the name some other
way — can still call ``set_config``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pgparse  # type: ignore[import-not-found]

# Every way to set a setting says SET (SET, RESET, set_config, pg_settings, ALTER … SET)
# unless a name is spelled with Unicode escapes (U&"…"), which the parser resolves.
_MENTIONS = re.compile(r"set|u&", re.IGNORECASE)
# Statements whose code is a string the parser does not read (a DO block, a function's
# body): one that names a limited setting anywhere is refused.
_CODE = frozenset(("DoStmt", "CreateFunctionStmt"))
# Forms that return to the session's startup value, allowed as statements of their own.
_BACK_TO_START = frozenset(("VAR_RESET", "VAR_SET_DEFAULT", "VAR_RESET_ALL"))


def startup_values(limits: Mapping[str, int]) -> dict[str, str]:
    """The startup parameters that fix ``limits`` (milliseconds by setting name)."""
    return {name: f"{ms}ms" for name, ms in limits.items()}


def refused_startup(limits: Mapping[str, int], params: Mapping[str, str]) -> str | None:
    """The first of the client's startup parameters that would set a limited setting to
    anything but its limit (``name=value``), else None."""
    fixed = startup_values(limits)
    for name, value in params.items():
        if name in fixed and value.strip().lower() not in (fixed[name], str(limits[name])):
            return f"{name}={value}"
    return None


def lifted_setting(sql: str, limits: Mapping[str, int]) -> str | None:
    """What in ``sql`` could change one of ``limits``' settings (in words), or None. Text
    that mentions neither ``set`` nor ``U&`` is not parsed; text that does not parse is left
    to the classifier (``opaque``: held or denied unless policy allows it)."""
    if not limits or _MENTIONS.search(sql) is None:
        return None
    try:
        tree = pgparse.parse(sql)
    except Exception:
        return None
    for entry in tree:
        statement = entry.get("stmt", {})
        top = statement.get("VariableSetStmt")
        if isinstance(top, dict) and top.get("kind") in _BACK_TO_START:
            continue
        if _CODE.intersection(statement):
            named = next((name for name in limits if name in sql.lower()), None)
            if named is not None:
                return f"runs code that names {named}"
        for node in _dicts(statement):
            found = (
                _set(node.get("VariableSetStmt"), limits)
                or _set(node.get("setstmt"), limits)  # ALTER ROLE/DATABASE/SYSTEM … SET
                or _call(node.get("FuncCall"), limits)
                or _settings_update(node.get("UpdateStmt"))
            )
            if found is not None:
                return found
    return None


def _set(body: object, limits: Mapping[str, int]) -> str | None:
    if not isinstance(body, dict):
        return None
    name = str(body.get("name", "")).lower()
    return f"sets {name}" if name in limits else None


def _call(body: object, limits: Mapping[str, int]) -> str | None:
    if not isinstance(body, dict):
        return None
    names = [n.get("String", {}).get("sval", "") for n in body.get("funcname", [])]
    if not names or names[-1].lower() != "set_config":
        return None
    args = body.get("args") or [None]
    setting = _literal(args[0])
    if setting is None:
        return "calls set_config with a setting named at run time"
    return f"sets {setting.lower()}" if setting.lower() in limits else None


def _settings_update(body: object) -> str | None:
    if not isinstance(body, dict):
        return None
    relation = body.get("relation", {})
    return (
        "updates pg_settings" if str(relation.get("relname", "")).lower() == "pg_settings" else None
    )


def _literal(node: object) -> str | None:
    """A string constant's text (through casts), else None."""
    while isinstance(node, dict) and "TypeCast" in node:
        node = node["TypeCast"].get("arg")
    if not isinstance(node, dict) or "A_Const" not in node:
        return None
    value = node["A_Const"].get("sval")
    return str(value.get("sval", "")) if isinstance(value, dict) else None


def _dicts(root: object) -> Iterator[dict[str, Any]]:
    stack = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            yield item
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
