"""Real MCP servers for the governing proxy's tests and its benchmark: an ``MCPServer`` from
the official SDK served over streamable HTTP by uvicorn on a free loopback port in a
thread, and a server that misbehaves on purpose (garbage, silence, a JSON-RPC error)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from typing import Any

import uvicorn
from aiohttp import web
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

EMAIL, CARD = "dana.scully@example.org", "4111 1111 1111 1111"


class Customer(BaseModel):
    id: int
    name: str
    email: str
    card: str
    notes: list[str]


def tickets_server() -> tuple[MCPServer, Counter[str]]:
    """A ticketing server; ``calls`` counts each tool's executions."""
    server = MCPServer("tickets", version="1.0")
    calls: Counter[str] = Counter()

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        calls["echo"] += 1
        return text

    @server.tool(description="A customer's record.")
    def lookup_customer(id: int) -> Customer:
        calls["lookup_customer"] += 1
        return Customer(id=id, name="Dana", email=EMAIL, card=CARD,
                        notes=[f"reach her at {EMAIL}", "no PII here"])  # fmt: skip

    @server.tool(description="Close a ticket.")
    def close_ticket(id: int, reason: str) -> str:
        calls[f"close_ticket:{id}:{reason}"] += 1
        calls["close_ticket"] += 1
        return f"ticket {id} closed"

    @server.tool(description="Delete a whole project.")
    def delete_project(name: str) -> str:
        calls["delete_project"] += 1
        return f"project {name} deleted"

    @server.tool(description="Run a query on the ticket database.")
    def run_query(sql: str) -> str:
        calls["run_query"] += 1
        return "1 row"

    @server.tool(description="Take a while.")
    async def slow(seconds: float) -> str:
        calls["slow"] += 1
        await asyncio.sleep(seconds)
        return "done"

    @server.tool(description="Ask the client's model to summarise.")
    async def summarise(text: str, ctx: Context) -> str:
        calls["summarise"] += 1
        try:
            await ctx.session.create_message(messages=[], max_tokens=10)  # type: ignore[arg-type]
        except Exception as exc:  # the refusal is what this tool reports
            return f"sampling refused: {exc}"
        return "sampled"

    @server.resource("customers://dana", mime_type="text/plain")
    def dana() -> str:
        return f"Dana Scully <{EMAIL}>"

    return server, calls


def set_description(server: MCPServer, tool: str, description: str) -> None:
    """Change a tool's description in place, as a server turning on its users would."""
    server._tool_manager._tools[tool].description = description


class ServerThread:
    """``app`` (an ASGI app) served by uvicorn from its own thread on a free port."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the MCP server did not start"
            time.sleep(0.02)

    def url(self, path: str = "/mcp") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


class BrokenServer:
    """A server that answers ``/garbage`` with bytes that are not JSON, ``/hang`` not until
    it stops, ``/wrong-id`` with a response to another request, and ``/big`` with too much."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> int:
        self.released = asyncio.Event()
        app = web.Application()
        app.router.add_post("/garbage", self._garbage)
        app.router.add_post("/hang", self._hang)
        app.router.add_post("/wrong-id", self._wrong_id)
        app.router.add_post("/big", self._big)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return int(self.runner.addresses[0][1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _garbage(self, _request: web.Request) -> web.Response:
        return web.Response(body=b"\x00\xffnot json", content_type="application/json",
                            headers={"Mcp-Session-Id": "s1"})  # fmt: skip

    async def _hang(self, request: web.Request) -> web.Response:
        message = await request.json()
        if message.get("method") == "initialize":
            return web.json_response(_initialized(message["id"]), headers={"Mcp-Session-Id": "s"})
        if "id" not in message:
            return web.Response(status=202)
        await self.released.wait()
        return web.Response()

    async def _wrong_id(self, request: web.Request) -> web.Response:
        message = await request.json()
        if message.get("method") == "initialize":
            return web.json_response(_initialized(message["id"]), headers={"Mcp-Session-Id": "s"})
        if "id" not in message:
            return web.Response(status=202)
        return web.json_response({"jsonrpc": "2.0", "id": "someone-else", "result": {}})

    async def _big(self, request: web.Request) -> web.Response:
        message = await request.json()
        if message.get("method") == "initialize":
            return web.json_response(_initialized(message["id"]), headers={"Mcp-Session-Id": "s"})
        if "id" not in message:
            return web.Response(status=202)
        text = "x" * (2 << 20)
        return web.json_response(
            {
                "jsonrpc": "2.0",
                "id": message["id"],
                "result": {"content": [{"type": "text", "text": text}]},
            }
        )

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.released.set)
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _initialized(request_id: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "result": {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "broken", "version": "0"},
        },
    }
