"""Who and where in Microsoft Teams: the conversations the app is in, and who a Teams user
is to jitgate.

:class:`TeamsConversations` keeps a conversation reference (id, ``serviceUrl``, tenant,
kind) for every conversation an authenticated activity came from: the app's installation
in a team or chat, any message, any click. Proactive posting (cards to ``notify.teams``,
alerts to ``alerts.teams``, the requester's personal messages) needs one; a personal chat
also records the jitgate identity of its user.

:class:`TeamsPeople` maps the activity's sender to an identity: ``teams.users``
(``{Entra object id: email}``) first; else, when ``teams.tenant_id`` is set (so every
activity is known to come from that tenant), the member's ``userPrincipalName`` as the
connector reports it, a name only the tenant's verified domains can carry. Without
``tenant_id`` only the explicit mapping counts. The identity is *known* when it belongs to
a group; only known identities may act.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from bot.teams_hosting import ConnectorError, TeamsHosting
from identity import Directory
from jitgate.config import TeamsSettings

CACHE_TTL = 600.0


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    service_url: str
    kind: str


@dataclass(frozen=True, slots=True)
class TeamsPerson:
    user_id: str
    email: str | None
    identity: str | None


class TeamsConversations:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def remember(self, activity: dict[str, Any], tenant: str | None,
                       person: str | None = None) -> None:  # fmt: skip
        conversation = activity.get("conversation") or {}
        recipient = activity.get("recipient") or {}
        await self._pool.execute(
            "INSERT INTO teams_conversations (conversation_id, service_url, tenant_id, kind,"
            " bot_id, person) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (conversation_id) DO UPDATE SET service_url = EXCLUDED.service_url,"
            " tenant_id = EXCLUDED.tenant_id, bot_id = EXCLUDED.bot_id,"
            " person = coalesce(EXCLUDED.person, teams_conversations.person), updated_at = now()",
            # A channel thread's id is the channel's with ";messageid=..." after it.
            str(conversation["id"]).split(";messageid=")[0], str(activity["serviceUrl"]), tenant,
            str(conversation.get("conversationType") or "channel"), recipient.get("id"), person,
        )  # fmt: skip

    async def add_personal(self, conversation_id: str, service_url: str, tenant: str | None,
                           bot_id: str | None, person: str | None) -> Conversation:  # fmt: skip
        """A personal chat the bot opened itself (no activity came from it yet)."""
        await self._pool.execute(
            "INSERT INTO teams_conversations (conversation_id, service_url, tenant_id, kind,"
            " bot_id, person) VALUES ($1, $2, $3, 'personal', $4, $5)"
            " ON CONFLICT (conversation_id) DO UPDATE SET service_url = EXCLUDED.service_url,"
            " person = coalesce(EXCLUDED.person, teams_conversations.person), updated_at = now()",
            conversation_id, service_url, tenant, bot_id, person,
        )  # fmt: skip
        return Conversation(conversation_id, service_url, "personal")

    async def get(self, conversation_id: str) -> Conversation | None:
        row = await self._pool.fetchrow(
            "SELECT conversation_id, service_url, kind FROM teams_conversations"
            " WHERE conversation_id = $1",
            conversation_id,
        )
        return None if row is None else Conversation(*row.values())

    async def reference(self) -> tuple[str, str, str | None] | None:
        """``(serviceUrl, bot id, tenant)`` of the conversation heard from last: how to
        reach the connector to open a conversation."""
        row = await self._pool.fetchrow(
            "SELECT service_url, bot_id, tenant_id FROM teams_conversations"
            " WHERE bot_id IS NOT NULL ORDER BY updated_at DESC LIMIT 1"
        )
        return None if row is None else (row["service_url"], row["bot_id"], row["tenant_id"])

    async def personal(self, person: str) -> Conversation | None:
        """The latest personal chat with ``person``."""
        row = await self._pool.fetchrow(
            "SELECT conversation_id, service_url, kind FROM teams_conversations"
            " WHERE person = $1 AND kind = 'personal' ORDER BY updated_at DESC LIMIT 1",
            person,
        )
        return None if row is None else Conversation(*row.values())


class TeamsPeople:
    def __init__(self, settings: TeamsSettings, directory: Directory,
                 connector: TeamsHosting) -> None:  # fmt: skip
        self._settings = settings
        self._directory = directory
        self._connector = connector
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def resolve(self, activity: dict[str, Any]) -> TeamsPerson:
        sender = activity.get("from") or {}
        user_id = str(sender.get("id") or "")
        object_id = str(sender.get("aadObjectId") or "").lower()
        email = self._settings.users.get(object_id)
        if email is None and self._settings.tenant_id and user_id:
            email = await self._upn(activity, user_id)
        known = email is not None and bool(self._directory.groups_of(email))
        return TeamsPerson(user_id, email, email if known else None)

    def email_of(self, member: dict[str, Any]) -> str | None:
        """A roster member's e-mail by the same rules, from what the roster says."""
        email = self._settings.users.get(str(member.get("aadObjectId") or "").lower())
        return email if email is not None or not self._settings.tenant_id else _upn_of(member)

    async def _upn(self, activity: dict[str, Any], user_id: str) -> str | None:
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        conversation = str((activity.get("conversation") or {}).get("id") or "")
        try:
            member = await self._connector.member(
                str(activity["serviceUrl"]), conversation, user_id
            )
        except ConnectorError as exc:
            if exc.status != 404:
                raise
            member = {}
        email = _upn_of(member)
        self._cache[user_id] = (time.monotonic() + CACHE_TTL, email)
        return email


def _upn_of(member: dict[str, Any]) -> str | None:
    upn = member.get("userPrincipalName")
    return upn.strip().lower() if isinstance(upn, str) and "@" in upn else None
