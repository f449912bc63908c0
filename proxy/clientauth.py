"""Authenticating a client with its jitgate access token as the Postgres password.

``postgres.client_auth: password`` (the default) asks for the token in cleartext and checks
its SHA-256 against the store; use TLS on any listener that is not loopback.
``client_auth: scram`` runs SCRAM-SHA-256 against the verifier of the user's newest live
token of their own (SCRAM can check only one verifier per user; an agent's token, whose
user is its human's e-mail, needs ``password``). Unknown users go through the same
exchange as known ones, so the answer never reveals whether a user exists.

Failed attempts back off per user and per client address (:mod:`proxy.attempts`): an
attempt that comes too soon fails with the same answer as a wrong token, before any
token is asked for or checked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import asyncpg

from identity import Principal
from identity.directory import principal_of
from jitgate.errors import AuthenticationError, ProtocolError, StoreUnavailable
from proxy import messages as m
from proxy.auth import ScramServer, scram_verifier
from proxy.codec import decode_frontend
from store.tokens import newest_verifier, verify_token

if TYPE_CHECKING:
    from proxy.relay import ClientSession

log = logging.getLogger("jitgate.proxy")

# Verifies nothing anyone knows: lets an unknown user's SCRAM exchange fail at the proof.
_DECOY = scram_verifier("jitgate-decoy-" + "x" * 32, iterations=4096)


async def authenticate_client(session: ClientSession, user: str) -> Principal:
    """Who the live token ``user`` proved speaks for (the user, and the agent acting for
    them when it is an agent's token); raise AuthenticationError otherwise, also
    without asking for one while failed attempts for the user or the client's address back
    off. StoreUnavailable propagates: no store, no session."""
    attempts = session.server.attempts
    key, address = user.lower(), _client_address(session)
    wait = attempts.begin(key, address)
    if wait is not None:
        log.info(
            "password attempt refused while failures back off",
            extra={"identity": key, "client": address, "retry_after": round(wait, 1)},
        )
        raise AuthenticationError(f'too many failed password attempts for user "{user}"')
    try:
        if session.server.config.postgres.client_auth == "scram":
            principal = Principal(user.lower(), token_id=await _scram(session, user))
        else:
            principal = await _cleartext(session, user)
    except AuthenticationError:
        attempts.failed(key, address)
        raise
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        attempts.abandoned(key, address)
        raise StoreUnavailable(f"cannot check the token: {exc}") from exc
    except BaseException:
        attempts.abandoned(key, address)
        raise
    attempts.succeeded(key, address)
    return principal


def _client_address(session: ClientSession) -> str | None:
    """The client's IP address; None over the Unix socket (every local client shares it)."""
    peer = session.transport.get_extra_info("peername") if session.transport else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


async def _password_message(session: ClientSession) -> m.PasswordMessage:
    type_code, payload = await session._recv()
    message = decode_frontend(type_code, payload)
    if not isinstance(message, m.PasswordMessage):
        raise ProtocolError(f"expected a password message, got {type(message).__name__}")
    return message


async def _cleartext(session: ClientSession, user: str) -> Principal:
    session._write(m.AuthenticationCleartextPassword().encode())
    token = m.password_text(await _password_message(session))
    record = await verify_token(session.server.pool, user, token)
    if record is None:
        raise AuthenticationError(f'password authentication failed for user "{user}"')
    return principal_of(record)


async def _scram(session: ClientSession, user: str) -> int:
    newest = await newest_verifier(session.server.pool, user)
    token_id, verifier = newest if newest is not None else (0, _DECOY)
    server = ScramServer(verifier, user=user)
    session._write(m.AuthenticationSASL(server.mechanisms).encode())
    mechanism, data = m.parse_sasl_initial_response(await _password_message(session))
    if mechanism != "SCRAM-SHA-256" or data is None:
        raise AuthenticationError(f"unsupported SASL mechanism {mechanism!r}")
    session._write(m.AuthenticationSASLContinue(server.first(data)).encode())
    final = await _password_message(session)
    session._write(m.AuthenticationSASLFinal(server.final(final.data)).encode())
    return token_id
