"""Which inbound chat deliveries were already taken, in the store every gateway shares.

:meth:`Deliveries.take` claims a delivery's keys (Slack's :attr:`bot.slack_inbound.Delivery.keys`,
a Teams activity's id)
in one statement and says whether all of them were free: a key is free when no row holds
it or its row has expired. Keys are inserted in sorted order, so two gateways racing on
the same delivery queue on the same first key and exactly one of them takes it. Expired
rows are pruned after each take, a few at a time, skipping rows another gateway holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from jitgate.errors import StoreUnavailable

_TAKE = """
INSERT INTO inbound_deliveries (key, expires_at)
SELECT key, now() + make_interval(secs => seconds)
FROM unnest($1::text[], $2::float8[]) AS claimed (key, seconds)
ORDER BY key
ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at
    WHERE inbound_deliveries.expires_at <= now()
RETURNING key
"""
_PRUNE = """
DELETE FROM inbound_deliveries WHERE key IN (
    SELECT key FROM inbound_deliveries WHERE expires_at <= now() - interval '1 minute'
    LIMIT 100 FOR UPDATE SKIP LOCKED)
"""


class Deliveries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def take(self, keys: Sequence[tuple[str, float]]) -> bool:
        """True when this is the first delivery with any of ``keys`` (``(key, seconds)``
        pairs) within their windows; :class:`StoreUnavailable` when the store is not
        there to say."""
        unique = dict(keys)
        try:
            taken = await self._pool.fetch(_TAKE, list(unique), list(unique.values()))
            await self._pool.execute(_PRUNE)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"cannot record a chat delivery: {exc}") from exc
        return len(taken) == len(unique)
