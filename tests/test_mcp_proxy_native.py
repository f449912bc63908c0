"""The governing proxy spoken to in MCP protocol 2026-07-28 by the official SDK client: the
governed server's ``server/discover`` offered with the tasks extension, calls governed as
in a session, and a held call as a task that the gateway makes once the request is
approved. The downstream server's call counter and the store are the witnesses."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx2
import pytest
from aiohttp import web
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import Implementation, Result

from jitgate.config import parse_config
from tests.harness import GatewayThread
from tests.mcp_servers import CARD, EMAIL, BrokenServer, ServerThread
from tests.test_mcp_native import (
    CancelTask,
    DetailedTask,
    TaskHandle,
    TaskParams,
    TasksExtension,
    approve,
    get_task,
)
from tests.test_mcp_proxy import last_call, proxy_config, text
from tests.test_mcp_server import gw_fetchrow

ALICE, BOB = "alice@example.com", "bob@example.com"
AGENT = "claude-code"


@pytest.fixture(scope="module")
def gw(
    make_database: Callable[[str], str],
    tickets: tuple[MCPServer, Counter[str], ServerThread],
    broken: BrokenServer,
) -> Iterator[GatewayThread]:
    config = proxy_config(make_database("jg_mcp_proxy_native_store"), tickets[2].url(), broken)
    gateway = GatewayThread(config)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def tokens(gw: GatewayThread) -> dict[str, str]:
    return {user: gw.token(user) for user in (ALICE, BOB)}


@asynccontextmanager
async def connected(
    gw: GatewayThread,
    token: str,
    resource: str = "tickets",
    mode: str = "auto",
    tasks: TasksExtension | None = None,
) -> AsyncIterator[Client]:
    url = f"http://127.0.0.1:{gw.http_port}/mcp/{resource}"
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as h:
        transport = streamable_http_client(url, http_client=h)
        async with Client(
            transport, client_info=Implementation(name=AGENT, version="1"), mode=mode,
            extensions=[tasks] if tasks is not None else None,
        ) as client:  # fmt: skip
            yield client


async def test_a_modern_client_is_governed_without_a_session(
    gw: GatewayThread, tokens: dict[str, str], tickets: tuple[MCPServer, Counter[str], ServerThread]
) -> None:
    async with connected(gw, tokens[ALICE]) as client:
        assert client.protocol_version == "2026-07-28"
        assert client.session.initialize_result is None
        # Called before any listing: the gateway learns the tools itself, in 2026-07-28.
        found = await client.call_tool("lookup_customer", {"id": 1})
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "lookup_customer" in names and "delete_project" not in names
    shown = found.model_dump_json(by_alias=True)
    assert EMAIL not in shown and CARD not in shown and "Dana" in shown
    record = last_call(gw, "lookup_customer")
    assert (record["principal"], record["agent"], record["mcp_session"]) == (
        ALICE, AGENT, "stateless",
    )  # fmt: skip
    assert (record["decision"], record["outcome"]) == ("allow", "forwarded")


async def test_a_held_call_is_a_task_made_once_when_approved(
    gw: GatewayThread, tokens: dict[str, str], tickets: tuple[MCPServer, Counter[str], ServerThread]
) -> None:
    calls = tickets[1]
    before = calls["close_ticket"]
    tasks = TasksExtension()
    arguments = {"id": 41, "reason": f"asked by {EMAIL}"}
    async with connected(gw, tokens[ALICE], tasks=tasks) as client:
        call = asyncio.create_task(client.call_tool("close_ticket", arguments))
        await asyncio.wait_for(tasks.polled.wait(), 10)
        (handle,) = tasks.handles
        assert handle.status == "working" and "/requests/" in (handle.status_message or "")
        assert calls["close_ticket"] == before and not call.done()
        request_id = int(handle.task_id.removeprefix("request-"))
        await approve(gw, tokens[BOB], request_id)
        result = await asyncio.wait_for(call, 20)
        again = await client.session.send_request(get_task(handle.task_id), DetailedTask)
    assert not result.is_error and text(result) == "ticket 41 closed"
    assert calls["close_ticket"] == before + 1
    assert again.status == "completed" and again.result is not None
    assert again.result["content"][0]["text"] == "ticket 41 closed"
    assert calls["close_ticket"] == before + 1
    row = await gw_fetchrow(gw, "SELECT state, agent FROM requests WHERE id = $1", request_id)
    assert (row["state"], row["agent"]) == ("executed", AGENT)
    record = last_call(gw, "close_ticket")
    assert (record["decision"], record["request_id"]) == ("approved", request_id)
    assert EMAIL not in record["arguments"]


async def test_without_the_tasks_extension_a_held_call_answers_pending_approval(
    gw: GatewayThread, tokens: dict[str, str], tickets: tuple[MCPServer, Counter[str], ServerThread]
) -> None:
    before = tickets[1]["close_ticket"]
    async with connected(gw, tokens[ALICE], mode="2026-07-28") as client:
        held = await client.call_tool("close_ticket", {"id": 42, "reason": "done"})
    assert held.is_error and text(held).startswith("pending_approval")
    assert tickets[1]["close_ticket"] == before


async def test_a_task_is_cancelled_and_hidden_from_others(
    gw: GatewayThread, tokens: dict[str, str], tickets: tuple[MCPServer, Counter[str], ServerThread]
) -> None:
    before = tickets[1]["close_ticket"]
    async with connected(gw, tokens[ALICE], tasks=TasksExtension()) as client:
        handle = await client.session.call_tool(
            "close_ticket", {"id": 43, "reason": "cancel me"}, allow_claimed=True
        )
        assert isinstance(handle, TaskHandle)
        cancel = CancelTask(params=TaskParams(task_id=handle.task_id))
        await client.session.send_request(cancel, Result)
        task = await client.session.send_request(get_task(handle.task_id), DetailedTask)
    assert task.status == "cancelled" and tickets[1]["close_ticket"] == before


async def test_a_server_that_does_not_speak_2026_07_28_is_reached_through_initialize(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    async with connected(gw, tokens[ALICE], resource="wrong-id") as client:
        assert client.session.initialize_result is not None
        assert client.protocol_version == "2025-11-25"


class AskingServer:
    """A 2026-07-28 server that answers every call with an ``InputRequiredResult`` asking
    the client's model, whatever the client declared."""

    def __init__(self) -> None:
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.ready, self.loop = threading.Event(), asyncio.new_event_loop()
        self.thread.start()
        assert self.ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/mcp", self._answer)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        self.ready.set()
        self.loop.run_forever()

    async def _answer(self, request: web.Request) -> web.Response:
        message = await request.json()
        results = {
            "server/discover": {"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
                                "resultType": "complete", "ttlMs": 0, "cacheScope": "public"},
            "tools/list": {"tools": [{"name": "ask", "inputSchema": {"type": "object"}}],
                           "resultType": "complete", "ttlMs": 60000, "cacheScope": "public"},
            "tools/call": {"resultType": "input_required", "requestState": "s", "inputRequests": {
                "q": {"method": "sampling/createMessage",
                      "params": {"messages": [], "maxTokens": 5}}}},
        }  # fmt: skip
        return web.json_response(
            {"jsonrpc": "2.0", "id": message["id"], "result": results[message["method"]]}
        )

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def test_an_input_request_policy_refuses_never_reaches_the_agent_nor_a_shared_cache(
    make_database: Callable[[str], str],
) -> None:
    asking = AskingServer()
    raw = {
        "database_url": make_database("jg_mcp_asking_store"),
        "http": {"listen": "127.0.0.1:0"},
        "postgres": {"listen": "127.0.0.1:0"},
        "groups": {"engineers": [ALICE]},
        "resources": {"asking": {"type": "mcp", "url": f"http://127.0.0.1:{asking.port}/mcp",
                                 "access": {"engineers": {"*": "allow"}}}},
    }  # fmt: skip
    gateway = GatewayThread(parse_config(raw, {}))
    sampled: list[Any] = []

    async def sample(_context: Any, params: Any) -> Any:
        sampled.append(params)
        raise AssertionError("the agent was asked")

    try:
        url = f"http://127.0.0.1:{gateway.http_port}/mcp/asking"
        headers = {"Authorization": f"Bearer {gateway.token(ALICE)}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode="2026-07-28", sampling_callback=sample) as client:
                with pytest.raises(MCPError) as refused:
                    await client.call_tool("ask", {})
            # The server calls its list public; through the gateway it is the caller's.
            listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}}}}  # fmt: skip
            modern = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}
            listed = (await http.post(url, json=listing, headers=modern)).json()["result"]
    finally:
        gateway.stop()
        asking.stop()
    assert refused.value.code == -32003 and "refused by jitgate's policy" in str(refused.value)
    assert sampled == []
    assert (listed["cacheScope"], listed["ttlMs"]) == ("private", 0)


async def test_malformed_2026_07_28_requests_get_json_rpc_errors_never_500(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    def meta(extensions: dict[str, Any] | None = None) -> dict[str, Any]:
        capabilities = {"extensions": extensions} if extensions is not None else {}
        return {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": capabilities}  # fmt: skip

    tasks = {"io.modelcontextprotocol/tasks": {}}
    get = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get"}
    cases = [
        ({**get, "params": {"taskId": "request-1", "_meta": meta()}}, "request-1", 400, -32021),
        ({**get, "params": {"taskId": "request-999999", "_meta": meta(tasks)}}, "request-999999",
         400, -32602),
        ({**get, "params": {"taskId": ["x"], "_meta": meta(tasks)}}, None, 400, -32020),
        ({**get, "params": {"taskId": "request-1", "_meta": meta(tasks)}}, "request-2", 400,
         -32020),
        ({**get, "params": {"taskId": "request-1"}}, "request-1", 400, -32602),
        ({**get, "method": "tools/call", "params": {"name": "echo", "arguments": [1],
                                                     "_meta": meta()}}, "echo", 400, -32602),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{gw.http_port}/mcp/tickets"
    async with aiohttp.ClientSession() as http:
        for body, name, status, code in cases:
            headers = {
                "Authorization": f"Bearer {tokens[ALICE]}",
                "MCP-Protocol-Version": "2026-07-28",
                "Mcp-Method": body["method"],
                **({"Mcp-Name": name} if name else {}),
            }
            async with http.post(url, json=body, headers=headers) as response:
                answer = await response.json()
            assert (response.status, answer["error"]["code"]) == (status, code), (body, answer)
