"""``POST /oauth/token``, RFC 8693 token exchange, through the gateway's real HTTP listener:
ID tokens signed by the fake IdP's real RSA keys in, jitgate tokens out; every refusal a
400 with the RFC's error code and a reason. A group removed at the IdP ends what the
person's agent has open within seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import psycopg
import pytest

from identity.token_exchange import ACCESS_TOKEN, GRANT_TYPE, ID_TOKEN, JWT
from tests.fakeidp import FakeIdp, Grant
from tests.fakeslack import FakeSlack
from tests.harness import GatewayThread
from tests.login_gateway import CLI_CLIENT, login_gateway
from tests.oidc_gateway import RecordedAlerts

ERIN = "erin@example.com"


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[FakeIdp]:
    provider = FakeIdp()
    await provider.start()
    yield provider
    await provider.stop()


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_exchange_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
    return dsn


@pytest.fixture(scope="module")
def signed_gw(
    make_database: Callable[[str], str], target_dsn: str, idp: FakeIdp
) -> Iterator[tuple[GatewayThread, RecordedAlerts]]:
    with FakeSlack() as slack:
        gateway, alerts = login_gateway(make_database, target_dsn, idp, slack, "jg_exchange_store")
        yield gateway, alerts
        gateway.stop()


@pytest.fixture
def gw(signed_gw: tuple[GatewayThread, RecordedAlerts]) -> GatewayThread:
    return signed_gw[0]


def id_token(idp: FakeIdp, person: str = ERIN, groups: tuple[str, ...] = ("jitgate-eng",),
             **forged: Any) -> str:  # fmt: skip
    """An ID token the fake IdP signs for the CLI's client; ``forged`` claims replace its
    own (None removes one)."""
    idp.forge = dict(forged)
    return idp.id_token(Grant("", None, "", person, list(groups), client_id=CLI_CLIENT))


async def exchange(gw: GatewayThread, **form: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{gw.http_port}/oauth/token", data=form) as answer,
    ):
        assert answer.headers["Cache-Control"] == "no-store"
        return answer.status, await answer.json()


def subject(token: str) -> dict[str, str]:
    return {"grant_type": GRANT_TYPE, "subject_token": token, "subject_token_type": ID_TOKEN}


async def whoami(gw: GatewayThread, token: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.get(f"http://127.0.0.1:{gw.http_port}/api/whoami") as answer,
    ):
        assert answer.status == 200
        return dict(await answer.json())


async def test_an_id_token_becomes_the_persons_gateway_token(
    gw: GatewayThread, idp: FakeIdp
) -> None:
    status, answer = await exchange(gw, **subject(id_token(idp)))
    assert status == 200, answer
    assert answer["issued_token_type"] == ACCESS_TOKEN and answer["token_type"] == "Bearer"
    assert 7100 < answer["expires_in"] <= 7200  # oidc.token_ttl
    assert answer["subject"] == ERIN and "act" not in answer
    me = await whoami(gw, answer["access_token"])
    assert (me["email"], me["agent"], me["groups"]) == (ERIN, None, ["engineers"])


async def test_with_an_actor_token_the_agent_acts_for_the_person(
    gw: GatewayThread, idp: FakeIdp
) -> None:
    actor = id_token(idp, "agent@example.com", (), client_id="etl-agent", email=None)
    status, answer = await exchange(
        gw, **subject(id_token(idp)), actor_token=actor, actor_token_type=JWT,
        resource="prod", scope="read",
    )  # fmt: skip
    assert status == 200, answer
    assert answer["act"] == {"sub": "etl-agent", "iss": idp.issuer} and answer["scope"] == "read"
    me = await whoami(gw, answer["access_token"])
    assert (me["email"], me["agent"], me["resources"], me["classes"]) == (
        ERIN, "etl-agent", ["prod"], ["read"]
    )  # fmt: skip
    stored = gw.call(gw.gateway.pool.fetchval(
        "SELECT act::text FROM access_tokens WHERE email = $1 AND act IS NOT NULL", ERIN
    ))  # fmt: skip
    assert '"sub": "etl-agent"' in stored


@pytest.mark.parametrize(
    ("form", "error", "reason"),
    [
        ({"grant_type": "password", "username": "erin"}, "unsupported_grant_type", "password"),
        ({"grant_type": GRANT_TYPE}, "invalid_request", "subject_token"),
        ({**subject("x"), "subject_token_type": ACCESS_TOKEN}, "invalid_request", "id_token"),
        ({**subject("x"), "requested_token_type": JWT}, "invalid_request", "requested"),
        ({**subject("x"), "scope": "read"}, "invalid_request", "actor_token"),
        ({**subject("not.a.jwt")}, "invalid_grant", "subject_token"),
    ],
)
async def test_malformed_requests_are_refused_with_the_rfc_error(
    gw: GatewayThread, form: dict[str, str], error: str, reason: str
) -> None:
    status, answer = await exchange(gw, **form)
    assert (status, answer["error"]) == (400, error), answer
    assert reason in answer["error_description"]


async def test_expired_or_foreign_subject_tokens_are_invalid_grants(
    gw: GatewayThread, idp: FakeIdp, signed_gw: tuple[GatewayThread, RecordedAlerts]
) -> None:
    alerts = signed_gw[1]
    now = int(time.time())
    expired = id_token(idp, iat=now - 7200, exp=now - 3600)
    status, answer = await exchange(gw, **subject(expired))
    assert (status, answer["error"]) == (400, "invalid_grant")
    assert "expired" in answer["error_description"]
    alerts.alerts.clear()
    status, answer = await exchange(gw, **subject(id_token(idp, aud="someone-else")))
    assert (status, answer["error"]) == (400, "invalid_grant")
    assert "another application" in answer["error_description"]
    await asyncio.sleep(0.2)  # alerts are delivered by background tasks
    assert any("token exchange" in a.summary for a in alerts.alerts if a.kind == "sign_in_refused")
    status, answer = await exchange(gw, **subject(id_token(idp, "nobody@example.com", ())))
    assert (status, answer["error"]) == (400, "invalid_grant")
    assert "in no group" in answer["error_description"]
    actor = id_token(idp, "x@example.com", (), aud="someone-else")
    status, answer = await exchange(
        gw, **subject(id_token(idp)), actor_token=actor, actor_token_type=JWT
    )
    assert (status, answer["error"]) == (400, "invalid_grant")
    assert answer["error_description"].startswith("actor_token")
    status, answer = await exchange(
        gw, **subject(id_token(idp)), actor_token=id_token(idp), actor_token_type=JWT,
        resource="payroll",
    )  # fmt: skip
    assert (status, answer["error"]) == (400, "invalid_target")


async def test_a_group_removed_at_the_idp_ends_the_agents_open_session(
    gw: GatewayThread, idp: FakeIdp
) -> None:
    actor = id_token(idp, "bot@example.com", (), client_id="night-bot", email=None)
    status, answer = await exchange(
        gw, **subject(id_token(idp, "hal@example.com")), actor_token=actor, actor_token_type=JWT
    )
    assert status == 200, answer
    conn = psycopg.connect(
        host="127.0.0.1", port=gw.port, dbname="prod", user="hal@example.com",
        password=answer["access_token"], autocommit=True,
    )  # fmt: skip
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        status, refused = await exchange(gw, **subject(id_token(idp, "hal@example.com", ())))
        assert (status, refused["error"]) == (400, "invalid_grant")
        removed_at = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="no longer in engineers"):
            while time.monotonic() - removed_at < 10:
                conn.execute("SELECT 1")
                await asyncio.sleep(0.2)
        assert time.monotonic() - removed_at < 5
    finally:
        conn.close()
