"""Security alerts in a chat: the :class:`~approvals.model.AlertSink` that queues each
alert, as fields, for a chat's alerts channel, and their delivery there, one message per
alert or one digest for a burst (see :mod:`notify.outbox`). The chat renders the fields
(:meth:`~notify.outbox.Delivery.alert_message`) when it sends them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from itertools import groupby
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from approvals.model import Alert, AlertKind

if TYPE_CHECKING:
    from notify.outbox import Envelope, Outbox


class ChatAlerts:
    """Queues every alert it is given for ``channel``; never raises into the core except
    when the store refuses the row (the core logs that)."""

    def __init__(self, channel: str, outbox: Outbox) -> None:
        self.channel = channel
        self._outbox = outbox

    async def alert(self, alert: Alert) -> None:
        # Each alert is one event: its key only has to keep a retried insert from doubling it.
        await self._outbox.put(
            f"alert:{uuid.uuid4()}", "alert", channel=self.channel, body=alert_json(alert)
        )


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "kind": alert.kind,
        "summary": alert.summary,
        "identity": alert.identity,
        "resource": alert.resource,
        "request_id": alert.request_id,
        "session_id": None if alert.session_id is None else str(alert.session_id),
        "at": None if alert.at is None else alert.at.isoformat(),
    }


def alert_of(data: dict[str, Any]) -> Alert:
    """The inverse of :func:`alert_json`."""
    return Alert(
        kind=cast(AlertKind, data["kind"]),
        summary=data["summary"],
        identity=data["identity"],
        resource=data["resource"],
        request_id=data["request_id"],
        session_id=None if data["session_id"] is None else UUID(data["session_id"]),
        at=None if data["at"] is None else datetime.fromisoformat(data["at"]),
    )


async def deliver_alerts(
    outbox: Outbox, rows: Sequence[Envelope], burst: int, window: float
) -> None:
    """Send claimed alert rows: each as its own message while a channel has had at most
    ``burst`` alerts in the last ``window`` seconds, the rest together as one digest."""
    delivery = outbox.delivery
    for channel, grouped in groupby(sorted(rows, key=lambda r: (r.channel or "", r.id)),
                                    key=lambda r: r.channel or ""):  # fmt: skip
        group = list(grouped)
        recent = await outbox.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE chat = $1 AND kind = 'alert' AND channel = $2"
            " AND sent_at > now() - make_interval(secs => $3)",
            outbox.chat, channel, window,
        )  # fmt: skip
        alerts = [alert_of(row.body or {}) for row in group]
        if len(group) > 1 and recent + len(group) > burst:
            await outbox.attempt(group, delivery.post(channel, delivery.alert_digest(alerts)))
            continue
        for row, alert in zip(group, alerts, strict=True):
            await outbox.attempt([row], delivery.post(channel, delivery.alert_message(alert)))
