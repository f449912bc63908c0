"""Who a Slack user is to jitgate, and who a jitgate identity is in Slack.

A Slack user maps to the identity named in ``slack.users`` (``{U…: email}``), else to the
email on their Slack profile (``users.info``), but only when Slack says it is confirmed and
the member is a person: bots, deleted members and profiles without an email map to no
one. The identity is *known* when it belongs to a group; only known identities may act.
Answers are cached for :data:`CACHE_TTL` seconds, refusals for :data:`REFUSAL_TTL`.

The reverse, for the requester's DM, reads ``slack.users`` backwards, else asks
``users.lookupByEmail``. Slack errors other than "no such user" propagate
(:class:`slack_sdk.errors.SlackApiError`, aiohttp errors) and are not cached.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from identity import Directory
from jitgate.config import Config

CACHE_TTL = 600.0
REFUSAL_TTL = 60.0
# Slack's answers for a member or an email it does not have.
_NOT_FOUND = frozenset(("user_not_found", "users_not_found", "account_inactive"))


@dataclass(frozen=True, slots=True)
class SlackPerson:
    """A Slack user as jitgate sees them: ``email`` when one maps, ``identity`` (the same
    email) only when it belongs to a jitgate group."""

    user_id: str
    email: str | None
    identity: str | None


class _Cache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, str | None]] = {}

    def get(self, key: str) -> tuple[bool, str | None]:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: str, value: str | None) -> None:
        ttl = CACHE_TTL if value is not None else REFUSAL_TTL
        self._entries[key] = (time.monotonic() + ttl, value)


class SlackDirectory:
    def __init__(self, client: AsyncWebClient, config: Config, directory: Directory) -> None:
        self._client = client
        self._directory = directory
        self._explicit: Mapping[str, str] = config.slack.users
        self._by_email = {email: user for user, email in config.slack.users.items()}
        self._emails = _Cache()
        self._users = _Cache()

    async def person(self, user_id: str) -> SlackPerson:
        """Who ``user_id`` is; ``identity`` None means they may do nothing."""
        email = self._explicit.get(user_id)
        if email is None:
            email = await self._verified_email(user_id)
        known = email is not None and bool(self._directory.groups_of(email))
        return SlackPerson(user_id, email, email if known else None)

    async def user_for(self, identity: str) -> str | None:
        """The Slack user id of ``identity`` (an email), or None when Slack has no such user."""
        identity = identity.strip().lower()
        explicit = self._by_email.get(identity)
        if explicit is not None:
            return explicit
        cached, user_id = self._users.get(identity)
        if cached:
            return user_id
        try:
            answer = await self._client.users_lookupByEmail(email=identity)
        except SlackApiError as exc:
            if exc.response.get("error") not in _NOT_FOUND:
                raise
            user_id = None
        else:
            user = answer.get("user") or {}
            user_id = None if user.get("deleted") or user.get("is_bot") else user.get("id")
        self._users.put(identity, user_id)
        return user_id

    async def _verified_email(self, user_id: str) -> str | None:
        cached, email = self._emails.get(user_id)
        if cached:
            return email
        try:
            answer = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            if exc.response.get("error") not in _NOT_FOUND:
                raise
            email = None
        else:
            email = _email_of(answer.get("user") or {})
        self._emails.put(user_id, email)
        return email


def _email_of(user: Mapping[str, Any]) -> str | None:
    """The member's email if it may stand for them: a person, not deleted, email confirmed
    (Slack reports ``is_email_confirmed`` for people; a missing flag is not a refusal)."""
    if user.get("deleted") or user.get("is_bot") or user.get("is_email_confirmed") is False:
        return None
    email = (user.get("profile") or {}).get("email")
    return email.strip().lower() if isinstance(email, str) and "@" in email else None
