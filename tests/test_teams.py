"""Microsoft Teams end to end: a real gateway and target, psql held on its own connection,
the fake Bot Framework (channel tokens signed RS256 with a published key, a connector that
records what the bot sends) and recorded Teams activities from ``tests/fixtures/teams``."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from joserfc.jwk import RSAKey

from approvals.model import State
from jitgate.config import parse_config
from jitgate.errors import ConfigError
from tests.fake_teams import Call, FakeTeams
from tests.harness import GatewayThread, gateway_config
from tests.slack_gateway import settle, wait_until
from tests.teams_gateway import (
    ALICE,
    ALICE_CHAT,
    APP_ID,
    APPROVALS,
    BOB,
    EVE,
    MALLORY,
    SECURITY,
    TENANT,
    card_json,
    card_of,
    click,
    install,
    post,
    runs,
    sender,
    teams_config,
    text_blocks,
    verbs,
)  # fmt: skip

RAW_EMAIL = "carol.customer@example.org"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_teams_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, email text, note text, n int)")
        conn.execute("INSERT INTO items SELECT g, 'carol.customer@example.org', 'n' || g, 0"
                     " FROM generate_series(1, 1000) g")  # fmt: skip
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str,
       teams: FakeTeams) -> Iterator[GatewayThread]:  # fmt: skip
    gateway = GatewayThread(teams_config(make_database("jg_teams_store"), target_dsn, teams))
    install(gateway, teams)
    yield gateway
    gateway.stop()


def scalar(target_dsn: str, sql: str) -> Any:
    with psycopg.connect(target_dsn) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return row[0]


def held(gw: GatewayThread, pg_bin: Callable[[str], str],
         *statements: str) -> tuple[subprocess.Popen[str], int]:  # fmt: skip
    before = gw.call(gw.gateway.approvals.store.list(limit=1))
    args = [pg_bin("psql"), "-X", gw.dsn("alice@example.com", gw.token("alice@example.com"))]
    for statement in statements:
        args += ["-c", statement]
    client = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def opened() -> int | None:
        rows = gw.call(gw.gateway.approvals.store.list(states=[State.PENDING], limit=1))
        return rows[0].id if rows and (not before or rows[0].id > before[0].id) else None

    return client, wait_until(opened, what="a held statement")


def ask(gw: GatewayThread, teams: FakeTeams, text: str, user: tuple[str, str] = ALICE) -> str:
    """A message to the bot in alice's personal chat; the text of the bot's answer."""
    settle(gw)  # her messages about earlier requests are out, not taken for the answer

    def told() -> list[Call]:
        return [c for c in list(teams.calls) if c.conversation == ALICE_CHAT
                and c.kind in ("send", "reply") and c.status < 300]  # fmt: skip

    sent = len(told())
    activity = teams.activity("message_channel", text=text, id=f"m-{uuid.uuid4()}")
    activity["from"] = sender(user)
    activity["conversation"] = {"conversationType": "personal", "id": ALICE_CHAT}
    assert post(gw, activity, teams.channel_token())[0] == 200
    replies = wait_until(lambda: told()[sent:], what="the bot's answer")
    return str(replies[0].activity["text"])


def asked(gw: GatewayThread, teams: FakeTeams, sql: str) -> int:
    text = ask(gw, teams, f"run prod {sql}")
    assert "Statement held: request #" in text, text
    return int(text.split("request #")[1].split()[0])


def final(gw: GatewayThread, request_id: int) -> Any:
    def done() -> Any:
        view = gw.call(gw.gateway.approvals.store.view(request_id))
        return view if view is not None and view.final else None

    return wait_until(done, what=f"request #{request_id} to finish")


def test_held_statement_card_invoke_result_in_thread(
    gw: GatewayThread, teams: FakeTeams, pg_bin: Callable[[str], str], target_dsn: str
) -> None:
    client, request_id = held(gw, pg_bin, "DELETE FROM items WHERE id <= 3 RETURNING id, email",
                              "SELECT count(*) AS left_over FROM items")  # fmt: skip
    card_id = card_of(gw, request_id)
    (posted,) = [c for c in teams.calls_to("send", APPROVALS)
                 if f"request #{request_id}" in json.dumps(c.activity)]  # fmt: skip
    card = card_json(posted.activity)
    assert verbs(card) == ["approve", "reject"]
    assert f"Approval needed: request #{request_id}" in text_blocks(card)
    assert scalar(target_dsn, "SELECT count(*) FROM items WHERE id <= 3") == 3

    answer = click(gw, teams, "approve", request_id, BOB)
    assert answer["statusCode"] == 200
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    assert verbs(answer["value"]) == []  # decided: no buttons for anyone
    out, err = client.communicate(timeout=30)
    assert "DELETE 3" in out and "997" in out and "Microsoft Teams" in err

    (result,) = wait_until(lambda: [c for c in teams.calls_to("reply", APPROVALS)
                                    if c.activity_id == card_id], what="the result")  # fmt: skip
    assert result.activity["replyToId"] == card_id
    shown = runs(card_json(result.activity))
    assert "DELETE 3" in shown and RAW_EMAIL not in shown and "EMAIL" in shown
    view = final(gw, request_id)
    assert f"http://127.0.0.1:8080/sessions/{view.session_id}" in shown

    def updated() -> dict[str, Any] | None:
        found = [c for c in teams.calls_to("update", APPROVALS) if c.activity_id == card_id]
        last = card_json(found[-1].activity) if found else None
        return last if last is not None and "executed" in " ".join(text_blocks(last)) else None

    decided = wait_until(updated, what="the card to show the execution")
    assert verbs(decided) == [] and "bob@example.com" in runs(decided)
    dm = teams.wait_for("send", conversation=ALICE_CHAT)
    assert any(f"Your request #{request_id}" in c.activity.get("text", "") for c in dm)
    assert len([c for c in teams.calls_to("send", APPROVALS)
                if f"request #{request_id}" in json.dumps(c.activity)]) == 1  # fmt: skip


@pytest.mark.parametrize("case", ["none", "garbage", "other-key", "expired", "audience",
                                  "issuer", "service-url", "tenant"])  # fmt: skip
def test_requests_not_signed_by_the_channel_are_401(
    gw: GatewayThread, teams: FakeTeams, case: str
) -> None:
    activity = teams.activity("message_channel", text="run prod DELETE FROM items", id=case)
    token: str | None = {
        "none": None,
        "garbage": "not.a.jwt",
        "other-key": teams.channel_token(key=RSAKey.generate_key(2048, parameters={"kid": "x"})),
        "expired": teams.channel_token(exp=1_600_000_000, nbf=1_599_999_000),
        "audience": teams.channel_token(aud="11111111-2222-3333-4444-555555555555"),
        "issuer": teams.channel_token(iss="https://evil.example.com"),
        "service-url": teams.channel_token(serviceurl="https://evil.example.com/"),
        "tenant": teams.channel_token(),
    }[case]
    if case == "tenant":
        activity["channelData"] = {"tenant": {"id": "00000000-0000-0000-0000-00000000bad0"}}
    before = len(teams.calls)
    status, answer = post(gw, activity, token)
    assert (status, answer) == (401, "unauthorized")
    assert post(gw, b"{not json", token)[0] == 401
    assert len(teams.calls) == before


def test_a_connector_that_cannot_say_who_wrote_is_503_and_nothing_runs(
    gw: GatewayThread, teams: FakeTeams
) -> None:
    teams.fail("member", times=1, status=502)
    stranger = ("29:1StrangerMRI", "5a500000-0000-4000-8000-0000000000aa")
    activity = teams.activity("message_channel", text="pending", id="m-stranger")
    activity["from"] = sender(stranger)
    before = len(teams.calls_to("send")) + len(teams.calls_to("reply"))
    assert post(gw, activity, teams.channel_token()) == (503, "the gateway cannot act on this now")
    assert [c.status for c in teams.calls if c.kind == "member"][-1] == 502
    assert len(teams.calls_to("send")) + len(teams.calls_to("reply")) == before


def test_a_signed_body_that_is_not_an_activity_is_400(gw: GatewayThread, teams: FakeTeams) -> None:
    tenant = {"tenant": {"id": TENANT}}
    body = {"type": "message", "channelId": "msteams", "serviceUrl": teams.service_url,
            "channelData": tenant}  # fmt: skip
    assert post(gw, body, teams.channel_token())[0] == 400


@pytest.mark.parametrize(("user", "expected"), [
    (ALICE, "You cannot approve request #{id}: it is your own"),
    (EVE, "You are not an approver for request #{id}"),
    (MALLORY, "Your Teams email mallory@example.com is not known to jitgate"),
])  # fmt: skip
def test_refused_clicks_answer_the_clicker_and_change_nothing(
    gw: GatewayThread, teams: FakeTeams, user: tuple[str, str], expected: str
) -> None:
    request_id = asked(gw, teams, "DELETE FROM items WHERE id = 500")
    answer = click(gw, teams, "approve", request_id, user)
    assert answer["type"] == "application/vnd.microsoft.activity.message"
    assert expected.format(id=request_id) in answer["value"]
    view = gw.call(gw.gateway.approvals.store.view(request_id))
    assert view.state == State.PENDING and view.decisions == ()
    if user == ALICE:
        alerts = wait_until(lambda: [c for c in teams.calls_to("send", SECURITY)
                                     if "Self-approval" in json.dumps(c.activity)])  # fmt: skip
        assert f"#{request_id}" in runs(card_json(alerts[0].activity))


def test_refresh_shows_buttons_only_to_who_may_decide(gw: GatewayThread, teams: FakeTeams) -> None:
    request_id = asked(gw, teams, "DELETE FROM items WHERE id = 501")
    assert verbs(click(gw, teams, "refresh", request_id, BOB)["value"]) == ["approve", "reject"]
    assert verbs(click(gw, teams, "refresh", request_id, EVE)["value"]) == []
    assert verbs(click(gw, teams, "refresh", request_id, ALICE)["value"]) == []


def test_double_and_concurrent_invokes_execute_once(
    gw: GatewayThread, teams: FakeTeams, target_dsn: str
) -> None:
    request_id = asked(gw, teams, "UPDATE items SET n = n + 1 WHERE id = 600")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: click(gw, teams, "approve", request_id, BOB), range(8)))
    view = final(gw, request_id)
    assert view.state == State.EXECUTED and [d.approver for d in view.decisions] == [
        "bob@example.com"
    ]
    assert scalar(target_dsn, "SELECT n FROM items WHERE id = 600") == 1
    cards = [a for a in answers if a["type"] == "application/vnd.microsoft.card.adaptive"]
    assert len(cards) == 1, answers
    assert all("already" in a["value"] for a in answers if a not in cards)
    card_id = card_of(gw, request_id)

    def replied() -> list[Any]:
        return [r for r in teams.calls_to("reply", APPROVALS) if r.activity_id == card_id]

    assert len(wait_until(replied, what="the result in the card's thread")) == 1


def test_reject_asks_for_a_reason_then_rejects(
    gw: GatewayThread, teams: FakeTeams, pg_bin: Callable[[str], str], target_dsn: str
) -> None:
    client, request_id = held(gw, pg_bin, "UPDATE items SET note = 'gone' WHERE id = 700",
                              "SELECT note AS still FROM items WHERE id = 700")  # fmt: skip
    form = click(gw, teams, "reject", request_id, BOB)["value"]
    assert [b["id"] for b in form["body"] if b["type"] == "Input.Text"] == ["reason"]
    assert verbs(form) == ["reject", "refresh"]
    assert gw.call(gw.gateway.approvals.store.view(request_id)).state == State.PENDING
    answer = click(gw, teams, "reject", request_id, BOB, reason="not during the sale")
    assert verbs(answer["value"]) == [] and "not during the sale" in runs(answer["value"])
    out, err = client.communicate(timeout=30)
    assert f"request #{request_id} was rejected by bob@example.com" in err and "n700" in out
    assert scalar(target_dsn, "SELECT note FROM items WHERE id = 700") == "n700"
    wait_until(lambda: [c for c in teams.calls_to("send", SECURITY)
                        if "Request rejected" in json.dumps(c.activity)])  # fmt: skip


def test_hostile_statement_renders_inert(gw: GatewayThread, teams: FakeTeams) -> None:
    hostile = ("UPDATE items SET note = '**bold** [x](https://evil.example) ${user.name} "
               "{{DATE(2017-02-14T06:08:39Z, SHORT)}} <at>bob</at> \u202egnp.exe'"
               " WHERE id = 800")  # fmt: skip
    request_id = asked(gw, teams, hostile)
    card_id = card_of(gw, request_id)
    (posted,) = [c for c in teams.calls_to("send", APPROVALS)
                 if f"request #{request_id}" in json.dumps(c.activity)]  # fmt: skip
    card = card_json(posted.activity)
    markdown = " ".join(text_blocks(card))
    for needle in ("**bold**", "evil.example", "${", "{{", "<at>", "\u202e"):
        assert needle not in markdown
    shown = runs(card)
    assert "**bold** [x](https://evil.example) ${user.name}" in shown
    assert "{{DATE" not in shown and "{\u2060{DATE(" in shown
    assert "[U+202E]" in shown and "\u202e" not in json.dumps(card, ensure_ascii=False)
    assert "$data" not in json.dumps(card) and "msteams" not in card
    assert card_id


def test_messages_answer_like_jit(gw: GatewayThread, teams: FakeTeams) -> None:
    help_text = ask(gw, teams, "help")
    assert "`run RESOURCE SQL [-- reason]`" in help_text and "/jit" not in help_text
    read = ask(gw, teams, "run prod SELECT id, email FROM items WHERE id = 5")
    assert "SELECT 1" in read and RAW_EMAIL not in read
    request_id = asked(gw, teams, "DELETE FROM items WHERE id = 900 -- cleanup")
    assert f"**Request #{request_id}**" in ask(gw, teams, f"status {request_id}")
    assert "No requests are waiting" in ask(gw, teams, "pending")
    assert "is not known to jitgate" in ask(gw, teams, "pending", MALLORY)


def test_connector_429_and_5xx_still_post_the_card_once(
    gw: GatewayThread, teams: FakeTeams
) -> None:
    teams.fail("send", times=1, status=429, retry_after=1, conversation=APPROVALS)
    teams.fail("send", times=1, status=502, conversation=APPROVALS)
    request_id = asked(gw, teams, "DELETE FROM items WHERE id = 950")
    card_id = card_of(gw, request_id)
    posted = [c for c in teams.calls_to("send", APPROVALS)
              if f"request #{request_id}" in json.dumps(c.activity)]  # fmt: skip
    assert len(posted) == 1 and card_id


@pytest.mark.parametrize(("raw", "key"), [
    ({"alerts": {"teams": SECURITY}}, "alerts.teams"),
    ({"teams": {"app_id": APP_ID}}, "teams.app_password"),
    ({"teams": {"app_id": APP_ID, "app_password": "x", "users": {"bob": "bob@example.com"}}},
     "teams.users.bob"),
])  # fmt: skip
def test_teams_settings_are_checked_at_start(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        gateway_config("postgresql://u@127.0.0.1:5432/x", "postgresql://u@127.0.0.1:5432/y", **raw)
    assert refused.value.key == key


def test_notify_teams_without_a_teams_section_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config({"database_url": "postgresql://127.0.0.1/x", "resources": {"prod": {
            "type": "postgres", "url": "postgresql://u@127.0.0.1:5432/y",
            "notify": {"teams": APPROVALS}}}}, {})  # fmt: skip
    assert refused.value.key == "resources.prod.notify.teams"
