"""Slack, jitgate's primary control surface: a slack-bolt :class:`AsyncApp` served from the
gateway's own aiohttp application, over the chat-neutral approvals core.

Incoming. Over HTTP, Slack POSTs slash commands and interactions to ``/slack/events``
(:meth:`SlackAdapter.handle`). The signature is checked before anything else: HMAC-SHA256
of ``v0:{timestamp}:{raw body}`` under ``slack.signing_secret``, with the timestamp within
five minutes of now. A forged or stale request gets 401 and runs nothing;
:data:`SIGNATURE_ALERT_AFTER` failures within :data:`SIGNATURE_WINDOW` seconds raise one
``signature_failure`` alert (at most one per window and gateway). With ``slack.app_token``
the same app also takes events over Socket Mode, for gateways without an inbound port; it
connects in the background and keeps retrying, so the gateway serves even while Slack is
out of reach. Over HTTP, a malformed body gets 400 and a repeated delivery acts once
(:mod:`bot.slack_inbound`, :mod:`notify.deliveries`). Listeners acknowledge at once
and work in tasks (:mod:`bot.slack_handlers`).

Outgoing. What jitgate posts on its own (cards and their updates, threaded results, DMs,
alerts) goes through the outbox (:mod:`notify.outbox`), which survives restarts and
retries. What answers a person who is waiting (``users.info``, ``views.open``, ephemeral
replies) is sent at once by a client that retries a 429 or a 5xx once or twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from approvals.display import shown
from approvals.model import Alert, RequestView
from approvals.service import Approvals
from bot import messages as m
from bot.slack_delivery import SlackDelivery
from bot.slack_handlers import SlackHandlers
from bot.slack_identity import SlackDirectory
from bot.slack_inbound import MalformedDelivery, read_delivery
from bot.slack_notify import slack_notifier
from jitgate.config import Config, SlackSettings
from jitgate.errors import StoreUnavailable
from notify.alerts import ChatAlerts
from notify.commands import ChatCommand
from notify.deliveries import Deliveries
from notify.outbox import Outbox

log = logging.getLogger("jitgate.slack")

SIGNATURE_ALERT_AFTER = 3
SIGNATURE_WINDOW = 60.0
SOCKET_RETRY_MAX = 60.0


def web_client(settings: SlackSettings, *, interactive: bool) -> AsyncWebClient:
    """A Web API client for ``settings.api_url``. Interactive ones retry 429 and 5xx
    themselves; the outbox's do not, because the outbox retries durably."""
    handlers: list[AsyncRetryHandler] = [AsyncConnectionErrorRetryHandler()]
    if interactive:
        handlers += [
            AsyncRateLimitErrorRetryHandler(max_retry_count=1),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ]
    base_url = settings.api_url if settings.api_url.endswith("/") else settings.api_url + "/"
    return AsyncWebClient(
        token=settings.bot_token, base_url=base_url, timeout=10, retry_handlers=handlers
    )


class SlackAdapter:
    """Everything Slack in one gateway. Construct with ``slack.bot_token`` set, then hand
    :attr:`notifier` and :attr:`alerts` to the approvals core, mount :meth:`handle` at
    ``POST /slack/events``, and :meth:`start` / :meth:`stop` it with the gateway."""

    def __init__(self, config: Config, approvals: Approvals) -> None:
        settings = config.slack
        if not settings.bot_token:
            raise ValueError("the Slack adapter needs slack.bot_token")
        self._config = config
        self._approvals = approvals
        client = web_client(settings, interactive=True)
        self.directory = SlackDirectory(client, config, approvals.directory)
        delivery = SlackDelivery(
            web_client(settings, interactive=False), self._view, self.directory
        )
        self.outbox = Outbox(approvals.pool, "slack", delivery)
        self._deliveries = Deliveries(approvals.pool)
        self.notifier = slack_notifier(config, self.outbox)
        self.alerts = ChatAlerts(config.alerts_slack, self.outbox) if config.alerts_slack else None
        # Signatures are checked in handle(), where failures can be counted; Socket Mode
        # traffic arrives over a connection the app token authenticated.
        self.app = AsyncApp(client=client, signing_secret=settings.signing_secret or "",
                            request_verification_enabled=False, process_before_response=True,
                            logger=logging.getLogger("jitgate.slack.bolt"))  # fmt: skip
        command = ChatCommand(approvals, self.directory, "slack", self.notifier.where)
        SlackHandlers(approvals, self.directory, self.outbox, client, command).register(self.app)
        secret = settings.signing_secret
        self._verifier = SignatureVerifier(secret) if secret else None
        self._failures: deque[float] = deque()
        self._alerted_at = -SIGNATURE_WINDOW
        self.socket_mode: AsyncSocketModeHandler | None = None
        self._socket_task: asyncio.Task[None] | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/slack/events", self.handle)]

    async def _view(self, request_id: int) -> RequestView | None:
        view = await self._approvals.store.view(request_id)
        return None if view is None else shown(self._config, view)

    async def start(self) -> None:
        self.outbox.start()
        if self._config.slack.app_token:
            self.socket_mode = AsyncSocketModeHandler(self.app, self._config.slack.app_token)
            self._socket_task = asyncio.create_task(self._connect(), name="slack-socket-mode")

    async def stop(self) -> None:
        if self._socket_task is not None:
            self._socket_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._socket_task
        if self.socket_mode is not None:
            with contextlib.suppress(Exception):
                await self.socket_mode.close_async()  # type: ignore[no-untyped-call]
        await self.outbox.stop()

    async def _connect(self) -> None:
        assert self.socket_mode is not None
        delay = 1.0
        while True:
            try:
                await self.socket_mode.connect_async()  # type: ignore[no-untyped-call]
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("slack socket mode cannot connect; retrying",
                            extra={"error": error, "in_s": delay})  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, SOCKET_RETRY_MAX)
            else:
                log.info("slack socket mode connected")
                return

    async def handle(self, request: web.Request) -> web.Response:
        """``POST /slack/events``: 401 unless Slack signed it in the last five minutes; 400
        and the reason when the body is not what Slack sends (:mod:`bot.slack_inbound`);
        200 and nothing done when the same delivery was taken already, by this gateway or
        another (a slash command's answer says so, as Slack shows it to the person); 503
        when the store cannot tell."""
        body = await request.read()
        if not self._signed(body, request.headers):
            self._bad_signature(request.remote)
            return web.Response(status=401, text="invalid signature")
        try:
            delivery = read_delivery(body, request.content_type)
            first = await self._deliveries.take(delivery.keys)
        except MalformedDelivery as bad:
            log.warning("malformed slack delivery refused",
                        extra={"remote": request.remote, "reason": str(bad)})  # fmt: skip
            return web.Response(status=400, text=f"malformed Slack delivery: {bad}")
        except StoreUnavailable as down:
            log.error("slack delivery refused: the store is unreachable",
                      extra={"error": str(down)})  # fmt: skip
            return web.Response(status=503, text="the gateway's store is unreachable")
        if not first:
            log.info("repeated slack delivery ignored",
                     extra={"remote": request.remote,
                            "retry": request.headers.get("X-Slack-Retry-Num")})  # fmt: skip
            return web.Response(text=m.duplicate_delivery() if delivery.command else "")
        # slack-bolt gets the fields as read here, as JSON: its own reading of a form takes
        # any body containing the word "payload" for an interaction.
        headers: dict[str, str | Sequence[str]] = {
            k: v for k, v in request.headers.items() if k.lower() != "content-type"
        }
        headers["Content-Type"] = "application/json"
        bolt_request = AsyncBoltRequest(
            body=json.dumps(delivery.fields), query=request.query_string, headers=headers
        )
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    def _signed(self, body: bytes, headers: Mapping[str, str]) -> bool:
        if self._verifier is None:
            return False
        try:
            return self._verifier.is_valid(
                body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
            )
        except ValueError:  # a timestamp that is not a number
            return False

    def _bad_signature(self, remote: str | None) -> None:
        now = time.monotonic()
        self._failures.append(now)
        while self._failures[0] < now - SIGNATURE_WINDOW:
            self._failures.popleft()
        log.warning("slack request with a bad or stale signature refused",
                    extra={"remote": remote})  # fmt: skip
        if len(self._failures) >= SIGNATURE_ALERT_AFTER and (
            now - self._alerted_at >= SIGNATURE_WINDOW
        ):
            self._alerted_at = now
            self._approvals.emit(
                Alert("signature_failure",
                      f"{len(self._failures)} requests to /slack/events in the last minute had"
                      f" a bad or stale Slack signature (the last from {remote or 'unknown'})")
            )  # fmt: skip
