"""How one outbox row becomes Bot Framework connector calls, and what a failure means.

Cards and card updates are rendered from the request as it is when sent; replies, the
requester's messages and alerts carry the body rendered when queued. A card goes to the
resource's ``notify.teams`` conversation, replies into its thread, updates replace it in
place; the requester's message goes to their personal chat with the app, opened for them
if they have none yet (:mod:`bot.teams_personal`). A conversation
the app was never added to cannot be posted to: the row fails and says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from approvals.model import Alert, RequestView
from bot import teams_cards as cards
from bot.teams_conversations import Conversation, TeamsConversations
from bot.teams_hosting import ConnectorError, TeamsHosting
from bot.teams_personal import PersonalChats
from notify.cards import card_of
from notify.outbox import Envelope, Failure, Undeliverable

_EXPECTED = (ConnectorError, aiohttp.ClientError, OSError, TimeoutError)


class TeamsDelivery:
    """Teams' :class:`~notify.outbox.Delivery`. ``view(request_id)``: the request as Teams
    may show it now; ``refresh_for(view)``: who gets their own view of its card."""

    def __init__(self, connector: TeamsHosting, conversations: TeamsConversations,
                 personal: PersonalChats, view: Callable[[int], Awaitable[RequestView | None]],
                 refresh_for: Callable[[RequestView], Awaitable[list[str]]]) -> None:  # fmt: skip
        self._connector = connector
        self._conversations = conversations
        self._personal = personal
        self._view = view
        self._refresh_for = refresh_for

    async def _conversation(self, conversation_id: str) -> Conversation:
        found = await self._conversations.get(conversation_id)
        if found is None:
            raise Undeliverable(f"the app is not installed in Teams conversation {conversation_id}")
        return found

    async def send(self, row: Envelope) -> str | None:
        body = row.body or {}
        if row.kind in ("card", "update"):
            view = await self._view(row.request_id or 0)
            if view is None:
                raise Undeliverable(f"request #{row.request_id} does not exist")
            card = cards.request_card(view, refresh_for=await self._refresh_for(view))
            body = cards.message(card, card_of(view).title)
        if row.kind == "card":
            where = await self._conversation(row.channel or "")
            return await self._connector.send(where.service_url, where.id, body)
        if row.kind == "dm":
            personal = await self._personal.of_identity(row.recipient or "")
            if personal is None:
                raise Undeliverable("the requester has no personal chat with the app in Teams"
                                    " and was never seen there")  # fmt: skip
            await self._connector.send(personal.service_url, personal.id, body)
            return None
        if row.card_channel is None or row.card_ts is None:
            raise Undeliverable("the request has no card in Teams")
        where = await self._conversation(row.card_channel)
        if row.kind == "update":
            await self._connector.update(where.service_url, where.id, row.card_ts, body)
        else:
            await self._connector.send(where.service_url, where.id, body, reply_to=row.card_ts)
        return None

    async def post(self, channel: str, body: dict[str, Any]) -> str | None:
        where = await self._conversation(channel)
        await self._connector.send(where.service_url, where.id, body)
        return None

    def failure_of(self, exc: Exception) -> Failure:
        if isinstance(exc, ConnectorError):
            if exc.status == 429:
                return Failure(str(exc), True, exc.retry_after or 1.0)
            return Failure(str(exc), exc.status >= 500 or exc.status in (408, 412))
        if isinstance(exc, Undeliverable):
            return Failure(str(exc), False)
        return Failure(
            f"{type(exc).__name__}: {exc}", True, unexpected=not isinstance(exc, _EXPECTED)
        )

    def alert_message(self, alert: Alert) -> dict[str, Any]:
        return cards.alert_message(alert)

    def alert_digest(self, alerts: Sequence[Alert]) -> dict[str, Any]:
        return cards.alert_digest(alerts)
