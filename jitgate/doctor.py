"""What the gateway checks about its resources' credentials, at start and in ``jitgate doctor``.

For each resource: with ``write_url``, its reader (``url``) must be unable to change
anything (:func:`jitgate.roles.reader_violations`); without it, every session runs with
the one credential and a misclassified statement meets no permission error — the gateway
still serves it, and says so loudly.

A reader that can still create large objects (PostgreSQL allows it in a read-only
transaction) is a warning naming the resource and the functions, at start and in
``jitgate doctor``, not a refusal: :mod:`jitgate.roles` says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from jitgate.config import Config, Resource
from jitgate.errors import ConfigError
from jitgate.roles import reader_large_object_functions, reader_violations

log = logging.getLogger("jitgate.doctor")

CHECK_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True, slots=True)
class ReaderCheck:
    """``status``: ``ok`` (the reader cannot write), ``writable`` (``problems`` says how),
    ``no_reader`` (no ``write_url``: one credential for everything) or ``unreachable``.
    ``large_objects``: the functions creating a large object the reader may still run."""

    resource: str
    status: str
    problems: tuple[str, ...] = ()
    large_objects: tuple[str, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        if not self.large_objects:
            return ()
        return (
            f"{self.resource}: warning: the reader credential can create large objects"
            f" ({', '.join(self.large_objects)}), even in a read-only transaction"
            f" (jitgate roles --resource {self.resource} revokes them from PUBLIC)",
        )

    @property
    def line(self) -> str:
        if self.status == "ok":
            return f"{self.resource}: the reader credential cannot write"
        if self.status == "no_reader":
            return (
                f"{self.resource}: no write_url, so every session runs with url's credential;"
                " a statement the guardrails misjudge meets no permission error in the database"
                f" (jitgate roles --resource {self.resource} prints a reader role's SQL)"
            )
        if self.status == "unreachable":
            return f"{self.resource}: the reader could not be checked: {self.problems[0]}"
        return f"{self.resource}: the reader credential can write: " + "; ".join(self.problems)


async def check_reader(resource: Resource) -> ReaderCheck:
    if resource.write_url is None:
        return ReaderCheck(resource.name, "no_reader")
    try:
        problems = await reader_violations(resource.url)
        large_objects = await reader_large_object_functions(resource.url)
    except CHECK_ERRORS as exc:
        return ReaderCheck(resource.name, "unreachable", (str(exc) or type(exc).__name__,))
    status = "writable" if problems else "ok"
    return ReaderCheck(resource.name, status, tuple(problems), tuple(large_objects))


async def check_at_start(config: Config) -> None:
    """Refuse to start when a configured reader can write (fail closed: its sessions would
    be guarded by the classifier alone while the README promises the database too); warn
    when a resource has no reader or its reader cannot be reached now."""
    for resource in config.resources.values():
        check = await check_reader(resource)
        if check.status == "writable":
            raise ConfigError(f"resources.{resource.name}.url", check.line.split(": ", 1)[1])
        if check.status != "ok":
            log.warning(check.line, extra={"resource": resource.name, "check": check.status})
        for warning in check.warnings:
            log.warning(warning, extra={"resource": resource.name, "check": "large_objects"})
