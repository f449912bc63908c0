"""One :class:`~guard.classify.Classifier` per resource, knowing what its target defines.

A resource's classifier allows the built-in allow-list plus the resource's
``functions.allow``, and knows from the target's catalog:

* the names of the functions the database defines itself
  (:data:`guard.builtins.TARGET_FUNCTIONS_QUERY`), so that ``c.f`` (attribute notation for
  ``f(c)``) and an unqualified call one of them could answer are never taken for reads;
* its views, each definition classified with those names (and the views already found
  unsafe, until nothing changes): reading a view runs its definition, so a view whose
  definition is not a read (``CREATE VIEW v AS SELECT wipe()``) makes every statement that
  reads it what its definition is, with the reason naming the view;
* its row-level security policies, domain CHECKs, casts and operators
  (:mod:`guard.catalog_code`): a table whose policy runs code that is not a read, a record
  conversion where a domain's CHECK does, a read of a relation with a column built on such
  a domain or on a type whose cast does, and a plain use of an operator symbol the target
  overloads with such code, are ``opaque``.

All are read at start and again every ``refresh`` seconds; a change replaces the
classifier (and its caches). A session keeps what it had already let through by then.

A resource with ``functions.allow`` also has a *strict* classifier (:meth:`strict`), the
same without the allowed functions: a statement the two judge differently reaches one of
them (by name, attribute notation or a view), code the gateway cannot see into.

``functions.allow`` is the operator's word that a function only reads; the catalog is asked
whether it can be: an allowed name the target does not define, or defines as ``VOLATILE``
(it may change data) or ``SECURITY DEFINER`` (it runs with its owner's rights), is logged
as a warning each time what the catalog says changes.

A catalog that cannot be read is logged as a warning each time and the classifier keeps
what it knew (at start: nothing, so attribute notation counts as a column read, a view as a
table, and the reader credential is what stands behind them) — loud, never silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from guard.builtins import TARGET_FUNCTIONS_QUERY
from guard.catalog_code import (
    TARGET_CASTS_QUERY,
    TARGET_DOMAIN_CHECKS_QUERY,
    TARGET_OPERATORS_QUERY,
    TARGET_POLICIES_QUERY,
    TARGET_TYPE_COLUMNS_QUERY,
    TargetCatalog,
    TargetCode,
    unsafe_code,
)
from guard.classify import Classifier

log = logging.getLogger("jitgate.guard")

FetchRows = Callable[[str, str], Awaitable[Sequence[Sequence[object]]]]
"""``fetch(resource, query)``: the query's rows, run on the resource's target."""

TARGET_VIEWS_QUERY = """
SELECT n.nspname, c.relname, pg_get_viewdef(c.oid) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
"""The target's own views and their definitions (reading a view runs its definition)."""

ALLOWED_FUNCTIONS_QUERY = """
SELECT n.nspname, p.proname, p.provolatile, p.prosecdef FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
"""The target's own functions: schema, name, volatility and SECURITY DEFINER."""


class ResourceClassifiers:
    """The classifier of each resource by name; :meth:`of` answers for any name (an
    unknown one gets the built-in rules alone)."""

    def __init__(self, allowed: Mapping[str, Iterable[str]]) -> None:
        self._allowed = {name: tuple(functions) for name, functions in allowed.items()}
        self._known: dict[str, tuple[frozenset[str], TargetCode, TargetCode]] = {}
        self._doubts: dict[str, tuple[str, ...]] = {}
        self._by_name = {name: Classifier(allowed_functions=f) for name, f in self._allowed.items()}
        self._default = Classifier()
        # Without functions.allow, and whether the target's own code reaches one of them.
        self._strict = {name: (Classifier(), False) for name, f in self._allowed.items() if f}
        self._allowed_names = {
            name: tuple({entry.rsplit(".", 1)[-1].lower() for entry in f})
            for name, f in self._allowed.items()
        }

    def of(self, resource: str) -> Classifier:
        return self._by_name.get(resource, self._default)

    def strict(self, resource: str, sql: str, names: Iterable[str] = ()) -> Classifier | None:
        """The resource's classifier without its ``functions.allow`` when ``sql`` may reach
        one of those functions: it names one (or spells a name with ``U&``), or one of
        ``names`` (prepared statements that do), or a view, policy or domain of the target
        does. None otherwise (the two would agree; a long statement is not classified
        twice), and for a resource without ``functions.allow``."""
        found = self._strict.get(resource)
        if found is None:
            return None
        classifier, always = found
        text = sql.lower()
        if always or "u&" in text:
            return classifier
        if any(n in text for n in self._allowed_names[resource]):
            return classifier
        return classifier if any(n.lower() in text for n in names) else None

    async def load(self, fetch: FetchRows) -> None:
        """Read every resource's catalog once (concurrently)."""
        await asyncio.gather(*(self._load_one(name, fetch) for name in self._allowed))

    async def refresh(self, fetch: FetchRows, interval: float) -> None:
        """Read the catalogs every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.load(fetch)

    async def _load_one(self, resource: str, fetch: FetchRows) -> None:
        allowed = self._allowed[resource]
        try:
            functions = frozenset(
                str(row[0]) for row in await fetch(resource, TARGET_FUNCTIONS_QUERY)
            )
            views = [
                (str(s), str(n), str(d)) for s, n, d in await fetch(resource, TARGET_VIEWS_QUERY)
            ]
            policies = [
                (str(s), str(t), str(p), _text(using), _text(check))
                for s, t, p, using, check in await fetch(resource, TARGET_POLICIES_QUERY)
            ]
            domains = [
                (str(s), str(d), str(c), str(e))
                for s, d, c, e in await fetch(resource, TARGET_DOMAIN_CHECKS_QUERY)
            ]
            operators = [
                (str(s), str(o), str(left), str(right), str(fs), str(f))
                for s, o, left, right, fs, f in await fetch(resource, TARGET_OPERATORS_QUERY)
            ]
            casts = [
                (str(s), str(t), str(source), str(target), str(fs), str(f))
                for s, t, source, target, fs, f in await fetch(resource, TARGET_CASTS_QUERY)
            ]
            columns = [
                (str(s), str(r), str(c), str(ts), str(t))
                for s, r, c, ts, t in await fetch(resource, TARGET_TYPE_COLUMNS_QUERY)
            ]
            defined = await fetch(resource, ALLOWED_FUNCTIONS_QUERY) if allowed else []
        except Exception as exc:  # any failure: keep what was known, and say so
            log.warning(
                "cannot read the target's catalog; attribute notation and views are judged"
                " without it",
                extra={"resource": resource, "error": str(exc) or type(exc).__name__},
            )
            return
        self._doubt(resource, allowed_function_doubts(allowed, defined))

        catalog = TargetCatalog(views, policies, domains, operators, casts, columns)

        def judged_with(allowed: tuple[str, ...]) -> TargetCode:
            return unsafe_code(catalog, lambda code: code.classifier(
                allowed_functions=allowed, target_functions=functions, cache_size=0,
            ))  # fmt: skip

        code = judged_with(allowed)
        strict = judged_with(()) if allowed else TargetCode()
        if self._known.get(resource) == (functions, code, strict):
            return
        self._known[resource] = (functions, code, strict)
        self._by_name[resource] = code.classifier(
            allowed_functions=allowed, target_functions=functions
        )
        if allowed:
            self._strict[resource] = (
                strict.classifier(target_functions=functions),
                strict != code,
            )

    def _doubt(self, resource: str, doubts: tuple[str, ...]) -> None:
        if self._doubts.get(resource, ()) == doubts:
            return
        self._doubts[resource] = doubts
        for doubt in doubts:
            log.warning(
                "functions.allow names a function that may not be a read",
                extra={"resource": resource, "key": f"resources.{resource}.functions.allow",
                       "doubt": doubt},
            )  # fmt: skip


def allowed_function_doubts(
    allowed: Sequence[str], defined: Sequence[Sequence[object]]
) -> tuple[str, ...]:
    """Why each entry of ``allowed`` may not be a read, given the target's functions
    (rows of :data:`ALLOWED_FUNCTIONS_QUERY`): not defined there, VOLATILE, SECURITY
    DEFINER (one line per finding, in order)."""
    doubts = []
    for entry in allowed:
        schema, _, name = entry.lower().rpartition(".")
        found = [
            (str(s), str(n), _char(volatility), bool(definer))
            for s, n, volatility, definer in defined
            if str(n).lower() == name and (not schema or str(s).lower() == schema)
        ]
        if not found:
            doubts.append(f"{entry}: the target defines no such function")
        for s, n, volatility, definer in found:
            if volatility == "v":
                doubts.append(f"{s}.{n} is VOLATILE: a read that calls it may change data")
            if definer:
                doubts.append(f"{s}.{n} is SECURITY DEFINER: it runs with its owner's rights")
    return tuple(doubts)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _char(value: object) -> str:
    """A ``"char"`` column's value: drivers give it as bytes or as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
