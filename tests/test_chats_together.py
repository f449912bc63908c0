"""Slack and Teams on one gateway: one request, a card in each, a decision in one chat
updates the card in the other; the result goes to both threads."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from tests.fake_teams import FakeTeams
from tests.fakeslack import FakeSlack
from tests.harness import GatewayThread, gateway_config
from tests.slack_gateway import APPROVALS as SLACK_APPROVALS
from tests.slack_gateway import (
    SECRET,
    USERS,
    buttons,
    card_of,
    posts,
    reply,
    send,
    text_of,
    wait_until,
)  # fmt: skip
from tests.slack_requests import block_action, slash_command
from tests.teams_gateway import (
    APP_ID,
    APPROVALS,
    BOB,
    MEMBERS,
    PASSWORD,
    TENANT,
    card_json,
    click,
    install,
    runs,
    text_blocks,
    verbs,
)
from tests.teams_gateway import card_of as teams_card_of


@pytest.fixture(scope="module")
def chats() -> Iterator[tuple[FakeSlack, FakeTeams]]:
    with FakeSlack(USERS) as slack, FakeTeams(APP_ID, PASSWORD, MEMBERS) as teams:
        yield slack, teams


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str],
       chats: tuple[FakeSlack, FakeTeams]) -> Iterator[GatewayThread]:  # fmt: skip
    slack, teams = chats
    target = make_database("jg_chats_target")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 10) g")
    users = {BOB[1]: "bob@example.com"}
    config = gateway_config(
        make_database("jg_chats_store"), target,
        slack={"bot_token": slack.token, "signing_secret": SECRET, "api_url": slack.api_url},
        teams=teams.settings(tenant_id=TENANT, users=users),
    )  # fmt: skip
    resources = dict(config.resources)
    resources["prod"] = dataclasses.replace(
        resources["prod"], notify_slack=SLACK_APPROVALS, notify_teams=APPROVALS
    )
    gateway = GatewayThread(dataclasses.replace(config, resources=resources))
    install(gateway, teams)
    yield gateway
    gateway.stop()


def test_a_decision_in_teams_updates_the_slack_card(
    gw: GatewayThread, chats: tuple[FakeSlack, FakeTeams]
) -> None:
    slack, teams = chats
    sent = send(gw, slash_command(SECRET, "run prod UPDATE items SET note = 'x' WHERE id = 1",
                                  response_url=slack.response_url("both")))  # fmt: skip
    assert sent == 200
    text = reply(slack, "both")
    request_id = int(text.split("request #")[1].split()[0])
    channel, ts = card_of(gw, request_id)
    assert buttons(slack.message(channel, ts)) == ["Approve", "Reject"]
    teams_card = teams_card_of(gw, request_id)

    assert click(gw, teams, "approve", request_id, BOB)["statusCode"] == 200
    wait_until(lambda: "Executed" in text_of(slack.message(channel, ts)), what="the Slack card")
    assert buttons(slack.message(channel, ts)) == []
    (slack_result,) = wait_until(lambda: posts(slack, SLACK_APPROVALS, thread_ts=ts))
    assert "UPDATE 1" in text_of(slack_result.args)
    teams_result = [r for r in teams.wait_for("reply", conversation=APPROVALS)
                    if r.activity_id == teams_card]  # fmt: skip
    assert len(teams_result) == 1 and "UPDATE 1" in json.dumps(teams_result[0].activity)


def test_a_decision_in_slack_updates_the_teams_card(
    gw: GatewayThread, chats: tuple[FakeSlack, FakeTeams]
) -> None:
    slack, teams = chats
    sent = send(gw, slash_command(SECRET, "run prod UPDATE items SET note = 'y' WHERE id = 2",
                                  response_url=slack.response_url("slack-first")))  # fmt: skip
    assert sent == 200
    request_id = int(reply(slack, "slack-first").split("request #")[1].split()[0])
    channel, ts = card_of(gw, request_id)
    teams_card = teams_card_of(gw, request_id)

    assert send(gw, block_action(SECRET, "approve", request_id, channel_id=channel,
                                 message_ts=ts)) == 200  # fmt: skip

    def teams_card_now() -> dict[str, Any] | None:
        updates = [c for c in teams.calls_to("update", APPROVALS) if c.activity_id == teams_card]
        last = card_json(updates[-1].activity) if updates else None
        return last if last is not None and "executed" in " ".join(text_blocks(last)) else None

    decided = wait_until(teams_card_now, what="the Teams card to show the execution")
    assert verbs(decided) == [] and "bob@example.com" in runs(decided)
    teams_result = wait_until(lambda: [r for r in teams.calls_to("reply", APPROVALS)
                                       if r.activity_id == teams_card])  # fmt: skip
    assert len(teams_result) == 1 and "UPDATE 1" in json.dumps(teams_result[0].activity)
    (slack_result,) = wait_until(lambda: posts(slack, SLACK_APPROVALS, thread_ts=ts))
    assert "UPDATE 1" in text_of(slack_result.args)
