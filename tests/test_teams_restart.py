"""A gateway restarted between the card and the click: the request, the card and the
conversation references are in the store, so the new gateway takes the click, runs the
statement once, updates the same card and answers in its thread; no card is posted twice."""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg

from approvals.model import State
from tests.fake_teams import FakeTeams
from tests.harness import GatewayThread, scalar
from tests.slack_gateway import wait_until
from tests.teams_gateway import (
    APP_ID,
    APPROVALS,
    BOB,
    MEMBERS,
    PASSWORD,
    card_of,
    click,
    install,
    teams_config,
)
from tests.test_teams import asked, final


def test_a_click_after_a_restart_runs_the_request_once(
    make_database: Callable[[str], str],
) -> None:
    store, target = make_database("jg_teams_restart_store"), make_database("jg_teams_restart_t")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, email text, note text, n int)")
        conn.execute("INSERT INTO items VALUES (7, 'x@example.org', 'seven', 0)")
    with FakeTeams(APP_ID, PASSWORD, MEMBERS) as teams:
        before = GatewayThread(teams_config(store, target, teams))
        try:
            install(before, teams)
            request_id = asked(before, teams, "UPDATE items SET n = n + 1 WHERE id = 7")
            card_id = card_of(before, request_id)
        finally:
            before.stop()
        after = GatewayThread(teams_config(store, target, teams))
        try:
            answer = click(after, teams, "approve", request_id, BOB)
            assert answer["type"] == "application/vnd.microsoft.card.adaptive", answer
            assert final(after, request_id).state == State.EXECUTED
            assert card_of(after, request_id) == card_id

            def answered() -> list[object]:
                return [r for r in teams.calls_to("reply", APPROVALS) if r.activity_id == card_id]

            assert len(wait_until(answered, what="the result in the card's thread")) == 1
            cards = [
                c
                for c in teams.calls_to("send", APPROVALS)
                if f"request #{request_id}" in json.dumps(c.activity)
            ]
            assert len(cards) == 1, "the card was posted again"
        finally:
            after.stop()
    assert scalar(target, "SELECT n FROM items WHERE id = 7") == 1
