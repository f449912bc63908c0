"""Nothing raw in chat or at rest: a requester's reason and a target's error message are
masked before the store keeps them and before Slack is sent them. A real gateway with the
fake Slack, asked through ``/jit`` and the REST API the CLI uses."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.fakeslack import FakeSlack
from tests.harness import GatewayThread
from tests.slack_gateway import (
    SECRET,
    USERS,
    card_of,
    reply,
    send,
    settle,
    slack_config,
    wait_until,
)  # fmt: skip
from tests.slack_requests import block_action, slash_command

CARD = "4111 1111 1111 1111"
EMAIL = "jane.roe@example.com"
STORED_EMAIL = "zed.customer@example.org"  # only in the target's rows, quoted by its error
RAW = (CARD, CARD.replace(" ", ""), EMAIL, STORED_EMAIL)
REASON = f"refund to card {CARD}, customer {EMAIL} asked"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_robust_mask_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE carts (id int PRIMARY KEY)")
        conn.execute("INSERT INTO carts SELECT generate_series(1, 10)")
        conn.execute("CREATE TABLE people (email text)")
        conn.execute("INSERT INTO people VALUES (%s)", (STORED_EMAIL,))
    return dsn


@pytest.fixture(scope="module")
def store_dsn(make_database: Callable[[str], str]) -> str:
    return make_database("jg_robust_mask_store")


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(USERS) as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(store_dsn: str, target_dsn: str, slack: FakeSlack) -> Iterator[GatewayThread]:
    gateway = GatewayThread(slack_config(store_dsn, target_dsn, slack))
    yield gateway
    gateway.stop()


def store_text(store_dsn: str) -> str:
    """Every row of the tables that hold requests and what Slack was sent, as JSON text."""
    tables = ("requests", "decisions", "outbox", "cards")
    with psycopg.connect(store_dsn) as conn:
        return "\n".join(
            str(row[0])
            for table in tables
            for row in conn.execute(f"SELECT row_to_json(t)::text FROM {table} t").fetchall()
        )


def slack_text(slack: FakeSlack) -> str:
    return "\n".join(
        call.body.decode("utf-8", "replace") + json.dumps(call.args) for call in slack.calls
    )


def request_id_in(text: str) -> int:
    return int(text.split("request #")[1].split()[0].rstrip(".:;,"))


def test_reasons_and_target_errors_are_masked_at_rest_and_in_chat(
    gw: GatewayThread, slack: FakeSlack, store_dsn: str, target_dsn: str
) -> None:
    # A reason through /jit ...
    asked = slash_command(SECRET, f"run prod DELETE FROM carts WHERE id = 3 -- {REASON}",
                          response_url=slack.response_url("why"))  # fmt: skip
    assert send(gw, asked) == 200
    from_slack = request_id_in(reply(slack, "why"))
    card_of(gw, from_slack)

    # ... and through the REST API the CLI's --reason uses.
    token = gw.token("alice@example.com")
    http = urllib.request.Request(
        f"http://127.0.0.1:{gw.http_port}/api/requests", method="POST",
        data=json.dumps({"resource": "prod", "sql": "DELETE FROM carts WHERE id = 4",
                         "reason": REASON}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(http, timeout=10) as answer:
        from_api = json.loads(answer.read())["request"]["id"]
    card_of(gw, from_api)

    # A statement whose error quotes a value from the target's rows, approved and failed.
    failing = "UPDATE carts SET id = (SELECT email FROM people LIMIT 1)::int WHERE id = 5"
    asked = slash_command(SECRET, f"run prod {failing}", response_url=slack.response_url("fail"))
    assert send(gw, asked) == 200
    request_id = request_id_in(reply(slack, "fail"))
    channel, ts = card_of(gw, request_id)
    click = block_action(SECRET, "approve", request_id, channel_id=channel, message_ts=ts)
    assert send(gw, click) == 200
    state_sql = "SELECT state, outcome->>'error' FROM requests WHERE id = $1"
    state, error = wait_until(
        lambda: (
            (r := gw.call(gw.gateway.pool.fetchrow(state_sql, request_id)))["state"]
            in ("failed", "executed")
            and r
        ),
        what="the approved statement to finish",
    )
    assert state == "failed" and "invalid input syntax" in error and "[EMAIL]" in error
    settle(gw)

    kept, sent = store_text(store_dsn), slack_text(slack)
    assert "refund to card" in kept and "refund to card" in sent
    for raw in RAW:
        assert raw not in kept, raw
        assert raw not in sent, raw
