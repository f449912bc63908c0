"""A real gateway wired to the fake Slack, and the few moves the Slack tests repeat: send a
signed request to ``/slack/events``, find a request's card, wait for what Slack was sent."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from jitgate.config import Config
from tests.fakeslack import Call, FakeSlack, SlackUser
from tests.harness import GatewayThread, gateway_config
from tests.slack_requests import ALICE, BOB, SlackRequest

T = TypeVar("T")

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APPROVALS = "C0APPROVALS"
SECURITY = "C0SECURITY"
EVE, MALLORY, UNKNOWN = "U056EVE", "U078MALLORY", "U0NOBODY"
USERS = [
    SlackUser(ALICE, "alice@example.com", "alice"),
    SlackUser(BOB, "Bob@Example.com", "bob"),
    SlackUser(EVE, "eve@example.com", "eve"),
    SlackUser(MALLORY, "mallory@example.com", "mallory"),  # in no jitgate group
    SlackUser("U0DEPLOYBOT", None, "deploybot", is_bot=True),
]


def slack_config(store_dsn: str, target_dsn: str, slack: FakeSlack, **slack_keys: Any) -> Config:
    """The harness config with Slack on: prod's cards go to #approvals, alerts to #security."""
    config = gateway_config(
        store_dsn,
        target_dsn,
        slack={"bot_token": slack.token, "signing_secret": SECRET, "api_url": slack.api_url,
               **slack_keys},
        alerts={"slack": SECURITY},
    )  # fmt: skip
    resources = dict(config.resources)
    resources["prod"] = dataclasses.replace(resources["prod"], notify_slack=APPROVALS)
    return dataclasses.replace(config, resources=resources)


def wait_until(check: Callable[[], T | None], within: float = 15.0, what: str = "it") -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def exchange(gw: GatewayThread, request: SlackRequest) -> tuple[int, str]:
    """POST a signed request to the gateway's ``/slack/events``; the HTTP status and body."""
    http = urllib.request.Request(
        f"http://127.0.0.1:{gw.http_port}/slack/events", data=request.body,
        headers=request.headers, method="POST",
    )  # fmt: skip
    try:
        with urllib.request.urlopen(http, timeout=10) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def send(gw: GatewayThread, request: SlackRequest) -> int:
    """POST a signed request to the gateway's ``/slack/events``; the HTTP status."""
    return exchange(gw, request)[0]


def card_of(gw: GatewayThread, request_id: int) -> tuple[str, str]:
    """``(channel, ts)`` of the request's card, once posted."""

    def find() -> tuple[str, str] | None:
        row = gw.call(gw.gateway.pool.fetchrow(
            "SELECT channel, ts FROM cards WHERE chat = 'slack' AND request_id = $1",
            request_id))  # fmt: skip
        return None if row is None else (row["channel"], row["ts"])

    return wait_until(find, what=f"the card of request #{request_id}")


def text_of(message: dict[str, Any]) -> str:
    """A message's fallback text and blocks as one string, for substring checks."""
    return str(message.get("text", "")) + json.dumps(message.get("blocks", []), ensure_ascii=False)


def buttons(message: dict[str, Any]) -> list[str]:
    return [
        element["text"]["text"]
        for block in message.get("blocks", [])
        if block.get("type") == "actions"
        for element in block["elements"]
    ]


def posts(slack: FakeSlack, channel: str, *, thread_ts: str | None = None,
          ok: bool = True) -> list[Call]:  # fmt: skip
    """``chat.postMessage`` calls to ``channel`` (in ``thread_ts``'s thread when given)."""
    return [
        call for call in slack.calls_to("chat.postMessage")
        if call.args.get("channel") == channel and call.args.get("thread_ts") == thread_ts
        and (call.status == 200) == ok
    ]  # fmt: skip


def replies(slack: FakeSlack, key: str) -> list[str]:
    """The texts posted to ``slack.response_url(key)`` (ephemeral replies)."""
    return [str(c.args.get("text")) for c in slack.calls_to("response_url") if c.args["key"] == key]


def reply(slack: FakeSlack, key: str) -> str:
    return wait_until(lambda: replies(slack, key), what=f"a reply to {key}")[0]


def settle(gw: GatewayThread) -> None:
    """Wait until the gateway's Slack outbox has nothing left to send."""
    sql = "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"
    wait_until(lambda: gw.call(gw.gateway.pool.fetchval(sql)) == 0, what="the outbox to drain")
