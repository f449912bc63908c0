"""The walk over one statement's whole parse tree, collecting :data:`Finding`\\ s.

Every dict and list of the tree is visited (iteratively); a node whose type has a handler
is judged by it, wherever it sits — at the root, in a CTE, a subquery, a function argument,
an ORDER BY, a RULE's actions, a SQL function's body, the statement an EXPLAIN plans, a
DECLARE's query, EXECUTE's parameters. A handler answers whether the walk should go on into
the node's children. Node types ending in ``Stmt`` that are not known are ``opaque``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from guard import calls, queries, schema, settings
from guard.calls import CallRules
from guard.tree import Node
from guard.values import Dependencies
from guard.verdict import RANK, Finding, StatementClass

Handler = Callable[["Walker", Node], bool]
"""Judges one node's body; answers whether the walk goes on into it."""


class Walker:
    """Collects the findings of one statement (and of the statements nested in it)."""

    def __init__(
        self,
        rules: CallRules,
        prepared: Mapping[str, StatementClass],
        deps: Dependencies,
    ) -> None:
        self.rules = rules
        self.prepared = prepared
        self.deps = deps
        self.findings: list[Finding] = []

    def spawn(self) -> Walker:
        """A walker of the same statement whose findings are kept apart."""
        return Walker(self.rules, self.prepared, self.deps)

    def add(self, statement_class: StatementClass, reason: str) -> None:
        self.findings.append((statement_class, reason))

    def walk(self, root: object) -> None:
        stack = [root]
        pop, push, extend = stack.pop, stack.append, stack.extend
        while stack:
            item = pop()
            if type(item) is list:
                extend(item)
                continue
            if type(item) is not dict:
                continue
            for key, value in item.items():
                kind = type(value)
                if kind is dict:
                    handler = _HANDLERS.get(key)
                    if handler is None:
                        if key[-4:] == "Stmt" and key[0].isupper():
                            self.add("opaque", f"unrecognised statement {key}")
                        push(value)
                    elif handler(self, value):
                        push(value)
                elif kind is list:
                    push(value)

    def class_of(self, root: object) -> StatementClass:
        """Walk ``root`` and answer the strictest class it called for."""
        start = len(self.findings)
        self.walk(root)
        found = [cls for cls, _ in self.findings[start:]]
        return max(found, key=RANK.__getitem__, default="read")


_HANDLERS: dict[str, Handler] = {
    **schema.HANDLERS,
    **queries.HANDLERS,
    **settings.HANDLERS,
    **calls.HANDLERS,
}
