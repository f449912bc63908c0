"""Teams hosting on the Microsoft 365 Agents SDK for Python (``microsoft-agents-*``), the
default :class:`~bot.teams_hosting.TeamsHosting`.

Incoming. The SDK's ``JwtTokenValidator`` verifies the token (RS256 signature, ``aud`` the
app id, the metadata's issuer, ``exp`` and ``nbf`` with five minutes' leeway). The SDK
looks signing keys up at Microsoft's public-cloud JWKS by the token's issuer; here it is
handed the key from ``teams.openid_metadata`` instead (:class:`~bot.teams_auth.ChannelKeys`:
fetched with aiohttp, never blocking the loop, endorsed for the activity's channel), so a
sovereign cloud's metadata, or a test's, is the one trusted.
:func:`~bot.teams_auth.check_claims` adds what the validator leaves to the bot. The body
is parsed as the SDK's ``Activity``.

Outgoing. The SDK's connector client (aiohttp, one session per ``serviceUrl``) with the
bot's token from MSAL (:mod:`bot.teams_token`); activities go through the SDK's
``Activity`` model, members come back as its ``ChannelAccount``. A refusal is
:class:`~bot.teams_hosting.ConnectorError`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp
import jwt
import pydantic
from microsoft_agents.activity import Activity, ConversationParameters
from microsoft_agents.hosting.core import AgentAuthConfiguration
from microsoft_agents.hosting.core.authorization import JwtTokenValidator
from microsoft_agents.hosting.core.authorization.jwt.jwt_token_validator import _JwkClientManager
from microsoft_agents.hosting.core.connector.client import ConnectorClient
from microsoft_agents.hosting.core.connector.client.connector_client import (
    ConversationsOperations,
)

from bot.teams_auth import ChannelKeys, bearer_token, check_claims
from bot.teams_hosting import TIMEOUT, ConnectorError, Unauthenticated, is_activity, retry_after
from bot.teams_token import BotToken
from jitgate.config import TeamsSettings

T = TypeVar("T")
# The SDK cuts conversation ids to 150 characters by default; Teams' are not cut.
_LONGEST_CONVERSATION_ID = 4096
_PAGE = 500


class _ChannelKey(_JwkClientManager):
    """The signing key the SDK's validator asks for: the one from ``teams.openid_metadata``
    already chosen for the token; the URI the SDK would fetch it from is not used."""

    def __init__(self, key: dict[str, Any]) -> None:
        self._key = jwt.PyJWK(key, algorithm="RS256")

    async def get_signing_key(self, jwks_uri: str, header: dict[str, Any]) -> jwt.PyJWK:
        return self._key


class AgentsSdkHosting:
    def __init__(self, settings: TeamsSettings) -> None:
        self._settings = settings
        self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        self._keys = ChannelKeys(settings, self._session)
        self._token = BotToken(settings)
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    async def close(self) -> None:
        for session in (self._session, *self._sessions.values()):
            await session.close()
        self._token.close()

    # -- incoming -----------------------------------------------------------------------------

    async def authenticate(
        self, authorization: str | None, activity: dict[str, Any]
    ) -> dict[str, Any]:
        token = bearer_token(authorization)
        channel = str(activity.get("channelId") or "")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            issuer, key = await self._keys.signing_key(kid, channel)
            validator = JwtTokenValidator(AgentAuthConfiguration(
                client_id=self._settings.app_id, issuers=[issuer], validate_issuer=True,
            ))  # fmt: skip
            validator._jwk_client_manager = _ChannelKey(key)
            identity = await validator.validate_token(token)
        except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
            raise Unauthenticated(f"the token does not verify: {type(exc).__name__}") from exc
        return check_claims(dict(identity.claims), issuer, activity, self._settings)

    def parse(self, body: object) -> dict[str, Any] | None:
        if not is_activity(body):
            return None
        assert isinstance(body, dict)
        try:
            Activity.model_validate(body)
        except Exception:  # the model refuses some activities with a bare Exception too
            return None
        return body

    # -- outgoing -----------------------------------------------------------------------------

    async def token(self) -> str:
        return await self._token.get()

    async def send(self, service_url: str, conversation: str, activity: dict[str, Any],
                   reply_to: str | None = None) -> str | None:  # fmt: skip
        operations = await self._conversations(service_url)
        if reply_to is None:
            body = Activity.model_validate(activity)
            sent = await _called(operations.send_to_conversation(conversation, body))
        else:
            body = Activity.model_validate({**activity, "replyToId": reply_to})
            sent = await _called(operations.reply_to_activity(conversation, reply_to, body))
        return sent.id or None

    async def update(self, service_url: str, conversation: str, activity_id: str,
                     activity: dict[str, Any]) -> None:  # fmt: skip
        operations = await self._conversations(service_url)
        body = Activity.model_validate({**activity, "id": activity_id})
        await _called(operations.update_activity(conversation, activity_id, body))

    async def member(self, service_url: str, conversation: str, user_id: str) -> dict[str, Any]:
        operations = await self._conversations(service_url)
        found = await _called(operations.get_conversation_member(conversation, user_id))
        return found.model_dump(by_alias=True, exclude_unset=True, mode="json")

    async def open_personal(self, service_url: str, bot_id: str, user_id: str,
                            tenant: str | None) -> str:  # fmt: skip
        body: dict[str, Any] = {"bot": {"id": bot_id}, "members": [{"id": user_id}],
                                "isGroup": False}  # fmt: skip
        if tenant is not None:
            body |= {"tenantId": tenant, "channelData": {"tenant": {"id": tenant}}}
        parameters = ConversationParameters.model_validate(body)
        operations = await self._conversations(service_url)
        opened = await _called(operations.create_conversation(parameters))
        if not opened.id:
            raise ConnectorError(502, "the connector opened no conversation")
        return opened.id

    async def roster(self, service_url: str, conversation: str) -> list[dict[str, Any]]:
        operations = await self._conversations(service_url)
        members: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await _called(
                operations.get_conversation_paged_members(conversation, _PAGE, token)
            )
            members.extend(m.model_dump(by_alias=True, exclude_unset=True, mode="json")
                           for m in page.members or ())  # fmt: skip
            token = page.continuation_token
            if not token or not page.members:
                return members

    async def _conversations(self, service_url: str) -> ConversationsOperations:
        """The SDK's conversation operations at ``service_url``, with the bot's token."""
        base = service_url.rstrip("/") + "/"
        session = self._sessions.get(base)
        if session is None:
            session = self._sessions[base] = aiohttp.ClientSession(base_url=base, timeout=TIMEOUT)
        client = ConnectorClient(base, await self.token(), session=session)
        return ConversationsOperations(
            client.client, max_conversation_id_length=_LONGEST_CONVERSATION_ID
        )


async def _called(call: Awaitable[T]) -> T:
    """The answer of one SDK connector call; a refusal as :class:`ConnectorError`."""
    try:
        return await call
    except aiohttp.ClientResponseError as refused:
        raise ConnectorError(refused.status, refused.message[:300],
                             retry_after(refused.headers or {})) from refused  # fmt: skip
    except pydantic.ValidationError as exc:
        raise ConnectorError(502, f"the connector's answer is not understood: {exc}") from exc
