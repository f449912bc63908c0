"""The bot's personal chats with people in Teams: where answers meant for one person go.

Teams has no ephemeral messages, so whatever is for one person goes to their personal
chat with the app: the one jitgate has on record for them, else one the bot opens (the
connector's ``POST /v3/conversations`` with their MRI, which Teams allows once the app is
installed for them or in a team they belong to).

- :meth:`PersonalChats.answer`: the answer to a message to the bot (a masked result,
  someone's pending requests, a refusal) goes to the writer alone. When Teams refuses to
  open the chat, the thread they wrote in gets a short note saying where to ask instead,
  never the answer.
- :meth:`PersonalChats.of_identity`: where a requester's messages go. Someone with no
  chat on record is found by the MRI they were last seen with (:mod:`bot.teams_users`),
  through the connector of a conversation the app is in.
"""

from __future__ import annotations

import logging
from typing import Any

from bot import messages as m
from bot import teams_cards as cards
from bot.teams_auth import tenant_of
from bot.teams_conversations import Conversation, TeamsConversations, TeamsPerson
from bot.teams_hosting import ConnectorError, TeamsHosting
from bot.teams_users import TeamsUsers

log = logging.getLogger("jitgate.teams")


class PersonalChats:
    def __init__(self, connector: TeamsHosting, conversations: TeamsConversations,
                 users: TeamsUsers) -> None:  # fmt: skip
        self._connector = connector
        self._conversations = conversations
        self._users = users

    async def answer(self, activity: dict[str, Any], person: TeamsPerson,
                     reply: dict[str, Any]) -> None:  # fmt: skip
        """Send ``reply`` (an activity) to the writer of ``activity`` alone."""
        service_url = str(activity["serviceUrl"])
        conversation = activity["conversation"]
        if conversation.get("conversationType") == "personal":
            await self._connector.send(service_url, str(conversation["id"]), reply)
            return
        try:
            where = await self._of_writer(activity, person)
            await self._connector.send(where.service_url, where.id, reply)
        except ConnectorError as refused:
            log.warning("a Teams answer could not be sent privately",
                        extra={"status": refused.status, "error": str(refused)})  # fmt: skip
            thread = str(conversation["id"])
            note = cards.text_message(m.not_private_in_teams())
            reply_to = None if ";messageid=" in thread else activity.get("id")
            await self._connector.send(service_url, thread, note, reply_to=reply_to)

    async def of_identity(self, identity: str) -> Conversation | None:
        """The personal chat with jitgate identity ``identity``, opened if need be; None
        when they were never seen in Teams or the app is in no conversation yet."""
        known = await self._conversations.personal(identity)
        if known is not None:
            return known
        mri = await self._users.mri_of(identity)
        reference = await self._conversations.reference()
        if mri is None or reference is None:
            return None
        service_url, bot_id, tenant = reference
        return await self._open(service_url, bot_id, mri, tenant, identity)

    async def _of_writer(self, activity: dict[str, Any], person: TeamsPerson) -> Conversation:
        if person.identity is not None:
            known = await self._conversations.personal(person.identity)
            if known is not None:
                return known
        bot_id = str((activity.get("recipient") or {}).get("id") or "")
        return await self._open(str(activity["serviceUrl"]), bot_id, person.user_id,
                                tenant_of(activity), person.identity)  # fmt: skip

    async def _open(self, service_url: str, bot_id: str, mri: str, tenant: str | None,
                    identity: str | None) -> Conversation:  # fmt: skip
        opened = await self._connector.open_personal(service_url, bot_id, mri, tenant)
        return await self._conversations.add_personal(opened, service_url, tenant, bot_id,
                                                      identity)  # fmt: skip
