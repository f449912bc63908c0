"""Teams invokes acted on once, whichever gateway a delivery lands on.

The Bot Framework retries a delivery it did not see answered, with the same activity; a
click must still decide once. :meth:`TeamsInvokes.once` claims the activity's key in the
store (``teams_invokes``) and runs the work only for the claim that inserted it; its answer
is stored, and every other delivery of the activity (a retry, or the same one arriving at
another gateway at the same moment) waits for that answer and gives it unchanged. A claim
whose gateway died before answering is taken again once its lease (:data:`LEASE` seconds)
ends; a delivery that fails with an exception gives its claim back. Answers are kept for
:data:`KEEP` seconds; expired rows are pruned a few at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from jitgate.errors import StoreUnavailable

LEASE = 10.0
KEEP = 3600.0
WAIT_STEP = 0.02
_CLAIM = """
INSERT INTO teams_invokes (key, leased_until, expires_at)
VALUES ($1, now() + make_interval(secs => $2), now() + make_interval(secs => $3))
ON CONFLICT (key) DO UPDATE SET answer = NULL, leased_until = EXCLUDED.leased_until,
    expires_at = EXCLUDED.expires_at
    WHERE teams_invokes.expires_at <= now()
       OR (teams_invokes.answer IS NULL AND teams_invokes.leased_until <= now())
RETURNING key
"""
_PRUNE = """
DELETE FROM teams_invokes WHERE key IN (
    SELECT key FROM teams_invokes WHERE expires_at <= now() - interval '1 minute'
    LIMIT 100 FOR UPDATE SKIP LOCKED)
"""
_STORE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

Answer = dict[str, Any]


class TeamsInvokes:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def once(self, key: str, work: Callable[[], Awaitable[Answer]]) -> Answer:
        """``work()``'s answer if this delivery of ``key`` is the first, else the first
        delivery's answer (waiting for it while it is being worked out). Raises
        :class:`StoreUnavailable` when the store cannot say."""
        deadline = time.monotonic() + 2 * LEASE
        while time.monotonic() < deadline:
            if await self._store(self._pool.fetchval(_CLAIM, key, LEASE, KEEP)) is not None:
                return await self._answer(key, work)
            answer = await self._store(
                self._pool.fetchval("SELECT answer FROM teams_invokes WHERE key = $1", key)
            )
            if answer is not None:
                return json.loads(answer)  # type: ignore[no-any-return]
            await asyncio.sleep(WAIT_STEP)
        raise StoreUnavailable(f"the first delivery of Teams activity {key} was not answered")

    async def _answer(self, key: str, work: Callable[[], Awaitable[Answer]]) -> Answer:
        try:
            answer = await work()
        except BaseException:
            await asyncio.shield(self._release(key))
            raise
        record = "UPDATE teams_invokes SET answer = $2 WHERE key = $1"
        await self._store(self._pool.execute(record, key, json.dumps(answer)))
        await self._store(self._pool.execute(_PRUNE))
        return answer

    async def _release(self, key: str) -> None:
        with contextlib.suppress(*_STORE_ERRORS):  # else its lease ends by itself
            await self._pool.execute("DELETE FROM teams_invokes WHERE key = $1", key)

    @staticmethod
    async def _store(query: Awaitable[Any]) -> Any:
        try:
            return await query
        except _STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot record a Teams invoke: {exc}") from exc
