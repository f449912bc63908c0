"""The REST API and the web inbox over real HTTP, against a real gateway, store and target.
The target's rows and the store's requests are the witnesses of what changed."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import asyncpg
import psycopg
import pytest

from tests.harness import GatewayThread, gateway_config

ALICE, BOB, EVE = "alice@example.com", "bob@example.com", "eve@example.com"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_web_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, email text, name text)")
        conn.execute("INSERT INTO customers VALUES (1, 'dana@example.org', 'Dana')")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g")
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(gateway_config(make_database("jg_web_store"), target_dsn))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def tokens(gw: GatewayThread) -> dict[str, str]:
    return {user: gw.token(user) for user in (ALICE, BOB, EVE)}


@pytest.fixture
async def http(gw: GatewayThread) -> AsyncIterator[aiohttp.ClientSession]:
    async with client(gw) as session:
        yield session


def client(gw: GatewayThread) -> aiohttp.ClientSession:
    # unsafe: the jar keeps cookies set by an IP address (the gateway listens on 127.0.0.1).
    return aiohttp.ClientSession(origin(gw), cookie_jar=aiohttp.CookieJar(unsafe=True))


def item_name(target_dsn: str, item: int) -> str | None:
    with psycopg.connect(target_dsn) as conn:
        row = conn.execute("SELECT name FROM items WHERE id = %s", (item,)).fetchone()
        return None if row is None else str(row[0])


async def api(
    http: aiohttp.ClientSession, method: str, path: str, token: str | None, body: object = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, path, json=body, headers=headers) as response:
        return response.status, await response.json()


async def ask(http: aiohttp.ClientSession, token: str, sql: str) -> dict[str, Any]:
    status, body = await api(http, "POST", "/api/requests", token, {"resource": "prod", "sql": sql})
    assert status == 202, body
    assert body["action"] == "review"
    request: dict[str, Any] = body["request"]
    return request


async def settled(http: aiohttp.ClientSession, token: str, request_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, body = await api(http, "GET", f"/api/requests/{request_id}", token)
        assert status == 200, body
        if body["final"]:
            return dict(body)
        await asyncio.sleep(0.1)
    raise AssertionError(f"request #{request_id} did not settle")


async def login(http: aiohttp.ClientSession, gw: GatewayThread, token: str) -> None:
    async with http.post(
        "/login", data={"token": token}, headers={"Origin": origin(gw)}, allow_redirects=False
    ) as response:
        assert response.status == 303
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def origin(gw: GatewayThread) -> str:
    return f"http://127.0.0.1:{gw.http_port}"


async def test_the_api_refuses_missing_bad_revoked_and_expired_tokens(
    gw: GatewayThread, http: aiohttp.ClientSession
) -> None:
    revoked = gw.token(ALICE)
    gw.call(
        gw.gateway.pool.execute(
            "UPDATE access_tokens SET revoked_at = now() WHERE email = $1 AND revoked_at IS NULL",
            ALICE,
        )
    )
    expired = gw.token(ALICE, ttl=0.2)
    await asyncio.sleep(0.5)
    before = gw.call(gw.gateway.pool.fetchval("SELECT count(*) FROM requests"))
    body = {"resource": "prod", "sql": "DELETE FROM items WHERE id = 1"}
    for token in (None, "jg_not-a-token", "not even the shape", revoked, expired):
        status, answer = await api(http, "POST", "/api/requests", token, body)
        assert (status, answer["code"]) == (401, "unauthorized")
        status, _ = await api(http, "GET", "/api/requests?mine=1", token)
        assert status == 401
    assert gw.call(gw.gateway.pool.fetchval("SELECT count(*) FROM requests")) == before


async def test_an_allowed_read_runs_at_once_and_comes_back_masked(
    http: aiohttp.ClientSession, tokens: dict[str, str]
) -> None:
    sql = "SELECT id, email, name FROM customers WHERE id = 1"
    status, body = await api(
        http, "POST", "/api/requests", tokens[ALICE], {"resource": "prod", "sql": sql}
    )
    assert status == 200 and body["action"] == "allow"
    outcome = body["outcome"]
    assert outcome["columns"] == ["id", "email", "name"]
    assert outcome["preview"] == [["1", "[EMAIL]", "Dana"]]
    assert outcome["masked"] == {"EMAIL": 1}
    assert outcome["error"] is None and outcome["preview_truncated"] is False


async def test_policy_refusals_are_403_with_a_code(
    http: aiohttp.ClientSession, tokens: dict[str, str]
) -> None:
    cases = [
        ("prod", "GRANT ALL ON items TO PUBLIC", "denied"),
        ("nowhere", "SELECT 1", "unknown_resource"),
        ("other", "SELECT 1", "no_access"),
    ]
    for resource, sql, code in cases:
        status, body = await api(
            http, "POST", "/api/requests", tokens[ALICE], {"resource": resource, "sql": sql}
        )
        assert (status, body["code"]) == (403, code), body
    status, body = await api(http, "POST", "/api/requests", tokens[ALICE], {"sql": 1})
    assert (status, body["code"]) == (400, "bad_request")


async def test_a_write_is_reviewed_and_runs_once_when_bob_approves(
    gw: GatewayThread, http: aiohttp.ClientSession, tokens: dict[str, str], target_dsn: str
) -> None:
    request = await ask(http, tokens[ALICE], "DELETE FROM items WHERE id = 3")
    rid = request["id"]
    assert request["state"] == "pending" and request["statement_class"] == "write"
    assert request["approvals"] == 0 and request["approvals_required"] == 1
    assert item_name(target_dsn, 3) == "item 3"

    status, listed = await api(http, "GET", "/api/requests?pending=1", tokens[BOB])
    assert rid in [r["id"] for r in listed["requests"]]
    status, listed = await api(http, "GET", "/api/requests?mine=1", tokens[ALICE])
    assert rid in [r["id"] for r in listed["requests"]]
    assert (await api(http, "GET", f"/api/requests/{rid}", tokens[EVE]))[0] == 404

    decide = f"/api/requests/{rid}/decisions"
    status, body = await api(http, "POST", decide, tokens[ALICE], {"verdict": "approve"})
    assert (status, body["code"]) == (403, "self_approval")
    status, body = await api(http, "POST", decide, tokens[EVE], {"verdict": "approve"})
    assert (status, body["code"]) == (403, "not_approver")
    status, body = await api(http, "POST", decide, tokens[BOB], {"verdict": "maybe"})
    assert status == 400
    status, body = await api(
        http, "POST", decide, tokens[BOB], {"verdict": "approve", "reason": "ticket 12"}
    )
    assert status == 200 and body["approvals"] == 1, body
    assert body["decisions"][0]["via"] == "api"
    status, body = await api(http, "POST", decide, tokens[BOB], {"verdict": "approve"})
    assert status == 409 and body["code"] in ("already_decided", "already_voted")

    final = await settled(http, tokens[ALICE], rid)
    assert final["state"] == "executed", final
    assert final["outcome"]["command_tag"] == "DELETE 1" and final["outcome"]["rows"] == 1
    assert item_name(target_dsn, 3) is None
    executions = gw.call(
        gw.gateway.pool.fetchval("SELECT count(*) FROM statement_events WHERE request_id = $1", rid)
    )
    assert executions == 1


async def test_a_rejection_carries_its_reason_and_nothing_runs(
    http: aiohttp.ClientSession, tokens: dict[str, str], target_dsn: str
) -> None:
    request = await ask(http, tokens[ALICE], "UPDATE items SET name = 'x' WHERE id = 4")
    status, body = await api(
        http,
        "POST",
        f"/api/requests/{request['id']}/decisions",
        tokens[BOB],
        {"verdict": "reject", "reason": "use a ticket"},
    )
    assert status == 200 and body["state"] == "rejected"
    assert body["decisions"][0]["reason"] == "use a ticket"
    assert "use a ticket" in body["state_reason"]
    assert item_name(target_dsn, 4) == "item 4"


async def test_pages_need_a_login_outside_demo_mode(
    gw: GatewayThread, http: aiohttp.ClientSession, tokens: dict[str, str], target_dsn: str
) -> None:
    request = await ask(http, tokens[ALICE], "DELETE FROM items WHERE id = 5")
    async with http.get("/inbox", allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/login?next=/inbox"
    async with http.post(
        f"/requests/{request['id']}/decide",
        data={"verdict": "approve"},
        headers={"Origin": origin(gw)},
    ) as response:
        assert response.status == 401
    async with http.post(
        "/login", data={"token": "jg_wrong"}, headers={"Origin": origin(gw)}
    ) as response:
        assert response.status == 401
    _, body = await api(http, "GET", f"/api/requests/{request['id']}", tokens[ALICE])
    assert body["state"] == "pending" and body["decisions"] == []
    assert item_name(target_dsn, 5) == "item 5"


async def test_bob_approves_in_the_inbox_and_the_page_shows_the_outcome(
    gw: GatewayThread, http: aiohttp.ClientSession, tokens: dict[str, str], target_dsn: str
) -> None:
    request = await ask(http, tokens[ALICE], "DELETE FROM items WHERE id BETWEEN 6 AND 7")
    rid = request["id"]
    await login(http, gw, tokens[BOB])
    async with http.get("/inbox") as response:
        assert f'href="/requests/{rid}"' in await response.text()
    async with http.get(f"/requests/{rid}") as response:
        page = await response.text()
    assert "Approve" in page and "Reject" in page and "0 of 1" in page
    assert "DELETE FROM items WHERE id BETWEEN 6 AND 7" in page
    async with http.post(
        f"/requests/{rid}/decide",
        headers={"Origin": origin(gw)},
        data={"verdict": "approve", "max_rows": "5", "reason": "ok <b>"},
        allow_redirects=False,
    ) as response:
        assert response.status == 303 and response.headers["Location"] == f"/requests/{rid}"
    final = await settled(http, tokens[ALICE], rid)
    assert final["state"] == "executed" and final["max_rows"] == 5
    assert final["decisions"][0]["via"] == "web"
    async with http.get(f"/requests/{rid}") as response:
        page = await response.text()
    assert "DELETE 2 in" in page and "1 of 1" in page and "up to 5 rows" in page
    assert "ok &lt;b&gt;" in page and 'href="/sessions/' in page
    assert item_name(target_dsn, 6) is None and item_name(target_dsn, 7) is None


async def test_decision_errors_show_on_the_page_and_change_nothing(
    gw: GatewayThread, http: aiohttp.ClientSession, tokens: dict[str, str]
) -> None:
    request = await ask(http, tokens[ALICE], "DELETE FROM items WHERE id = 8")
    decide = f"/requests/{request['id']}/decide"
    await login(http, gw, tokens[ALICE])
    headers = {"Origin": origin(gw)}
    async with http.post(decide, data={"verdict": "approve"}, headers=headers) as response:
        assert response.status == 403
        assert "you cannot approve your own request" in await response.text()
    await login(http, gw, tokens[EVE])
    async with http.post(decide, data={"verdict": "approve"}, headers=headers) as response:
        assert response.status == 403 and "only members of dba" in await response.text()
    await login(http, gw, tokens[BOB])
    async with http.post(decide, data={"verdict": "reject"}, headers=headers) as response:
        assert response.status == 400 and "needs a reason" in await response.text()
    for refused in ({"Origin": "http://evil.example"}, {"Referer": "http://evil.example/x"}, {}):
        async with http.post(decide, data={"verdict": "approve"}, headers=refused) as response:
            assert response.status == 403
    decisions = gw.call(
        gw.gateway.pool.fetchval(
            "SELECT count(*) FROM decisions WHERE request_id = $1", request["id"]
        )
    )
    assert decisions == 0
    _, body = await api(http, "GET", f"/api/requests/{request['id']}", tokens[BOB])
    assert body["state"] == "pending"


async def test_sql_with_markup_renders_inert(
    gw: GatewayThread, http: aiohttp.ClientSession, tokens: dict[str, str]
) -> None:
    request = await ask(
        http, tokens[ALICE], "UPDATE items SET name = '<script>alert(1)</script>' WHERE id = 9"
    )
    await login(http, gw, tokens[BOB])
    for path in (f"/requests/{request['id']}", "/inbox"):
        async with http.get(path) as response:
            page = await response.text()
            assert "script-src" not in response.headers["Content-Security-Policy"]
            assert response.headers["X-Frame-Options"] == "DENY"
        assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_the_session_page_replays_a_psql_session_masked(
    gw: GatewayThread, http: aiohttp.ClientSession, tokens: dict[str, str]
) -> None:
    conn = await asyncpg.connect(gw.dsn(ALICE, tokens[ALICE]))
    try:
        await conn.execute("SELECT 'frank@example.net' AS contact")
        await conn.execute("SELECT count(*) FROM items")
        assert await conn.fetchval("SELECT 'replay-marker'") == "replay-marker"
    finally:
        await conn.close()
    gw.flush_audit()
    session = gw.call(
        gw.gateway.pool.fetchval(
            "SELECT session_id FROM statement_events WHERE sql = $1", "SELECT 'replay-marker'"
        )
    )
    await login(http, gw, tokens[ALICE])
    async with http.get(f"/sessions/{session}") as response:
        assert response.status == 200
        page = await response.text()
    assert "SELECT count(*) FROM items" in page and "replay-marker" in page
    assert "frank@example.net" not in page and "[EMAIL]" in page
    assert re.search(r"<td>read</td><td>allow</td><td>ok</td>", page)
    await login(http, gw, tokens[EVE])
    async with http.get(f"/sessions/{session}") as response:
        assert response.status == 404
    async with http.get("/sessions/not-a-uuid") as response:
        assert response.status == 404


@pytest.fixture(scope="module")
def demo_gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    config = gateway_config(
        make_database("jg_web_demo_store"),
        target_dsn,
        http={"listen": "127.0.0.1:0", "demo": True},
    )
    gateway = GatewayThread(config)
    yield gateway
    gateway.stop()


async def test_demo_mode_picks_a_user_without_a_token(
    demo_gw: GatewayThread, target_dsn: str
) -> None:
    async with client(demo_gw) as http:
        request = await ask(http, demo_gw.token(ALICE), "DELETE FROM items WHERE id = 10")
        async with http.get("/login") as response:
            page = await response.text()
        assert all(f'value="{user}"' in page for user in (ALICE, BOB, EVE))
        headers = {"Origin": origin(demo_gw)}
        async with http.post(
            "/login", data={"user": "mallory@example.com"}, headers=headers
        ) as response:
            assert response.status == 401
        async with http.post(
            "/login", data={"user": BOB}, headers={"Origin": "http://evil.example"}
        ) as response:
            assert response.status == 403
        async with http.post("/login", data={"user": BOB}, headers=headers) as response:
            assert (
                response.status == 200
                and f'href="/requests/{request["id"]}"' in await response.text()
            )
        async with http.post(
            f"/requests/{request['id']}/decide", headers=headers, data={"verdict": "approve"}
        ) as response:
            assert response.status == 200
        final = await settled(http, demo_gw.token(ALICE), request["id"])
    assert final["state"] == "executed" and final["decisions"][0]["approver"] == BOB
    assert item_name(target_dsn, 10) is None
