"""A revoked or expired access token ends the sessions it opened, within seconds.

Every ``interval`` seconds one query asks the store which of the tokens behind this
gateway's open sessions are no longer live. Each such session first has its pending
requests cancelled (a revoked identity must not get a statement approved and run later),
then ends with FATAL 28000. A store that cannot be asked is logged and asked again at the
next turn; the audit gate already refuses statements while it is down.
"""

from __future__ import annotations

import asyncio
import logging
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
        if session.token_id is not None and session.context is not None:
            by_token.setdefault(session.token_id, []).append(session)
    if not by_token:
        return
    rows = await server.pool.fetch(_NOT_LIVE, list(by_token), timeout=CHECK_INTERVAL)
    for row in rows:
        for session in by_token[row["id"]]:
            await _end(server, session)


async def _end(server: ProxyServer, session: ClientSession) -> None:
    assert session.context is not None
    approvals = server.approvals
    if approvals is not None:
        pending = await server.pool.fetch(_PENDING_OF_SESSION, session.context.session_id)
        for row in pending:
            await approvals.cancel(row["id"], "the requester's access token was revoked")
    log.warning(
        "session ended: its access token is no longer live",
        extra={"session": str(session.context.session_id), "identity": session.context.identity},
    )
    session.end_revoked()
