"""What the MCP server keeps in the store: its sessions and the record of every tool call.

Sessions live in the store, not in a process, so any gateway behind a load balancer
answers any request of a session. A session belongs to the principal whose token opened
it: looked up with another person's token it does not exist.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from identity import Principal
from jitgate.errors import StoreUnavailable
from masking import mask_text

STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
# Longer ids are not ours: they are not looked up.
MAX_SESSION_ID = 100
_TIMEOUT = 5


@dataclass(frozen=True, slots=True)
class McpSession:
    id: str
    principal: Principal
    protocol_version: str


class McpStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def open(
        self, principal: Principal, agent_version: str | None, protocol_version: str
    ) -> McpSession:
        """A new session for ``principal``, whose ``actor`` is the agent: its token's, or
        the name the client declared when the token is the person's own."""
        assert principal.actor is not None
        session_id = secrets.token_urlsafe(32)
        await self._run(
            "INSERT INTO mcp_sessions (id, principal, agent, agent_version, protocol_version)"
            " VALUES ($1, $2, $3, $4, $5)",
            session_id, principal.email, principal.actor, agent_version, protocol_version,
        )  # fmt: skip
        return McpSession(session_id, principal, protocol_version)

    async def find(self, session_id: str, caller: Principal) -> McpSession | None:
        """The live session ``session_id`` if ``caller``'s person opened it (and, with an
        agent's token, that agent), with ``caller``'s delegation; else None."""
        if len(session_id) > MAX_SESSION_ID:
            return None
        try:
            row = await self.pool.fetchrow(
                "SELECT agent, protocol_version FROM mcp_sessions"
                " WHERE id = $1 AND principal = $2 AND ended_at IS NULL",
                session_id, caller.email, timeout=_TIMEOUT,
            )  # fmt: skip
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot look the MCP session up: {exc}") from exc
        if row is None or caller.actor not in (None, row["agent"]):
            return None
        principal = dataclasses.replace(caller, actor=row["agent"])
        return McpSession(session_id, principal, row["protocol_version"])

    async def end(self, session: McpSession) -> None:
        await self._run("UPDATE mcp_sessions SET ended_at = now() WHERE id = $1", session.id)

    async def call_started(self, session: McpSession, tool: str, arguments: dict[str, Any]) -> int:
        """Record that ``tool`` was called, before it runs; its arguments' sensitive values
        masked. Raises :class:`StoreUnavailable`: a call that cannot be recorded must not run."""
        try:
            call_id = await self.pool.fetchval(
                "INSERT INTO mcp_calls (mcp_session, principal, agent, tool, arguments)"
                " VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING id",
                session.id, session.principal.email, session.principal.actor, tool,
                json.dumps(masked_arguments(arguments)), timeout=_TIMEOUT,
            )  # fmt: skip
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot record the tool call: {exc}") from exc
        return int(call_id)

    async def call_ended(
        self,
        call_id: int,
        outcome: str,
        detail: str,
        *,
        request_id: int | None = None,
        session_id: UUID | None = None,
    ) -> None:
        await self._run(
            "UPDATE mcp_calls SET outcome = $2, detail = $3, request_id = $4, session_id = $5,"
            " ended_at = now() WHERE id = $1",
            call_id, outcome, mask_text(detail).value, request_id, session_id,
        )  # fmt: skip

    async def _run(self, sql: str, *args: object) -> None:
        try:
            await self.pool.execute(sql, *args, timeout=_TIMEOUT)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc


def masked_arguments(value: Any) -> Any:
    """``value`` with every string in it masked by the default policy (SQL literals,
    reasons): the call record never holds a raw card number or e-mail."""
    if isinstance(value, str):
        return storable(mask_text(value).value)
    if isinstance(value, dict):
        return {storable(str(k)): masked_arguments(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked_arguments(v) for v in value]
    return value


def storable(text: str) -> str:
    """``text`` as ``jsonb`` takes it: no NUL, no lone surrogate (JSON may carry both)."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\0", "\ufffd")
