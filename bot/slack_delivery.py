"""How one outbox row becomes Slack Web API calls, and what a failure means for it.

Cards and card updates are rendered from the request as it is when sent (so a late update
never shows an older state); replies, files and DMs carry the body rendered when queued.
Updates, replies and files go to the card recorded in ``cards``; a DM goes to the
Slack user whose email is the requester's (:meth:`SlackDirectory.user_for`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from approvals.model import Alert, RequestView
from bot.messages import alert_digest, alert_message, card_for
from bot.slack_identity import SlackDirectory
from notify.outbox import Envelope, Failure, Undeliverable

# Slack's own words for "try again later"; any other error will fail the same way again.
_TRANSIENT = frozenset(
    ("ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout")
)
_EXPECTED = (SlackApiError, SlackRequestError, aiohttp.ClientError, OSError, TimeoutError)


def failure_of(exc: Exception) -> Failure:
    if isinstance(exc, SlackApiError):
        status, error = exc.response.status_code, str(exc.response.get("error"))
        if status == 429:
            return Failure(error, True, _retry_after(exc.response.headers))
        return Failure(error, status >= 500 or error in _TRANSIENT)
    if isinstance(exc, Undeliverable):
        return Failure(str(exc), False)
    # Network trouble, a failed upload, the store, or a bug: worth another (bounded) try.
    return Failure(f"{type(exc).__name__}: {exc}", True, unexpected=not isinstance(exc, _EXPECTED))


class SlackDelivery:
    """Slack's :class:`~notify.outbox.Delivery`."""

    def __init__(
        self,
        client: AsyncWebClient,
        view: Callable[[int], Awaitable[RequestView | None]],
        directory: SlackDirectory,
    ) -> None:
        """``view(request_id)``: the request as Slack may show it now."""
        self._client = client
        self._view = view
        self._directory = directory

    async def send(self, row: Envelope) -> str | None:
        """Send ``row``; the ``ts`` Slack gave a card (None for anything else)."""
        body = row.body or {}
        if row.kind in ("card", "update"):
            view = await self._view(row.request_id or 0)
            if view is None:
                raise Undeliverable(f"request #{row.request_id} does not exist")
            body = card_for(view)
        if row.kind == "card":
            posted = await self._client.chat_postMessage(channel=row.channel or "", **body)
            return str(posted["ts"])
        if row.kind == "dm":
            user = await self._directory.user_for(row.recipient or "")
            if user is None:
                raise Undeliverable("no Slack user has the requester's email")
            opened = await self._client.conversations_open(users=user)
            await self._client.chat_postMessage(channel=opened["channel"]["id"], **body)
            return None
        if row.card_channel is None or row.card_ts is None:
            raise Undeliverable("the request has no card in Slack")
        if row.kind == "update":
            await self._client.chat_update(channel=row.card_channel, ts=row.card_ts, **body)
        elif row.kind == "reply":
            await self._client.chat_postMessage(
                channel=row.card_channel, thread_ts=row.card_ts, **body
            )
        elif row.kind == "file":
            await self._client.files_upload_v2(
                channel=row.card_channel, thread_ts=row.card_ts, **body
            )
        return None

    async def post(self, channel: str, body: dict[str, Any]) -> str | None:
        """A plain message to ``channel`` (an alert or a digest of alerts)."""
        await self._client.chat_postMessage(channel=channel, **body)
        return None

    def failure_of(self, exc: Exception) -> Failure:
        return failure_of(exc)

    def alert_message(self, alert: Alert) -> dict[str, Any]:
        return alert_message(alert)

    def alert_digest(self, alerts: Sequence[Alert]) -> dict[str, Any]:
        return alert_digest(alerts)


def _retry_after(headers: Any) -> float:
    value = next((v for k, v in dict(headers or {}).items() if k.lower() == "retry-after"), None)
    try:
        return max(float(value), 0.0) if value is not None else 1.0
    except (TypeError, ValueError):
        return 1.0
