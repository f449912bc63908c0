"""``python -m bench.mcp``: what the governing proxy adds to an MCP ``tools/call``.

A real MCP server (the official SDK's ``MCPServer``, streamable HTTP under uvicorn, in a
thread) has one tool, ``echo``. A gateway (its own thread and event loop, its store on
``$JITGATE_BENCH_DSN`` or a throw-away cluster) governs it as resource ``echo``; the tool
is allowed, so every call is authenticated, its session looked up, policed, checked
against its pin, recorded before and after, forwarded and its answer masked. One client
opens a session on each path and alternates calls (direct, via, direct, via …), so a
noisy machine slows both alike. Printed: the median (and p90) of each path, the
difference of the medians and its verdict against the goal (DESIGN.md: ≤ 2 ms). ``python
-m bench`` runs it too (:func:`mcp_latency`, :func:`mcp_lines`), on its own server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import Coroutine
from statistics import median, quantiles
from typing import Any, TypeVar

import aiohttp
import uvicorn
import uvloop
from mcp.server.mcpserver import MCPServer

from bench import BenchError, run_alone
from bench.postgres import BenchServer
from jitgate.config import parse_config
from jitgate.gateway import Gateway
from store.tokens import issue_token

GOAL_MS = 2.0
CALLS = 400
WARM_UP = 50
STORE_DATABASE = "jg_bench_mcp_store"
USER = "bench@example.com"
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
T = TypeVar("T")


class EchoServer:
    """An ``MCPServer`` with one tool, ``echo``, served by uvicorn from a thread."""

    def __init__(self) -> None:
        server = MCPServer("echo", version="1", log_level="WARNING")

        @server.tool(description="Echo the text back.")
        def echo(text: str) -> str:
            return text

        app = server.streamable_http_app()
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/mcp"
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise BenchError("the MCP server did not start in 30 s")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


class Background:
    """An event loop in a thread, for the server or the gateway under test."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def open_session(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> str:
    initialize = {
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "1"}},
    }  # fmt: skip
    async with http.post(url, json=initialize, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise BenchError(f"initialize at {url} answered {response.status}")
        session = response.headers["Mcp-Session-Id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    async with http.post(url, json=initialized, headers={**headers, "Mcp-Session-Id": session}):
        pass
    return session


async def timed_call(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], n: int
) -> float:
    params = {"name": "echo", "arguments": {"text": f"hello {n}"}}
    body = json.dumps({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": params})
    started = time.perf_counter()
    async with http.post(url, data=body.encode(), headers=headers) as response:
        answer = await response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200 or b'"isError":true' in answer or b"hello" not in answer:
        raise BenchError(f"tools/call at {url} failed: {answer[:300]!r}")
    return elapsed


async def measure(direct_url: str, via_url: str, token: str, calls: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"direct": [], "via": []}
    async with aiohttp.ClientSession(headers=_HEADERS) as http:
        paths = {
            "direct": (direct_url, {}),
            "via": (via_url, {"Authorization": f"Bearer {token}"}),
        }
        headers = {}
        for name, (url, auth) in paths.items():
            session = await open_session(http, url, auth)
            headers[name] = {
                **auth,
                "Mcp-Session-Id": session,
                "MCP-Protocol-Version": "2025-11-25",
            }
        for n in range(WARM_UP + calls):
            for name, (url, _auth) in paths.items():
                elapsed = await timed_call(http, url, headers[name], n)
                if n >= WARM_UP:
                    timings[name].append(elapsed)
    return timings


async def mcp_latency(server: BenchServer, calls: int = CALLS) -> dict[str, list[float]]:
    """Each path's ``calls`` timings (ms), with the gateway's store on ``server``."""
    await server.recreate_database(STORE_DATABASE)
    downstream, holder = EchoServer(), Background()
    try:
        config = parse_config({
            "database_url": server.url(STORE_DATABASE), "http": {"listen": "127.0.0.1:0"},
            "postgres": {"listen": "127.0.0.1:0"}, "groups": {"engineers": [USER]},
            "resources": {"echo": {"type": "mcp", "url": downstream.url,
                                   "access": {"engineers": {"*": "allow"}}}},
        }, {})  # fmt: skip
        gateway = await holder.run(Gateway.open(config))
        try:
            await holder.run(gateway.start())
            token = await holder.run(issue_token(gateway.pool, USER, 3600))
            via_url = f"http://127.0.0.1:{gateway.http_port}/mcp/echo"
            return await measure(downstream.url, via_url, token, calls)
        finally:
            await holder.run(gateway.stop(2))
    finally:
        holder.stop()
        downstream.stop()


def mcp_lines(timings: dict[str, list[float]]) -> list[str]:
    """The two paths side by side, then the verdict on the difference of their medians."""
    p50 = {name: median(values) for name, values in timings.items()}
    p90 = {name: quantiles(values, n=10)[-1] for name, values in timings.items()}
    added = p50["via"] - p50["direct"]
    verdict = "PASS" if added <= GOAL_MS else "FAIL"
    return [
        f"MCP tools/call, {len(timings['via'])} calls a path, alternating (ms):",
        f"  direct to the MCP server  p50 {p50['direct']:.3f}  p90 {p90['direct']:.3f}",
        f"  through the gateway       p50 {p50['via']:.3f}  p90 {p90['via']:.3f}",
        f"{verdict}  MCP tools/call added latency <= {GOAL_MS:g} ms p50: {added:.3f} ms",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mcp",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--calls", type=int, default=CALLS, help="timed calls on each path")
    args = parser.parse_args()
    if args.calls < 10:
        parser.error("--calls must be at least 10")
    return run_alone("bench.mcp", lambda server: mcp_latency(server, args.calls), mcp_lines)


if __name__ == "__main__":
    sys.exit(main())
