"""What the governing proxy keeps in the store: the sessions agents open through it with a
governed server, and the record of every call they make there (``mcp_calls``, beside the
calls of jitgate's own tools, with the resource and what policy decided).

A session lives in the store, so any gateway process answers any message of it; looked up
with someone else's token, or on another resource, it does not exist. The governed
server's own session id stays here: the agent only ever sees the gateway's.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg

from identity import Principal
from jitgate.errors import StoreUnavailable
from masking import mask_text
from mcp_gateway.store import MAX_SESSION_ID, masked_arguments, storable

STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_TIMEOUT = 5


@dataclass(frozen=True, slots=True)
class ProxySession:
    id: str
    resource: str
    principal: Principal
    downstream_session: str | None
    protocol_version: str | None


@dataclass(frozen=True, slots=True)
class StoredSession:
    id: str
    resource: str
    email: str
    agent: str
    downstream_session: str | None
    protocol_version: str | None

    def of(self, caller: Principal) -> ProxySession | None:
        """The session as ``caller``'s, if their person opened it (and, with an agent's
        token, that agent); else None."""
        if caller.email != self.email or caller.actor not in (None, self.agent):
            return None
        principal = dataclasses.replace(caller, actor=self.agent)
        return ProxySession(
            self.id, self.resource, principal, self.downstream_session, self.protocol_version
        )


class ProxyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def open(
        self,
        resource: str,
        principal: Principal,
        downstream_session: str | None,
        protocol_version: str | None,
    ) -> ProxySession:
        assert principal.actor is not None
        session_id = secrets.token_urlsafe(32)
        await self._run(
            "INSERT INTO mcp_proxy_sessions (id, resource, principal, agent,"
            " downstream_session, protocol_version) VALUES ($1, $2, $3, $4, $5, $6)",
            session_id, resource, principal.email, principal.actor, downstream_session,
            protocol_version,
        )  # fmt: skip
        return ProxySession(session_id, resource, principal, downstream_session, protocol_version)

    async def find(self, session_id: str | None, resource: str) -> StoredSession | None:
        """The live session ``session_id`` on ``resource``, whoever opened it: see
        :meth:`StoredSession.of` (looked up before the token is, to save a round trip)."""
        if not session_id or len(session_id) > MAX_SESSION_ID:
            return None
        try:
            row = await self.pool.fetchrow(
                "SELECT principal, agent, downstream_session, protocol_version"
                " FROM mcp_proxy_sessions WHERE id = $1 AND resource = $2 AND ended_at IS NULL",
                session_id, resource, timeout=_TIMEOUT,
            )  # fmt: skip
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot look the MCP session up: {exc}") from exc
        if row is None:
            return None
        return StoredSession(session_id, resource, row["principal"], row["agent"],
                             row["downstream_session"], row["protocol_version"])  # fmt: skip

    async def end(self, session: ProxySession) -> None:
        await self._run("UPDATE mcp_proxy_sessions SET ended_at = now() WHERE id = $1", session.id)

    async def call_started(
        self, session: ProxySession, tool: str, arguments: dict[str, Any]
    ) -> int:
        """Record the call before anything is decided or forwarded, its arguments masked.
        Raises :class:`StoreUnavailable`: a call that cannot be recorded is not forwarded."""
        try:
            call_id = await self.pool.fetchval(
                "INSERT INTO mcp_calls (mcp_session, resource, principal, agent, tool,"
                " arguments) VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id",
                session.id, session.resource, session.principal.email,
                session.principal.actor, storable(tool)[:200],
                json.dumps(masked_arguments(arguments)), timeout=_TIMEOUT,
            )  # fmt: skip
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot record the tool call: {exc}") from exc
        return int(call_id)

    async def call_ended(
        self, call_id: int, decision: str, outcome: str, detail: str, request_id: int | None
    ) -> None:
        await self._run(
            "UPDATE mcp_calls SET decision = $2, outcome = $3, detail = $4, request_id = $5,"
            " ended_at = now() WHERE id = $1",
            call_id, decision, outcome, storable(mask_text(detail).value)[:2000], request_id,
        )  # fmt: skip

    async def _run(self, sql: str, *args: object) -> None:
        try:
            await self.pool.execute(sql, *args, timeout=_TIMEOUT)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc
