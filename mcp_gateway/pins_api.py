"""The REST API over pinned tools of governed servers, for the resource's approvers.

``GET /api/mcp/{resource}/tools``: every pinned tool, who approved it, and whether a
changed definition holds it (with that definition, to read before approving).
``POST /api/mcp/{resource}/tools/{tool}/approve``: the changed definition becomes the
approved one, and the tool is listed and callable again.

Bearer token of a member of one of the resource's approver groups (a person's own token:
an agent cannot approve a tool for itself); 401 without a live token, 403 otherwise, 404
for an unknown resource or a tool with nothing held.
"""

from __future__ import annotations

from aiohttp import web

from identity import Principal
from jitgate.errors import StoreUnavailable
from jitgate.gateway import Gateway
from mcp_gateway.http_edge import caller_of
from mcp_gateway.pins import ToolPins
from mcp_gateway.settings import McpServer


class PinsApi:
    def __init__(self, gateway: Gateway, pins: ToolPins) -> None:
        self.gateway = gateway
        self.pins = pins

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/mcp/{resource}/tools", self.list),
            web.post("/api/mcp/{resource}/tools/{tool}/approve", self.approve),
        ]

    async def list(self, request: web.Request) -> web.Response:
        try:
            found = await self._approver(request)
            if isinstance(found, web.Response):
                return found
            server, _who = found
            return web.json_response({"tools": await self.pins.pinned(server.name)})
        except StoreUnavailable as exc:
            return _error(503, f"jitgate's store is unavailable: {exc}")

    async def approve(self, request: web.Request) -> web.Response:
        try:
            found = await self._approver(request)
            if isinstance(found, web.Response):
                return found
            server, who = found
            tool = request.match_info["tool"]
            if not await self.pins.approve(server.name, tool, who.email):
                return _error(404, f"{server.name} has no held tool {tool!r}")
        except StoreUnavailable as exc:
            return _error(503, f"jitgate's store is unavailable: {exc}")
        return web.json_response({"resource": server.name, "tool": tool, "approved_by": who.email})

    async def _approver(self, request: web.Request) -> tuple[McpServer, Principal] | web.Response:
        caller = await caller_of(request, self.gateway)
        if isinstance(caller, web.Response):
            return caller
        name = request.match_info["resource"]
        server = self.gateway.config.mcp_servers.get(name)
        if server is None:
            return _error(404, f"there is no MCP server {name!r}")
        groups = self.gateway.directory.groups_of(caller)
        if caller.actor is not None or not groups & set(server.approvers):
            return _error(403, f"only {', '.join(server.approvers) or 'no group'}'s members"
                          f" may approve {name}'s tools")  # fmt: skip
        return server, caller


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
