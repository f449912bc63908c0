"""Where the bot answers a message in Teams: to the person alone, where Teams allows it.

Teams has no ephemeral messages, so an answer (a masked result, someone's pending
requests, a refusal) is sent to the writer's personal chat with the app: there, in the
chat itself; from a channel or a group chat, in the personal chat jitgate has on record
for them, else one the bot opens (the connector's ``POST /v3/conversations``, which Teams
allows once the app is installed for the user or in a team they belong to). When Teams
refuses that, the thread they wrote in gets a short note saying where to ask instead,
never the answer.
"""

from __future__ import annotations

import logging
from typing import Any

from bot import messages as m
from bot import teams_cards as cards
from bot.teams_auth import tenant_of
from bot.teams_connector import Connector, ConnectorError
from bot.teams_conversations import Conversation, TeamsConversations, TeamsPerson

log = logging.getLogger("jitgate.teams")


class TeamsReplies:
    def __init__(self, connector: Connector, conversations: TeamsConversations) -> None:
        self._connector = connector
        self._conversations = conversations

    async def answer(self, activity: dict[str, Any], person: TeamsPerson,
                     reply: dict[str, Any]) -> None:  # fmt: skip
        """Send ``reply`` (an activity) to the writer of ``activity`` alone."""
        service_url = str(activity["serviceUrl"])
        conversation = activity["conversation"]
        if conversation.get("conversationType") == "personal":
            await self._connector.send(service_url, str(conversation["id"]), reply)
            return
        try:
            where = await self._personal(activity, person)
            await self._connector.send(where.service_url, where.id, reply)
        except ConnectorError as refused:
            log.warning("a Teams answer could not be sent privately",
                        extra={"status": refused.status, "error": str(refused)})  # fmt: skip
            thread = str(conversation["id"])
            note = cards.text_message(m.not_private_in_teams())
            reply_to = None if ";messageid=" in thread else activity.get("id")
            await self._connector.send(service_url, thread, note, reply_to=reply_to)

    async def _personal(self, activity: dict[str, Any], person: TeamsPerson) -> Conversation:
        if person.identity is not None:
            known = await self._conversations.personal(person.identity)
            if known is not None:
                return known
        service_url = str(activity["serviceUrl"])
        bot_id = str((activity.get("recipient") or {}).get("id") or "")
        tenant = tenant_of(activity)
        opened = await self._connector.open_personal(service_url, bot_id, person.user_id, tenant)
        return await self._conversations.add_personal(
            opened, service_url, tenant, bot_id, person.identity
        )
