"""The periodic sweep, whose truth is all in the store: heartbeat, expiry, reminders at half
the TTL, approved requests nobody waits for, and requests left executing by a gateway that
stopped. Any gateway may sweep; every move is a compare-and-set, so sweeps never clash."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from approvals.detached import execute_if_unattended
from approvals.model import Outcome
from approvals.store import STORE_ERRORS

if TYPE_CHECKING:
    from approvals.service import Approvals

log = logging.getLogger("jitgate.approvals")

HEARTBEAT_STALE = "30 seconds"


async def sweep(approvals: Approvals) -> None:
    async with approvals.sweeping:
        try:
            await heartbeat(approvals)
            await expire_due(approvals)
            await remind_due(approvals)
            for request_id in await approvals.pool.fetch(
                "SELECT id FROM requests WHERE state = 'approved'"
                " AND (waiter IS NULL OR hold_until < now())"
            ):
                approvals.spawn(execute_if_unattended(approvals, request_id[0]))
            await reconcile(approvals)
            await cancel_orphaned(approvals)
            if approvals.listener is None or approvals.listener.is_closed():
                await approvals.listen()
        except STORE_ERRORS as exc:
            log.warning("approvals sweep failed", extra={"error": str(exc)})


async def heartbeat(approvals: Approvals) -> None:
    await approvals.pool.execute(
        "INSERT INTO gateways (id, hostname) VALUES ($1, $2)"
        " ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
        approvals.gateway_id,
        socket.gethostname(),
    )


async def expire_due(approvals: Approvals) -> None:
    for record in await approvals.pool.fetch(
        "SELECT id FROM requests WHERE state = 'pending' AND expires_at <= now()"
    ):
        moved = await approvals.store.move(
            None, record[0], "expire", state_reason="not decided in time",
            condition="AND expires_at <= now()",
        )  # fmt: skip
        if moved is not None:
            await approvals.announce(moved.id, alert="expired")


async def remind_due(approvals: Approvals) -> None:
    for record in await approvals.pool.fetch(
        "UPDATE requests SET reminded_at = now() WHERE state = 'pending'"
        " AND reminded_at IS NULL AND now() >= created_at + (expires_at - created_at) / 2"
        " RETURNING id"
    ):
        view = await approvals.store.view(record[0])
        if view is not None:
            for notifier in approvals.notifiers:
                approvals.spawn(notifier.reminder(view))


async def reconcile(approvals: Approvals) -> None:
    """Requests left EXECUTING by a gateway that stopped beating are FAILED, never re-run:
    whether the statement committed is unknown, so a person must look."""
    for record in await approvals.pool.fetch(
        "SELECT id FROM requests WHERE state = 'executing' AND (executor IS NULL OR"
        " executor NOT IN (SELECT id FROM gateways"
        f" WHERE heartbeat_at > now() - interval '{HEARTBEAT_STALE}'))"
    ):
        outcome = Outcome(
            None, None, 0.0, "XX000",
            "the gateway executing it stopped; whether it committed is unknown — check "
            "the target before running it again",
        )  # fmt: skip
        if await approvals.finish(record[0], outcome) is not None:
            log.error("request left executing by a stopped gateway", extra={"request": record[0]})


async def cancel_orphaned(approvals: Approvals) -> None:
    """Requests only their own session may run (held inside a transaction or with bound
    values: ``hold_until`` years ahead, their gateway named as executor by
    :meth:`Approvals.bind`) whose gateway stopped beating are CANCELLED: the
    transaction they were held in ended with it, and they must never run outside it."""
    for record in await approvals.pool.fetch(
        "SELECT id FROM requests WHERE state IN ('pending', 'approved')"
        " AND hold_until > now() + interval '1 year' AND executor IS NOT NULL"
        " AND executor NOT IN (SELECT id FROM gateways"
        f" WHERE heartbeat_at > now() - interval '{HEARTBEAT_STALE}')"
    ):
        why = "the gateway holding it stopped, and with it the transaction it was held in"
        if await approvals.cancel(record[0], why) is not None:
            log.warning("request cancelled with its stopped gateway", extra={"request": record[0]})
