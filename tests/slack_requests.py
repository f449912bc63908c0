"""Requests into the gateway's ``POST /slack/events``, built from the recorded payloads in
``tests/fixtures/slack`` and signed exactly as Slack signs them.

Slack sends ``application/x-www-form-urlencoded`` bodies: a slash command's fields
directly, an interaction (``block_actions``, ``view_submission``) as one ``payload`` field
holding JSON. It signs ``v0:{X-Slack-Request-Timestamp}:{raw body}`` with HMAC-SHA256 under
the app's signing secret and sends ``X-Slack-Signature: v0=<hex digest>``. Send a request
with ``session.post(url, data=request.body, headers=request.headers)``; change ``body``
after signing, or sign with a stale ``timestamp``, to test refusals. As in Slack, every
command, click and modal gets a ``trigger_id`` (and a modal a ``view.id``) of its own
unless one is given: the gateway takes a delivery with a trigger it has seen as a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from bot.messages import (
    DECISION_BLOCK,
    REJECT_CALLBACK,
    REJECT_REASON_ACTION,
    REJECT_REASON_BLOCK,
)
from tests.slack_workspace import fixture

ALICE = "U012ALICE"
BOB = "U034BOB"
_SERIAL = itertools.count(1)


def fresh_trigger() -> str:
    """A ``trigger_id`` no other request here has had."""
    return f"{next(_SERIAL)}.{time.time_ns()}.0d7a3e9b1f0e2a0c"


@dataclass(frozen=True)
class SlackRequest:
    """A signed request: the raw ``body``, its ``headers``, and the fields or interaction
    ``payload`` it carries (for assertions)."""

    body: bytes
    headers: dict[str, str]
    payload: dict[str, Any]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v0=`` and the hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` under ``secret``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed(secret: str, body: bytes, payload: dict[str, Any], timestamp: int | None = None
           ) -> SlackRequest:  # fmt: skip
    """``body`` with Slack's headers; ``timestamp`` defaults to now (Slack's clock)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature(secret, stamp, body),
    }
    return SlackRequest(body, headers, payload)


def _interaction(secret: str, payload: dict[str, Any], timestamp: int | None) -> SlackRequest:
    body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
    return signed(secret, body, payload, timestamp)


def slash_command(
    secret: str, text: str, *, user_id: str = ALICE, user_name: str = "alice",
    response_url: str | None = None, timestamp: int | None = None, **fields: str,
) -> SlackRequest:  # fmt: skip
    """``/jit TEXT`` typed by ``user_id``; ``fields`` override any other form field
    (``channel_id``, ``trigger_id``, ...)."""
    form: dict[str, Any] = fixture("slash_command")
    form["trigger_id"] = fresh_trigger()
    form.update(text=text, user_id=user_id, user_name=user_name, **fields)
    if response_url is not None:
        form["response_url"] = response_url
    return signed(secret, urlencode(form).encode(), form, timestamp)


def block_action(
    secret: str, action: Literal["approve", "reject"], request_id: int | str, *,
    user_id: str = BOB, user_name: str = "bob", channel_id: str | None = None,
    message_ts: str | None = None, response_url: str | None = None, timestamp: int | None = None,
    trigger_id: str | None = None,
) -> SlackRequest:  # fmt: skip
    """A click on the card's Approve or Reject button for ``request_id`` by ``user_id``;
    ``channel_id``/``message_ts`` name the card (from the fake's ``chat.postMessage``);
    ``trigger_id`` tells one click from another (Slack gives each click its own)."""
    payload = fixture("block_actions")
    clicked = payload["actions"][0]
    clicked.update(action_id=action, block_id=DECISION_BLOCK, value=str(request_id))
    clicked["text"]["text"] = action.title()
    clicked["style"] = "primary" if action == "approve" else "danger"
    payload["user"].update(id=user_id, username=user_name, name=user_name)
    if channel_id is not None:
        payload["channel"]["id"] = payload["container"]["channel_id"] = channel_id
    if message_ts is not None:
        payload["container"]["message_ts"] = payload["message"]["ts"] = message_ts
    if response_url is not None:
        payload["response_url"] = response_url
    payload["trigger_id"] = trigger_id or fresh_trigger()
    return _interaction(secret, payload, timestamp)


def view_submission(
    secret: str, request_id: int | str, reason: str, *, user_id: str = BOB,
    user_name: str = "bob", timestamp: int | None = None, view_id: str | None = None,
) -> SlackRequest:  # fmt: skip
    """The reject-reason modal for ``request_id`` submitted by ``user_id`` with ``reason``;
    ``view_id`` names the modal (Slack gives each one opened its own)."""
    payload = fixture("view_submission")
    payload["trigger_id"] = fresh_trigger()
    payload["user"].update(id=user_id, username=user_name, name=user_name)
    view = payload["view"]
    view.update(callback_id=REJECT_CALLBACK, private_metadata=str(request_id),
                id=view_id or f"V0REJECT{next(_SERIAL)}")  # fmt: skip
    view["state"]["values"] = {
        REJECT_REASON_BLOCK: {REJECT_REASON_ACTION: {"type": "plain_text_input", "value": reason}}
    }
    return _interaction(secret, payload, timestamp)
