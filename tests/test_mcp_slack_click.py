"""A held call through the MCP governing proxy, approved in Slack: the SDK client's call is
held and answered ``pending_approval`` at once, its card goes to the fake Slack, the
approver clicks Approve (a ``block_actions`` request signed as Slack signs it), and the
agent's identical retries then run the tool once. The downstream server's execution
counter is the witness."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jitgate.config import parse_config
from tests.fakeslack import FakeSlack
from tests.harness import GatewayThread
from tests.mcp_servers import ServerThread
from tests.slack_gateway import (
    APPROVALS,
    SECRET,
    USERS,
    buttons,
    card_of,
    send,
    text_of,
    wait_until,
)
from tests.slack_requests import BOB, block_action
from tests.test_mcp_proxy import AGENT, ALICE, connected, request_id_of, text

APPROVER = "bob@example.com"


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(USERS) as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(
    make_database: Callable[[str], str], tickets: tuple[Any, Any, ServerThread], slack: FakeSlack
) -> Iterator[GatewayThread]:
    raw = {
        "database_url": make_database("jg_mcp_slack_store"),
        "http": {"listen": "127.0.0.1:0"},
        "postgres": {"listen": "127.0.0.1:0"},
        "audit": {"flush_interval": "20ms"},
        "groups": {"engineers": [ALICE], "dba": [APPROVER]},
        "slack": {"bot_token": slack.token, "signing_secret": SECRET, "api_url": slack.api_url},
        "resources": {
            "tickets": {
                "type": "mcp",
                "url": tickets[2].url(),
                "access": {"engineers": {"close_*": "review", "*": "allow"}},
                "approvers": ["dba"],
                "notify": {"slack": APPROVALS},
            }
        },
    }
    gateway = GatewayThread(parse_config(raw, {}))
    yield gateway
    gateway.stop()


def state_of(gw: GatewayThread, request_id: int) -> str:
    view = gw.call(gw.gateway.approvals.store.view(request_id))
    assert view is not None
    return str(view.state)


async def test_a_held_call_approved_by_a_slack_click_runs_once_on_the_identical_retry(
    gw: GatewayThread, slack: FakeSlack, tickets: tuple[Any, Counter[str], Any]
) -> None:
    calls = tickets[1]
    arguments = {"id": 42, "reason": "resolved upstream"}
    token = gw.token(ALICE)
    async with connected(gw, token) as client, connected(gw, token) as other:
        request_id = request_id_of(await client.call_tool("close_ticket", arguments))
        channel, ts = card_of(gw, request_id)
        card = slack.message(channel, ts)
        assert channel == APPROVALS and buttons(card) == ["Approve", "Reject"]
        shown = text_of(card)
        assert f"`{ALICE}` via agent `{AGENT}`" in shown and "close_ticket" in shown
        assert calls["close_ticket:42:resolved upstream"] == 0

        click = block_action(SECRET, "approve", request_id, user_id=BOB, channel_id=channel,
                             message_ts=ts, response_url=slack.response_url("mcp"))  # fmt: skip
        assert send(gw, click) == 200
        wait_until(lambda: state_of(gw, request_id) == "approved", what="the approval")
        assert calls["close_ticket:42:resolved upstream"] == 0  # approval alone runs nothing

        # The agent retries the identical call, twice at once: it runs once.
        retries = await asyncio.gather(
            client.call_tool("close_ticket", arguments), other.call_tool("close_ticket", arguments)
        )
        ran = [r for r in retries if not r.is_error]
        assert len(ran) == 1 and text(ran[0]) == "ticket 42 closed"
        assert calls["close_ticket:42:resolved upstream"] == 1
        # Used: the same call again is a new request, and the server saw nothing more.
        again = await client.call_tool("close_ticket", arguments)
        assert request_id_of(again) != request_id
    assert calls["close_ticket:42:resolved upstream"] == 1
    assert state_of(gw, request_id) == "executed"
