"""The Bot Framework connector, from the bot's side: the bot's own token and the REST calls
that post, reply to and update activities in a conversation.

The token comes from ``teams.token_endpoint`` by the client-credentials grant (the app id
and password, scope ``https://api.botframework.com/.default``) and is reused until five
minutes before it expires. Calls go to the conversation's ``serviceUrl``, the one the
channel gave when the app was added there (:mod:`bot.teams_conversations`). A failed call
raises :class:`ConnectorError` with the HTTP status and any ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from jitgate.config import TeamsSettings

SCOPE = "https://api.botframework.com/.default"
_TIMEOUT = aiohttp.ClientTimeout(total=10)


class ConnectorError(Exception):
    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.retry_after = retry_after


class Connector:
    def __init__(self, settings: TeamsSettings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or self._token[1] < time.monotonic():
                form = {
                    "grant_type": "client_credentials",
                    "client_id": self._settings.app_id,
                    "client_secret": self._settings.app_password or "",
                    "scope": SCOPE,
                }
                async with self._session.post(
                    self._settings.token_endpoint, data=form, timeout=_TIMEOUT
                ) as answer:
                    if answer.status != 200:
                        raise ConnectorError(answer.status, "the bot's token was refused")
                    data = await answer.json(content_type=None)
                lifetime = float(data.get("expires_in", 3600))
                self._token = (str(data["access_token"]), time.monotonic() + lifetime - 300)
            return self._token[0]

    async def send(self, service_url: str, conversation: str, activity: dict[str, Any],
                   reply_to: str | None = None) -> str | None:  # fmt: skip
        """Post ``activity`` to ``conversation`` (as a reply to ``reply_to`` when given: in
        its thread); the new activity's id."""
        path = f"v3/conversations/{quote(conversation, safe='')}/activities"
        if reply_to is not None:
            path += f"/{quote(reply_to, safe='')}"
            activity = {**activity, "replyToId": reply_to}
        data = await self._call("POST", service_url, path, activity)
        return str(data["id"]) if isinstance(data, dict) and data.get("id") else None

    async def update(self, service_url: str, conversation: str, activity_id: str,
                     activity: dict[str, Any]) -> None:  # fmt: skip
        path = (
            f"v3/conversations/{quote(conversation, safe='')}/activities/"
            f"{quote(activity_id, safe='')}"
        )
        await self._call("PUT", service_url, path, {**activity, "id": activity_id})

    async def member(self, service_url: str, conversation: str, user_id: str) -> dict[str, Any]:
        """A conversation member's profile (``email``, ``userPrincipalName``, ...)."""
        path = f"v3/conversations/{quote(conversation, safe='')}/members/{quote(user_id, safe='')}"
        data = await self._call("GET", service_url, path, None)
        return data if isinstance(data, dict) else {}

    async def open_personal(self, service_url: str, bot_id: str, user_id: str,
                            tenant: str | None) -> str:  # fmt: skip
        """The id of the bot's personal chat with ``user_id`` (an MRI), opened if need be
        (Teams answers the same chat again if it exists)."""
        body: dict[str, Any] = {"bot": {"id": bot_id}, "members": [{"id": user_id}],
                                "isGroup": False}  # fmt: skip
        if tenant is not None:
            body |= {"tenantId": tenant, "channelData": {"tenant": {"id": tenant}}}
        data = await self._call("POST", service_url, "v3/conversations", body)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ConnectorError(502, "the connector opened no conversation")
        return str(data["id"])

    async def roster(self, service_url: str, conversation: str) -> list[dict[str, Any]]:
        """Every member of a team or chat (``id`` is the MRI; ``aadObjectId``,
        ``userPrincipalName``, ...), page by page."""
        members: list[dict[str, Any]] = []
        path = f"v3/conversations/{quote(conversation, safe='')}/pagedmembers?pageSize=500"
        token: str | None = None
        while True:
            more = "" if token is None else f"&continuationToken={quote(token, safe='')}"
            data = await self._call("GET", service_url, path + more, None)
            page = data.get("members") if isinstance(data, dict) else None
            members.extend(m for m in page or () if isinstance(m, dict))
            token = data.get("continuationToken") if isinstance(data, dict) else None
            if not token or not page:
                return members

    async def _call(self, method: str, service_url: str, path: str,
                    body: dict[str, Any] | None) -> Any:  # fmt: skip
        url = service_url.rstrip("/") + "/" + path
        headers = {"Authorization": f"Bearer {await self.token()}"}
        async with self._session.request(
            method, url, json=body, headers=headers, timeout=_TIMEOUT
        ) as answer:
            if answer.status >= 300:
                text = (await answer.text())[:300]
                raise ConnectorError(answer.status, text, _retry_after(answer.headers))
            if answer.content_length == 0:
                return None
            return await answer.json(content_type=None)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return 1.0
