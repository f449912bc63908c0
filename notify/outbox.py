"""The outbox: every message jitgate sends to a chat on its own initiative (approval cards,
card updates, threaded results and files, requester messages, security alerts) is first a
row in ``outbox``, then delivered by that chat's worker through its :class:`Delivery`.
What callers may rely on, for each chat alike:

- Queueing is idempotent by key within a chat (:meth:`Outbox.put`): a notifier called
  twice, or on two gateways, posts once. :meth:`Outbox.rearm` queues a card update again
  and again under one key; every send renders the request as it is then and completes the
  row only if no newer update was queued meanwhile, so the card always ends on the latest
  state.
- A card is posted once; where it landed goes to ``cards`` in the transaction that marks
  the row sent. Updates, replies and files wait for that row while the card is on its way,
  and find it after a restart or from another gateway.
- Any number of gateways run workers: rows are claimed with ``FOR UPDATE SKIP LOCKED`` and
  a lease. A worker that dies mid-send leaves its rows to whoever claims them when the lease
  ends; the one duplicate that can cause is a message the chat took just before the crash.
- A rate limit waits as long as the chat asked (the worker pauses; it is not counted as a
  failure); server and network errors back off exponentially for :data:`MAX_ATTEMPTS`
  attempts; any other error the chat names fails the row at once. Failed rows stay in the
  table with ``last_error`` and are logged.
- Alerts are one message each, or one digest when more than :data:`BURST_SIZE` reach a
  channel within :data:`BURST_WINDOW` seconds (:mod:`notify.alerts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from approvals.model import Alert
from approvals.store import STORE_ERRORS
from notify.alerts import deliver_alerts

log = logging.getLogger("jitgate.notify")

POLL_INTERVAL = 0.25
BATCH = 20
LEASE = 60.0
MAX_ATTEMPTS = 12
MAX_BACKOFF = 300.0
BURST_SIZE = 5
BURST_WINDOW = 2.0
_CLAIM = """
WITH due AS (
    SELECT id FROM outbox o
    WHERE chat = $3 AND sent_at IS NULL AND failed_at IS NULL AND due_at <= now()
      AND (leased_until IS NULL OR leased_until < now())
      -- Updates, replies and files wait while their card is on its way, not longer.
      AND (kind IN ('card', 'dm', 'alert')
           OR EXISTS (SELECT 1 FROM cards c
                      WHERE c.chat = o.chat AND c.request_id = o.request_id)
           OR NOT EXISTS (SELECT 1 FROM outbox f
                          WHERE f.chat = o.chat AND f.dedupe_key = 'card:' || o.request_id
                            AND f.failed_at IS NULL))
    ORDER BY id LIMIT $1 FOR UPDATE OF o SKIP LOCKED
), claimed AS (
    UPDATE outbox o SET leased_until = now() + make_interval(secs => $2)
    FROM due WHERE o.id = due.id RETURNING o.*
)
SELECT claimed.*, c.channel AS card_channel, c.ts AS card_ts
FROM claimed LEFT JOIN cards c ON c.chat = claimed.chat AND c.request_id = claimed.request_id
ORDER BY claimed.id
"""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A claimed outbox row: what to send and, for updates, replies and files, the card
    (``card_channel``: the channel or conversation; ``card_ts``: the message's id there)."""

    id: int
    kind: str
    request_id: int | None
    channel: str | None
    recipient: str | None
    body: dict[str, Any] | None
    version: int
    attempts: int
    card_channel: str | None
    card_ts: str | None


@dataclass(frozen=True, slots=True)
class Failure:
    """What to do after a failed send: ``retry`` it (after ``wait`` seconds when the chat
    said how long: a rate limit, which is no fault of the row), or give it up."""

    error: str
    retry: bool
    wait: float | None = None
    unexpected: bool = False


class Undeliverable(Exception):
    """A message that can never be delivered as queued; the message says why."""


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:g} s")
        self.retry_after = retry_after


class Delivery(Protocol):
    """How one chat turns outbox rows into its API's calls."""

    async def send(self, row: Envelope) -> str | None:
        """Send ``row``; for a card, the id of the message posted (None for anything else)."""
        ...

    async def post(self, channel: str, body: dict[str, Any]) -> str | None:
        """A plain message to ``channel`` (an alert or a digest of alerts)."""
        ...

    def failure_of(self, exc: Exception) -> Failure: ...

    def alert_message(self, alert: Alert) -> dict[str, Any]: ...

    def alert_digest(self, alerts: Sequence[Alert]) -> dict[str, Any]: ...


class Outbox:
    """One chat's rows of the outbox and the worker that delivers them."""

    def __init__(self, pool: asyncpg.Pool, chat: str, delivery: Delivery) -> None:
        self.pool = pool
        self.chat = chat
        self.delivery = delivery
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def put(self, key: str, kind: str, *, request_id: int | None = None,
                  channel: str | None = None, recipient: str | None = None,
                  body: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Queue one message under ``key``; a key already queued (or sent) is kept as is."""
        await self.pool.execute(
            "INSERT INTO outbox (chat, dedupe_key, kind, request_id, channel, recipient, body)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (chat, dedupe_key) DO NOTHING",
            self.chat, key, kind, request_id, channel, recipient,
            None if body is None else json.dumps(body),
        )  # fmt: skip
        self._wakeup.set()

    async def rearm(self, request_id: int) -> None:
        """Queue an update of ``request_id``'s card to its state at the time of sending."""
        await self.pool.execute(
            "INSERT INTO outbox (chat, dedupe_key, kind, request_id)"
            " VALUES ($1, $2, 'update', $3) ON CONFLICT (chat, dedupe_key) DO UPDATE"
            " SET version = outbox.version + 1, sent_at = NULL, failed_at = NULL,"
            " attempts = 0, due_at = now(), last_error = NULL",
            self.chat, f"update:{request_id}", request_id,
        )  # fmt: skip
        self._wakeup.set()

    async def card(self, request_id: int) -> tuple[str, str] | None:
        """``(channel, message id)`` of the request's card in this chat once posted."""
        row = await self.pool.fetchrow(
            "SELECT channel, ts FROM cards WHERE chat = $1 AND request_id = $2",
            self.chat, request_id,
        )  # fmt: skip
        return None if row is None else (row["channel"], row["ts"])

    # -- the worker --------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.chat}-outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                delivered = await self.deliver_due()
            except RateLimited as limited:
                await asyncio.sleep(limited.retry_after)
                continue
            except STORE_ERRORS as exc:
                log.warning("outbox cannot reach the store",
                            extra={"chat": self.chat, "error": str(exc)})  # fmt: skip
                delivered = 0
            except Exception:
                # Never let a bug stop delivery; the rows' leases end and they come back.
                log.exception("outbox delivery crashed", extra={"chat": self.chat})
                delivered = 0
            if delivered < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), POLL_INTERVAL)

    async def deliver_due(self) -> int:
        """Claim and send what is due; how many rows were claimed. Raises RateLimited, after
        giving the batch back, when the chat asks to slow down."""
        rows = [_envelope(r) for r in await self.pool.fetch(_CLAIM, BATCH, LEASE, self.chat)]
        try:
            for row in rows:
                if row.kind != "alert":
                    await self.attempt([row], self.delivery.send(row))
            alerts = [row for row in rows if row.kind == "alert"]
            if alerts:
                await deliver_alerts(self, alerts, BURST_SIZE, BURST_WINDOW)
        except RateLimited:
            # Rows already settled keep their state; the rest may be claimed again.
            await self.pool.execute(
                "UPDATE outbox SET leased_until = NULL WHERE id = ANY($1::bigint[])",
                [row.id for row in rows],
            )
            raise
        return len(rows)

    async def attempt(self, rows: list[Envelope], sending: Awaitable[str | None]) -> None:
        """Await ``sending`` (one message for all of ``rows``) and settle the rows by how it
        went. Raises RateLimited after rescheduling them when the chat said 429."""
        try:
            ts = await sending
        except Exception as exc:
            failure = self.delivery.failure_of(exc)
            if failure.unexpected:
                log.exception("unexpected error sending to a chat",
                              extra={"chat": self.chat, "outbox": rows[0].id})  # fmt: skip
            if failure.wait is not None:
                await self._retry(rows, failure.error, failure.wait, count=False)
                raise RateLimited(failure.wait) from exc
            if failure.retry:
                await self._retry(rows, failure.error)
            else:
                await self._fail(rows, failure.error)
            return
        await self._sent(rows, ts)

    async def _sent(self, rows: list[Envelope], ts: str | None) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            for row in rows:
                if row.kind == "card" and ts is not None:
                    await conn.execute(
                        "INSERT INTO cards (chat, request_id, channel, ts)"
                        " VALUES ($1, $2, $3, $4) ON CONFLICT (chat, request_id) DO NOTHING",
                        self.chat, row.request_id, row.channel, ts,
                    )  # fmt: skip
                # A version bumped while this was in flight means a newer update is queued:
                # the row stays unsent and, with the lease dropped, goes out again.
                await conn.execute(
                    "UPDATE outbox SET leased_until = NULL, last_error = NULL,"
                    " sent_at = CASE WHEN version = $2 THEN now() END WHERE id = $1",
                    row.id, row.version,
                )  # fmt: skip

    async def _retry(self, rows: list[Envelope], error: str, wait: float | None = None,
                     *, count: bool = True) -> None:  # fmt: skip
        for row in rows:
            attempts = row.attempts + (1 if count else 0)
            if attempts >= MAX_ATTEMPTS:
                await self._fail([row], f"gave up after {attempts} attempts: {error}")
                continue
            delay = wait if wait is not None else min(2.0**attempts / 2, MAX_BACKOFF)
            log.info("chat delivery will be retried", extra={"chat": self.chat,
                     "outbox": row.id, "kind": row.kind, "error": error})  # fmt: skip
            await self.pool.execute(
                "UPDATE outbox SET leased_until = NULL, attempts = $2, last_error = $3,"
                " due_at = now() + make_interval(secs => $4) WHERE id = $1",
                row.id, attempts, error, delay,
            )  # fmt: skip

    async def _fail(self, rows: list[Envelope], error: str) -> None:
        for row in rows:
            log.warning("chat delivery failed", extra={"chat": self.chat, "outbox": row.id,
                        "kind": row.kind, "request": row.request_id, "error": error})  # fmt: skip
            await self.pool.execute(
                "UPDATE outbox SET failed_at = now(), leased_until = NULL, last_error = $2"
                " WHERE id = $1",
                row.id, error,
            )  # fmt: skip


def _envelope(record: asyncpg.Record) -> Envelope:
    body = record["body"]
    return Envelope(
        id=record["id"], kind=record["kind"], request_id=record["request_id"],
        channel=record["channel"], recipient=record["recipient"],
        body=None if body is None else json.loads(body), version=record["version"],
        attempts=record["attempts"], card_channel=record["card_channel"],
        card_ts=record["card_ts"],
    )  # fmt: skip
