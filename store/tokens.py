"""Access tokens: what a client presents as its Postgres password.

A token is ``jg_`` followed by 43 URL-safe characters (256 random bits). Only hashes are
stored: SHA-256 of the whole token (enough for a value of that entropy) and a SCRAM-SHA-256
verifier, so the proxy can ask a client for either a cleartext password or SCRAM.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from proxy.auth import ScramVerifier, scram_verifier

TOKEN_PREFIX = "jg_"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: int
    email: str
    expires_at: datetime


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


async def issue_token(pool: asyncpg.Pool, email: str, ttl: float) -> str:
    """Create a token for ``email`` valid for ``ttl`` seconds and return it (shown once)."""
    email = email.strip().lower()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=ttl)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO identities (email) VALUES ($1) ON CONFLICT DO NOTHING", email
        )
        await conn.execute(
            "INSERT INTO access_tokens (email, token_sha256, scram_verifier, expires_at)"
            " VALUES ($1, $2, $3, $4)",
            email,
            token_hash(token),
            scram_verifier(token).to_string(),
            expires,
        )
    return token


async def revoke_tokens(
    pool: asyncpg.Pool, *, email: str | None = None, token: str | None = None
) -> int:
    """Revoke one token, or every live token of ``email``; return how many were revoked."""
    if token is not None:
        status = await pool.execute(
            "UPDATE access_tokens SET revoked_at = now()"
            " WHERE token_sha256 = $1 AND revoked_at IS NULL",
            token_hash(token),
        )
    elif email is not None:
        status = await pool.execute(
            "UPDATE access_tokens SET revoked_at = now() WHERE email = $1 AND revoked_at IS NULL",
            email.strip().lower(),
        )
    else:
        raise ValueError("revoke_tokens needs an email or a token")
    return int(status.split()[-1])


async def verify_token(pool: asyncpg.Pool, email: str, token: str) -> TokenRecord | None:
    """The live token record if ``token`` belongs to ``email``, else None."""
    row = await pool.fetchrow(
        "SELECT id, email, expires_at FROM access_tokens"
        " WHERE token_sha256 = $1 AND email = $2 AND revoked_at IS NULL AND expires_at > now()",
        token_hash(token),
        email.strip().lower(),
    )
    return TokenRecord(row["id"], row["email"], row["expires_at"]) if row else None


async def newest_verifier(pool: asyncpg.Pool, email: str) -> tuple[int, ScramVerifier] | None:
    """The id and SCRAM verifier of ``email``'s newest live token (SCRAM can check only
    one)."""
    row = await pool.fetchrow(
        "SELECT id, scram_verifier FROM access_tokens"
        " WHERE email = $1 AND revoked_at IS NULL AND expires_at > now()"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        email.strip().lower(),
    )
    if row is None or not row["scram_verifier"]:
        return None
    return int(row["id"]), ScramVerifier.parse(row["scram_verifier"])
