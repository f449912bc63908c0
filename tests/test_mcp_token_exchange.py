"""Per-person credentials for a governed MCP server that does OAuth (``auth: {type:
token_exchange}``): a live gateway exchanges, for each caller, the gateway's word for the
person and the agent for a token of the server's authorization server (a local fake that
checks the grant and records it), and sends that token to a real SDK server, which
echoes the Bearer it saw. Every header the server received is kept, as the witness that
the client's own token never reaches it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from mcp.server.mcpserver import Context, MCPServer

from jitgate.config import Config, parse_config
from jitgate.errors import ConfigError
from tests.fake_token_server import FakeTokenServer
from tests.harness import GatewayThread
from tests.mcp_servers import ServerThread
from tests.test_mcp_proxy import AGENT, ALICE, BOB, _auth, _initialize, connected, last_call, text
from tests.test_mcp_proxy import url as proxy_url

CAROL, DAVE = "carol@example.com", "dave@example.com"
CLIENT_ID, SECRET = "jitgate-tickets", "a-client-secret-of-the-gateway"
ISSUER, AUDIENCE = "http://127.0.0.1:8080", "https://tickets.example.com"


class HeaderLog:
    """An ASGI app's requests' headers, kept as they arrived."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


def bearer_server() -> MCPServer:
    server = MCPServer("tickets", version="1")

    @server.tool(description="The Bearer token this request carried.")
    def whoami(ctx: Context) -> str:
        return (ctx.headers or {}).get("authorization", "none")

    return server


@pytest.fixture(scope="module")
def token_server() -> Iterator[FakeTokenServer]:
    server = FakeTokenServer(CLIENT_ID, SECRET, ISSUER, AUDIENCE)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def downstream() -> Iterator[tuple[HeaderLog, ServerThread]]:
    log = HeaderLog(bearer_server().streamable_http_app())
    thread = ServerThread(log)
    yield log, thread
    thread.stop()


def exchange_config(store_dsn: str, server_url: str, token_url: str, **auth: Any) -> Config:
    raw = {
        "database_url": store_dsn,
        "http": {"listen": "127.0.0.1:0"},
        "postgres": {"listen": "127.0.0.1:0"},
        "audit": {"flush_interval": "20ms"},
        "groups": {"engineers": [ALICE, BOB, CAROL, DAVE]},
        "resources": {
            "tickets": {
                "type": "mcp",
                "url": server_url,
                "timeout": "5s",
                "auth": {"type": "token_exchange", "token_endpoint": token_url,
                         "client_id": CLIENT_ID, "client_secret": "${TICKETS_CLIENT_SECRET}",
                         "audience": AUDIENCE, "scope": "tickets:write", **auth},
                "access": {"engineers": {"*": "allow"}},
            }
        },
    }  # fmt: skip
    return parse_config(raw, {"TICKETS_CLIENT_SECRET": SECRET})


@pytest.fixture(scope="module")
def gw(
    make_database: Callable[[str], str],
    token_server: FakeTokenServer,
    downstream: tuple[HeaderLog, ServerThread],
) -> Iterator[GatewayThread]:
    config = exchange_config(
        make_database("jg_mcp_exchange_store"), downstream[1].url(), token_server.url
    )
    gateway = GatewayThread(config)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def tokens(gw: GatewayThread) -> dict[str, str]:
    return {user: gw.token(user) for user in (ALICE, BOB, CAROL, DAVE)}


async def whoami(gw: GatewayThread, token: str, times: int = 1) -> list[str]:
    async with connected(gw, token) as client:
        return [text(await client.call_tool("whoami", {})) for _ in range(times)]


async def test_each_person_reaches_the_server_with_a_token_of_their_own(
    gw: GatewayThread,
    tokens: dict[str, str],
    token_server: FakeTokenServer,
    downstream: tuple[HeaderLog, ServerThread],
) -> None:
    for_alice, for_bob = await asyncio.gather(whoami(gw, tokens[ALICE], 3), whoami(gw, tokens[BOB]))
    alice_token = for_alice[0].removeprefix("Bearer ")
    bob_token = for_bob[0].removeprefix("Bearer ")
    assert token_server.issued[alice_token] == (ALICE, AGENT)
    assert token_server.issued[bob_token] == (BOB, AGENT)
    assert alice_token != bob_token and set(for_alice) == {f"Bearer {alice_token}"}
    # Exchanged once per person and agent, then reused until shortly before it expires.
    alice_grants = [g for g in token_server.grants if g.get("subject") == ALICE]
    assert len(alice_grants) == 1
    grant = alice_grants[0]
    assert grant["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert (grant["audience"], grant["scope"], grant["actor"]) == (AUDIENCE, "tickets:write", AGENT)
    # Whatever the server was sent, the clients' jitgate tokens were never among it.
    sent = repr(downstream[0].seen)
    assert downstream[0].seen and all(token not in sent for token in tokens.values())
    assert all(
        h.get("authorization", "").removeprefix("Bearer ") in token_server.issued
        for h in downstream[0].seen
    )


async def test_a_refused_exchange_is_a_clean_error_and_nothing_is_forwarded(
    gw: GatewayThread,
    tokens: dict[str, str],
    token_server: FakeTokenServer,
    downstream: tuple[HeaderLog, ServerThread],
) -> None:
    token_server.refuse.add(CAROL)
    before = len(downstream[0].seen)
    async with aiohttp.ClientSession() as http:
        answer = await http.post(proxy_url(gw), json=_initialize(), headers=_auth(tokens[CAROL]))
        assert answer.status == 200 and "Mcp-Session-Id" not in answer.headers
        error = (await answer.json())["error"]
    assert error["code"] == -32003
    assert "tickets's authorization server" in error["message"]
    assert f"refused the token exchange for {CAROL}" in error["message"]
    assert "access_denied" in error["message"]
    assert len(downstream[0].seen) == before


async def test_a_call_after_the_token_expired_and_the_exchange_is_refused_is_not_forwarded(
    gw: GatewayThread,
    tokens: dict[str, str],
    token_server: FakeTokenServer,
    downstream: tuple[HeaderLog, ServerThread],
) -> None:
    token_server.lifetimes[DAVE] = 1
    call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}}}  # fmt: skip
    async with aiohttp.ClientSession() as http:
        answer = await http.post(proxy_url(gw), json=_initialize(), headers=_auth(tokens[DAVE]))
        headers = _auth(tokens[DAVE], answer.headers["Mcp-Session-Id"])
        first = await (await http.post(proxy_url(gw), json=call, headers=headers)).json()
        seen = first["result"]["content"][0]["text"].removeprefix("Bearer ")
        assert token_server.issued[seen][0] == DAVE
        token_server.refuse.add(DAVE)
        await asyncio.sleep(1.2)  # the token's second of life is over
        before = len(downstream[0].seen)
        error = (await (await http.post(proxy_url(gw), json=call, headers=headers)).json())["error"]
    assert error["code"] == -32003 and f"refused the token exchange for {DAVE}" in error["message"]
    assert len(downstream[0].seen) == before
    assert last_call(gw, "whoami")["outcome"] == "server_failed"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"type": "client_credentials"}, "resources.tickets.auth.type: 'client_credentials'"),
        ({"client_secret": "short"}, "resources.tickets.auth.client_secret: is shorter than 16"),
        ({"token_endpoint": "file:///x"}, "resources.tickets.auth.token_endpoint: must be"),
        ({"colour": "blue"}, "resources.tickets.auth.colour: unknown key"),
    ],
)
def test_a_bad_token_exchange_fails_at_start_naming_the_key(
    change: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        exchange_config("postgresql://u@127.0.0.1/jg", "http://127.0.0.1:1/mcp",
                        "http://127.0.0.1:1/token", **change)  # fmt: skip
    assert key in str(raised.value) and "\n" not in str(raised.value)
