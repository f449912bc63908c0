"""One :class:`~guard.classify.Classifier` per resource, knowing what its target defines.

A resource's classifier allows the built-in allow-list plus the resource's
``functions.allow``, and knows the names of the functions the target database defines
itself (:data:`guard.builtins.TARGET_FUNCTIONS_QUERY`), so that ``c.f`` (attribute notation
for ``f(c)``) and an unqualified call one of them could answer are never taken for reads.
Those names are read from the target's catalog at start and again every
``refresh`` seconds; a changed set replaces the classifier (and its caches).

A catalog that cannot be read is logged as a warning each time and the classifier keeps
what it knew (at start: nothing, so attribute notation counts as a column read and the
reader credential is what stands behind it) — loud, never silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from guard.builtins import TARGET_FUNCTIONS_QUERY
from guard.classify import Classifier

log = logging.getLogger("jitgate.guard")

FetchNames = Callable[[str, str], Awaitable[Iterable[object]]]
"""``fetch(resource, query)``: the query's first column, run on the resource's target."""


class ResourceClassifiers:
    """The classifier of each resource by name; :meth:`of` answers for any name (an
    unknown one gets the built-in rules alone)."""

    def __init__(self, allowed: Mapping[str, Iterable[str]]) -> None:
        self._allowed = {name: tuple(functions) for name, functions in allowed.items()}
        self._known: dict[str, frozenset[str]] = {}
        self._by_name = {name: Classifier(allowed_functions=f) for name, f in self._allowed.items()}
        self._default = Classifier()

    def of(self, resource: str) -> Classifier:
        return self._by_name.get(resource, self._default)

    def target_functions(self, resource: str) -> frozenset[str] | None:
        """The names last read from the resource's catalog; None before the first read."""
        return self._known.get(resource)

    async def load(self, fetch: FetchNames) -> None:
        """Read every resource's function names once (concurrently)."""
        await asyncio.gather(*(self._load_one(name, fetch) for name in self._allowed))

    async def refresh(self, fetch: FetchNames, interval: float) -> None:
        """Read the catalogs every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.load(fetch)

    async def _load_one(self, resource: str, fetch: FetchNames) -> None:
        try:
            names = frozenset(str(n) for n in await fetch(resource, TARGET_FUNCTIONS_QUERY))
        except Exception as exc:  # any failure: keep what was known, and say so
            log.warning(
                "cannot read the target's functions; attribute notation is judged without them",
                extra={"resource": resource, "error": str(exc) or type(exc).__name__},
            )
            return
        if self._known.get(resource) == names:
            return
        self._known[resource] = names
        self._by_name[resource] = Classifier(
            allowed_functions=self._allowed[resource], target_functions=names
        )
