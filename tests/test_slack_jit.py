"""Slack around the cards: ``/jit``, signatures, security alerts, a restart between card and
click, and Socket Mode. A real gateway and target, the fake Slack Web API, and requests
signed as Slack signs them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from approvals.model import Alert
from bot.slack_commands import unescape
from tests.fakeslack import FakeSlack, SlackUser
from tests.harness import GatewayThread
from tests.slack_gateway import (
    APPROVALS,
    EVE,
    SECRET,
    SECURITY,
    USERS,
    buttons,
    card_of,
    posts,
    replies,
    reply,
    send,
    settle,
    slack_config,
    text_of,
    wait_until,
)  # fmt: skip
from tests.slack_requests import ALICE, BOB, block_action, slash_command


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_slack_jit_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, email text, ssn text)")
        conn.execute("INSERT INTO customers VALUES (1, 'dana.doe@example.org', '078-05-1120'),"
                     " (2, 'eli.roe@example.net', '219-09-9999')")  # fmt: skip
        conn.execute("CREATE TABLE carts (id int PRIMARY KEY)")
        conn.execute("INSERT INTO carts SELECT generate_series(1, 100)")
    return dsn


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(USERS) as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str,
       slack: FakeSlack) -> Iterator[GatewayThread]:  # fmt: skip
    gateway = GatewayThread(slack_config(make_database("jg_slack_jit_store"), target_dsn, slack))
    yield gateway
    gateway.stop()


def jit(gw: GatewayThread, slack: FakeSlack, text: str, key: str, user: str = ALICE) -> str:
    """The private reply to ``/jit TEXT`` (``text`` as Slack sends it: already escaped)."""
    request = slash_command(SECRET, text, user_id=user, response_url=slack.response_url(key))
    assert send(gw, request) == 200
    return reply(slack, key)


def test_run_a_read_answers_privately_with_the_masked_rows(
    gw: GatewayThread, slack: FakeSlack
) -> None:
    text = jit(gw, slack, "run prod SELECT id, email, ssn FROM customers ORDER BY id", "read")
    assert "SELECT 2" in text and "`prod`" in text
    for raw in ("dana.doe@example.org", "eli.roe", "078-05-1120"):
        assert raw not in text
    (answer,) = [c for c in slack.calls_to("response_url") if c.args["key"] == "read"]
    assert answer.args["response_type"] == "ephemeral"


def test_run_a_write_posts_a_card_with_the_reason(gw: GatewayThread, slack: FakeSlack) -> None:
    text = jit(gw, slack, "run prod DELETE FROM carts WHERE id = 7 -- cleanup for OPS-1", "write")
    assert f"posted to <#{APPROVALS}>" in text
    request_id = int(text.split("request #")[1].split()[0])
    channel, ts = card_of(gw, request_id)
    card = slack.message(channel, ts)
    assert "cleanup for OPS-1" in text_of(card) and buttons(card) == ["Approve", "Reject"]
    row = gw.call(gw.gateway.approvals.store.get(request_id))
    assert row.sql == "DELETE FROM carts WHERE id = 7" and row.source == "slack"


def test_a_denied_statement_names_the_reasons(gw: GatewayThread, slack: FakeSlack) -> None:
    text = jit(gw, slack, "run prod GRANT ALL ON carts TO PUBLIC", "denied")
    assert text.startswith(":no_entry: Denied") and "`privilege`" in text
    wait_until(lambda: [c for c in posts(slack, SECURITY) if "Statement denied" in text_of(c.args)])


@pytest.mark.parametrize(("text", "expected"), [
    ("help", "/jit run RESOURCE SQL"),
    ("", "/jit run RESOURCE SQL"),
    ("frobnicate", "did not understand that: the first word must be"),
    ("run prod", "`run` needs a resource and then a statement"),
    ("run nowhere SELECT 1", "There is no resource `nowhere` you may use"),
    ("run other SELECT 1", "There is no resource `other` you may use"),  # no access
    ("status twelve", "`status` needs a request number"),
    ("status 999999", "There is no request #999999"),
])  # fmt: skip
def test_usage_and_errors_say_what_to_do(
    gw: GatewayThread, slack: FakeSlack, text: str, expected: str
) -> None:
    assert expected in jit(gw, slack, text, f"usage-{text}")


def test_status_and_pending(gw: GatewayThread, slack: FakeSlack) -> None:
    held = jit(gw, slack, "run prod UPDATE carts SET id = 1000 WHERE id = 8", "status-ask")
    request_id = int(held.split("request #")[1].split()[0])
    mine = jit(gw, slack, f"status {request_id}", "status-alice")
    assert f"*Request #{request_id}*" in mine and "Waiting for approval" in mine
    assert f"#{request_id}" in jit(gw, slack, f"status #{request_id}", "status-bob", BOB)
    assert jit(gw, slack, f"status {request_id}", "status-eve", EVE) == (
        f"There is no request #{request_id}."
    )  # an outsider learns nothing, not even that it exists
    pending = jit(gw, slack, "pending", "pending-bob", BOB)
    assert "waiting for approval" in pending and f"#{request_id} `prod`" in pending
    assert f"#{request_id} " not in jit(gw, slack, "pending", "pending-alice")  # her own


def test_unknown_and_bot_users_are_told_and_nothing_runs(
    gw: GatewayThread, slack: FakeSlack
) -> None:
    before = gw.call(gw.gateway.approvals.store.list(limit=1))
    for user in ("U0NOBODY", "U0DEPLOYBOT"):
        text = jit(gw, slack, "run prod DELETE FROM carts WHERE id = 9", f"who-{user}", user)
        assert "Your Slack account is not known to jitgate" in text
    assert gw.call(gw.gateway.approvals.store.list(limit=1)) == before


def test_forged_and_stale_requests_are_refused_and_alerted(
    gw: GatewayThread, slack: FakeSlack
) -> None:
    held = jit(gw, slack, "run prod DELETE FROM carts WHERE id = 10", "forge-ask")
    request_id = int(held.split("request #")[1].split()[0])
    good = block_action(SECRET, "approve", request_id, response_url=slack.response_url("forged"))
    forged = [
        block_action("not-the-secret", "approve", request_id),
        block_action(SECRET, "approve", request_id, timestamp=int(time.time()) - 6 * 60),
        type(good)(good.body.replace(b"approve", b"approv3"), good.headers, good.payload),
    ]
    assert [send(gw, request) for request in forged] == [401, 401, 401]
    alert = wait_until(lambda: [c for c in posts(slack, SECURITY)
                                if "Bad Slack signature" in text_of(c.args)])  # fmt: skip
    assert len(alert) == 1 and "3 requests" in text_of(alert[0].args)
    view = gw.call(gw.gateway.approvals.store.view(request_id))
    assert view.decisions == () and str(view.state) == "pending"
    assert [c for c in slack.calls_to("response_url") if c.args["key"] == "forged"] == []


def test_a_burst_of_alerts_becomes_a_digest(gw: GatewayThread, slack: FakeSlack) -> None:
    settle(gw)
    before = len(posts(slack, SECURITY))

    async def burst() -> None:
        for n in range(12):
            gw.gateway.approvals.emit(Alert("guardrail", f"burst alert {n}", "eve@example.com"))

    gw.call(burst())
    settle(gw)
    sent = [text_of(c.args) for c in posts(slack, SECURITY)[before:]]
    assert len(sent) < 12 and any(
        ("12 security alerts" not in t and "security alerts" in t) or "12 security alerts" in t
        for t in sent
    )
    assert all(any(f"burst alert {n}`" in text for text in sent) for n in range(12))


def test_a_restart_between_card_and_click_updates_the_same_card(
    make_database: Callable[[str], str], target_dsn: str
) -> None:
    with FakeSlack(USERS) as slack:
        restart_between_card_and_click(make_database("jg_slack_restart"), target_dsn, slack)


def restart_between_card_and_click(store_dsn: str, target_dsn: str, slack: FakeSlack) -> None:
    config = slack_config(store_dsn, target_dsn, slack)
    first = GatewayThread(config)
    try:
        held = jit(first, slack, "run prod DELETE FROM carts WHERE id = 11", "restart-ask")
        request_id = int(held.split("request #")[1].split()[0])
        channel, ts = card_of(first, request_id)
    finally:
        first.stop()
    second = GatewayThread(config)
    try:
        click = block_action(SECRET, "approve", request_id, channel_id=channel, message_ts=ts,
                             response_url=slack.response_url("restart-click"))  # fmt: skip
        assert send(second, click) == 200
        wait_until(lambda: [c for c in slack.calls_to("chat.update") if c.args["ts"] == ts])
        (result,) = wait_until(lambda: posts(slack, channel, thread_ts=ts))
        assert "DELETE 1" in text_of(result.args)
        assert "Executed" in text_of(slack.message(channel, ts))
        needle = f"Request #{request_id} needs approval"
        assert len([c for c in posts(slack, channel) if needle in text_of(c.args)]) == 1
    finally:
        second.stop()


def test_two_approvals_and_expiry_on_the_card(
    make_database: Callable[[str], str], target_dsn: str
) -> None:
    """prod needs two approvers: after one the card reads "1 of 2" and keeps its buttons.
    ``other`` expires its requests after 2 s: the card says so and security hears of it."""
    carol = SlackUser("U09CAROL", "carol@example.com", "carol")
    with FakeSlack([*USERS, carol]) as slack:
        config = slack_config(make_database("jg_slack_two"), target_dsn, slack)
        review = {"read": "allow", "write": "review"}
        resources = dict(config.resources)
        resources["prod"] = dataclasses.replace(resources["prod"], approvals_required=2)
        resources["other"] = dataclasses.replace(
            resources["other"], url=resources["prod"].url, notify_slack=APPROVALS,
            access={"engineers": review}, approvers=("dba",), request_ttl=2.0,
        )  # fmt: skip
        groups = {**config.groups, "dba": frozenset({"bob@example.com", "carol@example.com"})}
        gateway = GatewayThread(dataclasses.replace(config, resources=resources, groups=groups))
        try:
            held = jit(gateway, slack, "run prod DELETE FROM carts WHERE id = 12", "two-ask")
            request_id = int(held.split("request #")[1].split()[0])
            channel, ts = card_of(gateway, request_id)
            for who, key in ((BOB, "two-bob"), (BOB, "two-bob-again")):
                click = block_action(SECRET, "approve", request_id, user_id=who,
                                     response_url=slack.response_url(key))  # fmt: skip
                assert send(gateway, click) == 200
            # The two clicks race; whichever is judged second is told, and counts nothing.
            wait_until(
                lambda: [r for k in ("two-bob", "two-bob-again") for r in replies(slack, k)
                         if "You have already approved" in r],
                what="the second click's reply",
            )  # fmt: skip
            card = wait_until(lambda: (m if "1 of 2" in text_of(m := slack.message(channel, ts))
                                       else None))  # fmt: skip
            assert buttons(card) == ["Approve", "Reject"]
            assert send(gateway, block_action(SECRET, "approve", request_id,
                                              user_id=carol.id)) == 200  # fmt: skip
            wait_until(lambda: "Executed" in text_of(slack.message(channel, ts)) or None)

            held = jit(gateway, slack, "run other DELETE FROM carts WHERE id = 13", "expiring")
            request_id = int(held.split("request #")[1].split()[0])
            channel, ts = card_of(gateway, request_id)
            card = wait_until(lambda: (m if "Expired" in text_of(m := slack.message(channel, ts))
                                       else None))  # fmt: skip
            assert buttons(card) == []
            wait_until(lambda: [c for c in posts(slack, SECURITY)
                                if "Request expired" in text_of(c.args)])  # fmt: skip
        finally:
            gateway.stop()


def test_socket_mode_is_chosen_by_the_app_token(
    make_database: Callable[[str], str], target_dsn: str, slack: FakeSlack
) -> None:
    config = slack_config(make_database("jg_slack_socket"), target_dsn, slack,
                          app_token="xapp-1-A0JITGATE1-test")  # fmt: skip
    gateway = GatewayThread(config)  # starts though the fake has no Socket Mode to offer
    try:
        assert gateway.gateway.slack is not None and gateway.gateway.slack.socket_mode
        (opened, *_) = slack.wait_for("apps.connections.open")
        assert opened.token == "xapp-1-A0JITGATE1-test"
    finally:
        gateway.stop()


def test_nothing_was_left_undelivered(gw: GatewayThread) -> None:
    settle(gw)
    failed = gw.call(gw.gateway.pool.fetch(
        "SELECT kind, last_error FROM outbox WHERE failed_at IS NOT NULL"))  # fmt: skip
    assert [dict(row) for row in failed] == []


def test_only_slacks_three_escapes_are_undone() -> None:
    assert unescape("a &amp;lt; b &lt;c&gt; &amp;&amp; &quot;") == "a &lt; b <c> && &quot;"
