"""What is for one person goes to their personal chat with the app: answers to messages
written in a channel (the chat jitgate has with them, else one it opens; when Teams will
not let it, the thread gets a note saying where to ask, never the answer), and a
requester's messages even if they never wrote to the app (found by the MRI the team's
roster gave)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.fake_teams import Call, FakeTeams
from tests.harness import GatewayThread, ask_api
from tests.slack_gateway import wait_until
from tests.teams_gateway import (
    ALICE,
    ALICE_CHAT,
    APP_ID,
    APPROVALS,
    BOB,
    MEMBERS,
    PASSWORD,
    TENANT,
    click,
    install,
    post,
    sender,
    teams_config,
)

RAW_EMAIL = "carol.customer@example.org"


CAROL = ("29:1CarolMRI", "ca201000-0000-4000-8000-0000000000ca")
ROSTER = {**MEMBERS, CAROL[0]: {"id": CAROL[0], "aadObjectId": CAROL[1],
                                "userPrincipalName": "carol@example.com"}}  # fmt: skip


@pytest.fixture(scope="module")
def teams() -> Iterator[FakeTeams]:
    with FakeTeams(APP_ID, PASSWORD, ROSTER) as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], teams: FakeTeams) -> Iterator[GatewayThread]:
    target = make_database("jg_teams_messages_t")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, email text, n int DEFAULT 0)")
        conn.execute(f"INSERT INTO items VALUES (5, '{RAW_EMAIL}')")
    groups = {"engineers": ["alice@example.com", "carol@example.com"],
              "dba": ["bob@example.com"], "outsiders": ["eve@example.com"]}  # fmt: skip
    store = make_database("jg_teams_messages_s")
    gateway = GatewayThread(teams_config(store, target, teams, groups=groups))
    install(gateway, teams)
    yield gateway
    gateway.stop()


def say_in_channel(gw: GatewayThread, teams: FakeTeams, user: tuple[str, str], text: str,
                   message_id: str) -> None:  # fmt: skip
    activity = teams.activity("message_channel", text=f"<at>jitgate</at> {text}", id=message_id)
    activity["from"] = sender(user)
    activity["conversation"] = {**activity["conversation"],
                                "id": f"{APPROVALS};messageid={message_id}"}  # fmt: skip
    assert post(gw, activity, teams.channel_token())[0] == 200


def sent_to(teams: FakeTeams, conversation: str, after: int) -> list[Call]:
    return [c for c in teams.calls[after:] if c.conversation.startswith(conversation)
            and c.kind in ("send", "reply") and c.status == 200]  # fmt: skip


def test_an_answer_goes_to_the_writers_personal_chat(gw: GatewayThread, teams: FakeTeams) -> None:
    before = len(teams.calls)
    say_in_channel(gw, teams, ALICE, "run prod SELECT id, email FROM items WHERE id = 5", "m1")
    (answer,) = wait_until(lambda: sent_to(teams, ALICE_CHAT, before), what="alice's answer")
    assert "SELECT 1" in answer.activity["text"] and RAW_EMAIL not in answer.activity["text"]
    assert sent_to(teams, APPROVALS, before) == []


def test_a_personal_chat_is_opened_for_someone_without_one(
    gw: GatewayThread, teams: FakeTeams
) -> None:
    before = len(teams.calls)
    say_in_channel(gw, teams, BOB, "pending", "m2")
    (opened,) = wait_until(lambda: [c for c in teams.calls[before:] if c.kind == "open"])
    assert opened.activity["members"] == [{"id": BOB[0]}]
    assert opened.activity["tenantId"] == TENANT and opened.activity["bot"]["id"].startswith("28:")
    assert opened.activity_id is not None
    (answer,) = wait_until(lambda: sent_to(teams, opened.activity_id or "", before))
    assert "No requests are waiting" in answer.activity["text"]
    assert sent_to(teams, APPROVALS, before) == []
    # The chat is on record: the next answer goes there without opening another.
    say_in_channel(gw, teams, BOB, "help", "m3")
    wait_until(lambda: len(sent_to(teams, opened.activity_id or "", before)) == 2 or None)
    assert len([c for c in teams.calls[before:] if c.kind == "open"]) == 1


def test_when_teams_refuses_a_private_chat_the_thread_gets_a_note_only(
    gw: GatewayThread, teams: FakeTeams
) -> None:
    teams.fail("open", times=1, status=403)
    before = len(teams.calls)
    mallory = ("29:1MalloryMRI", "3a110000-0000-4000-8000-00000000003a")
    say_in_channel(gw, teams, mallory, "pending", "m4")
    (note,) = wait_until(lambda: sent_to(teams, APPROVALS, before), what="the note")
    text = json.dumps(note.activity)
    assert "cannot start one with you" in text and "not known to jitgate" not in text
    assert note.kind == "send" and note.conversation == f"{APPROVALS};messageid=m4"


def test_a_requester_who_never_wrote_to_the_app_is_told_in_a_chat_it_opens(
    gw: GatewayThread, teams: FakeTeams
) -> None:
    sql = "SELECT count(*) FROM teams_users WHERE mri = $1"
    wait_until(lambda: gw.call(gw.gateway.pool.fetchval(sql, CAROL[0])), what="the roster")
    status, body = ask_api(gw, gw.token("carol@example.com"), "UPDATE items SET n = 1 WHERE id = 5")
    assert status == 202, body
    request_id = int(body["request"]["id"])
    before = len(teams.calls)
    assert click(gw, teams, "approve", request_id, BOB)["type"].endswith("card.adaptive")
    (opened,) = wait_until(lambda: [c for c in teams.calls[before:] if c.kind == "open"])
    assert opened.activity["members"] == [{"id": CAROL[0]}]
    (told,) = wait_until(lambda: sent_to(teams, opened.activity_id or "", before))
    assert f"Your request #{request_id}" in told.activity["text"]
