"""Teams hosted on botbuilder 4.17 (``teams.hosting: botbuilder``, the ``botbuilder``
extra) behind the same interface: the end-to-end tests of :mod:`tests.test_teams` run
again on it (a held statement's card, the click, the threaded result and the update; every
forged, expired, misaddressed token refused; connector failures; the commands), and what
only this hosting does differently: botbuilder's channel validation decides on tokens,
botbuilder's connector client makes the calls, with the token its credentials' MSAL client
obtained; a personal chat is opened and the roster read through it."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
from joserfc.jwk import RSAKey

from tests.fake_teams import FakeTeams
from tests.harness import GatewayThread
from tests.slack_gateway import wait_until
from tests.teams_gateway import (
    APPROVALS,
    BOB,
    MALLORY,
    install,
    post,
    sender,
    teams_config,
)  # fmt: skip
from tests.test_teams import (  # the same tests, on this module's gateway
    target_dsn,
    test_a_connector_that_cannot_say_who_wrote_is_503_and_nothing_runs,
    test_a_signed_body_that_is_not_an_activity_is_400,
    test_connector_429_and_5xx_still_post_the_card_once,
    test_double_and_concurrent_invokes_execute_once,
    test_held_statement_card_invoke_result_in_thread,
    test_hostile_statement_renders_inert,
    test_messages_answer_like_jit,
    test_refresh_shows_buttons_only_to_who_may_decide,
    test_refused_clicks_answer_the_clicker_and_change_nothing,
    test_reject_asks_for_a_reason_then_rejects,
    test_requests_not_signed_by_the_channel_are_401,
)

__all__ = [
    "target_dsn",
    "test_a_connector_that_cannot_say_who_wrote_is_503_and_nothing_runs",
    "test_a_signed_body_that_is_not_an_activity_is_400",
    "test_connector_429_and_5xx_still_post_the_card_once",
    "test_double_and_concurrent_invokes_execute_once",
    "test_held_statement_card_invoke_result_in_thread",
    "test_hostile_statement_renders_inert",
    "test_messages_answer_like_jit",
    "test_refresh_shows_buttons_only_to_who_may_decide",
    "test_refused_clicks_answer_the_clicker_and_change_nothing",
    "test_reject_asks_for_a_reason_then_rejects",
    "test_requests_not_signed_by_the_channel_are_401",
]


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str,
       teams: FakeTeams) -> Iterator[GatewayThread]:  # fmt: skip
    config = teams_config(make_database("jg_teams_botbuilder_store"), target_dsn, teams)
    assert config.teams is not None
    config = dataclasses.replace(
        config, teams=dataclasses.replace(config.teams, hosting="botbuilder")
    )
    gateway = GatewayThread(config)
    install(gateway, teams)
    yield gateway
    gateway.stop()


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [str(r.__dict__.get("reason")) for r in caplog.records
            if r.getMessage() == "teams request refused"]  # fmt: skip


@pytest.mark.parametrize(("forged", "reason"), [
    ("same-kid", "the token does not verify: InvalidSignatureError"),
    ("no-expiry", "the token has no expiry"),
])  # fmt: skip
def test_botbuilders_channel_validation_decides_and_the_bot_checks_the_rest(
    gw: GatewayThread, teams: FakeTeams, caplog: pytest.LogCaptureFixture,
    forged: str, reason: str,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING)
    forger = RSAKey.generate_key(2048, parameters={"kid": teams.key.kid or "fake-teams-1"})
    token = teams.channel_token(key=forger) if forged == "same-kid" else \
        teams.channel_token(exp=None)  # fmt: skip
    activity = teams.activity("message_channel", text="pending", id=f"m-{uuid.uuid4()}")
    assert post(gw, activity, token) == (401, "unauthorized")
    assert refusals(caplog) == [reason]


def test_botbuilders_connector_opens_a_personal_chat_and_reads_the_roster(
    gw: GatewayThread, teams: FakeTeams
) -> None:
    mri = "SELECT count(*) FROM teams_users WHERE mri = $1"
    wait_until(lambda: gw.call(gw.gateway.pool.fetchval(mri, MALLORY[0])),
               what="mallory known from the roster")  # fmt: skip
    before = len(teams.calls)
    activity = teams.activity("message_channel", text="<at>jitgate</at> help", id="m-bob")
    activity["from"] = sender(BOB)
    activity["conversation"] = {**activity["conversation"], "id": f"{APPROVALS};messageid=m-bob"}
    assert post(gw, activity, teams.channel_token())[0] == 200
    (opened,) = wait_until(lambda: [c for c in teams.calls[before:] if c.kind == "open"])
    assert opened.activity["members"] == [{"id": BOB[0]}] and opened.activity["isGroup"] is False
    (answer,) = wait_until(lambda: [c for c in teams.calls[before:]
                                    if c.conversation == opened.activity_id])  # fmt: skip
    # botframework-connector's client (msrest), with a token the fake's authority issued.
    assert answer.status == 200 and "botframework-connector/" in answer.client
    assert "runs single statements on databases" in answer.activity["text"]
    requests = [r for r in teams.token_requests if r["x-client-sku"] == "MSAL.Python"]
    assert requests and requests[-1]["scope"] == "https://api.botframework.com/.default"
