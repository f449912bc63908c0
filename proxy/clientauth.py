"""Authenticating a client with its jitgate access token as the Postgres password.

``postgres.client_auth: password`` (the default) asks for the token in cleartext and checks
its SHA-256 against the store; use TLS on any listener that is not loopback.
``client_auth: scram`` runs SCRAM-SHA-256 against the verifier of the user's newest live
token (SCRAM can check only one verifier per user). Unknown users go through the same
exchange as known ones, so the answer never reveals whether a user exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from jitgate.errors import AuthenticationError, ProtocolError, StoreUnavailable
from proxy import messages as m
from proxy.auth import ScramServer, scram_verifier
from proxy.codec import decode_frontend
from store.tokens import newest_verifier, verify_token

if TYPE_CHECKING:
    from proxy.relay import ClientSession

# Verifies nothing anyone knows: lets an unknown user's SCRAM exchange fail at the proof.
_DECOY = scram_verifier("jitgate-decoy-" + "x" * 32, iterations=4096)


async def authenticate_client(session: ClientSession, user: str) -> None:
    """Return when ``user`` proved a live token; raise AuthenticationError otherwise.
    StoreUnavailable propagates: no store, no session."""
    try:
        if session.server.config.postgres.client_auth == "scram":
            await _scram(session, user)
        else:
            await _cleartext(session, user)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreUnavailable(f"cannot check the token: {exc}") from exc


async def _password_message(session: ClientSession) -> m.PasswordMessage:
    type_code, payload = await session._recv()
    message = decode_frontend(type_code, payload)
    if not isinstance(message, m.PasswordMessage):
        raise ProtocolError(f"expected a password message, got {type(message).__name__}")
    return message


async def _cleartext(session: ClientSession, user: str) -> None:
    session._write(m.AuthenticationCleartextPassword().encode())
    token = m.password_text(await _password_message(session))
    if await verify_token(session.server.pool, user, token) is None:
        raise AuthenticationError(f'password authentication failed for user "{user}"')


async def _scram(session: ClientSession, user: str) -> None:
    verifier = await newest_verifier(session.server.pool, user) or _DECOY
    server = ScramServer(verifier, user=user)
    session._write(m.AuthenticationSASL(server.mechanisms).encode())
    mechanism, data = m.parse_sasl_initial_response(await _password_message(session))
    if mechanism != "SCRAM-SHA-256" or data is None:
        raise AuthenticationError(f"unsupported SASL mechanism {mechanism!r}")
    session._write(m.AuthenticationSASLContinue(server.first(data)).encode())
    final = await _password_message(session)
    session._write(m.AuthenticationSASLFinal(server.final(final.data)).encode())
