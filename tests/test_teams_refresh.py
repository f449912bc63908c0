"""Whose approval card refreshes to their own view in Teams: ``refresh.userIds`` lists
MRIs (the ``from.id`` of a user's activities, the ``id`` of a roster member), never Entra
object ids; only people who may decide now, most recently seen first, at most 60. People
become known when they act and from the roster of a team the app is added to; an approver
not seen yet still gets the buttons on the card as posted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from tests.fake_teams import FakeTeams
from tests.harness import GatewayThread
from tests.slack_gateway import wait_until
from tests.teams_gateway import (
    ALICE,
    APP_ID,
    APPROVALS,
    BOB,
    EVE,
    MALLORY,
    MEMBERS,
    PASSWORD,
    card_json,
    click,
    install,
    post,
    teams_config,
    verbs,
)
from tests.test_teams import asked

CAROL = ("29:1CarolMRI", "ca201000-0000-4000-8000-0000000000ca")
DANA = ("29:1DanaMRI", "da4a0000-0000-4000-8000-0000000000da")
DBAS = [(f"29:1Dba{i}MRI", f"d0000000-0000-4000-8000-{i:012d}") for i in range(70)]


def member(user: tuple[str, str], email: str) -> dict[str, Any]:
    return {"id": user[0], "aadObjectId": user[1], "userPrincipalName": email, "name": email}


@pytest.fixture(scope="module")
def teams() -> Iterator[FakeTeams]:
    with FakeTeams(APP_ID, PASSWORD, dict(MEMBERS)) as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], teams: FakeTeams) -> Iterator[GatewayThread]:
    target = make_database("jg_teams_refresh_t")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, email text, note text, n int)")
        conn.execute("INSERT INTO items SELECT g, 'x@example.org', 'n', 0"
                     " FROM generate_series(1, 10) g")  # fmt: skip
    groups = {"engineers": ["alice@example.com"], "outsiders": ["eve@example.com"],
              "dba": ["bob@example.com", "carol@example.com", "dana@example.com",
                      *(f"dba{i}@example.com" for i in range(len(DBAS)))]}  # fmt: skip
    gateway = GatewayThread(
        teams_config(make_database("jg_teams_refresh_store"), target, teams, groups=groups)
    )
    install(gateway, teams)
    yield gateway
    gateway.stop()


def card_for(teams: FakeTeams, request_id: int) -> dict[str, Any]:
    needle = f"request #{request_id}"
    (posted,) = wait_until(lambda: [c for c in teams.calls_to("send", APPROVALS)
                                    if needle in json.dumps(c.activity)])  # fmt: skip
    return card_json(posted.activity)


def added_again(gw: GatewayThread, teams: FakeTeams, expect: str) -> None:
    """The app added to the approvals channel again: its team's roster is read, until
    ``expect`` (an MRI) is known."""
    activity = teams.activity("conversation_update")
    activity["conversation"] = {**activity["conversation"], "id": APPROVALS}
    assert post(gw, activity, teams.channel_token())[0] == 200
    sql = "SELECT count(*) FROM teams_users WHERE mri = $1"
    wait_until(lambda: gw.call(gw.gateway.pool.fetchval(sql, expect)), what=f"{expect} seen")


def test_refresh_lists_the_mris_of_who_may_decide(gw: GatewayThread, teams: FakeTeams) -> None:
    # Nobody who may decide has been seen: the refresh names nobody (Teams then refreshes
    # everyone's view in a channel of up to 60), and the card as posted has the buttons.
    first = asked(gw, teams, "UPDATE items SET n = n + 1 WHERE id = 1")
    card = card_for(teams, first)
    assert card["version"] == "1.5"
    assert card["refresh"]["action"]["verb"] == "refresh" and "userIds" not in card["refresh"]
    assert verbs(card) == ["approve", "reject"]
    # Bob opens the card: his client refreshes it, and from now on he is known by his MRI.
    answer = click(gw, teams, "refresh", first, BOB)["value"]
    assert verbs(answer) == ["approve", "reject"] and answer["refresh"]["userIds"] == [BOB[0]]
    # Carol is in the team's roster.
    teams.members[CAROL[0]] = member(CAROL, "Carol@Example.com")
    added_again(gw, teams, CAROL[0])
    card = card_for(teams, asked(gw, teams, "UPDATE items SET n = n + 1 WHERE id = 2"))
    assert sorted(card["refresh"]["userIds"]) == sorted([BOB[0], CAROL[0]])
    for outsider in (ALICE, EVE, MALLORY):  # the requester, a non-approver, nobody
        assert outsider[0] not in card["refresh"]["userIds"]
    assert not any(user[1] in json.dumps(card) for user in (BOB, CAROL))  # no object ids


def test_refresh_names_at_most_60_people(gw: GatewayThread, teams: FakeTeams) -> None:
    for i, dba in enumerate(DBAS):
        teams.members[dba[0]] = member(dba, f"dba{i}@example.com")
    added_again(gw, teams, DBAS[-1][0])
    pages = [c for c in teams.calls_to("roster") if c.activity.get("continuationToken")]
    assert pages, "the roster was read in pages"
    request_id = asked(gw, teams, "UPDATE items SET n = n + 1 WHERE id = 3")
    ids = card_for(teams, request_id)["refresh"]["userIds"]
    approvers = {BOB[0], CAROL[0], *(dba[0] for dba in DBAS)}
    assert len(ids) == 60 and len(set(ids)) == 60 and set(ids) <= approvers
    answer = click(gw, teams, "refresh", request_id, CAROL)["value"]
    assert len(answer["refresh"]["userIds"]) == 60


def test_a_roster_that_cannot_be_read_changes_nothing_else(
    gw: GatewayThread, teams: FakeTeams
) -> None:
    teams.fail("roster", times=1, status=503)
    activity = teams.activity("conversation_update")
    activity["conversation"] = {**activity["conversation"], "id": APPROVALS}
    assert post(gw, activity, teams.channel_token())[0] == 200
    wait_until(lambda: [c for c in teams.calls if c.kind == "roster" and c.status == 503])
    card = card_for(teams, asked(gw, teams, "UPDATE items SET n = n + 1 WHERE id = 4"))
    assert verbs(card) == ["approve", "reject"] and len(card["refresh"]["userIds"]) == 60


def test_someone_who_joins_the_team_is_known_from_then_on(
    gw: GatewayThread, teams: FakeTeams
) -> None:
    teams.members[DANA[0]] = member(DANA, "dana@example.com")
    joined = teams.activity(
        "conversation_update", membersAdded=[{"id": DANA[0], "aadObjectId": DANA[1]}]
    )
    joined["conversation"] = {**joined["conversation"], "id": APPROVALS}
    assert post(gw, joined, teams.channel_token())[0] == 200
    sql = "SELECT email FROM teams_users WHERE mri = $1"
    assert wait_until(lambda: gw.call(gw.gateway.pool.fetchval(sql, DANA[0]))) == (
        "dana@example.com"
    )
    card = card_for(teams, asked(gw, teams, "UPDATE items SET n = n + 1 WHERE id = 5"))
    assert DANA[0] in card["refresh"]["userIds"]
