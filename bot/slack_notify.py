"""Slack as a :class:`~approvals.model.Notifier`: turns the core's events into outbox rows.

Each event queues what Slack must show, under a key that makes it happen once however many
gateways hear of it: the card (``card:ID``) in the resource's ``notify.slack`` channel, an
update of it on every change (:meth:`~bot.slack_outbox.SlackOutbox.rearm`), the result in
its thread (``reply:ID``, and ``file:ID`` when the preview does not fit), a reminder in the
thread (``reminder:ID``) and a DM to the requester when the request ends
(``dm:ID:STATE``). Resources without a Slack channel get no card, but their requesters
still get the DMs. Everything shown passes :func:`approvals.display.shown` first: masked again at
the edge, as the REST API does, whatever path produced the outcome.
"""

from __future__ import annotations

from approvals.display import shown
from approvals.model import RequestView, State
from bot.messages import reminder as reminder_message
from bot.messages import requester_dm, result_file, result_reply
from bot.slack_outbox import SlackOutbox
from jitgate.config import Config

# States a requester hears about: the request will not move any more.
_TOLD = frozenset((State.REJECTED, State.EXPIRED, State.EXECUTED, State.FAILED))


class SlackNotifier:
    name = "slack"

    def __init__(self, config: Config, outbox: SlackOutbox) -> None:
        self._config = config
        self._outbox = outbox

    def _shown(self, request: RequestView) -> RequestView:
        return shown(self._config, request)

    def where(self, request: RequestView) -> str | None:
        """The id of the channel the card goes to (``C0APPROVALS``), if the resource has one."""
        resource = self._config.resources.get(request.resource)
        return resource.notify_slack if resource is not None else None

    async def request_opened(self, request: RequestView) -> None:
        channel = self.where(request)
        if channel is not None:
            await self._outbox.put(
                f"card:{request.id}", "card", request_id=request.id, channel=channel
            )

    async def request_changed(self, request: RequestView) -> None:
        if self.where(request) is not None:
            await self._outbox.rearm(request.id)
        await self._tell_requester(request)

    async def request_finished(self, request: RequestView) -> None:
        if self.where(request) is not None:
            await self._outbox.rearm(request.id)
            visible = self._shown(request)
            ran_in = request.outcome.session_id if request.outcome is not None else None
            session = ran_in or request.session_id
            url = f"{self._config.public_url}/sessions/{session}" if session else None
            await self._outbox.put(f"reply:{request.id}", "reply", request_id=request.id,
                                   body=result_reply(visible, url))  # fmt: skip
            attachment = result_file(visible)
            if attachment is not None:
                name, content = attachment
                await self._outbox.put(f"file:{request.id}", "file", request_id=request.id,
                                       body={"filename": name, "title": name,
                                             "content": content})  # fmt: skip
        await self._tell_requester(request)

    async def reminder(self, request: RequestView) -> None:
        if self.where(request) is not None:
            # Broadcast: a nudge only in the thread would reach nobody who is not in it yet.
            body = {**reminder_message(self._shown(request)), "reply_broadcast": True}
            await self._outbox.put(
                f"reminder:{request.id}", "reply", request_id=request.id, body=body
            )

    async def _tell_requester(self, request: RequestView) -> None:
        if request.state in _TOLD:
            await self._outbox.put(
                f"dm:{request.id}:{request.state}", "dm", request_id=request.id,
                recipient=request.requester, body=requester_dm(self._shown(request)),
            )  # fmt: skip
