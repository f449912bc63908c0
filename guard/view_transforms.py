"""Transforms of sensitive columns inside the target's views and SQL functions.

``CREATE VIEW v AS SELECT reverse(ssn) AS r FROM customers`` made by someone with DDL, then
``SELECT r FROM v`` by a reader: the statement names no sensitive column, the view does. So
the gateway reads each target's views (``pg_get_viewdef``) and SQL-language functions
(``pg_get_functiondef``: a quoted body or a ``BEGIN ATOMIC`` one) at start and every
``interval`` seconds (:class:`TargetDefinitions`), and :func:`transforming_code` reads
them with :class:`guard.transforms.Reading` against what is known sensitive on the
resource:

* a view's output column that transforms a sensitive column of what it reads is a
  transform (reason: ``reverse() over masked column customers.ssn in view v``); one that
  hands a sensitive value on unchanged (``SELECT ssn AS x``) is a sensitive column of the
  view. Views over views are read until nothing more is found, each view a reason adds to
  (``… in view v, in view w``);
* a function whose body has such an output, or calls such a function, is a transform
  wherever it is called (``… in function leak()``), in a statement or in a view's column.

What is known sensitive grows as masking learns names (:mod:`guard.sensitive`), so the
answer is worked out again for each new set of names and each new catalog. A catalog that
cannot be read is logged as a warning each time, and what was read before is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pgparse  # type: ignore[import-not-found]

from guard.outputs import Masked
from guard.resources import TARGET_VIEWS_QUERY, FetchRows
from guard.transforms import Reading, TransformingCode
from guard.tree import strings, walk_dicts

log = logging.getLogger("jitgate.guard")

TARGET_SQL_FUNCTIONS_QUERY = """
SELECT n.nspname, p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
WHERE l.lanname = 'sql' AND p.prokind = 'f'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
"""The target's own SQL-language functions, each as its ``CREATE FUNCTION`` statement."""

_ROUNDS = 8  # views over views: passes until nothing more is found


@dataclass(frozen=True, slots=True)
class DefinedCode:
    """A target's views (schema, name, definition) and SQL functions (schema, name, its
    ``CREATE FUNCTION`` statement or its body alone)."""

    views: tuple[tuple[str, str, str], ...] = ()
    functions: tuple[tuple[str, str, str], ...] = ()


def transforming_code(code: DefinedCode, sensitive: Masked) -> TransformingCode:
    """What ``code`` transforms, given which column names are ``sensitive``: views and
    functions read over each other until nothing more is found."""
    views = [(s.lower(), n.lower(), tree) for s, n, d in code.views if (tree := _parse(d))]
    bodies = [(s.lower(), n.lower(), body) for s, n, d in code.functions if (body := _body(d))]
    known = TransformingCode()
    for _ in range(_ROUNDS):
        columns: dict[str, dict[str, str]] = {}
        kept: dict[str, frozenset[str]] = {}
        for schema, name, tree in views:
            reading = Reading(tree, sensitive, known, qualify=True)
            transformed, keeping = {}, set()
            for column, values in _top_outputs(tree):
                reason = next(filter(None, map(reading.reason, values)), None)
                if reason is not None:
                    transformed[column] = _within(reason, f"view {name}")
                elif any(map(reading.keeps, values)):
                    keeping.add(column)
            for key in (name, f"{schema}.{name}"):
                if transformed:
                    columns[key] = transformed
                if keeping:
                    kept[key] = frozenset(keeping)
        functions: dict[str, str] = {}
        for schema, name, body in bodies:
            reasons = Reading(body, sensitive, known, qualify=True).reasons()
            if reasons:
                functions[name] = functions[f"{schema}.{name}"] = _within(
                    reasons[0], f"function {name}()"
                )
        found = TransformingCode(columns, kept, functions)
        if found == known:
            break
        known = found
    return known


def _within(reason: str, where: str) -> str:
    """``reason`` of a transform found inside ``where`` (``view v``): ``… in view v``, and
    ``…, in view w`` after a reason that already says where."""
    inside = " in view " in reason or " in function " in reason
    return f"{reason}, in {where}" if inside else f"{reason} in {where}"


def _parse(sql: str) -> list[Any] | None:
    try:
        tree: list[Any] = pgparse.parse(sql)
    except Exception:  # pgparse raises its own error type for text it cannot parse
        return None
    return tree


def _top_outputs(tree: list[Any]) -> list[tuple[str, list[Any]]]:
    """The output columns of a view's ``SELECT`` (names from its first branch when it is a
    set operation such as ``UNION``) and the expressions of every branch behind each."""
    select = tree[0].get("stmt", {}).get("SelectStmt") if tree else None
    branches = []
    stack = [select]
    while stack:
        body = stack.pop()
        if type(body) is not dict:
            continue
        if body.get("larg") is not None:
            stack += [body.get("rarg"), body.get("larg")]
        else:
            branches.append(body.get("targetList") or [])
    if not branches:
        return []
    outputs: list[tuple[str, list[Any]]] = []
    for i, target in enumerate(branches[0]):
        res = target.get("ResTarget", {})
        fields = strings(res.get("val", {}).get("ColumnRef", {}).get("fields"))
        name = str(res.get("name") or (fields[-1] if fields else "?column?")).lower()
        values = [b[i]["ResTarget"].get("val") for b in branches if i < len(b)]
        outputs.append((name, values))
    return outputs


def _body(text: str) -> list[Any] | None:
    """The statements of a SQL function: a ``BEGIN ATOMIC`` body as parsed, a quoted body
    parsed, or ``text`` itself when it is no ``CREATE FUNCTION``."""
    tree = _parse(text)
    if not tree:
        return None
    create = tree[0].get("stmt", {}).get("CreateFunctionStmt")
    if create is None:
        return tree
    if create.get("sql_body") is not None:
        return [create["sql_body"]]
    for body in walk_dicts(create.get("options")):
        option = body.get("DefElem")
        if type(option) is dict and option.get("defname") == "as":
            quoted = strings(option.get("arg", {}).get("List", {}).get("items"))
            return _parse(quoted[0]) if quoted else None
    return None


class TargetDefinitions:
    """Each resource's views and SQL functions as last read from its target."""

    def __init__(self, resources: Sequence[str]) -> None:
        self._resources = tuple(resources)
        self._code: dict[str, DefinedCode] = {}
        self._listeners: list[Callable[[str], None]] = []

    def of(self, resource: str) -> DefinedCode:
        return self._code.get(resource, _NOTHING)

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(resource)`` when what ``resource`` defines has changed."""
        self._listeners.append(listener)

    async def load(self, fetch: FetchRows) -> None:
        """Read every resource's views and functions once (concurrently)."""
        await asyncio.gather(*(self._load_one(name, fetch) for name in self._resources))

    async def refresh(self, fetch: FetchRows, interval: float) -> None:
        """:meth:`load` every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.load(fetch)

    async def _load_one(self, resource: str, fetch: FetchRows) -> None:
        try:
            views = await fetch(resource, TARGET_VIEWS_QUERY)
            functions = await fetch(resource, TARGET_SQL_FUNCTIONS_QUERY)
        except Exception as exc:  # any failure: keep what was known, and say so
            log.warning(
                "cannot read the target's views and SQL functions; transforms inside them"
                " are judged by what was read before",
                extra={"resource": resource, "error": str(exc) or type(exc).__name__},
            )
            return
        code = DefinedCode(_rows(views), _rows(functions))
        if self._code.get(resource) == code:
            return
        self._code[resource] = code
        for listener in self._listeners:
            listener(resource)


_NOTHING = DefinedCode()


def _rows(rows: Sequence[Sequence[object]]) -> tuple[tuple[str, str, str], ...]:
    return tuple(sorted((str(a), str(b), str(c)) for a, b, c in rows))
