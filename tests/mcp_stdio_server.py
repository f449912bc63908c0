"""The tickets server of :mod:`tests.mcp_servers` over MCP's stdio transport, as a governed
server the gateway runs itself: ``python -m tests.mcp_stdio_server``. Beside its tools it
has ``process`` (its pid and what its environment holds), ``counts`` (its executions
since it started) and ``close_slowly`` (a reviewed tool that takes a while). With
``TICKETS_HELPER=1`` it starts a helper process of its own (``sleep``) that outlives the
end of its input, as a server's worker would."""

from __future__ import annotations

import asyncio
import os
import subprocess

from tests.mcp_servers import tickets_server


def main() -> None:
    server, calls = tickets_server()

    @server.tool(description="This process: its pid and the environment it was given.")
    def process() -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "greeting": os.environ.get("TICKETS_GREETING"),
            "variables": sorted(os.environ),
        }

    @server.tool(description="How many times each tool ran in this process.")
    def counts() -> dict[str, int]:
        return dict(calls)

    @server.tool(description="Close a ticket, slowly.")
    async def close_slowly(id: int, seconds: float) -> str:
        calls["close_slowly"] += 1
        await asyncio.sleep(seconds)
        return f"ticket {id} closed"

    if os.environ.get("TICKETS_HELPER") == "1":
        subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    server.run()


if __name__ == "__main__":
    main()
