"""Web sign-in with an IdP, through the gateway's real HTTP listener and a real HTTP client
with a cookie jar, against the fake OpenID provider in tests/fakeidp.py (real RSA keys,
PKCE checked). Forged and replayed answers are each refused with a reason, a 4xx page and,
where only an attacker explains them, an alert."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import psycopg
import pytest

from identity.idp_groups import IdpGroups, policy_groups
from tests.fakeidp import FakeIdp, new_key
from tests.harness import GatewayThread
from tests.oidc_gateway import RecordedAlerts, oidc_gateway

ALICE, CAROL = "alice@example.com", "carol@example.com"


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[FakeIdp]:
    provider = FakeIdp()
    await provider.start()
    yield provider
    await provider.stop()


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_oidc_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 9) g")
    return dsn


@pytest.fixture(scope="module")
def signed_gw(
    make_database: Callable[[str], str], target_dsn: str, idp: FakeIdp
) -> Iterator[tuple[GatewayThread, RecordedAlerts]]:
    gateway, alerts = oidc_gateway(make_database, target_dsn, idp)
    yield gateway, alerts
    gateway.stop()


@pytest.fixture
def gw(signed_gw: tuple[GatewayThread, RecordedAlerts]) -> GatewayThread:
    return signed_gw[0]


@pytest.fixture
def alerts(signed_gw: tuple[GatewayThread, RecordedAlerts]) -> RecordedAlerts:
    signed_gw[1].alerts.clear()
    return signed_gw[1]


def browser(gw: GatewayThread) -> aiohttp.ClientSession:
    # unsafe: keep cookies set by an IP address (everything listens on 127.0.0.1).
    return aiohttp.ClientSession(
        f"http://127.0.0.1:{gw.http_port}", cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


async def sign_in(http: aiohttp.ClientSession, next_path: str = "/inbox") -> aiohttp.ClientResponse:
    """Follow the whole sign-in, as a browser would."""
    async with http.get("/login", params={"next": next_path}) as response:
        await response.read()
        return response


async def callback_url(http: aiohttp.ClientSession) -> str:
    """Start a sign-in and let the IdP answer; return where it sends the browser back."""
    async with http.get("/login", allow_redirects=False) as started:
        assert started.status == 302, await started.text()
        authorize = started.headers["Location"]
    async with http.get(authorize, allow_redirects=False) as answered:
        assert answered.status == 302, await answered.text()
        return answered.headers["Location"]


async def page(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url, allow_redirects=False) as response:
        return response.status, await response.text()


def decided_by_alert(alerts: RecordedAlerts) -> list[str]:
    return [a.summary for a in alerts.alerts if a.kind == "sign_in_refused"]


async def settle() -> None:
    await asyncio.sleep(0.2)  # alerts are delivered by background tasks


async def test_sign_in_with_the_idp_ends_on_the_inbox(gw: GatewayThread, idp: FakeIdp) -> None:
    idp.sign_in_as(ALICE, ["jitgate-eng"])
    async with browser(gw) as http:
        response = await sign_in(http)
        assert response.status == 200
        assert response.url.path == "/inbox"
        assert ALICE in await response.text()
        hops = [str(r.url.path) for r in response.history]
        assert hops == ["/login", "/authorize", "/login/callback"]
    sent = idp.token_requests[-1]
    assert sent["authorization"].startswith("Basic ")  # client_secret_basic, as offered
    assert len(sent["code_verifier"]) >= 43 and "client_secret" not in sent


async def test_next_stays_on_site(gw: GatewayThread, idp: FakeIdp) -> None:
    idp.sign_in_as(ALICE, ["jitgate-eng"])
    async with browser(gw) as http:
        assert (await sign_in(http, "/sessions/nowhere")).url.path == "/sessions/nowhere"
        for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            response = await sign_in(http, elsewhere)
            assert response.url.host == "127.0.0.1" and response.url.path == "/inbox"


async def test_a_page_sends_a_stranger_to_the_idp_and_back(gw: GatewayThread, idp: FakeIdp) -> None:
    idp.sign_in_as(ALICE, ["jitgate-eng"])
    async with browser(gw) as http, http.get("/sessions/x") as response:
        assert response.url.path == "/sessions/x"  # via /login?next=… and the IdP
        assert len(response.history) == 4


async def test_idp_groups_grant_and_a_removed_group_is_gone_at_the_next_sign_in(
    gw: GatewayThread, idp: FakeIdp
) -> None:
    token = gw.token(ALICE)
    async with browser(gw) as http:
        async with http.post(
            "/api/requests",
            json={"resource": "prod", "sql": "UPDATE items SET name = 'x' WHERE id = 3"},
            headers={"Authorization": f"Bearer {token}"},
        ) as asked:
            request_id = (await asked.json())["request"]["id"]
        idp.sign_in_as(CAROL, ["jitgate-dba", "jitgate-eng"])
        await sign_in(http)
        status, body = await page(http, f"/requests/{request_id}")
        assert status == 200 and 'value="approve"' in body  # carol approves, via the IdP only

        idp.sign_in_as(CAROL, ["jitgate-eng"])  # an IdP admin removes her from the DBAs
        assert (await sign_in(http)).status == 200
        status, body = await page(http, f"/requests/{request_id}")
        assert status == 404
        origin = {"Origin": f"http://127.0.0.1:{gw.http_port}"}
        async with http.post(
            f"/requests/{request_id}/decide", data={"verdict": "approve"}, headers=origin
        ) as decided:
            assert decided.status == 403
            assert "only members of dba" in await decided.text()

        idp.sign_in_as(CAROL, [])  # and then from everything
        response = await sign_in(http)
        assert response.status == 403
        assert "in no group of jitgate" in await response.text()
        assert gw.gateway.directory.groups_of(CAROL) == frozenset()


async def test_idp_groups_lapse_after_the_session_ttl(gw: GatewayThread) -> None:
    source = IdpGroups(gw.gateway.pool)
    await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(
            source.remember("dora@example.com", "sub-dora", frozenset({"dba"}), 0.3),
            gw.loop,
        )
    )
    assert source.groups_of("dora@example.com") == {"dba"}
    await asyncio.sleep(0.4)
    assert source.groups_of("dora@example.com") == frozenset()


def test_groups_map_by_name_or_only_through_the_map() -> None:
    known = ["dba", "engineers"]
    assert policy_groups(["dba", "Finance"], {}, known) == {"dba"}
    mapped = {"00a1-entra-object-id": ("dba",)}
    assert policy_groups(["dba", "00a1-entra-object-id"], mapped, known) == {"dba"}
    assert policy_groups(["dba"], mapped, known) == frozenset()


async def test_logout_ends_the_session_everywhere(gw: GatewayThread, idp: FakeIdp) -> None:
    idp.sign_in_as(ALICE, ["jitgate-eng"])
    async with browser(gw) as http:
        await sign_in(http)
        cookie = http.cookie_jar.filter_cookies(http._base_url)["jitgate_session"].value  # type: ignore[arg-type]
        origin = {"Origin": f"http://127.0.0.1:{gw.http_port}"}
        async with http.post("/logout", headers=origin) as out:
            assert out.status == 200 and "signed out" in await out.text()
    async with browser(gw) as thief:
        thief.cookie_jar.update_cookies({"jitgate_session": cookie})
        status, _ = await page(thief, "/inbox")
        assert status == 303  # the copied cookie names a revoked session: sign in again


FORGERIES = [
    pytest.param({"exp": 1_000_000_000, "iat": 999_999_000}, None, "has expired", False,
                 id="expired"),
    pytest.param({"aud": "another-app"}, None, "issued to another application", True,
                 id="wrong-audience"),
    pytest.param({"iss": "https://idp.evil.example"}, None, "iss is not valid", True,
                 id="wrong-issuer"),
    pytest.param({}, "none", "signature algorithm", True, id="alg-none"),
    pytest.param({}, "other-key", "signature does not verify", True, id="re-signed"),
    pytest.param({}, "unpublished-key", "a key the IdP does not publish", True,
                 id="unknown-key"),
    pytest.param({"nonce": "from-an-earlier-sign-in"}, None, "nonce is not this sign-in", True,
                 id="replayed-nonce"),
    pytest.param({"_claim_names": {"groups": "src1"}, "groups": None}, None,
                 "too many groups", False, id="entra-groups-overage"),
    pytest.param({"email_verified": False}, None, "not verified", False, id="unverified-email"),
]  # fmt: skip


@pytest.mark.parametrize(("forge", "signer", "reason", "attack"), FORGERIES)
async def test_a_forged_or_broken_id_token_is_refused(
    gw: GatewayThread,
    idp: FakeIdp,
    alerts: RecordedAlerts,
    forge: dict[str, Any],
    signer: str | None,
    reason: str,
    attack: bool,
) -> None:
    idp.sign_in_as(ALICE, ["jitgate-eng"])
    idp.forge = dict(forge)
    if signer == "other-key":
        idp.sign_with = new_key(idp.keys[-1].kid or "")  # same kid, another private key
    elif signer == "unpublished-key":
        idp.sign_with = new_key("never-published")
    elif signer == "none":
        idp.sign_with = "none"
    async with browser(gw) as http:
        response = await sign_in(http)
        text = await response.text()
        assert response.status == 400, text
        assert reason in text
        assert "jitgate_session" not in http.cookie_jar.filter_cookies(response.url)
    await settle()
    assert bool(decided_by_alert(alerts)) == attack, alerts.alerts
    if attack:
        assert reason in decided_by_alert(alerts)[0]


async def test_a_replayed_callback_is_refused(
    gw: GatewayThread, idp: FakeIdp, alerts: RecordedAlerts
) -> None:
    idp.sign_in_as(ALICE, ["jitgate-eng"])
    async with browser(gw) as http:
        url = await callback_url(http)
        state = parse_qs(urlsplit(url).query)["state"][0]
        status, _ = await page(http, url)
        assert status == 303
        http.cookie_jar.update_cookies({"jitgate_login": state})  # even with the browser's
        status, body = await page(http, url)
        assert status == 400 and "already used" in body
    await settle()
    assert any("already used" in s for s in decided_by_alert(alerts))


async def test_a_callback_in_another_browser_is_refused(
    gw: GatewayThread, idp: FakeIdp, alerts: RecordedAlerts
) -> None:
    """Login CSRF: an attacker's own sign-in, finished in the victim's browser."""
    idp.sign_in_as("mallory@example.com", ["jitgate-eng"])
    async with browser(gw) as attacker:
        url = await callback_url(attacker)
    async with browser(gw) as victim:
        status, body = await page(victim, url)
        assert status == 400 and "another browser" in body
    await settle()
    assert any("another browser" in s for s in decided_by_alert(alerts))


async def test_an_unknown_state_and_an_idp_error_are_refused(
    gw: GatewayThread, alerts: RecordedAlerts
) -> None:
    async with browser(gw) as http:
        status, body = await page(http, "/login/callback?code=abc&state=made-up")
        assert status == 400 and "unknown to jitgate" in body
        status, body = await page(
            http, "/login/callback?error=access_denied&error_description=<b>not+allowed</b>"
        )
        assert status == 400 and "&lt;b&gt;not allowed" in body
        status, body = await page(http, "/login/callback")
        assert status == 400 and "no code" in body


async def test_a_tampered_session_cookie_is_refused(
    gw: GatewayThread, idp: FakeIdp, alerts: RecordedAlerts
) -> None:
    idp.sign_in_as(ALICE, ["jitgate-eng"])
    async with browser(gw) as http:
        await sign_in(http)
        cookie = http.cookie_jar.filter_cookies(http._base_url)["jitgate_session"].value  # type: ignore[arg-type]
        session_id, _, mac = cookie.partition(".")
        forged = session_id[:-1] + ("A" if session_id[-1] != "A" else "B") + "." + mac
        http.cookie_jar.clear()
        http.cookie_jar.update_cookies({"jitgate_session": forged})
        async with http.get("/inbox", allow_redirects=False) as response:
            assert response.status == 400
            assert "session cookie was altered" in await response.text()
            assert re.search(r"jitgate_session=(\"\")?;", response.headers["Set-Cookie"])
    await settle()
    assert any("altered" in s for s in decided_by_alert(alerts))


async def test_a_rotated_idp_key_is_fetched_and_used(gw: GatewayThread, idp: FakeIdp) -> None:
    idp.sign_in_as(ALICE, ["jitgate-eng"])
    async with browser(gw) as http:
        assert (await sign_in(http)).status == 200
        idp.rotate()
        response = await sign_in(http)
        assert response.status == 200 and response.url.path == "/inbox"
