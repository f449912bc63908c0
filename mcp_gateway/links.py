"""Which :class:`~mcp_gateway.downstream.Downstream` reaches a governed server: the
streamable HTTP client for a ``url``, a process the gateway runs for a ``command``."""

from __future__ import annotations

import aiohttp

from mcp_gateway.downstream import Downstream
from mcp_gateway.http_downstream import HttpDownstream
from mcp_gateway.settings import McpServer
from mcp_gateway.stdio_downstream import StdioDownstream


def open_downstream(server: McpServer, http: aiohttp.ClientSession, issuer: str) -> Downstream:
    """The link to ``server``; a process is started now and kept running until closed.
    ``issuer`` (the gateway's public URL) vouches for callers in token exchanges."""
    if server.command is not None:
        return StdioDownstream(server)
    return HttpDownstream(server, http, issuer)
