"""The gateway reads SQL text exactly as the target does: what it pins, and how it notices.

The classifier (libpg_query) reads text as UTF-8 with ``standard_conforming_strings = on``
and ``backslash_quote = safe_encoding``. A session whose target reads it otherwise — a
client-only encoding such as SJIS, BIG5 or GBK whose multi-byte characters end in a
backslash, or backslashes that escape quotes in ordinary strings — makes one string
literal to the gateway a second statement to the target. So:

* at startup, the client may only ask for ``client_encoding`` UTF8 (any spelling libpq
  accepts); any other is refused with a FATAL naming it (:func:`refused_encoding`), and
  the target's connection is always opened with :data:`PINNED` as startup parameters,
  which outrank any ``ALTER DATABASE``/``ALTER ROLE … SET`` default;
* during the session, a statement that sets one of :data:`LEXING_SETTINGS` to anything but
  its pinned value (``SET``, ``SET LOCAL``, ``SET NAMES``, ``set_config`` with a literal
  name) is refused whatever the policy (:func:`changed_setting`); ``RESET`` and
  ``SET … TO DEFAULT`` return to the pinned startup value and pass;
* the target's own word is the truth: a ParameterStatus reporting ``client_encoding`` or
  ``standard_conforming_strings`` other than pinned (a function set it at run time) ends
  the session at once (:func:`drifted`), before anything else from the target reaches the
  client;
* what a client pipelines behind a statement that could change them at run time never
  overtakes that statement's answer (:func:`may_relex`: an ``opaque`` statement, or one
  that reaches a function on ``functions.allow``): the relay forwards it and keeps what
  follows until the target has answered it with ReadyForQuery, which the ParameterStatus
  of a change precedes. In the extended protocol the answer comes at the client's Sync,
  and what the target parses before then is read with the changed settings: a Parse or
  Query between such an Execute and its Sync is refused (0A000). Ordinary reads and
  writes pipeline as before.
"""

from __future__ import annotations

import re
from typing import Any

import pgparse  # type: ignore[import-not-found]

PINNED: dict[str, str] = {
    "client_encoding": "UTF8",
    "standard_conforming_strings": "on",
    "backslash_quote": "safe_encoding",
}
"""Startup parameters every target connection is opened with."""

LEXING_SETTINGS = frozenset(PINNED)

# The pinned settings the target reports (GUC_REPORT) whenever they change.
_REPORTED = frozenset(("client_encoding", "standard_conforming_strings"))
_UTF8_NAMES = frozenset(("utf8", "utf-8", "unicode"))
_ON = frozenset(("on", "true", "yes", "1", "t", "y"))
# Every way to change a setting says SET (SET, set_config, ALTER … SET) unless a name is
# spelled with Unicode escapes (U&"…"), which the parser resolves: those texts are parsed.
_MENTIONS = re.compile(r"set|u&", re.IGNORECASE)


def may_relex(statement_class: str, strict_class: str | None) -> bool:
    """Whether a statement may change how the target reads text at run time: it is
    ``opaque``, or the resource's strict classifier (without ``functions.allow``; None
    when there is none) judges it otherwise than its own classifier did."""
    return statement_class == "opaque" or (
        strict_class is not None and strict_class != statement_class
    )


def refused_encoding(requested: str | None) -> str | None:
    """The client's startup ``client_encoding`` when the gateway cannot serve it, else None
    (not given, or UTF8 in any spelling)."""
    if requested is None or _normal(requested) in _UTF8_NAMES:
        return None
    return requested


def drifted(name: str, value: str) -> bool:
    """Whether a ParameterStatus ``name = value`` from the target departs from the pin."""
    return name in _REPORTED and not _same(name, value)


def changed_setting(sql: str) -> tuple[str, str] | None:
    """The lexing setting and value a statement of ``sql`` would set away from its pinned
    value, or None. Names and values are read from the parse tree, so escaped spellings
    (``U&"client\\005Fencoding"``, ``E'client\\137encoding'``) count. Text that
    contains neither ``set`` nor ``U&`` is not parsed; text that does not
    parse is left to the classifier (it is ``opaque`` there, and never reaches the target
    unless policy allows opaque statements, which the ParameterStatus watch then covers)."""
    if _MENTIONS.search(sql) is None:
        return None
    try:
        tree = pgparse.parse(sql)
    except Exception:
        return None
    stack: list[Any] = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            found = _variable_set(item.get("VariableSetStmt")) or _set_config(item.get("FuncCall"))
            if found is not None:
                return found
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
    return None


def _variable_set(body: object) -> tuple[str, str] | None:
    if not isinstance(body, dict):
        return None
    name = str(body.get("name", "")).lower()
    if name not in LEXING_SETTINGS or body.get("kind") != "VAR_SET_VALUE":
        return None
    values = [_literal(arg) for arg in body.get("args", [])]
    value = ", ".join(v if v is not None else "?" for v in values)
    if len(values) == 1 and values[0] is not None and _same(name, values[0]):
        return None
    return name, value


def _set_config(body: object) -> tuple[str, str] | None:
    if not isinstance(body, dict):
        return None
    names = [n.get("String", {}).get("sval", "") for n in body.get("funcname", [])]
    if not names or names[-1].lower() != "set_config":
        return None
    args = body.get("args", [])
    setting = _literal(args[0]) if args else None
    if setting is None or setting.lower() not in LEXING_SETTINGS:
        return None
    value = _literal(args[1]) if len(args) > 1 else None
    if value is not None and _same(setting.lower(), value):
        return None
    return setting.lower(), "?" if value is None else value


def _literal(node: object) -> str | None:
    """A constant's text (through casts), else None."""
    while isinstance(node, dict) and "TypeCast" in node:
        node = node["TypeCast"].get("arg")
    if not isinstance(node, dict) or "A_Const" not in node:
        return None
    const = node["A_Const"]
    for kind in ("sval", "ival", "fval"):
        value = const.get(kind)
        if isinstance(value, dict):
            raw = value.get(kind)
            return "0" if raw is None else str(raw)
    value = const.get("boolval")
    if isinstance(value, dict):
        return "on" if value.get("boolval") else "off"
    return None


def _same(name: str, value: str) -> bool:
    if name == "client_encoding":
        return _normal(value) in _UTF8_NAMES
    if name == "standard_conforming_strings":
        return value.strip().lower() in _ON
    return value.strip().lower() == PINNED[name]


def _normal(encoding: str) -> str:
    return encoding.strip().strip("'\"").lower()
