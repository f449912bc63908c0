"""Web console sessions after an IdP sign-in, and the sign-ins under way.

A session cookie is ``<id>.<mac>``: 256 random bits and their HMAC-SHA256 under a key
shared by every gateway process (``oidc.cookie_secret``, else a random key kept in the
store's ``web_secrets``). An altered cookie is refused before the store is asked, and
raises an alert; a well-formed one must also name a live row of ``web_sessions`` (which
holds only the id's SHA-256), so logout, expiry (``oidc.session_ttl``) and a revocation in
the store end it in every process at once.

A sign-in under way is a row of ``oidc_logins``, keyed by the SHA-256 of the ``state``
sent to the IdP and bound to the browser by a cookie holding that state; it can be
finished once, within :data:`LOGIN_TTL` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from jitgate.errors import SignInRefused, StoreUnavailable

SESSION_COOKIE = "jitgate_session"
LOGIN_COOKIE = "jitgate_login"
LOGIN_TTL = 600.0
STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    state: str
    nonce: str
    code_verifier: str
    next_path: str


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class WebSessions:
    def __init__(self, pool: asyncpg.Pool, cookie_secret: str | None) -> None:
        self._pool = pool
        self._key = cookie_secret.encode() if cookie_secret else None

    async def open(self, email: str, ttl: float) -> str:
        """Start a session for ``email``; return the cookie's value."""
        session_id = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(seconds=ttl)
        await self._run(
            "INSERT INTO web_sessions (id_sha256, email, expires_at) VALUES ($1, $2, $3)",
            _sha256(session_id), email, expires,
        )  # fmt: skip
        return f"{session_id}.{await self._mac(session_id)}"

    async def user_of(self, cookie: str) -> str | None:
        """The e-mail of a live session, or None when it ended. Raises
        :class:`SignInRefused` (an attack) for a cookie that was altered."""
        session_id = await self._verified(cookie)
        try:
            email = await self._pool.fetchval(
                "SELECT email FROM web_sessions WHERE id_sha256 = $1"
                " AND revoked_at IS NULL AND expires_at > now()",
                _sha256(session_id), timeout=5,
            )  # fmt: skip
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot check the session: {exc}") from exc
        return str(email) if email is not None else None

    async def revoke(self, cookie: str) -> None:
        session_id = await self._verified(cookie)
        await self._run(
            "UPDATE web_sessions SET revoked_at = now() WHERE id_sha256 = $1"
            " AND revoked_at IS NULL",
            _sha256(session_id),
        )

    async def begin_login(self, next_path: str) -> LoginAttempt:
        attempt = LoginAttempt(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            # RFC 7636 §4.1: 43 to 128 unreserved characters; 64 bytes give 86.
            code_verifier=secrets.token_urlsafe(64),
            next_path=next_path,
        )
        await self._run(
            "WITH gone AS (DELETE FROM oidc_logins WHERE expires_at < now() - interval '1 day')"
            " INSERT INTO oidc_logins (state_sha256, nonce, code_verifier, next_path, expires_at)"
            " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
            _sha256(attempt.state), attempt.nonce, attempt.code_verifier, next_path, LOGIN_TTL,
        )  # fmt: skip
        return attempt

    async def finish_login(self, state: str, browser_state: str | None) -> LoginAttempt:
        """The attempt ``state`` names, used up. Refused when it was used before, lapsed,
        is unknown, or was begun in another browser (login CSRF)."""
        used = None
        try:
            row = await self._pool.fetchrow(
                "UPDATE oidc_logins SET used_at = now() WHERE state_sha256 = $1"
                " AND used_at IS NULL AND expires_at > now() RETURNING *",
                _sha256(state), timeout=5,
            )  # fmt: skip
            if row is None:
                used = await self._pool.fetchval(
                    "SELECT used_at IS NOT NULL FROM oidc_logins WHERE state_sha256 = $1",
                    _sha256(state), timeout=5,
                )  # fmt: skip
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot check the sign-in: {exc}") from exc
        if row is None and used:
            raise SignInRefused("this sign-in was already used (a replay?)", attack=True)
        if row is None and used is None:
            raise SignInRefused("this sign-in is unknown to jitgate", attack=True)
        if row is None:
            raise SignInRefused("this sign-in took too long; start again")
        if browser_state is None or not hmac.compare_digest(browser_state, state):
            raise SignInRefused("this sign-in was started in another browser", attack=True)
        return LoginAttempt(state, row["nonce"], row["code_verifier"], row["next_path"])

    async def _verified(self, cookie: str) -> str:
        session_id, _, mac = cookie.partition(".")
        if not session_id or not hmac.compare_digest(mac, await self._mac(session_id)):
            raise SignInRefused("the session cookie was altered; sign in again", attack=True)
        return session_id

    async def _mac(self, session_id: str) -> str:
        key = self._key or await self._stored_key()
        digest = hmac.new(key, b"web-session:" + session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    async def _stored_key(self) -> bytes:
        try:
            await self._pool.execute(
                "INSERT INTO web_secrets (name, secret) VALUES ('session_cookie', $1)"
                " ON CONFLICT (name) DO NOTHING",
                secrets.token_bytes(32),
            )
            key = await self._pool.fetchval(
                "SELECT secret FROM web_secrets WHERE name = 'session_cookie'"
            )
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot read the session key: {exc}") from exc
        self._key = bytes(key)
        return self._key

    async def _run(self, sql: str, *args: object) -> None:
        try:
            await self._pool.execute(sql, *args, timeout=5)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc
