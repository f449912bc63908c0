"""``/mcp`` on the gateway's HTTP listener: MCP's streamable HTTP transport, protocol
revisions 2025-03-26 to 2025-11-25 (the ``initialize`` handshake and a session) and
2026-07-28 (no session: every request carries its envelope, :mod:`mcp_gateway.envelope`;
``server/discover`` answers what this server speaks). Every request is answered with one
JSON response.

``POST /mcp`` takes one JSON-RPC message, checked in this order:

1. the ``Origin`` and the Bearer token (:func:`~mcp_gateway.http_edge.caller_of`: 403,
   401 with ``WWW-Authenticate`` and the reason);
2. the body (:func:`~mcp_gateway.http_edge.read_message`: 415, 413, 400 with a JSON-RPC
   error);
3. ``initialize`` opens a session, returned in ``MCP-Session-Id``; the agent is the
   ``clientInfo.name`` the client declares. Every other message carries that header (400
   without it; 404 once the session ended or for a token of someone else) and, if it
   sends ``MCP-Protocol-Version``, a revision this server speaks (400).

A request whose ``MCP-Protocol-Version`` is 2026-07-28 skips step 3's session: the agent
is the token's, else the ``clientInfo`` name of that request; a ``run_sql`` that policy
holds is a task (:mod:`mcp_gateway.tasks`) when the request declares the tasks extension,
else the same ``pending_approval`` result older clients get.

Notifications and responses get 202; requests get 200 with a result or a JSON-RPC error
(a 2026-07-28 error with the status its code maps to: 400, 404 for an unknown method).
``GET /mcp`` is 405: the server never speaks unasked, so it offers no stream.
``DELETE /mcp`` ends the session (204). A store outage is a 503, never a guess.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from identity import Principal
from jitgate import __version__
from jitgate.errors import RpcError
from jitgate.gateway import Gateway
from mcp_gateway import jsonrpc, texts
from mcp_gateway.envelope import (
    MODERN_VERSIONS,
    SERVER_INFO_KEY,
    STATELESS,
    Envelope,
    envelope_of,
    http_status,
    is_modern,
)
from mcp_gateway.http_edge import (
    SESSION_HEADER,
    VERSION_HEADER,
    McpRoute,
    agent_name,
    as_agent,
    caller_of,
    id_of,
    initializing_client,
    no_session,
    read_message,
    refused,
    session_not_found,
)
from mcp_gateway.jsonrpc import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, Request
from mcp_gateway.results import ToolResult
from mcp_gateway.store import McpSession, McpStore
from mcp_gateway.tasks import TASKS_EXTENSION, RequestTasks
from mcp_gateway.tools import Toolbox

# Newest first: an initialize asking for a revision not listed here is offered the first.
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
_SERVER_INFO = {"name": "jitgate", "version": __version__}


class McpEndpoint(McpRoute):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store = McpStore(gateway.pool)
        self.tools = Toolbox(gateway, self.store)
        self.tasks = RequestTasks(gateway)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/mcp", self.post),
            web.get("/mcp", self.get),
            web.delete("/mcp", self.delete),
        ]

    async def end(self, request: web.Request) -> web.StreamResponse:
        caller = await caller_of(request, self.gateway)
        if isinstance(caller, web.Response):
            return caller
        session = await self._session(request, caller, None)
        if isinstance(session, web.Response):
            return session
        await self.store.end(session)
        return web.Response(status=204)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        caller = await caller_of(request, self.gateway)
        if isinstance(caller, web.Response):
            return caller
        read = await read_message(request)
        if isinstance(read, web.Response):
            return read
        _, message = read
        if is_modern(request.headers.get(VERSION_HEADER)):
            return await self._modern(request, caller, message)
        if isinstance(message, Request) and message.method == "initialize":
            return await self._initialize(message, caller)
        session = await self._session(request, caller, message)
        if isinstance(session, web.Response):
            return session
        if not isinstance(message, Request):
            return web.Response(status=202)
        try:
            value = await self._dispatch(session, message)
        except RpcError as exc:
            return web.json_response(jsonrpc.error(message.id, exc.code, str(exc)))
        return web.json_response(jsonrpc.result(message.id, value))

    async def _session(
        self, request: web.Request, caller: Principal, message: jsonrpc.Message | None
    ) -> McpSession | web.Response:
        request_id = id_of(message) if message is not None else None
        version = request.headers.get(VERSION_HEADER)
        if version is not None and version not in PROTOCOL_VERSIONS:
            return refused(
                400, INVALID_REQUEST, f"Bad Request: unsupported {VERSION_HEADER} {version!r};"
                f" this server speaks {', '.join(PROTOCOL_VERSIONS)}", request_id,
            )  # fmt: skip
        session_id = request.headers.get(SESSION_HEADER)
        if not session_id:
            return no_session(request_id)
        session = await self.store.find(session_id, caller)
        if session is None:
            return session_not_found(request_id)
        return session

    async def _initialize(self, message: Request, caller: Principal) -> web.Response:
        client = initializing_client(message)
        if isinstance(client, web.Response):
            return client
        asked = message.params.get("protocolVersion")
        version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
        agent_version = client.get("version")
        caller = as_agent(caller, client["name"])
        session = await self.store.open(
            caller,
            agent_name(agent_version) if isinstance(agent_version, str) else None,
            version,
        )
        result = {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": _SERVER_INFO,
            "instructions": texts.INSTRUCTIONS,
        }
        return web.json_response(
            jsonrpc.result(message.id, result), headers={SESSION_HEADER: session.id}
        )

    async def _dispatch(self, session: McpSession, message: Request) -> dict[str, Any]:
        if message.method == "ping":
            return {}
        if message.method == "tools/list":
            return {"tools": list(texts.TOOLS)}
        if message.method == "tools/call":
            return (await self._call(session, message)).as_json()
        if message.method == "initialize":
            raise RpcError(INVALID_REQUEST, "this session is initialized already")
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {message.method}")

    async def _modern(
        self, request: web.Request, caller: Principal, message: jsonrpc.Message
    ) -> web.Response:
        """A 2026-07-28 message: no session; the agent is the token's, else the client's
        declared name on this very request."""
        if not isinstance(message, Request):
            return web.Response(status=202)
        try:
            envelope = envelope_of(message, request.headers)
            caller = as_agent(caller, envelope.client_name or "")
            session = McpSession(STATELESS, caller, envelope.version)
            value = await self._dispatch_modern(session, envelope, message)
        except RpcError as exc:
            answer = jsonrpc.error(message.id, exc.code, str(exc), exc.data)
            return web.json_response(answer, status=http_status(exc.code))
        return web.json_response(jsonrpc.result(message.id, value))

    async def _dispatch_modern(
        self, session: McpSession, envelope: Envelope, message: Request
    ) -> dict[str, Any]:
        who, method = session.principal, message.method
        if method == "server/discover":
            return {
                "supportedVersions": list(MODERN_VERSIONS),
                "capabilities": {"tools": {"listChanged": False},
                                 "extensions": {TASKS_EXTENSION: {}}},
                "serverInfo": _SERVER_INFO,
                "instructions": texts.INSTRUCTIONS,
                "resultType": "complete", "ttlMs": 0, "cacheScope": "public",
                "_meta": {SERVER_INFO_KEY: _SERVER_INFO},
            }  # fmt: skip
        if method == "tools/call":
            result = await self._call(session, message)
            if result.outcome == "pending_approval" and envelope.declares(TASKS_EXTENSION):
                assert result.request_id is not None
                return await self.tasks.created(who, result.request_id)
            return {**result.as_json(), "resultType": "complete"}
        if method.startswith("tasks/"):
            envelope.require(TASKS_EXTENSION, message.id)
        if method == "tasks/get":
            return await self.tasks.get(who, message.params)
        if method == "tasks/cancel":
            return await self.tasks.cancel(who, message.params)
        if method == "tasks/update":
            return await self.tasks.update(who, message.params)
        if method == "tools/list":
            return {"tools": list(texts.TOOLS), "resultType": "complete", "ttlMs": 0,
                    "cacheScope": "public"}  # fmt: skip
        if method == "ping":
            return {"resultType": "complete"}
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")

    async def _call(self, session: McpSession, message: Request) -> ToolResult:
        name, arguments = message.params.get("name"), message.params.get("arguments")
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "tools/call needs the tool's name")
        if arguments is not None and not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, "a tool's arguments are an object")
        return await self.tools.call(session, name, arguments or {})
