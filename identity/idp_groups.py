"""The groups the IdP named at each person's last sign-in, as one of the directory's
sources.

The truth is the store's ``idp_memberships``: a sign-in replaces the person's row (so a
group removed at the IdP is gone at once in the process that saw the sign-in), and each
row counts only until its ``expires_at`` (sign-in + ``oidc.session_ttl``). Every process
keeps a copy in memory, read again every :data:`REFRESH` seconds, so another gateway sees
a sign-in within that time; expiry is checked on every lookup, so a lapsed row stops
counting everywhere at the same moment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import asyncpg

from jitgate.errors import StoreUnavailable

log = logging.getLogger("jitgate.identity")

REFRESH = 5.0
STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def policy_groups(
    idp_groups: Iterable[str], group_map: Mapping[str, tuple[str, ...]], known: Iterable[str]
) -> frozenset[str]:
    """The policy groups that IdP groups grant: through ``group_map`` when one is
    configured (nothing else counts then), else each IdP group named like a known one."""
    if group_map:
        return frozenset(g for name in idp_groups for g in group_map.get(name, ()))
    return frozenset(idp_groups) & frozenset(known)


class IdpGroups:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._rows: dict[str, tuple[frozenset[str], datetime]] = {}

    def groups_of(self, email: str) -> frozenset[str]:
        row = self._rows.get(email)
        if row is None or row[1] <= datetime.now(UTC):
            return frozenset()
        return row[0]

    async def remember(self, email: str, subject: str, groups: frozenset[str], ttl: float) -> None:
        """Record what a sign-in just said about ``email``; it replaces what was known."""
        expires = datetime.now(UTC) + timedelta(seconds=ttl)
        try:
            await self._pool.execute(
                "INSERT INTO idp_memberships (email, groups, subject, expires_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO UPDATE SET"
                " groups = EXCLUDED.groups, subject = EXCLUDED.subject,"
                " signed_in_at = now(), expires_at = EXCLUDED.expires_at",
                email, sorted(groups), subject, expires, timeout=5,
            )  # fmt: skip
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot record the sign-in: {exc}") from exc
        self._rows[email] = (groups, expires)

    async def load(self) -> None:
        rows = await self._pool.fetch(
            "SELECT email, groups, expires_at FROM idp_memberships WHERE expires_at > now()",
            timeout=5,
        )
        self._rows = {r["email"]: (frozenset(r["groups"]), r["expires_at"]) for r in rows}

    async def run(self, interval: float = REFRESH) -> None:
        """Read the store again every ``interval`` seconds until cancelled; a failed read
        keeps the copy (its expiries still apply) and tries again."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.load()
            except STORE_ERRORS as exc:
                log.warning("cannot read IdP memberships", extra={"error": str(exc)})
