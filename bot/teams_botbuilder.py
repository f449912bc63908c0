"""Teams hosting on botbuilder 4.17 (the Bot Framework SDK for Python, archived by
Microsoft), for a deployment that needs it: ``teams.hosting: botbuilder``, installed by
``pip install 'jitgate[botbuilder]'``.

Incoming. botframework-connector's ``ChannelValidation`` verifies the token against the keys
``teams.openid_metadata`` announces (its ``open_id_metadata_endpoint``, process-wide):
RS256 signature, the key's endorsement of the channel, the public cloud's issuer
``https://api.botframework.com`` (botbuilder names no other for a channel), ``aud`` the app
id, the lifetime with five minutes' skew and the ``serviceUrl`` claim.
botbuilder reads that metadata with a blocking HTTP client inside its coroutines, so the
whole validation runs on an event loop of its own in a worker thread. Whatever it raises
is :class:`~bot.teams_hosting.Unauthenticated` (it raises bare ``Exception`` too), and
:func:`~bot.teams_auth.check_claims` adds the expiry and tenant checks. The body is parsed
as botbuilder's ``Activity``.

Outgoing. botframework-connector's async connector client (msrest, which sends with
requests in worker threads; one per ``serviceUrl``, msrest's own retries off: the outbox
retries) signed by botbuilder's ``MicrosoftAppCredentials``, whose MSAL client is
the one :mod:`bot.teams_token` makes for ``teams.token_endpoint``; the token is fetched in
a worker thread before each call, so the credentials sign from MSAL's cache without
blocking. Members are read as ``TeamsChannelAccount``, as botbuilder's ``TeamsInfo`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from contextlib import AsyncExitStack
from typing import Any, TypeVar

from botbuilder.schema import Activity, ChannelAccount, ConversationParameters
from botbuilder.schema.teams import TeamsChannelAccount
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    AuthenticationConstants,
    ChannelValidation,
    MicrosoftAppCredentials,
    SimpleCredentialProvider,
)
from msrest.exceptions import ClientRequestError, HttpOperationError

from bot.teams_auth import bearer_token, check_claims
from bot.teams_hosting import SCOPE, ConnectorError, Unauthenticated, is_activity, retry_after
from bot.teams_token import MsalClient, unreachable_authority
from jitgate.config import TeamsSettings

T = TypeVar("T")
_PAGE = 500


class BotbuilderHosting:
    def __init__(self, settings: TeamsSettings) -> None:
        self._settings = settings
        ChannelValidation.open_id_metadata_endpoint = settings.openid_metadata
        self._app_ids = SimpleCredentialProvider(settings.app_id, "")
        self._msal = MsalClient(settings)
        self._credentials = MicrosoftAppCredentials(
            settings.app_id, settings.app_password or "",
            oauth_scope=SCOPE.removesuffix("/.default"),
        )  # fmt: skip
        self._credentials.oauth_endpoint = self._msal.authority
        self._clients: dict[str, ConnectorClient] = {}
        self._open = AsyncExitStack()

    async def close(self) -> None:
        await self._open.aclose()
        self._msal.close()

    # -- incoming -----------------------------------------------------------------------------

    async def authenticate(
        self, authorization: str | None, activity: dict[str, Any]
    ) -> dict[str, Any]:
        header = f"Bearer {bearer_token(authorization)}"
        service_url = str(activity.get("serviceUrl") or "")
        channel = str(activity.get("channelId") or "")
        validation = ChannelValidation.authenticate_channel_token_with_service_url(
            header, self._app_ids, service_url, channel
        )
        try:
            identity = await asyncio.to_thread(_run_apart, validation)
        except Exception as exc:  # botbuilder refuses with bare Exception as well
            raise Unauthenticated(f"the token does not verify: {type(exc).__name__}") from exc
        issuer = AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER
        return check_claims(dict(identity.claims), issuer, activity, self._settings)

    def parse(self, body: object) -> dict[str, Any] | None:
        if not is_activity(body):
            return None
        assert isinstance(body, dict)
        try:
            Activity().deserialize(body)
        except Exception:  # msrest's DeserializationError, or what a model's setter raises
            return None
        return body

    # -- outgoing -----------------------------------------------------------------------------

    async def token(self) -> str:
        return await asyncio.to_thread(self._signed_token)

    def _signed_token(self) -> str:
        """The credentials' token (in a worker thread: MSAL blocks)."""
        with unreachable_authority():
            if self._credentials.app is None:
                self._credentials.app = self._msal.get()
            try:
                return str(self._credentials.get_access_token())
            except PermissionError as refused:
                raise ConnectorError(401, f"the bot's token was refused: {refused}") from refused

    async def send(self, service_url: str, conversation: str, activity: dict[str, Any],
                   reply_to: str | None = None) -> str | None:  # fmt: skip
        operations = (await self._client(service_url)).conversations
        if reply_to is None:
            body = Activity().deserialize(activity)
            sent = await _called(operations.send_to_conversation(conversation, body))
        else:
            body = Activity().deserialize({**activity, "replyToId": reply_to})
            sent = await _called(operations.reply_to_activity(conversation, reply_to, body))
        return str(sent.id) if sent is not None and sent.id else None

    async def update(self, service_url: str, conversation: str, activity_id: str,
                     activity: dict[str, Any]) -> None:  # fmt: skip
        operations = (await self._client(service_url)).conversations
        body = Activity().deserialize({**activity, "id": activity_id})
        await _called(operations.update_activity(conversation, activity_id, body))

    async def member(self, service_url: str, conversation: str, user_id: str) -> dict[str, Any]:
        operations = (await self._client(service_url)).conversations
        found = await _called(operations.get_conversation_member(conversation, user_id))
        member = TeamsChannelAccount().deserialize(
            dict(found.serialize(), **(found.additional_properties or {}))
        )
        return dict(member.serialize())

    async def open_personal(self, service_url: str, bot_id: str, user_id: str,
                            tenant: str | None) -> str:  # fmt: skip
        parameters = ConversationParameters(
            bot=ChannelAccount(id=bot_id), members=[ChannelAccount(id=user_id)], is_group=False,
            tenant_id=tenant, channel_data=None if tenant is None else {"tenant": {"id": tenant}},
        )  # fmt: skip
        operations = (await self._client(service_url)).conversations
        opened = await _called(operations.create_conversation(parameters))
        if opened is None or not opened.id:
            raise ConnectorError(502, "the connector opened no conversation")
        return str(opened.id)

    async def roster(self, service_url: str, conversation: str) -> list[dict[str, Any]]:
        operations = (await self._client(service_url)).conversations
        members: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await _called(
                operations.get_teams_conversation_paged_members(conversation, _PAGE, token)
            )
            members.extend(dict(m.serialize()) for m in page.members or ())
            token = page.continuation_token
            if not token or not page.members:
                return members

    async def _client(self, service_url: str) -> ConnectorClient:
        """botbuilder's connector client for ``service_url``, its token fresh in MSAL's
        cache."""
        await self.token()
        client = self._clients.get(service_url)
        if client is None:
            client = ConnectorClient(self._credentials, service_url)
            # The outbox retries (and waits out a 429) itself; msrest's own retries would
            # hide the connector's answer from it.
            client.config.retry_policy.retries = 0
            client.config.retry_policy.policy.status_forcelist = frozenset()
            self._clients[service_url] = await self._open.enter_async_context(client)
        return client


def _run_apart(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end on an event loop of its own (in a worker thread)."""
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        return runner.run(coroutine)


async def _called(call: Awaitable[T]) -> T:
    """The answer of one botbuilder connector call; a refusal as :class:`ConnectorError`."""
    try:
        return await call
    except HttpOperationError as refused:
        response = refused.response
        status = int(getattr(response, "status_code", 502) or 502)
        headers = getattr(response, "headers", None) or {}
        raise ConnectorError(status, str(refused)[:300], retry_after(headers)) from refused
    except ClientRequestError as exc:
        raise ConnectorError(503, f"the connector cannot be reached: {exc}") from exc
