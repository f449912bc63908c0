"""Teams hosted on the Microsoft 365 Agents SDK: the SDK's JWT validator decides on the
channel's tokens (with the keys from ``teams.openid_metadata``), the SDK's connector client
makes the bot's calls, with the token MSAL obtained from the (fake) Entra authority."""

from __future__ import annotations

import dataclasses
import logging
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from joserfc.jwk import RSAKey

from jitgate.errors import ConfigError
from tests.fake_teams import SCOPE, FakeTeams
from tests.harness import GatewayThread, ask_api, gateway_config
from tests.slack_gateway import wait_until
from tests.teams_gateway import (
    ALICE,
    ALICE_CHAT,
    APP_ID,
    install,
    post,
    sender,
    teams_config,
)  # fmt: skip

SDK_VALIDATOR = "microsoft_agents.hosting.core.authorization.jwt.jwt_token_validator"


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], teams: FakeTeams) -> Iterator[GatewayThread]:
    config = teams_config(make_database("jg_teams_hosting_store"),
                          make_database("jg_teams_hosting_target"), teams)  # fmt: skip
    gateway = GatewayThread(config)
    install(gateway, teams)
    yield gateway
    gateway.stop()


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [str(r.__dict__.get("reason")) for r in caplog.records
            if r.getMessage() == "teams request refused"]  # fmt: skip


def test_a_token_forged_under_the_channels_key_id_is_refused_by_the_sdks_validator(
    gw: GatewayThread, teams: FakeTeams, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    forger = RSAKey.generate_key(2048, parameters={"kid": teams.key.kid or "fake-teams-1"})
    activity = teams.activity("message_channel", text="pending", id="m-forged")
    before = len(teams.calls)
    assert post(gw, activity, teams.channel_token(key=forger)) == (401, "unauthorized")
    # PyJWT's error, raised inside the SDK's JwtTokenValidator after it was handed the
    # channel's published key for that key id.
    assert refusals(caplog) == ["the token does not verify: InvalidSignatureError"]
    assert len(teams.calls) == before


def test_a_wrong_audience_is_refused_by_the_sdks_audience_check(
    gw: GatewayThread, teams: FakeTeams, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    token = teams.channel_token(aud="11111111-2222-3333-4444-555555555555")
    activity = teams.activity("message_channel", text="pending", id="m-audience")
    assert post(gw, activity, token) == (401, "unauthorized")
    assert "JWT audience not accepted." in [
        r.getMessage() for r in caplog.records if r.name == SDK_VALIDATOR
    ]
    assert refusals(caplog) == ["the token does not verify: ValueError"]


@pytest.mark.parametrize(("claims", "reason"), [
    ({"exp": None}, "the token has no expiry"),
    ({"iss": "https://api.botframework.us"}, "the token does not verify: ValueError"),
])  # fmt: skip
def test_what_the_sdk_leaves_to_the_bot_is_checked_too(
    gw: GatewayThread, teams: FakeTeams, caplog: pytest.LogCaptureFixture,
    claims: dict[str, Any], reason: str,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING)
    activity = teams.activity("message_channel", text="pending", id=f"m-{uuid.uuid4()}")
    assert post(gw, activity, teams.channel_token(**claims)) == (401, "unauthorized")
    assert refusals(caplog) == [reason]


def test_the_bots_calls_go_through_the_sdks_connector_with_the_token_msal_obtained(
    gw: GatewayThread, teams: FakeTeams
) -> None:
    activity = teams.activity("message_channel", text="help", id=f"m-{uuid.uuid4()}")
    activity["from"] = sender(ALICE)
    activity["conversation"] = {"conversationType": "personal", "id": ALICE_CHAT}
    before = len(teams.calls)
    assert post(gw, activity, teams.channel_token())[0] == 200
    (answer,) = wait_until(
        lambda: [c for c in teams.calls[before:] if c.conversation == ALICE_CHAT], what="help"
    )
    # The fake connector answers 200 only to a token its authority issued.
    assert answer.status == 200 and answer.client.startswith("agents-sdk-py/")
    assert teams.token_requests, "no token was asked for"
    assert teams.token_requests[0] | {"client_info": ""} == {
        "client_id": APP_ID, "grant_type": "client_credentials", "scope": SCOPE,
        "x-client-sku": "MSAL.Python", "client_info": "",
    }  # fmt: skip
    assert teams.tokens_issued == 1  # reused for every call since


@pytest.mark.parametrize(("teams_section", "key"), [
    ({"hosting": "bot-sdk"}, "teams.hosting"),
    ({"token_endpoint": "http://login.example.com/botframework.com/oauth2/v2.0/token"},
     "teams.token_endpoint"),
    ({"token_endpoint": "https://login.example.com/oauth2/token"}, "teams.token_endpoint"),
])  # fmt: skip
def test_hosting_and_the_token_authority_are_checked_at_start(
    teams_section: dict[str, str], key: str
) -> None:
    section = {"app_id": APP_ID, "app_password": "x", **teams_section}
    with pytest.raises(ConfigError) as refused:
        gateway_config("postgresql://u@127.0.0.1:5432/x", "postgresql://u@127.0.0.1:5432/y",
                       teams=section)  # fmt: skip
    assert refused.value.key == key


def test_botbuilder_hosting_without_the_extra_stops_the_start_naming_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules is how Python marks a module that cannot be imported.
    monkeypatch.setitem(sys.modules, "botbuilder", None)
    monkeypatch.setitem(sys.modules, "botbuilder.core", None)
    section = {"app_id": APP_ID, "app_password": "x", "hosting": "botbuilder"}
    with pytest.raises(ConfigError) as refused:
        gateway_config("postgresql://u@127.0.0.1:5432/x", "postgresql://u@127.0.0.1:5432/y",
                       teams=section)  # fmt: skip
    assert refused.value.key == "teams.hosting"
    assert "pip install 'jitgate[botbuilder]'" in str(refused.value)


@pytest.mark.parametrize("changes", [
    {"from": {"id": 5}},
    {"timestamp": "yesterday"},
    {"attachments": "a card"},
])  # fmt: skip
def test_a_signed_body_the_sdks_activity_model_refuses_is_400(
    gw: GatewayThread, teams: FakeTeams, changes: dict[str, Any]
) -> None:
    activity = teams.activity("message_channel", text="pending", id=f"m-{uuid.uuid4()}")
    before = len(teams.calls)
    status, answer = post(gw, {**activity, **changes}, teams.channel_token())
    assert (status, answer) == (400, "the body is not a Bot Framework activity")
    assert len(teams.calls) == before


def test_a_secret_entra_refuses_fails_the_card_naming_why(
    make_database: Callable[[str], str], teams: FakeTeams
) -> None:
    target = make_database("jg_teams_hosting_refused_t")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
    config = teams_config(make_database("jg_teams_hosting_refused_s"), target, teams)
    assert config.teams is not None
    wrong = dataclasses.replace(config.teams, app_password="an-old-client-secret")
    gateway = GatewayThread(dataclasses.replace(config, teams=wrong))
    try:
        install(gateway, teams)
        issued = teams.tokens_issued
        status, _ = ask_api(
            gateway, gateway.token("alice@example.com"), "DELETE FROM items WHERE id = 1"
        )
        assert status == 202

        def failed() -> str | None:
            sql = "SELECT last_error FROM outbox WHERE chat = 'teams' AND kind = 'card'" \
                  " AND failed_at IS NOT NULL"  # fmt: skip
            return gateway.call(gateway.gateway.pool.fetchval(sql))  # type: ignore[no-any-return]

        assert wait_until(failed, what="the card's row to fail") == (
            "HTTP 401: the bot's token was refused: invalid_client"
        )
        assert teams.tokens_issued == issued
    finally:
        gateway.stop()
