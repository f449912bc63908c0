"""``/mcp`` on the gateway's HTTP listener: MCP's streamable HTTP transport, protocol
revisions 2025-03-26 to 2025-11-25 (the ``initialize`` handshake and a session) and
2026-07-28 (no session: every request carries its envelope, :mod:`mcp_gateway.envelope`;
``server/discover`` answers what this server speaks). Every request is answered with one
JSON response.

``POST /mcp`` takes one JSON-RPC message, checked in this order:

1. an ``Origin`` header, when sent, must be this gateway's, else 403 (a web page elsewhere
   must not drive the server: DNS rebinding);
2. ``Authorization: Bearer <access token>``, the gateway's own tokens, else 401 with
   ``WWW-Authenticate`` and the reason;
3. ``Content-Type: application/json`` (else 415), a body within the listener's size limit
   (413), one well-formed message (400 with a JSON-RPC error without an id);
4. ``initialize`` opens a session, returned in ``MCP-Session-Id``; the agent is the
   ``clientInfo.name`` the client declares. Every other message carries that header (400
   without it; 404 once the session ended or for a token of someone else) and, if it
   sends ``MCP-Protocol-Version``, a revision this server speaks (400).

A request whose ``MCP-Protocol-Version`` is 2026-07-28 skips steps 4's session: the agent
is the token's, else the ``clientInfo`` name of that request; a ``run_sql`` that policy
holds is a task (:mod:`mcp_gateway.tasks`) when the request declares the tasks extension,
else the same ``pending_approval`` result older clients get.

Notifications and responses get 202; requests get 200 with a result or a JSON-RPC error
(a 2026-07-28 error with the status its code maps to: 400, 404 for an unknown method).
``GET /mcp`` is 405: the server never speaks unasked, so it offers no stream.
``DELETE /mcp`` ends the session (204). A store outage is a 503, never a guess.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from identity import Principal
from jitgate import __version__
from jitgate.errors import RpcError, StoreUnavailable
from jitgate.gateway import Gateway
from jitgate.webauth import bearer_token, same_origin
from mcp_gateway import jsonrpc, texts
from mcp_gateway.envelope import (
    MISSING_CAPABILITY,
    MODERN_VERSIONS,
    SERVER_INFO_KEY,
    Envelope,
    envelope_of,
    http_status,
    is_modern,
)
from mcp_gateway.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    SESSION_NOT_FOUND,
    UNAUTHORIZED,
    Request,
)
from mcp_gateway.results import ToolResult
from mcp_gateway.store import McpSession, McpStore
from mcp_gateway.tasks import TASKS_EXTENSION, RequestTasks
from mcp_gateway.tools import Toolbox

# Newest first: an initialize asking for a revision not listed here is offered the first.
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
SESSION_HEADER = "MCP-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
MAX_AGENT_NAME = 100
# What mcp_calls records as the session of a 2026-07-28 call, which has none.
STATELESS = "stateless"
_SERVER_INFO = {"name": "jitgate", "version": __version__}


class McpEndpoint:
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

    async def get(self, _request: web.Request) -> web.Response:
        return web.Response(status=405, headers={"Allow": "POST, DELETE"})

    async def post(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._post(request)
        except StoreUnavailable as exc:
            return refused(503, INTERNAL_ERROR, f"jitgate's store is unavailable: {exc}")

    async def delete(self, request: web.Request) -> web.StreamResponse:
        try:
            found = await self._caller(request)
            if isinstance(found, web.Response):
                return found
            session = await self._session(request, found, None)
            if isinstance(session, web.Response):
                return session
            await self.store.end(session)
        except StoreUnavailable as exc:
            return refused(503, INTERNAL_ERROR, f"jitgate's store is unavailable: {exc}")
        return web.Response(status=204)

    async def _post(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        if request.content_type != "application/json":
            return refused(415, INVALID_REQUEST, "Content-Type must be application/json")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            return refused(413, INVALID_REQUEST, f"the body is too large: {exc.text}")
        try:
            message = jsonrpc.parse(body)
        except RpcError as exc:
            return refused(400, exc.code, str(exc), exc.request_id)
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

    async def _caller(self, request: web.Request) -> Principal | web.Response:
        return await caller_of(request, self.gateway)

    async def _session(
        self, request: web.Request, caller: Principal, message: jsonrpc.Message | None
    ) -> McpSession | web.Response:
        request_id = message.id if isinstance(message, Request) else None
        version = request.headers.get(VERSION_HEADER)
        if version is not None and version not in PROTOCOL_VERSIONS:
            return refused(
                400, INVALID_REQUEST, f"Bad Request: unsupported {VERSION_HEADER} {version!r};"
                f" this server speaks {', '.join(PROTOCOL_VERSIONS)}", request_id,
            )  # fmt: skip
        session_id = request.headers.get(SESSION_HEADER)
        if not session_id:
            return refused(
                400, INVALID_REQUEST,
                f"Bad Request: no {SESSION_HEADER} header; send initialize first", request_id,
            )  # fmt: skip
        session = await self.store.find(session_id, caller)
        if session is None:
            return refused(
                404, SESSION_NOT_FOUND,
                "Session not found: it ended or is not this token's; initialize again",
                request_id,
            )  # fmt: skip
        return session

    async def _initialize(self, message: Request, caller: Principal) -> web.Response:
        client, asked = message.params.get("clientInfo"), message.params.get("protocolVersion")
        if not isinstance(client, dict) or not isinstance(client.get("name"), str):
            return web.json_response(
                jsonrpc.error(message.id, INVALID_PARAMS, "initialize needs clientInfo.name")
            )
        version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
        agent_version = client.get("version")
        # An agent's token names its agent; a person's own token is used by the agent the
        # client declares.
        if caller.actor is None:
            caller = dataclasses.replace(caller, actor=agent_name(client["name"]))
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
            if caller.actor is None:
                declared = agent_name(envelope.client_name or "")
                caller = dataclasses.replace(caller, actor=declared)
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
        if method.startswith("tasks/") and not envelope.declares(TASKS_EXTENSION):
            required: dict[str, Any] = {
                "requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}
            }
            raise RpcError(
                MISSING_CAPABILITY, "Missing required client capability", message.id, required
            )
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


async def caller_of(request: web.Request, gateway: Gateway) -> Principal | web.Response:
    """Who the request's token speaks for (with its agent and delegation, for an agent's
    token), or the refusal to send: 403 for another origin, 401 without a live token."""
    if "Origin" in request.headers and not same_origin(request, gateway.config):
        return refused(403, INVALID_REQUEST, "Forbidden: requests from other origins")
    token = bearer_token(request)
    if token is None:
        return unauthorized("send Authorization: Bearer <a jitgate access token>", None)
    principal = await gateway.directory.principal_of_token(token)
    if principal is None:
        return unauthorized("the access token is unknown, revoked or expired")
    return principal


def agent_name(declared: str) -> str:
    """What a client declares about itself, as cards and records show it: printable,
    at most :data:`MAX_AGENT_NAME` characters."""
    cleaned = "".join(c for c in declared if c.isprintable()).strip()[:MAX_AGENT_NAME]
    return cleaned or "unnamed agent"


def refused(
    status: int, code: int, message: str, request_id: jsonrpc.RequestId | None = None
) -> web.Response:
    return web.json_response(jsonrpc.error(request_id, code, message), status=status)


def unauthorized(reason: str, error: str | None = "invalid_token") -> web.Response:
    """401 with RFC 6750's challenge: no error code when no token was sent at all."""
    response = refused(401, UNAUTHORIZED, f"Unauthorized: {reason}")
    challenge = 'Bearer realm="jitgate"'
    if error is not None:
        challenge += f', error="{error}", error_description="{reason}"'
    response.headers["WWW-Authenticate"] = challenge
    return response
