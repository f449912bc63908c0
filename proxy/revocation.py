"""A revoked or expired access token ends the sessions it opened, within seconds; so does
leaving a group the session's access came from.

Every ``interval`` seconds one query asks the store which of the tokens behind this
gateway's open sessions are no longer live (an agent's token is revoked with its
delegation, and with the token it was minted from), and the directory is asked whether
each session's person is still in every group they were in when it began (an IdP sign-in
that dropped a group, or IdP memberships that lapsed). Each such session first has its
pending requests cancelled (a revoked identity must not get a statement approved and run
later), then ends with FATAL 28000. A store that cannot be asked is logged and asked again at the
next turn; the audit gate already refuses statements while it is down.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from proxy.relay import ClientSession
    from proxy.server import ProxyServer

log = logging.getLogger("jitgate.proxy")

CHECK_INTERVAL = 2.0
_NOT_LIVE = (
    "SELECT id FROM access_tokens WHERE id = ANY($1::bigint[])"
    " AND (revoked_at IS NOT NULL OR expires_at <= now())"
)
_PENDING_OF_SESSION = "SELECT id FROM requests WHERE session_id = $1 AND state = 'pending'"
_STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def end_revoked_sessions(server: ProxyServer, interval: float = CHECK_INTERVAL) -> None:
    """Run until cancelled: end the sessions whose token is revoked or expired."""
    while True:
        await asyncio.sleep(interval)
        try:
            await _check(server)
        except _STORE_ERRORS as exc:
            log.warning("cannot check the sessions' tokens", extra={"error": str(exc)})


async def _check(server: ProxyServer) -> None:
    by_token: dict[int, list[ClientSession]] = {}
    for session in list(server.sessions):
        context = session.context
        if context is None:
            continue
        lost = context.groups - server.directory.groups_of(context.identity)
        if lost:
            await _end(
                server,
                session,
                "the requester left a group their access came from",
                functools.partial(session.end_groups_lost, lost),
            )
            continue
        if session.token_id is not None:
            by_token.setdefault(session.token_id, []).append(session)
    if not by_token:
        return
    rows = await server.pool.fetch(_NOT_LIVE, list(by_token), timeout=CHECK_INTERVAL)
    for row in rows:
        for session in by_token[row["id"]]:
            await _end(
                server, session, "the requester's access token was revoked", session.end_revoked
            )


async def _end(
    server: ProxyServer, session: ClientSession, why: str, end: Callable[[], None]
) -> None:
    assert session.context is not None
    approvals = server.approvals
    if approvals is not None:
        pending = await server.pool.fetch(_PENDING_OF_SESSION, session.context.session_id)
        for row in pending:
            await approvals.cancel(row["id"], why)
    log.warning(
        "session ended: its access is no longer live",
        extra={
            "session": str(session.context.session_id),
            "identity": session.context.identity,
            "agent": session.context.principal.actor if session.context.principal else None,
        },
    )
    end()
