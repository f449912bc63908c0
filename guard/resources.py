"""One :class:`~guard.classify.Classifier` per resource, knowing what its target defines.

A resource's classifier allows the built-in allow-list plus the resource's
``functions.allow``, and knows from the target's catalog:

* the names of the functions the database defines itself
  (:data:`guard.builtins.TARGET_FUNCTIONS_QUERY`), so that ``c.f`` (attribute notation for
  ``f(c)``) and an unqualified call one of them could answer are never taken for reads;
* its views, each definition classified with those names (and the views already found
  unsafe, until nothing changes): reading a view runs its definition, so a view whose
  definition is not a read (``CREATE VIEW v AS SELECT wipe()``) makes every statement that
  reads it what its definition is, with the reason naming the view.

Both are read at start and again every ``refresh`` seconds; a change replaces the
classifier (and its caches). A session keeps what it had already let through by then.

A catalog that cannot be read is logged as a warning each time and the classifier keeps
what it knew (at start: nothing, so attribute notation counts as a column read, a view as a
table, and the reader credential is what stands behind them) — loud, never silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from guard.builtins import TARGET_FUNCTIONS_QUERY
from guard.classify import Classifier
from guard.verdict import Finding

log = logging.getLogger("jitgate.guard")

FetchRows = Callable[[str, str], Awaitable[Sequence[Sequence[object]]]]
"""``fetch(resource, query)``: the query's rows, run on the resource's target."""

TARGET_VIEWS_QUERY = """
SELECT n.nspname, c.relname, pg_get_viewdef(c.oid) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
"""The target's own views and their definitions (reading a view runs its definition)."""

_ROUNDS = 8  # views over views: passes until no more views are found unsafe


class ResourceClassifiers:
    """The classifier of each resource by name; :meth:`of` answers for any name (an
    unknown one gets the built-in rules alone)."""

    def __init__(self, allowed: Mapping[str, Iterable[str]]) -> None:
        self._allowed = {name: tuple(functions) for name, functions in allowed.items()}
        self._known: dict[str, tuple[frozenset[str], dict[str, Finding]]] = {}
        self._by_name = {name: Classifier(allowed_functions=f) for name, f in self._allowed.items()}
        self._default = Classifier()

    def of(self, resource: str) -> Classifier:
        return self._by_name.get(resource, self._default)

    async def load(self, fetch: FetchRows) -> None:
        """Read every resource's catalog once (concurrently)."""
        await asyncio.gather(*(self._load_one(name, fetch) for name in self._allowed))

    async def refresh(self, fetch: FetchRows, interval: float) -> None:
        """Read the catalogs every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.load(fetch)

    async def _load_one(self, resource: str, fetch: FetchRows) -> None:
        try:
            functions = frozenset(
                str(row[0]) for row in await fetch(resource, TARGET_FUNCTIONS_QUERY)
            )
            views = [
                (str(s), str(n), str(d)) for s, n, d in await fetch(resource, TARGET_VIEWS_QUERY)
            ]
        except Exception as exc:  # any failure: keep what was known, and say so
            log.warning(
                "cannot read the target's catalog; attribute notation and views are judged"
                " without it",
                extra={"resource": resource, "error": str(exc) or type(exc).__name__},
            )
            return
        allowed = self._allowed[resource]
        unsafe = unsafe_views(views, lambda found: Classifier(
            allowed_functions=allowed, target_functions=functions, target_views=found,
            cache_size=0,
        ))  # fmt: skip
        if self._known.get(resource) == (functions, unsafe):
            return
        self._known[resource] = (functions, unsafe)
        self._by_name[resource] = Classifier(
            allowed_functions=allowed, target_functions=functions, target_views=unsafe
        )


def unsafe_views(
    views: Sequence[tuple[str, str, str]], classifier: Callable[[dict[str, Finding]], Classifier]
) -> dict[str, Finding]:
    """The views (``(schema, name, definition)``) whose definitions are not reads, each as
    ``name`` and ``schema.name`` → the finding a read of it calls for; a view over an
    unsafe view is unsafe too."""
    found: dict[str, Finding] = {}
    for _ in range(_ROUNDS):
        judge = classifier(found)
        before = len(found)
        for schema, name, definition in views:
            if f"{schema}.{name}".lower() in found:
                continue
            verdict = Classifier.strictest(judge.classify(definition))
            if verdict.statement_class == "read":
                continue
            why = "; ".join(verdict.reasons) or verdict.statement_class
            finding: Finding = (verdict.statement_class, f"reads view {schema}.{name}: {why}")
            found[f"{schema}.{name}".lower()] = finding
            found.setdefault(name.lower(), finding)
        if len(found) == before:
            break
    return found
