"""Transforms of masked columns: what would let a masked value leave in another shape.

Masking finds values by what they look like; ``reverse(ssn)``, ``replace(card, ' ', '')``,
``encode(email::bytea, 'base64')`` or ``substr(card, 1, 8)`` no longer look like anything.
Given which column names hold sensitive values on a resource (those masking has found
values in, :mod:`guard.sensitive`, and those whose name alone cues a detector, such
as ``ssn``), :func:`transforms` finds the output expressions of a statement that compute
something else from one of them.

An output is a target of a ``SELECT`` (at any depth: subqueries and CTEs included) or of a
``RETURNING`` list. It keeps the value — and so stays under masking — when it is the
column itself, a cast to a text type, a value-keeping function (``coalesce``, ``min``,
``greatest``, ``string_agg``, ``to_json``, ``lower``…), a ``CASE`` whose results keep it,
a row, an aggregate that counts (``count``), or a concatenation whose other parts are
constants without letters or digits (``email || ';' || ssn``: glued to ``'0'``, an SSN
would no longer look like one). Anything else applied to a masked column is a
transform. A column reached under an alias (``SELECT s FROM (SELECT ssn AS s …)``) is
followed, and so is a whole row (``t::text``, ``t.*`` inside an expression), which carries
every column. What the text cannot show is given as :class:`TransformingCode`
(:mod:`guard.view_transforms` reads it from the target's views and SQL functions): a view's
column that is a transform is one wherever it is read (``SELECT r FROM v``, ``SELECT *``,
under an alias; not inside ``count``), a view's column that hands a sensitive value on
is sensitive itself, and a call of a function whose body transforms one is a transform.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pgparse  # type: ignore[import-not-found]

from guard.outputs import COUNTING, Masked, describe, keeps, outputs, refers, row_names
from guard.tree import Node, relation_name, strings, walk_dicts

_ROUNDS = 5  # aliases of aliases


@dataclass(frozen=True, slots=True)
class TransformingCode:
    """What the target defines around its sensitive columns, by ``name`` and
    ``schema.name`` in lower case: the columns of each view that are transforms, with their
    reason; the columns of each view that hand a sensitive value on unchanged; and the
    functions whose body is a transform, with their reason."""

    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    kept: Mapping[str, frozenset[str]] = field(default_factory=dict)
    functions: Mapping[str, str] = field(default_factory=dict)


NO_CODE = TransformingCode()


def transforms(sql: str, sensitive: Masked, code: TransformingCode = NO_CODE) -> list[str]:
    """The output expressions of ``sql`` that transform a column ``sensitive`` says holds
    sensitive values, or read a transform ``code`` defines, each as a short description;
    ``[]`` when there is none or ``sql`` does not parse (the classifier has judged that
    already)."""
    try:
        tree: list[dict[str, Any]] = pgparse.parse(sql)
    except Exception:  # pgparse raises its own error type for text it cannot parse
        return []
    return Reading(tree, sensitive, code).reasons()


class Reading:
    """One parse tree read against the sensitive column names and the target's code.
    ``qualify`` names columns in reasons by their relation (``customers.ssn``, also for
    ``c.ssn`` under alias ``c`` and for ``ssn`` alone among one relation), as a view's or
    function's reason should."""

    def __init__(
        self, tree: object, sensitive: Masked, code: TransformingCode, qualify: bool = False
    ) -> None:
        self.tree = tree
        self.rows = row_names(tree)
        relations = _relations(tree)
        views = [name for name in relations if name in code.columns or name in code.kept]
        kept = frozenset().union(*(code.kept.get(v, frozenset()) for v in views))
        # Names whose values are a transform already, with the first reason for each; a
        # whole row or a star brings every one of them.
        self.carried: dict[str, str] = {}
        for view in views:
            for column, reason in code.columns.get(view, {}).items():
                self.carried.setdefault(column, reason)
        self._star = tuple(dict.fromkeys(self.carried.values()))
        self._calls = code.functions
        self._names = _qualifiers(tree) if qualify else {}
        self.outputs = list(outputs(tree))
        aliases: set[str] = set()

        def masked(name: str) -> bool:
            return name in aliases or name in kept or sensitive(name)

        self.masked: Masked = masked
        for _ in range(_ROUNDS):
            grown = False
            for alias, value in self.outputs:
                if not alias:
                    continue
                if not masked(alias) and refers(value, masked, self.rows):
                    aliases.add(alias)
                    grown = True
                if alias not in self.carried:
                    because = self.reason(value)
                    if because is not None:
                        self.carried[alias] = because
                        grown = True
            if not grown:
                break

    def reason(self, value: Node) -> str | None:
        """Why output ``value`` is a transform, or None."""
        carried = next(_carried(value, self.carried, self._star, self.rows), None)
        if carried is not None:
            return carried
        called = next(self._called(value), None)
        if called is not None:
            return called
        if refers(value, self.masked, self.rows) and not keeps(value, self.masked, self.rows):
            return describe(value, self.masked, self.rows, self._names)
        return None

    def keeps(self, value: Node) -> bool:
        """Whether output ``value`` hands a sensitive value on unchanged."""
        return refers(value, self.masked, self.rows) and keeps(value, self.masked, self.rows)

    def reasons(self) -> list[str]:
        """Why each transforming output, or call of a transforming function, is one."""
        found = [r for _, value in self.outputs if (r := self.reason(value)) is not None]
        return list(dict.fromkeys([*found, *self._called(self.tree)]))

    def _called(self, node: object) -> Iterator[str]:
        """The reasons of the transforming functions called in ``node``."""
        if not self._calls:
            return
        for body in walk_dicts(node):
            call = body.get("FuncCall")
            if type(call) is dict:
                name = ".".join(strings(call.get("funcname"))).lower()
                reason = self._calls.get(name) or self._calls.get(name.rpartition(".")[2])
                if reason is not None:
                    yield reason


def _relations(tree: object) -> list[str]:
    """The relations ``tree`` reads, as ``name`` and ``schema.name`` in lower case."""
    names: list[str] = []
    for body in walk_dicts(tree):
        rangevar = body.get("RangeVar")
        if type(rangevar) is dict:
            qualified = relation_name(rangevar).lower()
            names += [qualified, qualified.rpartition(".")[2]]
    return list(dict.fromkeys(names))


def _qualifiers(tree: object) -> dict[str, str]:
    """What a column's qualifier stands for in reasons: each alias its relation, and no
    qualifier (``""``) the relation there is when there is one."""
    names: dict[str, str] = {}
    relations = set()
    for body in walk_dicts(tree):
        rangevar = body.get("RangeVar")
        if type(rangevar) is dict:
            relations.add(str(rangevar.get("relname", "")).lower())
            alias = rangevar.get("alias")
            if type(alias) is dict and alias.get("aliasname"):
                names[str(alias["aliasname"]).lower()] = str(rangevar.get("relname")).lower()
    names[""] = relations.pop() if len(relations) == 1 else ""
    return names


def _carried(value: object, carried: Mapping[str, str], star: tuple[str, ...],
             rows: frozenset[str]) -> Iterator[str]:  # fmt: skip
    """The reasons of the transforms ``value`` reads, not counting those only counted."""
    if not carried:
        return
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is list:
            stack.extend(item)
            continue
        if type(item) is not dict:
            continue
        call = item.get("FuncCall")
        if type(call) is dict and (strings(call.get("funcname")) or [""])[-1].lower() in COUNTING:
            continue
        ref = item.get("ColumnRef")
        if type(ref) is dict:
            fields = ref.get("fields") or []
            names = [name.lower() for name in strings(fields)]
            if any(type(f) is dict and "A_Star" in f for f in fields):
                yield from star
            elif names and names[-1] in carried:
                yield carried[names[-1]]
            elif len(names) == 1 and names[0] in rows:
                yield from star
            continue
        stack.extend(v for v in item.values() if type(v) is dict or type(v) is list)
