"""jitgate's MCP server at ``/mcp``, driven by the official MCP SDK client over streamable
HTTP against a live gateway, a real store and a real target. The target's rows, the
store's requests and the call records are the witnesses."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx2
import psycopg
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, Implementation

from store.tokens import mint_token
from tests.harness import GatewayThread, gateway_config
from tests.test_reader_wire import as_role, with_reader

ALICE, BOB, EVE = "alice@example.com", "bob@example.com", "eve@example.com"
AGENT = "claude-code"
# What the target holds that must never leave the gateway raw.
EMAIL, CARD = "dana.scully@example.org", "4111 1111 1111 1111"
READER = "jg_mcp_reader"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str], pg_dsn: str) -> str:
    dsn = make_database("jg_mcp_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, email text, card text, n int)")
        conn.execute("INSERT INTO customers VALUES (1, %s, %s, 0)", (EMAIL, CARD))
        conn.execute(
            "INSERT INTO customers SELECT g, 'user' || g || '@example.com', NULL, 0"
            " FROM generate_series(2, 30) g"
        )
        conn.execute("CREATE TABLE payroll (id int PRIMARY KEY, salary int)")
        conn.execute(f"DROP ROLE IF EXISTS {READER}")
        conn.execute(f"CREATE ROLE {READER} LOGIN")
        conn.execute(f"ALTER ROLE {READER} SET default_transaction_read_only = on")
        conn.execute(f"GRANT SELECT ON customers TO {READER}")
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    """``prod`` reads with the reader role (SELECT on customers only) and writes as the
    target's owner."""
    config = with_reader(
        gateway_config(make_database("jg_mcp_store"), target_dsn),
        as_role(target_dsn, READER),
        target_dsn,
    )
    gateway = GatewayThread(config)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def tokens(gw: GatewayThread) -> dict[str, str]:
    return {user: gw.token(user) for user in (ALICE, BOB, EVE)}


def url(gw: GatewayThread) -> str:
    return f"http://127.0.0.1:{gw.http_port}/mcp"


@asynccontextmanager
async def connected(gw: GatewayThread, token: str, agent: str = AGENT) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(url(gw), http_client=http)
        info = Implementation(name=agent, version="1.2.3")
        # The initialize handshake (2025-11-25); tests/test_mcp_native.py speaks 2026-07-28.
        async with Client(transport, client_info=info, mode="legacy") as client:
            yield client


def everything(result: CallToolResult) -> str:
    """All an agent receives of a result, as one string."""
    return json.dumps(result.model_dump(mode="json", by_alias=True), ensure_ascii=False)


def structured(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None
    return dict(result.structured_content)


def text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def target_value(dsn: str, sql: str) -> Any:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql.encode()).fetchone()
        assert row is not None
        return row[0]


async def test_initialize_names_the_agent_and_lists_the_five_tools(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    async with connected(gw, tokens[ALICE]) as client:
        initialized = client.session.initialize_result
        assert initialized is not None and initialized.server_info.name == "jitgate"
        assert initialized.protocol_version == "2025-11-25"
        assert initialized.capabilities.tools is not None
        listed = await client.list_tools()
    names = {tool.name for tool in listed.tools}
    assert names == {"list_resources", "describe", "run_sql", "request_status", "cancel_request"}
    for tool in listed.tools:
        assert tool.description and tool.input_schema["type"] == "object"
    session = await gw_fetchrow(gw, "SELECT * FROM mcp_sessions ORDER BY created_at DESC LIMIT 1")
    assert (session["principal"], session["agent"]) == (ALICE, AGENT)
    assert session["agent_version"] == "1.2.3" and session["ended_at"] is not None


async def test_list_resources_shows_only_what_the_user_may_use_and_how(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    async with connected(gw, tokens[ALICE]) as client:
        result = await client.call_tool("list_resources", {})
    assert not result.is_error
    (prod,) = structured(result)["resources"]
    assert prod["name"] == "prod"
    assert prod["actions"]["read"] == "allow" and prod["actions"]["write"] == "review"
    assert prod["actions"]["privilege"] == "deny"
    assert "prod (postgres)" in text(result) and "other" not in text(result)


async def test_a_read_runs_at_once_and_only_masked_values_come_back(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    sql = f"SELECT id, email, card FROM customers WHERE email = '{EMAIL}' OR id > 1 ORDER BY id"
    async with connected(gw, tokens[ALICE]) as client:
        result = await client.call_tool("run_sql", {"resource": "prod", "sql": sql})
    assert not result.is_error, text(result)
    shown = everything(result)
    assert EMAIL not in shown and CARD not in shown and "4111111111111111" not in shown
    facts = structured(result)
    assert facts["status"] == "executed" and facts["columns"] == ["id", "email", "card"]
    assert facts["rows"] == 30 and len(facts["preview"]) == 20 and facts["preview_truncated"]
    first = facts["preview"][0]
    assert first[0] == "1" and first[1] != EMAIL and first[2] != CARD
    assert facts["masked"]["EMAIL"] >= 20 and facts["masked"].get("CREDIT_CARD", 0) == 1
    assert "the first 20 of 30 rows are shown" in text(result)
    # The call is on record, its SQL literal masked, linked to the audited session it ran in.
    call = await gw_fetchrow(gw, "SELECT * FROM mcp_calls WHERE tool = 'run_sql' ORDER BY id DESC")
    assert (call["principal"], call["agent"], call["outcome"]) == (ALICE, AGENT, "executed")
    assert EMAIL not in call["arguments"] and "customers" in call["arguments"]
    statement = await gw_fetchrow(gw, "SELECT * FROM sessions WHERE id = $1", call["session_id"])
    assert statement["identity"] == ALICE and statement["resource"] == "prod"
    # Alice may do nothing but read without review: her reads run as the reader role.
    async with connected(gw, tokens[ALICE]) as client:
        who = await client.call_tool("run_sql", {"resource": "prod", "sql": "SELECT current_user"})
    assert structured(who)["preview"] == [[READER]]


async def test_a_held_write_answers_pending_at_once_and_runs_once_approved(
    gw: GatewayThread, tokens: dict[str, str], target_dsn: str
) -> None:
    sql = "UPDATE customers SET n = n + 1 WHERE id = 2"
    async with connected(gw, tokens[ALICE]) as client:
        started = time.monotonic()
        held = await client.call_tool("run_sql", {"resource": "prod", "sql": sql, "reason": "fix"})
        assert time.monotonic() - started < 1.0
        assert not held.is_error, text(held)
        facts = structured(held)
        assert facts["status"] == "pending_approval" and facts["statement_class"] == "write"
        request_id = facts["request_id"]
        assert any(request_id and f"/requests/{request_id}" in p for p in facts["posted_to"])
        assert f"asked by {ALICE} via agent {AGENT}" in text(held)
        assert "request_status" in facts["next"]
        assert target_value(target_dsn, "SELECT n FROM customers WHERE id = 2") == 0

        status = await client.call_tool("request_status", {"id": request_id})
        assert structured(status)["state"] == "pending"
        assert structured(status)["agent"] == AGENT and structured(status)["source"] == "mcp"
        await gw_call(gw, gw.gateway.approvals.decide(request_id, BOB, "approve", via="cli"))
        deadline = time.monotonic() + 15
        while structured(status)["state"] != "executed":
            assert time.monotonic() < deadline, structured(status)
            await asyncio.sleep(0.1)
            status = await client.call_tool("request_status", {"id": request_id})
    assert structured(status)["outcome"]["command_tag"] == "UPDATE 1"
    assert f"Request #{request_id} on prod is executed" in text(status)
    assert target_value(target_dsn, "SELECT n FROM customers WHERE id = 2") == 1


async def test_a_denied_statement_is_a_tool_error_naming_the_reasons(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    before = await gw_fetchval(gw, "SELECT count(*) FROM requests")
    async with connected(gw, tokens[ALICE]) as client:
        result = await client.call_tool(
            "run_sql", {"resource": "prod", "sql": "GRANT SELECT ON customers TO PUBLIC"}
        )
        unknown = await client.call_tool("run_sql", {"resource": "nope", "sql": "SELECT 1"})
        malformed = await client.call_tool("run_sql", {"resource": "prod", "sql": 7})
        with pytest.raises(MCPError, match="Unknown tool"):
            await client.call_tool("drop_everything", {})
    assert result.is_error
    facts = structured(result)
    assert facts["status"] == "denied" and facts["statement_class"] == "privilege"
    assert facts["reasons"] and all(r in text(result) for r in facts["reasons"])
    assert unknown.is_error and structured(unknown)["code"] == "unknown_resource"
    assert malformed.is_error and "sql must be a non-empty string" in text(malformed)
    assert await gw_fetchval(gw, "SELECT count(*) FROM requests") == before
    outcomes = await gw_fetch(gw, "SELECT outcome FROM mcp_calls ORDER BY id DESC LIMIT 4")
    assert [r["outcome"] for r in outcomes] == [
        "unknown_tool", "invalid_arguments", "refused", "denied",
    ]  # fmt: skip


async def test_describe_gives_tables_and_columns_never_rows(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    async with connected(gw, tokens[ALICE]) as client:
        tables = await client.call_tool("describe", {"resource": "prod"})
        columns = await client.call_tool("describe", {"resource": "prod", "table": "customers"})
        missing = await client.call_tool("describe", {"resource": "prod", "table": "nope"})
    async with connected(gw, tokens[EVE]) as client:
        outsider = await client.call_tool("describe", {"resource": "prod"})
    # What the reader role may see: payroll is the writer's alone.
    assert structured(tables)["tables"] == [
        {"schema": "public", "name": "customers", "type": "table"}
    ]
    (table,) = structured(columns)["tables"]
    assert table["table"] == "public.customers"
    assert [(c["name"], c["type"]) for c in table["columns"]] == [
        ("id", "integer"), ("email", "text"), ("card", "text"), ("n", "integer"),
    ]  # fmt: skip
    for result in (tables, columns):
        assert "example" not in everything(result) and "4111" not in everything(result)
    assert missing.is_error and structured(missing)["status"] == "not_found"
    assert outsider.is_error and structured(outsider)["code"] == "no_access"


async def test_only_the_requester_cancels_and_approvers_may_look(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    sql = "DELETE FROM customers WHERE id = 30"
    async with connected(gw, tokens[ALICE]) as alice:
        held = await alice.call_tool("run_sql", {"resource": "prod", "sql": sql})
        request_id = structured(held)["request_id"]
        async with connected(gw, tokens[EVE]) as eve:
            hidden = await eve.call_tool("request_status", {"id": request_id})
            refused = await eve.call_tool("cancel_request", {"id": request_id})
        async with connected(gw, tokens[BOB], agent="bob's agent") as bob:
            seen = await bob.call_tool("request_status", {"id": request_id})
            not_his = await bob.call_tool("cancel_request", {"id": request_id})
        cancelled = await alice.call_tool("cancel_request", {"id": request_id})
        again = await alice.call_tool("cancel_request", {"id": request_id})
    assert hidden.is_error and structured(hidden)["status"] == "not_found"
    assert refused.is_error and structured(refused)["status"] == "not_found"
    assert not seen.is_error and structured(seen)["state"] == "pending"
    assert not_his.is_error and structured(not_his)["status"] == "not_requester"
    assert not cancelled.is_error and structured(cancelled)["state"] == "cancelled"
    assert again.is_error and structured(again)["status"] == "not_cancellable"


async def test_an_agents_own_token_names_the_agent_and_keeps_its_delegation(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    """A token minted for an agent (``jitgate agent grant``) names the agent, whatever the
    client declares, and the agent gets no more than its delegation: here reads only."""
    token, _ = await gw_call(
        gw, mint_token(gw.gateway.pool, ALICE, 600, act={"sub": "etl-agent"}, classes=["read"])
    )
    async with connected(gw, token, agent="claude-code") as client:
        listed = await client.call_tool("list_resources", {})
        read = await client.call_tool("run_sql", {"resource": "prod", "sql": "SELECT 1 AS one"})
        write = await client.call_tool(
            "run_sql", {"resource": "prod", "sql": "UPDATE customers SET n = 5 WHERE id = 3"}
        )
    (prod,) = structured(listed)["resources"]
    assert prod["actions"]["read"] == "allow" and prod["actions"]["write"] == "deny"
    assert structured(read)["preview"] == [["1"]]
    assert write.is_error and structured(write)["status"] == "denied"
    session = await gw_fetchrow(
        gw, "SELECT agent FROM mcp_sessions ORDER BY created_at DESC LIMIT 1"
    )
    assert session["agent"] == "etl-agent"
    calls = await gw_fetch(gw, "SELECT agent FROM mcp_calls ORDER BY id DESC LIMIT 3")
    assert {c["agent"] for c in calls} == {"etl-agent"}
    # The agent's token does not find a session its person opened for another agent.
    auth = {"Authorization": f"Bearer {tokens[ALICE]}"}
    _, _, headers = await post(gw, INITIALIZE, auth)
    other = {"Authorization": f"Bearer {token}", "MCP-Session-Id": headers["MCP-Session-Id"]}
    assert (await post(gw, PING, other))[0] == 404


async def test_missing_or_bad_tokens_are_401_with_a_reason(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    for token in (None, "jg_not-a-token", "Basic abc"):
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        status, body, response_headers = await post(gw, INITIALIZE, headers)
        assert status == 401 and "Unauthorized" in body["error"]["message"]
        assert response_headers["WWW-Authenticate"].startswith('Bearer realm="jitgate"')
    with pytest.raises(BaseException) as raised:
        async with connected(gw, "jg_not-a-token"):
            pass
    assert "401" in repr(raised.value) or "Unauthorized" in repr(raised.value)


async def test_malformed_messages_get_json_rpc_errors_never_500(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    auth = {"Authorization": f"Bearer {tokens[ALICE]}"}
    status, body, headers = await post(gw, INITIALIZE, auth)
    assert status == 200 and body["result"]["protocolVersion"] == "2025-11-25"
    session = {**auth, "MCP-Session-Id": headers["MCP-Session-Id"]}
    cases: list[tuple[bytes | dict[str, Any] | list[Any], dict[str, str], int, int]] = [
        (b"{not json", auth, 400, -32700),
        (b"\xff\xfe", auth, 400, -32700),
        (b"[" * 100_000 + b"]" * 100_000, auth, 400, -32700),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": NaN}}', auth, 400, -32700),
        ([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], session, 400, -32600),
        ({"id": 1, "method": "ping"}, session, 400, -32600),
        ({"jsonrpc": "2.0", "id": None, "method": "ping"}, session, 400, -32600),
        ({"jsonrpc": "2.0", "id": [1], "method": "ping"}, session, 400, -32600),
        ({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]}, session, 400, -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": "ping"}, auth, 400, -32600),
        ({"jsonrpc": "2.0", "id": 1, "method": "ping"}, {**auth, "MCP-Session-Id": "x"}, 404,
         -32002),
        ({"jsonrpc": "2.0", "id": 1, "method": "ping"},
         {**session, "MCP-Protocol-Version": "1999-01-01"}, 400, -32600),
        ({"jsonrpc": "2.0", "id": 1, "method": "nope"}, session, 200, -32601),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 3}}, session,
         200, -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
          "params": {"name": "run_sql", "arguments": "SELECT 1"}}, session, 200, -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}, auth, 200, -32602),
    ]  # fmt: skip
    for message, headers_, want_status, want_code in cases:
        status, body, _ = await post(gw, message, headers_)
        assert (status, body["error"]["code"]) == (want_status, want_code), (message, body)
    # Someone else's token does not find the session.
    bob = {"Authorization": f"Bearer {tokens[BOB]}", "MCP-Session-Id": session["MCP-Session-Id"]}
    assert (await post(gw, PING, bob))[0] == 404
    status, body, _ = await post(gw, PING, session, content_type="text/plain")
    assert status == 415
    notified = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await post(gw, notified, session))[0] == 202
    assert (await post(gw, PING, session))[1]["result"] == {}
    async with aiohttp.ClientSession() as http:
        async with http.get(url(gw), headers=session) as response:
            assert response.status == 405
        large = io.BytesIO(b"{}" + b" " * (2 << 20))
        json_session = {**session, "Content-Type": "application/json"}
        async with http.post(url(gw), data=large, headers=json_session) as response:
            assert response.status == 413
        foreign = {**session, "Origin": "http://evil.example"}
        async with http.post(url(gw), json=PING, headers=foreign) as response:
            assert response.status == 403
        async with http.delete(url(gw), headers=session) as response:
            assert response.status == 204
    assert (await post(gw, PING, session))[0] == 404


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw-http", "version": "0"},
    },
}
PING = {"jsonrpc": "2.0", "id": 9, "method": "ping"}


async def post(
    gw: GatewayThread,
    message: bytes | dict[str, Any] | list[Any],
    headers: dict[str, str],
    content_type: str = "application/json",
) -> tuple[int, Any, Any]:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    headers = {"Content-Type": content_type, "Accept": "application/json, text/event-stream",
               **headers}  # fmt: skip
    async with aiohttp.ClientSession() as http:
        response = await http.post(url(gw), data=body, headers=headers)
        assert response.status != 500
        answer = await response.json() if response.status not in (202, 204) else None
        return response.status, answer, response.headers


async def gw_call(gw: GatewayThread, coro: Any) -> Any:
    return await asyncio.to_thread(gw.call, coro)


async def gw_fetchrow(gw: GatewayThread, sql: str, *args: Any) -> Any:
    row = await gw_call(gw, gw.gateway.pool.fetchrow(sql, *args))
    assert row is not None, sql
    return row


async def gw_fetchval(gw: GatewayThread, sql: str, *args: Any) -> Any:
    return await gw_call(gw, gw.gateway.pool.fetchval(sql, *args))


async def gw_fetch(gw: GatewayThread, sql: str, *args: Any) -> Any:
    return await gw_call(gw, gw.gateway.pool.fetch(sql, *args))
