"""What a signed delivery to ``/slack/events`` must look like before anything acts on it,
and the keys that tell a repeated delivery from a new one.

Shape. Slack sends a slash command as form fields and an interaction as one ``payload``
form field holding a JSON object (its documented contract). :func:`read_delivery` checks
the fields jitgate and slack-bolt read: the body is UTF-8; an interaction's payload is a
JSON object with a string ``type`` and a ``user`` object with an ``id``;
``block_actions`` carry at least one action object; a ``view_submission`` carries a
``view`` with ``state.values`` (and, for the reject modal, the reason field); a slash
command names its ``command`` and ``user_id``. Anything else raises
:class:`MalformedDelivery` with a one-line reason.

Why 400 and not Slack's "200 with a private message": Slack never sends these shapes, so
no person is waiting on one in Slack (a signed one comes from whoever holds the signing
secret, or a broken proxy). The caller gets 400 and the reason in the body; Slack, should
it ever be Slack, marks the delivery failed, which is what it is. Only well-formed
deliveries reach the listeners, and they may trust the fields above.

Repeats. :attr:`Delivery.keys` are the de-duplication keys (see :mod:`notify.deliveries`),
each held for :data:`REPLAY_WINDOW` seconds, the signature's lifetime: the body's SHA-256
(a replay, or Slack's retry, which resends the same body), Slack's ``trigger_id`` (one per
command or click: the same one re-signed or reshaped is the same act) and a modal's
``view.id`` (a double click on Submit). A double click on Approve or Reject is two
deliveries with triggers of their own; the core makes it safe (an approver counts once,
and the second click is told so) and a modal's submission is keyed by its view.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from bot import messages as m
from jitgate.errors import PeerError

REPLAY_WINDOW = 300.0
# Slack's interaction payload types; Events API deliveries (JSON bodies) are not taken.
INTERACTIONS = frozenset((
    "block_actions", "block_suggestion", "view_submission", "view_closed", "shortcut",
    "message_action", "interactive_message", "dialog_submission",
))  # fmt: skip


class MalformedDelivery(PeerError):
    """A signed delivery whose body is not what Slack sends; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A well-formed delivery: ``fields`` are the slash command's form fields or the
    interaction's payload, ``command`` says which (Slack shows a slash command's HTTP
    answer to the person), ``keys`` are the de-duplication keys with how long each holds,
    in seconds."""

    fields: dict[str, Any]
    command: bool
    keys: tuple[tuple[str, float], ...]


def read_delivery(body: bytes, content_type: str) -> Delivery:
    """``body`` checked and keyed, or :class:`MalformedDelivery`."""
    if content_type != "application/x-www-form-urlencoded" or body.startswith(b"{"):
        raise MalformedDelivery("jitgate takes slash commands and interactions, sent as forms")
    try:
        text = body.decode("utf-8")
        form = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                              errors="strict"))  # fmt: skip
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedDelivery("the body is not a UTF-8 form") from exc
    keys = [("body:" + hashlib.sha256(body).hexdigest(), REPLAY_WINDOW)]
    if "payload" not in form:
        _need(form, "command", "user_id")
        _optional_text(form, "trigger_id", "response_url", "text")
        if form.get("trigger_id"):
            keys.append(("trigger:" + form["trigger_id"], REPLAY_WINDOW))
        return Delivery(form, True, tuple(keys))
    payload = _payload(form["payload"])
    keys += _interaction_keys(payload)
    return Delivery(payload, False, tuple(keys))


def _payload(text: str) -> dict[str, Any]:
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise MalformedDelivery("the payload field is not JSON") from exc
    if not isinstance(payload, dict):
        raise MalformedDelivery("the payload is not a JSON object")
    _need(payload, "type")
    if payload["type"] not in INTERACTIONS:
        raise MalformedDelivery("the payload's type is not an interaction")
    _optional_text(payload, "trigger_id", "response_url")
    user = payload.get("user")
    if not isinstance(user, dict):
        raise MalformedDelivery("the payload has no user object")
    _need(user, "id")
    for field in ("team", "enterprise", "channel", "container", "message"):
        if not isinstance(payload.get(field), (dict, str, type(None))):
            raise MalformedDelivery(f"the payload's {field} is not an object")
    for field in ("authorizations", "response_urls"):
        listed = payload.get(field, [])
        if not isinstance(listed, list) or not all(isinstance(x, dict) for x in listed):
            raise MalformedDelivery(f"the payload's {field} is not a list of objects")
    if payload["type"] == "block_actions":
        _check_actions(payload.get("actions"))
    elif payload["type"] in ("view_submission", "view_closed"):
        _check_view(payload.get("view"))
    return payload


def _check_actions(actions: object) -> None:
    if not isinstance(actions, list) or not actions:
        raise MalformedDelivery("block_actions without actions")
    for action in actions:
        if not isinstance(action, dict):
            raise MalformedDelivery("an action is not an object")
        _need(action, "action_id", "block_id")
        _optional_text(action, "value")


def _check_view(view: object) -> None:
    if not isinstance(view, dict):
        raise MalformedDelivery("the payload has no view object")
    _need(view, "id", "callback_id")
    _optional_text(view, "private_metadata")
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise MalformedDelivery("the view has no state.values object")
    if view["callback_id"] == m.REJECT_CALLBACK:
        field = (values.get(m.REJECT_REASON_BLOCK) or {}).get(m.REJECT_REASON_ACTION)
        if not isinstance(field, dict):
            raise MalformedDelivery("the reject modal came back without its reason field")
        _optional_text(field, "value")


def _interaction_keys(payload: dict[str, Any]) -> list[tuple[str, float]]:
    keys = []
    if payload.get("trigger_id"):
        keys.append(("trigger:" + payload["trigger_id"], REPLAY_WINDOW))
    if payload["type"] == "view_submission":
        keys.append(("view:" + payload["view"]["id"], REPLAY_WINDOW))
    return keys


def _need(fields: dict[str, Any], *names: str) -> None:
    for name in names:
        if not isinstance(fields.get(name), str) or not fields[name]:
            raise MalformedDelivery(f"{name} is missing or not a string")


def _optional_text(fields: dict[str, Any], *names: str) -> None:
    for name in names:
        if not isinstance(fields.get(name, ""), (str, type(None))):
            raise MalformedDelivery(f"{name} is not a string")
