"""Where sensitive values live, per resource, and the statements that would transform them.

Each time masking changes a value, the relay tells :meth:`SensitiveColumns.learn` the name
of the column it was in (a name the result described). Names are kept in the store
(``masked_columns``) and read back from it every ``interval`` seconds, so every gateway
sharing the store knows what any of them learned; nothing is configured, and the gateway
still needs no schema. A column whose name cues a detector of the resource's masking
policy (``ssn``) is sensitive before any result shows it. :meth:`transforms_in` is the one
place that says which outputs of a statement transform such a column
(:mod:`guard.transforms`), reading through the target's views and SQL functions when
:attr:`SensitiveColumns.definitions` has them (:mod:`guard.view_transforms`): the proxy
(``proxy.hooks.HoldTransforms``) and the requests of the REST API, chat and agents
(``Approvals.ask``) hold them for review. A name learned here for the first time calls the
listeners with the resource (the proxy forgets what its sessions admitted there: a
statement let through before may now be a transform).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import asyncpg

from guard.transforms import TransformingCode, transforms
from guard.view_transforms import DefinedCode, TargetDefinitions, transforming_code
from masking.detect import scanner_for
from masking.policy import MaskingPolicy

log = logging.getLogger("jitgate.masking")

_SEEN = 4096  # statements whose transforms are remembered
_STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class SensitiveColumns:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._names: dict[str, frozenset[str]] = {}
        self._unsaved: set[tuple[str, str]] = set()
        self._listeners: list[Callable[[str], None]] = []
        self._seen: dict[tuple[str, str, frozenset[str], DefinedCode], list[str]] = {}
        self._code: dict[tuple[str, frozenset[str], DefinedCode], TransformingCode] = {}
        self.definitions: TargetDefinitions | None = None
        """The targets' views and SQL functions, read through when set."""

    def of(self, resource: str) -> frozenset[str]:
        """The column names (lower case) masked on ``resource`` so far."""
        return self._names.get(resource, frozenset())

    def transforms_in(self, sql: str, resource: str, policy: MaskingPolicy) -> list[str]:
        """The outputs of ``sql`` that transform a sensitive column of ``resource`` under
        ``policy``, each described (remembered per text and what is known)."""
        learned = self.of(resource)
        defined = self.definitions.of(resource) if self.definitions else DefinedCode()
        key = (sql, resource, learned, defined)
        found = self._seen.get(key)
        if found is None:
            if len(self._seen) >= _SEEN:
                self._seen.clear()
            cued = scanner_for(policy.entities).cued_by

            def sensitive(name: str) -> bool:
                return name in learned or bool(cued(name))

            code = self._code.get((resource, learned, defined))
            if code is None:
                # one per resource: what the last names and catalog make of its definitions
                self._code = {k: v for k, v in self._code.items() if k[0] != resource}
                code = transforming_code(defined, sensitive)
                self._code[(resource, learned, defined)] = code
            found = self._seen[key] = transforms(sql, sensitive, code)
        return found

    def on_learned(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(resource)`` when a resource gets a name it did not have."""
        self._listeners.append(listener)

    def learn(self, resource: str, names: Iterable[str]) -> None:
        """Masking changed values in these columns of ``resource`` (saved at the next
        :meth:`sync`)."""
        known = self.of(resource)
        new = {name for name in names if name not in known}
        if not new:
            return
        self._unsaved.update((resource, name) for name in new)
        self._add(resource, new)

    async def sync(self) -> None:
        """Save what was learned here; read what every gateway learned."""
        unsaved, self._unsaved = self._unsaved, set()
        try:
            if unsaved:
                await self._pool.executemany(
                    "INSERT INTO masked_columns (resource, name) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING",
                    sorted(unsaved),
                    timeout=10,
                )
            rows = await self._pool.fetch("SELECT resource, name FROM masked_columns", timeout=10)
        except _STORE_ERRORS as exc:
            self._unsaved |= unsaved
            log.warning("cannot sync masked columns", extra={"error": str(exc)})
            return
        by_resource: dict[str, set[str]] = {}
        for row in rows:
            by_resource.setdefault(row["resource"], set()).add(row["name"])
        for resource, names in by_resource.items():
            new = names - self.of(resource)
            if new:
                self._add(resource, new)

    async def run(self, interval: float) -> None:
        """:meth:`sync` every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync()
            except Exception:
                log.exception("masked columns sync failed")

    def _add(self, resource: str, names: set[str]) -> None:
        self._names[resource] = self.of(resource) | names
        log.info("masked columns learned", extra={"resource": resource, "columns": sorted(names)})
        for listener in self._listeners:
            listener(resource)
