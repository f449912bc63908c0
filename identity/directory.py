"""The directory: tokens to principals, principals to groups.

Lookups of groups are synchronous and cheap (they sit on the proxy's connection path and
in every approval check): each source answers from memory, and a source whose truth is in
the store keeps its memory fresh itself (:class:`identity.idp_groups.IdpGroups`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg

from jitgate.config import Config
from jitgate.errors import StoreUnavailable
from store.tokens import TOKEN_PREFIX, TokenRecord, live_token

STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True, slots=True)
class Principal:
    """A person, and the agent acting for them if one is (the shape of RFC 8693's ``act``
    claim: the subject is the human; the actor never has more than the subject). An
    agent's delegation may narrow the ``resources`` and statement ``classes`` it may use
    (None: not narrowed); :mod:`approvals.policy` applies them."""

    email: str
    actor: str | None = None
    resources: frozenset[str] | None = None
    classes: frozenset[str] | None = None
    # The access token the principal presented, when it presented one.
    token_id: int | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return self.email if self.actor is None else f"{self.email} via agent {self.actor}"

    def may_use(self, resource: str) -> bool:
        """Whether the delegation (if any) covers ``resource``."""
        return self.resources is None or resource in self.resources


class GroupSource(Protocol):
    def groups_of(self, email: str) -> frozenset[str]:
        """The policy groups ``email`` (lower case) is in, as this source knows them."""
        ...


class StaticGroups:
    """The configuration's ``groups``: fixed for the life of the process."""

    def __init__(self, groups: Mapping[str, frozenset[str]]) -> None:
        by_member: dict[str, set[str]] = {}
        for name, members in groups.items():
            for member in members:
                by_member.setdefault(member, set()).add(name)
        self._by_member = {member: frozenset(names) for member, names in by_member.items()}

    def groups_of(self, email: str) -> frozenset[str]:
        return self._by_member.get(email, frozenset())

    def members(self) -> list[str]:
        return sorted(self._by_member)


class Directory:
    """What the proxy, approvals, the web console and the chat adapters ask about people."""

    def __init__(
        self,
        config: Config,
        pool: asyncpg.Pool | None = None,
        extra_sources: Iterable[GroupSource] = (),
    ) -> None:
        self.pool = pool
        self.static = StaticGroups(config.groups)
        self.sources: tuple[GroupSource, ...] = (self.static, *extra_sources)

    def groups_of(self, who: Principal | str) -> frozenset[str]:
        """The groups of a principal (or an e-mail, compared case-insensitively): the union
        over every source. An agent's groups are its human's; what a delegation narrows is
        checked where the delegation is."""
        email = (who.email if isinstance(who, Principal) else who).strip().lower()
        found: frozenset[str] = frozenset()
        for source in self.sources:
            found |= source.groups_of(email)
        return found

    def configured_users(self) -> list[str]:
        """Everyone the configuration names (the demo's user picker)."""
        return self.static.members()

    async def principal_of_token(self, token: str) -> Principal | None:
        """Who a live access token belongs to, or None for an unknown, revoked or expired
        one. Raises :class:`StoreUnavailable`, also when this directory has no store."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        if self.pool is None:
            raise StoreUnavailable("this directory has no store to check tokens in")
        try:
            record = await live_token(self.pool, token)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot check the token: {exc}") from exc
        return principal_of(record) if record is not None else None


def principal_of(record: TokenRecord) -> Principal:
    """Who a live token speaks for, with what its delegation narrows."""
    return Principal(record.email, record.actor, record.resources, record.classes, record.id)
