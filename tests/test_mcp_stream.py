"""The governing proxy answers on an event stream when the agent accepts one: a governed
server's progress and log notifications reach the agent masked, before the masked answer;
its sampling and elicitation requests reach the agent where ``server_requests`` allows
them, and the agent's answers go back to the server, recorded masked. The official SDK
plays both the agent (with sampling and elicitation callbacks) and the governed server."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import aiohttp
import httpx2
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context, MCPServer, Resolve
from mcp.server.mcpserver.resolve import Elicit
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    Implementation,
    LoggingMessageNotificationParams,
    SamplingMessage,
    TextContent,
)
from pydantic import BaseModel

from jitgate.config import parse_config
from tests.harness import GatewayThread
from tests.mcp_servers import ServerThread
from tests.test_mcp_proxy import everything, last_call, text

ALICE = "alice@example.com"
AGENT = "claude-code"
EMAIL, CARD = "dana.scully@example.org", "4111 1111 1111 1111"


class Confirmation(BaseModel):
    close: bool
    note: str


def ask(ticket: int) -> Elicit[Confirmation]:
    """Whether to close ``ticket``, asked of the agent's user (in either protocol)."""
    return Elicit(f"Close #{ticket} of {EMAIL}?", Confirmation)


def helpdesk_server() -> tuple[MCPServer, list[str]]:
    """A server that reports progress, logs, asks the agent's model and its user; what it
    heard back is kept in ``heard``."""
    server = MCPServer("helpdesk", version="1.0")
    heard: list[str] = []

    @server.tool(description="Work through a ticket in steps.")
    async def work(steps: int, ctx: Context) -> str:
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step}: mailing {EMAIL}")
            await asyncio.sleep(0.02)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await ctx.info(f"worked for {EMAIL}")
        return f"done for {EMAIL}"

    @server.tool(description="Draft a reply with the client's model.")
    async def draft(ticket: int, ctx: Context) -> str:
        asked = SamplingMessage(
            role="user", content=TextContent(type="text", text=f"Reply to {EMAIL} on #{ticket}")
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                sampled = await ctx.session.create_message(
                    messages=[asked], max_tokens=50, related_request_id=ctx.request_id
                )
        except Exception as exc:  # the refusal is what this tool reports
            return f"sampling refused: {exc}"
        said = sampled.content.text if isinstance(sampled.content, TextContent) else "?"
        heard.append(said)
        return f"model said: {said}"

    @server.tool(description="Ask the user before closing.")
    async def close(ticket: int, ctx: Context) -> str:
        try:
            answer = await ctx.elicit(f"Close #{ticket} of {EMAIL}?", schema=Confirmation)
        except Exception as exc:
            return f"elicitation refused: {exc}"
        heard.append(answer.model_dump_json())
        return f"{answer.action}: {getattr(answer, 'data', None)}"

    @server.tool(description="Ask the user before closing, in either protocol.")
    def close_asking(ticket: int, confirmation: Annotated[Confirmation, Resolve(ask)]) -> str:
        heard.append(confirmation.model_dump_json())
        return f"closed #{ticket}: {confirmation.note}"

    return server, heard


@pytest.fixture(scope="module")
def helpdesk() -> Iterator[tuple[list[str], ServerThread]]:
    server, heard = helpdesk_server()
    thread = ServerThread(server.streamable_http_app())
    yield heard, thread
    thread.stop()


@pytest.fixture(scope="module")
def gw(
    make_database: Callable[[str], str], helpdesk: tuple[list[str], ServerThread]
) -> Iterator[GatewayThread]:
    store = make_database("jg_mcp_stream_store")
    helpdesk_url = helpdesk[1].url()

    def governed(requests: str) -> dict[str, Any]:
        return {"type": "mcp", "url": helpdesk_url, "timeout": "10s",
                "access": {"engineers": {"*": "allow"}},
                "server_requests": {"sampling": requests, "elicitation": requests}}  # fmt: skip

    raw = {
        "database_url": store,
        "http": {"listen": "127.0.0.1:0"},
        "postgres": {"listen": "127.0.0.1:0"},
        "groups": {"engineers": [ALICE]},
        "resources": {"helpdesk": governed("allow"), "locked": governed("deny")},
    }
    gateway = GatewayThread(parse_config(raw, {}))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def token(gw: GatewayThread) -> str:
    return gw.token(ALICE)


class Agent:
    """What the agent's client was sent besides answers, and how it answers requests."""

    def __init__(self, model_says: str = "", user_note: str = "") -> None:
        self.progress: list[tuple[float, float | None, str | None]] = []
        self.logs: list[Any] = []
        self.sampled: list[CreateMessageRequestParams] = []
        self.elicited: list[ElicitRequestParams] = []
        self.model_says, self.user_note = model_says, user_note

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.progress.append((progress, total, message))

    async def on_log(self, params: LoggingMessageNotificationParams) -> None:
        self.logs.append(params.data)

    async def sample(
        self, _context: ClientRequestContext, params: CreateMessageRequestParams
    ) -> CreateMessageResult:
        self.sampled.append(params)
        content = TextContent(type="text", text=self.model_says)
        return CreateMessageResult(role="assistant", content=content, model="test-model")

    async def elicit(
        self, _context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult:
        self.elicited.append(params)
        return ElicitResult(action="accept", content={"close": True, "note": self.user_note})


@asynccontextmanager
async def connected(
    gw: GatewayThread, token: str, agent: Agent, resource: str = "helpdesk", mode: str = "legacy"
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(mcp_url(gw, resource), http_client=http)
        async with Client(
            transport, client_info=Implementation(name=AGENT, version="1"), mode=mode,
            logging_callback=agent.on_log, log_level="info", sampling_callback=agent.sample,
            elicitation_callback=agent.elicit,
        ) as client:  # fmt: skip
            yield client


def mcp_url(gw: GatewayThread, resource: str) -> str:
    return f"http://127.0.0.1:{gw.http_port}/mcp/{resource}"


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_progress_and_log_notifications_reach_the_agent_masked_before_the_answer(
    gw: GatewayThread, token: str, mode: str
) -> None:
    agent = Agent()
    async with connected(gw, token, agent, mode=mode) as client:
        result = await client.call_tool("work", {"steps": 3}, progress_callback=agent.on_progress)
    assert [p[:2] for p in agent.progress] == [(1, 3), (2, 3), (3, 3)]
    assert all(p[2] and p[2].startswith(f"step {i}: mailing ") for i, p in enumerate(
        agent.progress, 1))  # fmt: skip
    assert len(agent.logs) == 1 and str(agent.logs[0]).startswith("worked for ")
    everything_sent = json.dumps([agent.progress, agent.logs]) + everything(result)
    assert EMAIL not in everything_sent, everything_sent
    assert text(result).startswith("done for ") and not result.is_error


async def test_a_client_that_takes_only_json_gets_one_masked_json_answer(
    gw: GatewayThread, token: str
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": AGENT, "version": "1"}}}  # fmt: skip
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "work", "arguments": {"steps": 2}, "_meta": {"progressToken": "p1"}}}  # fmt: skip
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(mcp_url(gw, "helpdesk"), json=init) as response:
            session = response.headers["MCP-Session-Id"]
        async with http.post(
            mcp_url(gw, "helpdesk"), json=call, headers={"MCP-Session-Id": session}
        ) as response:
            assert response.status == 200 and response.content_type == "application/json"
            answer = await response.json()
    assert answer["id"] == 2 and answer["result"]["content"][0]["text"].startswith("done for ")
    assert EMAIL not in json.dumps(answer)


async def test_sampling_is_relayed_when_allowed_and_the_answer_recorded_masked(
    gw: GatewayThread, token: str, helpdesk: tuple[list[str], ServerThread]
) -> None:
    agent = Agent(model_says=f"Dear customer, card {CARD} is blocked.")
    async with connected(gw, token, agent) as client:
        result = await client.call_tool("draft", {"ticket": 7})
    (asked,) = agent.sampled
    shown = asked.messages[0].content
    assert isinstance(shown, TextContent) and shown.text.startswith("Reply to ")
    assert EMAIL not in shown.text and "#7" in shown.text
    # The server heard the agent's own words; what leaves towards the agent is masked.
    assert helpdesk[0][-1] == f"Dear customer, card {CARD} is blocked."
    assert text(result).startswith("model said: Dear customer") and CARD not in everything(result)
    row = last_call(gw, "sampling/createMessage")
    assert (row["resource"], row["principal"], row["agent"]) == ("helpdesk", ALICE, AGENT)
    assert (row["decision"], row["outcome"]) == ("allow", "answered")
    assert "Dear customer" in row["detail"] and CARD not in row["detail"]
    assert EMAIL not in row["arguments"]


async def test_elicitation_is_relayed_when_allowed(
    gw: GatewayThread, token: str, helpdesk: tuple[list[str], ServerThread]
) -> None:
    agent = Agent(user_note=f"tell {EMAIL}")
    async with connected(gw, token, agent) as client:
        result = await client.call_tool("close", {"ticket": 9})
    (asked,) = agent.elicited
    assert asked.message.startswith("Close #9 of ") and EMAIL not in asked.message
    heard = {"action": "accept", "data": {"close": True, "note": f"tell {EMAIL}"}}
    assert json.loads(helpdesk[0][-1]) == heard
    assert text(result).startswith("accept: close=True") and EMAIL not in everything(result)
    row = last_call(gw, "elicitation/create")
    assert (row["decision"], row["outcome"]) == ("allow", "answered")
    assert '"close": true' in row["detail"] and EMAIL not in row["detail"]


async def test_denied_server_requests_are_refused_recorded_and_never_reach_the_agent(
    gw: GatewayThread, token: str
) -> None:
    agent = Agent(model_says="never asked")
    async with connected(gw, token, agent, resource="locked") as client:
        drafted = await client.call_tool("draft", {"ticket": 1})
        closed = await client.call_tool("close", {"ticket": 1})
    assert agent.sampled == [] and agent.elicited == []
    assert text(drafted).startswith("sampling refused")
    assert text(closed).startswith("elicitation refused")
    for method in ("sampling/createMessage", "elicitation/create"):
        row = last_call(gw, method)
        assert (row["resource"], row["decision"], row["outcome"]) == ("locked", "deny", "refused")


async def test_in_2026_07_28_an_allowed_elicitation_is_relayed_masked_and_recorded(
    gw: GatewayThread, token: str, helpdesk: tuple[list[str], ServerThread]
) -> None:
    agent = Agent(user_note=f"tell {EMAIL}")
    async with connected(gw, token, agent, mode="2026-07-28") as client:
        result = await client.call_tool("close_asking", {"ticket": 3})
    (asked,) = agent.elicited
    assert asked.message.startswith("Close #3 of ") and EMAIL not in asked.message
    assert json.loads(helpdesk[0][-1]) == {"close": True, "note": f"tell {EMAIL}"}
    assert text(result).startswith("closed #3: tell ") and EMAIL not in everything(result)
    row = last_call(gw, "inputResponses")
    assert (row["resource"], row["decision"], row["outcome"]) == ("helpdesk", "allow", "answered")
    assert "accept" in row["arguments"] and EMAIL not in row["arguments"]
    # Where policy refuses elicitation the server is not told the client could answer.
    heard = len(helpdesk[0])
    locked_agent = Agent(user_note="never asked")
    async with connected(gw, token, locked_agent, resource="locked", mode="2026-07-28") as c:
        with pytest.raises(MCPError) as refused:
            await c.call_tool("close_asking", {"ticket": 4})
    assert "elicitation" in str(refused.value), refused.value
    assert locked_agent.elicited == [] and len(helpdesk[0]) == heard


async def test_an_agent_that_leaves_mid_stream_does_not_stop_the_call_or_its_record(
    gw: GatewayThread, token: str
) -> None:
    headers = {"Authorization": f"Bearer {token}",
               "Accept": "application/json, text/event-stream"}  # fmt: skip
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": AGENT, "version": "1"}}}  # fmt: skip
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "work", "arguments": {"steps": 25}, "_meta": {"progressToken": "p"}}}  # fmt: skip
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(mcp_url(gw, "helpdesk"), json=init) as response:
            session = response.headers["MCP-Session-Id"]
            await response.read()
        response = await http.post(
            mcp_url(gw, "helpdesk"), json=call, headers={"MCP-Session-Id": session}
        )
        assert response.content_type == "text/event-stream"
        first = await response.content.readuntil(b"\n\n")
        assert b"notifications/progress" in first and EMAIL.encode() not in first
        response.close()
    deadline = time.monotonic() + 10
    while (row := last_call(gw, "work"))["mcp_session"] != session:
        assert time.monotonic() < deadline, "the call left no record"
        await asyncio.sleep(0.1)
    assert (row["decision"], row["outcome"]) == ("allow", "forwarded")
