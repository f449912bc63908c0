"""A Teams invoke delivered more than once (the Bot Framework retries what it did not see
answered) is acted on once: two gateways sharing one store take the same signed activity
at the same moment and again later, and every delivery gets the first one's answer, with
one decision, one execution and one result in the card's thread."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from approvals.model import State
from tests.fake_teams import FakeTeams
from tests.harness import GatewayThread, scalar
from tests.slack_gateway import wait_until
from tests.teams_gateway import (
    APPROVALS,
    BOB,
    card_of,
    install,
    invoke,
    post,
    teams_config,
)
from tests.test_teams import asked, final

CARD = "application/vnd.microsoft.card.adaptive"


@pytest.fixture(scope="module")
def target(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_teams_invokes_t")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, email text, note text, n int)")
        conn.execute("INSERT INTO items SELECT g, 'x@example.org', 'n', 0"
                     " FROM generate_series(1, 10) g")  # fmt: skip
    return dsn


@pytest.fixture(scope="module")
def gateways(make_database: Callable[[str], str], target: str,
             teams: FakeTeams) -> Iterator[tuple[GatewayThread, GatewayThread]]:  # fmt: skip
    store = make_database("jg_teams_invokes_store")
    first = GatewayThread(teams_config(store, target, teams))
    second = GatewayThread(teams_config(store, target, teams))
    install(first, teams)
    yield first, second
    second.stop()
    first.stop()


def replies_to(teams: FakeTeams, card_id: str) -> list[object]:
    return [r for r in teams.calls_to("reply", APPROVALS) if r.activity_id == card_id]


def test_the_same_invoke_twice_and_at_once_on_two_gateways_acts_once(
    gateways: tuple[GatewayThread, GatewayThread], teams: FakeTeams, target: str
) -> None:
    first, second = gateways
    request_id = asked(first, teams, "UPDATE items SET n = n + 1 WHERE id = 1")
    activity, token = invoke(first, teams, "approve", request_id, BOB), teams.channel_token()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda gw: post(gw, activity, token), [first, second] * 3))
    view = final(first, request_id)
    answers.append(post(second, activity, token))
    assert {json.dumps(a, sort_keys=True) for a in answers} == {
        json.dumps(answers[0], sort_keys=True)
    }
    status, answer = answers[0]
    assert status == 200 and answer["type"] == CARD and answer["statusCode"] == 200
    assert view.state == State.EXECUTED
    assert [d.approver for d in view.decisions] == ["bob@example.com"]
    assert scalar(target, "SELECT n FROM items WHERE id = 1") == 1
    card_id = card_of(first, request_id)
    assert len(wait_until(lambda: replies_to(teams, card_id), what="the result")) == 1
    # A later click (a new activity) is a new action: the request is decided already.
    fresh = invoke(second, teams, "approve", request_id, BOB)
    refused = post(second, fresh, teams.channel_token())[1]
    assert refused["type"] == "application/vnd.microsoft.activity.message"
    assert "already" in refused["value"]


def test_a_claim_left_unanswered_is_taken_again_after_its_lease(
    gateways: tuple[GatewayThread, GatewayThread], teams: FakeTeams, target: str
) -> None:
    first, second = gateways
    request_id = asked(first, teams, "UPDATE items SET n = n + 1 WHERE id = 2")
    activity = invoke(first, teams, "approve", request_id, BOB)
    key = f"{activity['conversation']['id']}:{activity['id']}"
    # A gateway claimed this delivery and died before answering; its lease has ended.
    first.call(first.gateway.pool.execute(
        "INSERT INTO teams_invokes (key, leased_until, expires_at)"
        " VALUES ($1, now() - interval '1 second', now() + interval '1 hour')", key))  # fmt: skip
    status, answer = post(second, activity, teams.channel_token())
    assert status == 200 and answer["type"] == CARD
    assert final(second, request_id).state == State.EXECUTED
    assert scalar(target, "SELECT n FROM items WHERE id = 2") == 1
