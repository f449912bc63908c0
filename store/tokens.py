"""Access tokens: what a client presents as its Postgres password.

A token is ``jg_`` followed by 43 URL-safe characters (256 random bits). Only hashes are
stored: SHA-256 of the whole token (enough for a value of that entropy) and a SCRAM-SHA-256
verifier, so the proxy can ask a client for either a cleartext password or SCRAM.

An agent's token (:mod:`identity.delegations`) is a row like its human's whose ``act``
names the agent; ``resources`` and ``classes`` narrow it, and it ends with the token it
was minted from (``parent_id``): revoking one revokes the tokens minted from it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from proxy.auth import ScramVerifier, scram_verifier

TOKEN_PREFIX = "jg_"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A live token: whose it is, the agent acting with it (``actor``, None for the human
    themself) and what it is narrowed to (None: whatever the human may)."""

    id: int
    email: str
    expires_at: datetime
    actor: str | None = None
    resources: frozenset[str] | None = None
    classes: frozenset[str] | None = None


_LIVE_COLUMNS = "id, email, expires_at, act ->> 'sub' AS actor, resources, classes"


def _record(row: asyncpg.Record) -> TokenRecord:
    resources, classes = row["resources"], row["classes"]
    return TokenRecord(
        row["id"], row["email"], row["expires_at"], row["actor"],
        None if resources is None else frozenset(resources),
        None if classes is None else frozenset(classes),
    )  # fmt: skip


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


async def issue_token(pool: asyncpg.Pool, email: str, ttl: float) -> str:
    """Create a token for ``email`` valid for ``ttl`` seconds and return it (shown once)."""
    token, _ = await mint_token(pool, email, ttl)
    return token


async def mint_token(
    pool: asyncpg.Pool,
    email: str,
    ttl: float,
    *,
    act: dict[str, str] | None = None,
    parent_id: int | None = None,
    resources: Iterable[str] | None = None,
    classes: Iterable[str] | None = None,
) -> tuple[str, TokenRecord]:
    """Create a token for ``email`` valid for ``ttl`` seconds, and never past the token
    ``parent_id`` it is minted from; return it (shown once) and its record. ``act`` names
    the agent acting with it, in the shape of RFC 8693's act claim."""
    email = email.strip().lower()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=ttl)
    listed = [None if v is None else sorted(v) for v in (resources, classes)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO identities (email) VALUES ($1) ON CONFLICT DO NOTHING", email
        )
        row = await conn.fetchrow(
            "INSERT INTO access_tokens (email, token_sha256, scram_verifier, expires_at, act,"
            " parent_id, resources, classes) VALUES ($1, $2, $3,"
            " LEAST($4, (SELECT expires_at FROM access_tokens WHERE id = $6)),"
            " $5::jsonb, $6, $7, $8)"
            f" RETURNING {_LIVE_COLUMNS}",
            email, token_hash(token), scram_verifier(token).to_string(), expires,
            None if act is None else json.dumps(act), parent_id, *listed,
        )  # fmt: skip
    assert row is not None
    return token, _record(row)


async def revoke_tokens(
    pool: asyncpg.Pool, *, email: str | None = None, token: str | None = None
) -> int:
    """Revoke one token (and the agents' tokens minted from it), or every live token of
    ``email``; return how many were revoked."""
    if token is not None:
        status = await pool.execute(
            "WITH one AS (SELECT id FROM access_tokens WHERE token_sha256 = $1)"
            " UPDATE access_tokens SET revoked_at = now() WHERE revoked_at IS NULL"
            " AND (id IN (SELECT id FROM one) OR parent_id IN (SELECT id FROM one))",
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
    record = await live_token(pool, token)
    return record if record is not None and record.email == email.strip().lower() else None


async def live_token(pool: asyncpg.Pool, token: str) -> TokenRecord | None:
    """The record of ``token`` if it is live (not revoked, not expired), else None."""
    row = await pool.fetchrow(
        f"SELECT {_LIVE_COLUMNS} FROM access_tokens"
        " WHERE token_sha256 = $1 AND revoked_at IS NULL AND expires_at > now()",
        token_hash(token),
        timeout=5,
    )
    return _record(row) if row is not None else None


async def revoke_agent(pool: asyncpg.Pool, email: str, agent: str) -> int:
    """Revoke every live token of ``agent`` acting for ``email``; return how many."""
    status = await pool.execute(
        "UPDATE access_tokens SET revoked_at = now() WHERE email = $1 AND act IS NOT NULL"
        " AND act ->> 'sub' = $2 AND revoked_at IS NULL",
        email.strip().lower(),
        agent,
    )
    return int(status.split()[-1])


async def newest_verifier(pool: asyncpg.Pool, email: str) -> tuple[int, ScramVerifier] | None:
    """The id and SCRAM verifier of ``email``'s newest live token of their own (SCRAM can
    check only one; agents' tokens need cleartext password authentication)."""
    row = await pool.fetchrow(
        "SELECT id, scram_verifier FROM access_tokens"
        " WHERE email = $1 AND act IS NULL AND revoked_at IS NULL AND expires_at > now()"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        email.strip().lower(),
    )
    if row is None or not row["scram_verifier"]:
        return None
    return int(row["id"]), ScramVerifier.parse(row["scram_verifier"])
