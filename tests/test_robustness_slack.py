"""Slack deliveries that are malformed or repeated: a signed body jitgate cannot read gets
a 4xx naming the reason (never a 500 or a traceback), and a delivery Slack or an attacker
sends again within the signature's five minutes acts once, across gateways sharing a store.
A real gateway, the fake Slack Web API, and requests signed exactly as Slack signs them."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest

from bot import messages as m
from tests.fakeslack import FakeSlack
from tests.harness import GatewayThread
from tests.slack_gateway import (
    SECRET,
    USERS,
    exchange,
    replies,
    reply,
    slack_config,
    wait_until,
)  # fmt: skip
from tests.slack_requests import (
    SlackRequest,
    block_action,
    signed,
    slash_command,
    view_submission,
)  # fmt: skip
from tests.slack_workspace import fixture

FUZZ_ROUNDS = 240


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_robust_slack_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE carts (id int PRIMARY KEY)")
        conn.execute("INSERT INTO carts SELECT generate_series(1, 100)")
    return dsn


@pytest.fixture(scope="module")
def store_dsn(make_database: Callable[[str], str]) -> str:
    return make_database("jg_robust_slack_store")


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(USERS) as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(store_dsn: str, target_dsn: str, slack: FakeSlack) -> Iterator[GatewayThread]:
    config = slack_config(store_dsn, target_dsn, slack)
    # The fuzzing opens many requests of one user; the limit on them has tests of its own.
    limits = dataclasses.replace(config.postgres.limits, pending_requests_per_user=10_000)
    postgres = dataclasses.replace(config.postgres, limits=limits)
    gateway = GatewayThread(dataclasses.replace(config, postgres=postgres))
    yield gateway
    gateway.stop()


def interaction(payload: Any) -> SlackRequest:
    """An interaction whose ``payload`` field is ``payload`` (JSON unless already text)."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return signed(SECRET, urlencode({"payload": text}).encode(), {})


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.exc_info]


def without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    holder = changed
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    return changed


def malformed() -> dict[str, SlackRequest]:
    clicked = fixture("block_actions")
    submitted = fixture("view_submission")
    return {
        "not json": interaction("{not json"),
        "a list": interaction([1, 2, 3]),
        "no actions": interaction({**clicked, "actions": []}),
        "no user": interaction(without(clicked, "user")),
        "a view without state": interaction(without(submitted, "view", "state")),
        "a user without id": interaction({**clicked, "user": {"name": "bob"}}),
        "an action that is a string": interaction({**clicked, "actions": ["approve"]}),
        "no view": interaction(without(submitted, "view")),
        "a body that is broken JSON": signed(SECRET, b"{oops", {}),
        "bytes that are not UTF-8": signed(SECRET, b"payload=%FF%FE%00", {}),
    }


@pytest.mark.parametrize("case", sorted(malformed()))
def test_a_malformed_signed_delivery_gets_a_4xx_with_the_reason(
    gw: GatewayThread, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status, text = exchange(gw, malformed()[case])
    assert 400 <= status < 500, (status, text)
    assert text.strip() and "Traceback" not in text
    assert not tracebacks(caplog)


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """``value`` with one random change somewhere inside: a key dropped, a value replaced
    by another JSON type, a list emptied or a string truncated."""
    junk = [None, 0, -1, 1.5, True, "", "x" * rng.randint(1, 40), [], {}, [None], {"a": 1}]
    if isinstance(value, dict) and value and (depth < 3 or rng.random() < 0.5):
        key = rng.choice(sorted(value))
        changed = dict(value)
        roll = rng.random()
        if roll < 0.25:
            del changed[key]
        elif roll < 0.5:
            changed[key] = rng.choice(junk)
        else:
            changed[key] = _mutate(rng, value[key], depth + 1)
        return changed
    if isinstance(value, list) and value:
        return [] if rng.random() < 0.3 else [_mutate(rng, value[0], depth + 1), *value[1:]]
    if isinstance(value, str) and value and rng.random() < 0.5:
        return value[: rng.randrange(len(value))]
    return rng.choice(junk)


def _fuzzed(rng: random.Random, slack: FakeSlack, round_: int) -> SlackRequest:
    kind = rng.choice(("block_actions", "view_submission", "slash_command", "raw"))
    if kind == "raw":
        noise = bytes(rng.randrange(256) for _ in range(rng.randint(0, 60)))
        body = rng.choice((b"payload=", b"", b"text=", b"{")) + noise
        return signed(SECRET, body, {})
    if kind == "slash_command":
        form = fixture("slash_command")
        form.update(response_url=slack.response_url(f"fuzz{round_}"), trigger_id=f"fz{round_}")
        form = {k: v for k, v in _mutate(rng, form).items() if isinstance(v, str)}
        return signed(SECRET, urlencode(form).encode(), form)
    payload = fixture(kind)
    payload.update(response_url=slack.response_url(f"fuzz{round_}"), trigger_id=f"fz{round_}")
    for _ in range(rng.randint(1, 3)):
        payload = _mutate(rng, payload)
    return interaction(payload)


def test_fuzzed_signed_deliveries_never_get_a_5xx(
    gw: GatewayThread, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rng = random.Random(2121)
    statuses = []
    for round_ in range(FUZZ_ROUNDS):
        request = _fuzzed(rng, slack, round_)
        status, text = exchange(gw, request)
        assert status < 500, (status, text, request.body[:300])
        statuses.append(status)
    assert any(400 <= s < 500 for s in statuses) and 200 in statuses
    assert not [t for t in tracebacks(caplog) if "slack" in t.lower() or "request" in t.lower()]


def count_requests(store_dsn: str, sql: str) -> int:
    with psycopg.connect(store_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM requests WHERE sql = %s", (sql,)).fetchone()
        assert row is not None
        return int(row[0])


def test_a_replayed_jit_run_opens_one_request(
    gw: GatewayThread, slack: FakeSlack, store_dsn: str, target_dsn: str
) -> None:
    sql = "DELETE FROM carts WHERE id = 17"
    request = slash_command(
        SECRET, f"run prod {sql} -- cleanup", response_url=slack.response_url("rp")
    )
    answers = [exchange(gw, request) for _ in range(3)]
    assert "request #" in reply(slack, "rp")
    assert [status for status, _ in answers] == [200, 200, 200]
    assert count_requests(store_dsn, sql) == 1
    assert answers[1][1] == answers[2][1] == m.duplicate_delivery()

    # The same delivery to another gateway on the same store, and Slack's retry of it.
    other = GatewayThread(slack_config(store_dsn, target_dsn, slack))
    try:
        assert exchange(other, request) == (200, m.duplicate_delivery())
        retried = signed(SECRET, request.body, request.payload)
        retried.headers.update({"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
        assert exchange(other, retried) == (200, m.duplicate_delivery())
    finally:
        other.stop()
    assert count_requests(store_dsn, sql) == 1
    assert len([c for c in slack.calls_to("response_url") if c.args["key"] == "rp"]) == 1


def test_the_same_trigger_or_click_acts_once(
    gw: GatewayThread, slack: FakeSlack, store_dsn: str
) -> None:
    sql = "DELETE FROM carts WHERE id = 8"
    first = slash_command(SECRET, f"run prod {sql}", response_url=slack.response_url("tr1"),
                          trigger_id="777.888.trigger")  # fmt: skip
    again = slash_command(SECRET, f"run prod {sql} ", response_url=slack.response_url("tr2"),
                          trigger_id="777.888.trigger")  # fmt: skip
    assert exchange(gw, first)[0] == 200
    assert "request #" in reply(slack, "tr1")
    assert exchange(gw, again) == (200, m.duplicate_delivery())

    # Typing the same command again is a new delivery (a new trigger): it acts.
    fresh = slash_command(SECRET, f"run prod {sql}", response_url=slack.response_url("tr3"),
                          trigger_id="777.999.trigger")  # fmt: skip
    assert exchange(gw, fresh)[0] == 200
    assert "request #" in reply(slack, "tr3")
    assert count_requests(store_dsn, sql) == 2
    assert not replies(slack, "tr2")

    # A click Slack delivers twice (its retry carries the same trigger): one decision, and
    # no "you already approved" for the repeat.
    request_id = wait_until(lambda: _last_request(store_dsn, sql), what="the request id")
    url = slack.response_url("dbl")
    clicks = [
        block_action(SECRET, "approve", request_id, response_url=url, trigger_id="dbl.1")
        for _ in range(2)
    ]
    clicks[1].headers["X-Slack-Retry-Num"] = "1"
    assert [exchange(gw, c) for c in clicks] == [(200, ""), (200, "")]
    wait_until(lambda: _decisions(store_dsn, request_id) == 1, what="the decision")
    time.sleep(0.5)
    assert not replies(slack, "dbl")


def _last_request(store_dsn: str, sql: str) -> int | None:
    with psycopg.connect(store_dsn) as conn:
        row = conn.execute("SELECT max(id) FROM requests WHERE sql = %s", (sql,)).fetchone()
        return None if row is None else row[0]


def _decisions(store_dsn: str, request_id: int) -> int:
    with psycopg.connect(store_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM decisions WHERE request_id = %s", (request_id,)
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_a_view_submitted_twice_decides_once(
    gw: GatewayThread, slack: FakeSlack, store_dsn: str
) -> None:
    sql = "DELETE FROM carts WHERE id = 9"
    request = slash_command(SECRET, f"run prod {sql}", response_url=slack.response_url("vs"))
    assert exchange(gw, request)[0] == 200
    request_id = wait_until(lambda: _last_request(store_dsn, sql), what="the request id")
    submitted = [
        view_submission(SECRET, request_id, "no ticket", view_id="V0TWICE") for _ in range(2)
    ]
    assert exchange(gw, submitted[0])[0] == 200
    assert exchange(gw, submitted[1])[0] == 200
    wait_until(lambda: _decisions(store_dsn, request_id) == 1, what="the rejection")


def test_a_command_whose_text_says_payload_is_read_as_a_command(
    gw: GatewayThread, slack: FakeSlack
) -> None:
    request = slash_command(SECRET, "run prod SELECT 1 AS payload",
                            response_url=slack.response_url("word"))  # fmt: skip
    assert exchange(gw, request)[0] == 200
    assert "SELECT 1" in reply(slack, "word")
