"""Slack's side of the notification plan (:mod:`notify.plan`): the bodies it queues already
rendered. The result goes to the card's thread as a reply, with the masked preview as a
file (``file:ID``) when the reply cannot show every previewed row; a reminder is broadcast
from the thread, since a nudge only in the thread would reach nobody who is not in it yet;
the requester's message is a DM."""

from __future__ import annotations

from typing import Any

from approvals.model import RequestView
from bot.messages import reminder, requester_dm, result_file, result_reply
from jitgate.config import Config
from notify.outbox import Outbox
from notify.plan import ChatNotifier


class SlackRenderer:
    def result(
        self, request: RequestView, session_url: str | None
    ) -> list[tuple[str, dict[str, Any]]]:
        bodies: list[tuple[str, dict[str, Any]]] = [("reply", result_reply(request, session_url))]
        attachment = result_file(request)
        if attachment is not None:
            name, content = attachment
            bodies.append(("file", {"filename": name, "title": name, "content": content}))
        return bodies

    def reminder(self, request: RequestView) -> dict[str, Any]:
        return {**reminder(request), "reply_broadcast": True}

    def requester_message(self, request: RequestView) -> dict[str, Any]:
        return requester_dm(request)


def slack_notifier(config: Config, outbox: Outbox) -> ChatNotifier:
    """Cards in each resource's ``notify.slack`` channel."""
    return ChatNotifier("slack", config, outbox, SlackRenderer(), lambda r: r.notify_slack)
