"""``python -m bench.mcp``: what the governing proxy adds to an MCP ``tools/call``.

A real MCP server (the official SDK's ``MCPServer``, streamable HTTP under uvicorn, in a
thread) has one tool, ``echo``. A gateway (its own thread and event loop, its store on
``$JITGATE_BENCH_DSN`` or a throw-away cluster) governs it as resource ``echo``; the tool
is allowed, so every call is authenticated, its session looked up, policed, checked
against its pin, recorded before and after, forwarded and its answer masked. One client
opens a session on each path and alternates calls (direct, via, direct, via …), so a
noisy machine slows both alike. Printed: the median (and p90) of each path and the
difference of the medians — the goal (DESIGN.md) is ≤ 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from collections.abc import Coroutine
from statistics import median, quantiles
from typing import Any, TypeVar

import aiohttp
import uvicorn
import uvloop
from mcp.server.mcpserver import MCPServer

from bench import BenchError
from bench.postgres import BenchServer
from jitgate.config import parse_config
from jitgate.gateway import Gateway
from store.tokens import issue_token

GOAL_MS = 2.0
CALLS = 400
WARM_UP = 50
USER = "bench@example.com"
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
T = TypeVar("T")


def echo_server() -> uvicorn.Server:
    server = MCPServer("echo", version="1", log_level="WARNING")

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return text

    return uvicorn.Server(uvicorn.Config(server.streamable_http_app(), log_level="warning"))


class Background:
    """An event loop in a thread, for the server or the gateway under test."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(60)

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


def run(calls: int) -> dict[str, list[float]]:
    downstream, holder = echo_server(), Background()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=downstream.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not downstream.started:
        time.sleep(0.02)
    direct_url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    with BenchServer() as postgres:
        asyncio.run(postgres.recreate_database("jg_bench_mcp_store"))
        store = postgres.url("jg_bench_mcp_store")
        config = parse_config({
            "database_url": store, "http": {"listen": "127.0.0.1:0"},
            "postgres": {"listen": "127.0.0.1:0"}, "groups": {"engineers": [USER]},
            "resources": {"echo": {"type": "mcp", "url": direct_url,
                                   "access": {"engineers": {"*": "allow"}}}},
        }, {})  # fmt: skip
        gateway = holder.call(Gateway.open(config))
        try:
            holder.call(gateway.start())
            token = holder.call(issue_token(gateway.pool, USER, 3600))
            via_url = f"http://127.0.0.1:{gateway.http_port}/mcp/echo"
            return asyncio.run(measure(direct_url, via_url, token, calls))
        finally:
            holder.call(gateway.stop(2))
            holder.stop()
            downstream.should_exit = True
            thread.join(10)
            sock.close()


def report(timings: dict[str, list[float]]) -> list[str]:
    p50 = {name: median(values) for name, values in timings.items()}
    p90 = {name: quantiles(values, n=10)[-1] for name, values in timings.items()}
    added = p50["via"] - p50["direct"]
    verdict = "meets" if added <= GOAL_MS else "misses"
    return [
        f"tools/call, {len(timings['via'])} calls a path, alternating (ms):",
        f"  direct to the MCP server  p50 {p50['direct']:.3f}  p90 {p90['direct']:.3f}",
        f"  through the gateway       p50 {p50['via']:.3f}  p90 {p90['via']:.3f}",
        f"  added by the gateway      p50 {added:.3f}  ({verdict} the goal of ≤ {GOAL_MS:g} ms)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=CALLS)
    args = parser.parse_args()
    print("\n".join(report(run(args.calls))))


if __name__ == "__main__":
    main()
