"""Slack end to end: held statements become cards, clicks decide them, results come back in
the card's thread. A real gateway, a real target, psql held on its own connection, the fake
Slack Web API, and requests into ``/slack/events`` signed as Slack signs them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from approvals.model import State
from tests.fakeslack import Call, FakeSlack
from tests.harness import GatewayThread
from tests.slack_gateway import (
    APPROVALS,
    EVE,
    MALLORY,
    SECRET,
    SECURITY,
    UNKNOWN,
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
from tests.slack_requests import ALICE, BOB, block_action, slash_command, view_submission

RAW_EMAIL = "carol.customer@example.org"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_slack_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, email text, note text)")
        conn.execute(
            "INSERT INTO items SELECT g, 'carol.customer@example.org', 'n' || g"
            " FROM generate_series(1, 1000) g"
        )
    return dsn


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(USERS) as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str,
       slack: FakeSlack) -> Iterator[GatewayThread]:  # fmt: skip
    gateway = GatewayThread(slack_config(make_database("jg_slack_store"), target_dsn, slack))
    yield gateway
    gateway.stop()


def count(target_dsn: str, sql: str) -> Any:
    with psycopg.connect(target_dsn) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return row[0]


def held(gw: GatewayThread, pg_bin: Callable[[str], str],
         *statements: str) -> tuple[subprocess.Popen[str], int]:  # fmt: skip
    """psql as alice running ``statements``, held on the first; and its request id."""
    before = gw.call(gw.gateway.approvals.store.list(limit=1))
    args = [pg_bin("psql"), "-X", gw.dsn("alice@example.com", gw.token("alice@example.com"))]
    for statement in statements:
        args += ["-c", statement]
    client = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def opened() -> int | None:
        rows = gw.call(gw.gateway.approvals.store.list(states=[State.PENDING], limit=1))
        return rows[0].id if rows and (not before or rows[0].id > before[0].id) else None

    return client, wait_until(opened, what="a held statement")


def asked(gw: GatewayThread, slack: FakeSlack, sql: str, key: str) -> int:
    """``/jit run prod SQL`` from alice; the id of the request it opened."""
    assert (
        send(gw, slash_command(SECRET, f"run prod {sql}", response_url=slack.response_url(key)))
        == 200
    )
    text = reply(slack, key)
    assert "Statement held: request #" in text, text
    return int(text.split("request #")[1].split()[0])


def click(gw: GatewayThread, slack: FakeSlack, action: str, request_id: int, user: str,
          key: str) -> int:  # fmt: skip
    channel, ts = card_of(gw, request_id)
    return send(gw, block_action(SECRET, action, request_id, user_id=user, channel_id=channel,  # type: ignore[arg-type]
                                 message_ts=ts, response_url=slack.response_url(key)))  # fmt: skip


def cards(slack: FakeSlack, request_id: int, *, ok: bool = True) -> list[Call]:
    """The top-level posts of request #``request_id``'s card."""
    needle = f"Request #{request_id} needs approval"
    return [call for call in posts(slack, APPROVALS, ok=ok) if needle in text_of(call.args)]


def final(gw: GatewayThread, request_id: int) -> Any:
    def done() -> Any:
        view = gw.call(gw.gateway.approvals.store.view(request_id))
        return view if view is not None and view.final else None

    return wait_until(done, what=f"request #{request_id} to finish")


def test_held_statement_card_click_result_in_thread(
    gw: GatewayThread, slack: FakeSlack, pg_bin: Callable[[str], str], target_dsn: str
) -> None:
    client, request_id = held(gw, pg_bin, "DELETE FROM items WHERE id <= 3 RETURNING id, email",
                              "SELECT count(*) AS left_over FROM items")  # fmt: skip
    channel, ts = card_of(gw, request_id)
    card = slack.message(channel, ts)
    assert channel == APPROVALS and buttons(card) == ["Approve", "Reject"]
    assert f"Approval needed: request #{request_id}" in text_of(card)
    assert count(target_dsn, "SELECT count(*) FROM items WHERE id <= 3") == 3  # nothing ran yet

    assert click(gw, slack, "approve", request_id, BOB, "e2e") == 200
    out, err = client.communicate(timeout=30)
    assert f"request #{request_id} posted to the web inbox" in err and APPROVALS in err
    assert "DELETE 3" in out and "997" in out  # psql got the result, and its session went on

    (result,) = wait_until(lambda: posts(slack, APPROVALS, thread_ts=ts), what="the result")
    shown = text_of(result.args)
    assert "DELETE 3" in shown and RAW_EMAIL not in shown and "EMAIL" in shown
    view = final(gw, request_id)
    assert f"http://127.0.0.1:8080/sessions/{view.session_id}" in shown

    def updated() -> dict[str, Any] | None:
        now = slack.message(channel, ts)
        return now if "Executed" in text_of(now) else None

    card = wait_until(updated, what="the card to show the execution")
    assert buttons(card) == [] and "bob@example.com" in text_of(card)
    dm = wait_until(lambda: posts(slack, slack.dm_channel(ALICE)), what="alice's DM")
    assert f"Your request #{request_id}" in text_of(dm[0].args)
    assert replies(slack, "e2e") == []  # a click that worked needs no private answer
    assert len(cards(slack, request_id)) == 1


@pytest.mark.parametrize(("user", "expected"), [
    (ALICE, "You cannot approve request #{id}: it is your own"),
    (EVE, "You are not an approver for request #{id}"),
    (MALLORY, "Your Slack email `mallory@example.com` is not known to jitgate"),
    (UNKNOWN, "Your Slack account is not known to jitgate"),
])  # fmt: skip
def test_refused_clicks_answer_privately_and_change_nothing(
    gw: GatewayThread, slack: FakeSlack, user: str, expected: str
) -> None:
    request_id = asked(gw, slack, "DELETE FROM items WHERE id = 500", f"ask-{user}")
    _, ts = card_of(gw, request_id)
    updates = len(slack.calls_to("chat.update"))
    assert click(gw, slack, "approve", request_id, user, f"click-{user}") == 200
    assert expected.format(id=request_id) in reply(slack, f"click-{user}")
    view = gw.call(gw.gateway.approvals.store.view(request_id))
    assert view.state == State.PENDING and view.decisions == ()
    assert buttons(slack.message(APPROVALS, ts)) == ["Approve", "Reject"]
    assert len(slack.calls_to("chat.update")) == updates
    if user == ALICE:
        alert = wait_until(lambda: [c for c in posts(slack, SECURITY)
                                    if "Self-approval attempt" in text_of(c.args)])  # fmt: skip
        assert f"#{request_id}" in text_of(alert[0].args)


def test_double_and_concurrent_clicks_execute_once(
    gw: GatewayThread, slack: FakeSlack, target_dsn: str
) -> None:
    request_id = asked(gw, slack, "UPDATE items SET note = note || '+' WHERE id = 600", "many")
    channel, ts = card_of(gw, request_id)
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda i: click(gw, slack, "approve", request_id, BOB,
                                                 f"many-{i}"), range(10)))  # fmt: skip
    assert statuses == [200] * 10
    view = final(gw, request_id)
    assert view.state == State.EXECUTED and [d.approver for d in view.decisions] == [
        "bob@example.com"
    ]
    assert count(target_dsn, "SELECT note FROM items WHERE id = 600") == "n600+"
    answered = wait_until(lambda: sum(bool(replies(slack, f"many-{i}")) for i in range(10)) >= 9
                          or None)  # fmt: skip
    assert answered
    assert all("already" in text for i in range(10) for text in replies(slack, f"many-{i}"))
    wait_until(lambda: "Executed" in text_of(slack.message(channel, ts)), what="the update")
    updates = [c for c in slack.calls_to("chat.update") if c.args.get("ts") == ts]
    assert 1 <= len(updates) <= 3  # approved, executing, executed at most: never one per click
    (result,) = wait_until(lambda: posts(slack, APPROVALS, thread_ts=ts))
    assert "UPDATE 1" in text_of(result.args)


def test_reject_with_a_reason_through_the_modal(
    gw: GatewayThread, slack: FakeSlack, pg_bin: Callable[[str], str], target_dsn: str
) -> None:
    client, request_id = held(gw, pg_bin, "UPDATE items SET note = 'gone' WHERE id = 700",
                              "SELECT note AS still FROM items WHERE id = 700")  # fmt: skip
    channel, ts = card_of(gw, request_id)
    opened = len(slack.calls_to("views.open"))
    assert click(gw, slack, "reject", request_id, BOB, "reject") == 200
    modal = slack.wait_for("views.open", opened + 1)[-1].args
    assert modal["view"]["private_metadata"] == str(request_id) and modal["trigger_id"]
    assert send(gw, view_submission(SECRET, request_id, "not during the sale")) == 200
    out, err = client.communicate(timeout=30)
    assert f"request #{request_id} was rejected by bob@example.com" in err
    assert "not during the sale" in err and "n700" in out
    assert count(target_dsn, "SELECT note FROM items WHERE id = 700") == "n700"
    card = wait_until(lambda: (m if "Rejected" in text_of(m := slack.message(channel, ts))
                               else None))  # fmt: skip
    assert buttons(card) == [] and "not during the sale" in text_of(card)
    assert "bob@example.com" in text_of(card)
    wait_until(lambda: [c for c in posts(slack, SECURITY) if "Request rejected" in text_of(c.args)])
    dm = wait_until(lambda: [c for c in posts(slack, slack.dm_channel(ALICE))
                             if f"#{request_id}" in text_of(c.args)])  # fmt: skip
    assert "rejected" in text_of(dm[0].args)


def test_an_outsider_gets_no_reject_modal(gw: GatewayThread, slack: FakeSlack) -> None:
    request_id = asked(gw, slack, "DELETE FROM items WHERE id = 701", "outsider-ask")
    opened = len(slack.calls_to("views.open"))
    assert click(gw, slack, "reject", request_id, EVE, "outsider") == 200
    assert "not an approver" in reply(slack, "outsider")
    assert len(slack.calls_to("views.open")) == opened


def test_hostile_statement_renders_inert(gw: GatewayThread, slack: FakeSlack) -> None:
    typed = "UPDATE items SET note = '<!channel> `x` *bold* <@U1> <http://evil|y> &' WHERE id = 9"
    escaped = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    request_id = asked(gw, slack, f"{escaped} -- see <!here>", "hostile")
    row = gw.call(gw.gateway.approvals.store.get(request_id))
    assert row.sql == typed and row.reason == "see <!here>"  # as typed, not as Slack sent it
    channel, ts = card_of(gw, request_id)
    shown = text_of(slack.message(channel, ts))
    for live in ("<!channel>", "<!here>", "<@U1>", "<http://evil", "`x`"):
        assert live not in shown
    assert "&lt;!channel&gt;" in shown and "\u02cbx\u02cb" in shown


def test_rate_limits_and_server_errors_still_post_the_card_once(
    gw: GatewayThread, slack: FakeSlack
) -> None:
    settle(gw)  # nothing else in flight to take the failures
    slack.fail("chat.postMessage", times=1, status=429, retry_after=1)
    slack.fail("chat.postMessage", times=2, status=503)
    started = time.monotonic()
    request_id = asked(gw, slack, "DELETE FROM items WHERE id = 800", "flaky")
    card_of(gw, request_id)
    time.sleep(1.5)  # room for a duplicate to show up, were there one
    assert len(cards(slack, request_id)) == 1 and time.monotonic() - started >= 1
    failed = cards(slack, request_id, ok=False)
    assert [c.status for c in failed] == [429, 503, 503]


def test_a_large_result_is_attached_as_a_file(gw: GatewayThread, slack: FakeSlack) -> None:
    sql = ("UPDATE items SET note = repeat('<&>', 30) WHERE id BETWEEN 901 AND 920"
           " RETURNING id, note, note AS again, note AS more")  # fmt: skip
    request_id = asked(gw, slack, sql, "wide")
    channel, ts = card_of(gw, request_id)
    assert click(gw, slack, "approve", request_id, BOB, "wide-click") == 200
    done = wait_until(lambda: [c for c in slack.calls_to("files.completeUploadExternal")
                               if c.args.get("thread_ts") == ts])  # fmt: skip
    assert done[0].args["channel_id"] == channel
    (result,) = wait_until(lambda: posts(slack, APPROVALS, thread_ts=ts))
    assert "Showing" in text_of(result.args)
