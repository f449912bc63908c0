"""What jitgate does when people act in Slack: ``/jit``, the card's Approve and Reject
buttons, and the reject-reason modal.

Every listener acknowledges at once and hands the work to :meth:`Approvals.spawn`: Slack
wants its answer within 3 s, and the work (a Slack lookup, a statement) may take longer.
The work answers the person privately, through the command's or click's ``response_url``
or, for the modal, ``chat.postEphemeral`` under the card. Nothing changes unless the core
accepts it: a Slack user acts only as the identity :mod:`bot.slack_identity` maps them to,
button values carry only the request id, and every rule is checked by
:meth:`Approvals.decide` or :meth:`Approvals.ask`. Any failure gets a private "try again".
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from approvals.service import Approvals
from bot import messages as m
from bot.slack_commands import unescape
from bot.slack_identity import SlackDirectory
from notify.access import refusal
from notify.commands import ChatCommand, parse_request_id
from notify.outbox import Outbox

log = logging.getLogger("jitgate.slack")

Reply = Callable[[str], Awaitable[Any]]


def _private(respond: AsyncRespond) -> Reply:
    async def reply(text: str) -> None:
        await respond(text=text, response_type="ephemeral", replace_original=False)

    return reply


class SlackHandlers:
    def __init__(self, approvals: Approvals, directory: SlackDirectory, outbox: Outbox,
                 client: AsyncWebClient, command: ChatCommand) -> None:  # fmt: skip
        self._approvals = approvals
        self._directory = directory
        self._outbox = outbox
        self._client = client
        self._command = command

    def register(self, app: AsyncApp) -> None:
        app.command("/jit")(self.jit)
        app.action({"block_id": m.DECISION_BLOCK, "action_id": m.APPROVE_ACTION})(self.approve)
        app.action({"block_id": m.DECISION_BLOCK, "action_id": m.REJECT_ACTION})(self.reject)
        app.view(m.REJECT_CALLBACK)(self.reject_reason)

    # Listeners: bolt passes arguments by parameter name.

    async def jit(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        user = str(body.get("user_id", ""))
        text = unescape(str(body.get("text") or ""))
        self._spawn(self._command.run(user, text), _private(respond))

    async def approve(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        request_id = parse_request_id(body["actions"][0].get("value"))
        if request_id is not None:
            work = self._command.decide(body["user"]["id"], request_id, "approve", None)
            self._spawn(work, _private(respond))

    async def reject(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        request_id = parse_request_id(body["actions"][0].get("value"))
        if request_id is not None:
            work = self._open_reject(body["user"]["id"], request_id, str(body["trigger_id"]))
            self._spawn(work, _private(respond))

    async def reject_reason(self, ack: AsyncAck, body: dict[str, Any],
                            view: dict[str, Any]) -> None:  # fmt: skip
        await ack()
        user, request_id = body["user"]["id"], parse_request_id(view.get("private_metadata"))
        if request_id is None:
            return
        field = view["state"]["values"][m.REJECT_REASON_BLOCK][m.REJECT_REASON_ACTION]
        reason = str(field.get("value") or "").strip() or None

        async def tell(text: str) -> None:
            await self._tell(user, request_id, text)

        self._spawn(self._command.decide(user, request_id, "reject", reason), tell)

    # The work, after the ack.

    def _spawn(self, work: Coroutine[Any, Any, str | None], reply: Reply) -> None:
        async def run() -> None:
            try:
                text = await work
            except Exception:
                log.exception("slack interaction failed")
                text = m.try_again_later()
            if text:
                await reply(text)

        self._approvals.spawn(run())

    async def _open_reject(self, user: str, request_id: int, trigger_id: str) -> str | None:
        person = await self._directory.person(user)
        if person.identity is None:
            return m.unknown_user(person.email)
        view = await self._approvals.store.view(request_id)
        if view is None:
            return m.unknown_request(request_id)
        # Spare people a modal whose submission could only be refused; decide() still
        # checks everything when the reason comes back (and alerts on a self-approval).
        refused = refusal(self._approvals.directory, person.identity, view)
        if refused == "already_decided":
            return m.already_decided(request_id, view.state)
        if refused == "not_approver":
            return m.not_an_approver(request_id, view.approver_groups)
        await self._client.views_open(trigger_id=trigger_id, view=m.reject_modal(request_id))
        return None

    async def _tell(self, user: str, request_id: int, text: str) -> None:
        """A private note to ``user`` under the request's card, else in their DM with us."""
        card = await self._outbox.card(request_id)
        if card is None:
            await self._client.chat_postMessage(channel=user, text=text)
        else:
            await self._client.chat_postEphemeral(channel=card[0], user=user, text=text)
