"""The gateway's own store: an asyncpg pool and versioned SQL migrations.

Migrations are the numbered ``*.sql`` files beside this module, applied in order inside
one transaction under an advisory lock, so several gateway processes starting at once
apply each exactly once. ``schema_migrations`` records what was applied.
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass

import asyncpg

from jitgate.errors import StoreUnavailable

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_MIGRATION_LOCK = 0x6A697467  # "jitg"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with jitgate, in order."""
    found = []
    for entry in importlib.resources.files("store.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


async def connect_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Open the store pool, or raise :class:`StoreUnavailable` naming the cause."""
    try:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise StoreUnavailable(f"cannot reach the store at database_url: {exc}") from exc
    assert pool is not None
    return pool


async def migrate(pool: asyncpg.Pool) -> list[int]:
    """Apply pending migrations; return the versions applied now."""
    applied_now: list[int] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations():
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied_now.append(migration.version)
    return applied_now
