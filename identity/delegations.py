"""Agents acting for the human who started them: delegations and their tokens.

A signed-in person delegates to an agent by name; the agent gets an access token of its
own whose subject is the person and whose actor is the agent (RFC 8693's ``act`` shape,
kept in ``access_tokens.act``). The agent uses it as the person's Postgres password and
as a Bearer token, and every record names both ("alice@example.com via agent
claude-code").

An agent never gets more than its human has: its groups are the human's, looked up at
each use (a group the human loses, the agent loses at once); a delegation can only
narrow the resources and statement classes (:func:`approvals.policy.action_for`) and never
outlives the token it was minted from (revoking that one revokes it too). Only a person's
own token can delegate: an agent cannot hand its access on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from identity.directory import Directory, Principal
from jitgate.config import STATEMENT_CLASSES, Config
from jitgate.errors import GrantRefused, StoreUnavailable
from store.tokens import TokenRecord, mint_token, revoke_agent

# Names as agents call themselves (claude-code, cursor, spiffe://corp/agents/etl).
AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}\Z")
STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True, slots=True)
class Delegation:
    """What a person asks to hand to an agent; None in ``resources`` or ``classes``: all
    the person has."""

    agent: str
    resources: frozenset[str] | None
    classes: frozenset[str] | None
    ttl: float


def delegation(
    config: Config,
    directory: Directory,
    human: Principal,
    agent: str,
    resources: Iterable[str] | None,
    classes: Iterable[str] | None,
    ttl: float,
) -> Delegation:
    """Check what ``human`` asks to delegate; raise :class:`GrantRefused` naming the
    problem."""
    if human.actor is not None:
        raise GrantRefused(
            "access_denied", f"{human} cannot delegate: an agent cannot hand its access on"
        )
    if not AGENT_NAME.match(agent):
        raise GrantRefused(
            "invalid_request",
            f"{agent[:100]!r} is not an agent name (letters, digits and ._:/@+- , at most 100)",
        )
    if ttl <= 0:
        raise GrantRefused("invalid_request", "the lifetime must be positive")
    groups = directory.groups_of(human.email)
    wanted = None if resources is None else frozenset(resources)
    for name in sorted(wanted or ()):
        resource = config.resources.get(name)
        if resource is None:
            raise GrantRefused("invalid_target", f"there is no resource {name!r}")
        if not groups & resource.access.keys():
            raise GrantRefused(
                "invalid_target",
                f"{human.email} has no access to {name}, so cannot delegate it",
            )
    kinds = None if classes is None else frozenset(classes)
    unknown = sorted((kinds or frozenset()) - set(STATEMENT_CLASSES))
    if unknown:
        raise GrantRefused(
            "invalid_scope",
            f"unknown statement class {unknown[0]!r} (one of {', '.join(STATEMENT_CLASSES)})",
        )
    if wanted is not None and not wanted:
        raise GrantRefused("invalid_target", "name at least one resource, or none for all")
    if kinds is not None and not kinds:
        raise GrantRefused("invalid_scope", "name at least one statement class, or none for all")
    return Delegation(agent, wanted, kinds, ttl)


async def grant(
    pool: asyncpg.Pool, human: Principal, wanted: Delegation, act_issuer: str | None = None
) -> tuple[str, TokenRecord]:
    """Mint the agent's token (shown once) and return it with its record. It ends with
    ``human``'s token when that ends first."""
    act = {"sub": wanted.agent} if act_issuer is None else {"sub": wanted.agent, "iss": act_issuer}
    try:
        return await mint_token(
            pool, human.email, wanted.ttl, act=act, parent_id=human.token_id,
            resources=wanted.resources, classes=wanted.classes,
        )  # fmt: skip
    except STORE_ERRORS as exc:
        raise StoreUnavailable(f"cannot record the delegation: {exc}") from exc


async def revoke(pool: asyncpg.Pool, human: Principal, agent: str) -> tuple[int, list[int]]:
    """End every live delegation of ``human`` to ``agent``: return how many tokens were
    revoked and the ids of the agent's pending requests (for the caller to cancel).
    Sessions the agent has open end within seconds (:mod:`proxy.revocation`)."""
    try:
        count = await revoke_agent(pool, human.email, agent)
        pending = await pool.fetch(
            "SELECT id FROM requests WHERE requester = $1 AND agent = $2 AND state = 'pending'",
            human.email, agent, timeout=5,
        )  # fmt: skip
    except STORE_ERRORS as exc:
        raise StoreUnavailable(f"cannot revoke the delegation: {exc}") from exc
    return count, [row["id"] for row in pending]
