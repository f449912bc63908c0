"""What the Teams adapter needs from a Bot Framework SDK, as one small interface, and the
choice between the two implementations (``teams.hosting``).

:class:`TeamsHosting` authenticates a request into ``/api/messages`` (the verified claims,
or :class:`Unauthenticated`, which the endpoint answers 401), parses its body (the
activity, or None: 400), and makes the connector calls the bot makes: post an activity to
a conversation or in reply to one of its activities, update an activity in place, open a
personal chat, read one member or the whole roster page by page, with the bot's own
token. A call the connector refuses raises :class:`ConnectorError` with its HTTP status
and any ``Retry-After``; one that cannot reach it raises the transport's error
(``aiohttp.ClientError``, ``OSError``, ``TimeoutError``). Activities and members are
plain JSON objects (``dict``) on this side of the interface, as they are on the wire.

- ``agents_sdk`` (the default): the Microsoft 365 Agents SDK for Python
  (:mod:`bot.teams_agents_sdk`).
- ``botbuilder``: botbuilder 4.17, the Bot Framework SDK Microsoft archived
  (:mod:`bot.teams_botbuilder`), installed by ``pip install 'jitgate[botbuilder]'``.
"""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp

from jitgate.config import TeamsSettings

SCOPE = "https://api.botframework.com/.default"
TIMEOUT = aiohttp.ClientTimeout(total=10)


class Unauthenticated(Exception):
    """The request was not proved to come from the Bot Framework; the message says why."""


class ConnectorError(Exception):
    """The connector (or the token endpoint) answered, and refused."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.retry_after = retry_after


class TeamsHosting(Protocol):
    async def authenticate(
        self, authorization: str | None, activity: dict[str, Any]
    ) -> dict[str, Any]:
        """The verified claims of the request's token, or :class:`Unauthenticated`."""
        ...

    def parse(self, body: object) -> dict[str, Any] | None:
        """The activity ``body`` (decoded JSON) is, or None when it is not one."""
        ...

    async def token(self) -> str:
        """The bot's own token for the connector."""
        ...

    async def send(self, service_url: str, conversation: str, activity: dict[str, Any],
                   reply_to: str | None = None) -> str | None:  # fmt: skip
        """Post ``activity`` to ``conversation`` (as a reply to ``reply_to`` when given: in
        its thread); the new activity's id."""
        ...

    async def update(self, service_url: str, conversation: str, activity_id: str,
                     activity: dict[str, Any]) -> None:  # fmt: skip
        """Replace activity ``activity_id`` with ``activity``."""
        ...

    async def member(self, service_url: str, conversation: str, user_id: str) -> dict[str, Any]:
        """A conversation member's profile (``email``, ``userPrincipalName``, ...)."""
        ...

    async def open_personal(self, service_url: str, bot_id: str, user_id: str,
                            tenant: str | None) -> str:  # fmt: skip
        """The id of the bot's personal chat with ``user_id`` (an MRI), opened if need be
        (Teams answers the same chat again if it exists)."""
        ...

    async def roster(self, service_url: str, conversation: str) -> list[dict[str, Any]]:
        """Every member of a team or chat (``id`` is the MRI; ``aadObjectId``,
        ``userPrincipalName``, ...), page by page."""
        ...

    async def close(self) -> None: ...


def hosting_for(settings: TeamsSettings) -> TeamsHosting:
    """The implementation ``teams.hosting`` names."""
    if settings.hosting == "botbuilder":
        from bot.teams_botbuilder import BotbuilderHosting

        return BotbuilderHosting(settings)
    from bot.teams_agents_sdk import AgentsSdkHosting

    return AgentsSdkHosting(settings)


def is_activity(activity: object) -> bool:
    """Whether ``activity`` has what every activity the adapter acts on has."""
    return (
        isinstance(activity, dict)
        and isinstance(activity.get("type"), str)
        and isinstance(activity.get("serviceUrl"), str)
        and isinstance(activity.get("conversation"), dict)
        and isinstance(activity["conversation"].get("id"), str)
        and isinstance(activity.get("from") or {}, dict)
    )


def retry_after(headers: Any) -> float | None:
    """The pause a refusal's ``Retry-After`` asks for (1 s when it is not a number)."""
    value = headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return 1.0
