"""``/mcp/{resource}``: the governing proxy in front of each ``type: mcp`` resource, on the
gateway's HTTP listener, speaking MCP's streamable HTTP transport to the agent and to the
governed server. A request is answered with one JSON response, or, when the agent accepts
``text/event-stream`` and the server sends something about the request before its answer
(progress, a log message, a sampling or elicitation request policy allows), with an event
stream of those, masked, then the masked answer (:mod:`mcp_gateway.stream`). ``GET`` is
405: the gateway opens no stream of its own.

``POST`` is checked as ``/mcp`` checks it (:mod:`mcp_gateway.endpoint`): the origin, the
Bearer token (the person, and the agent: an agent token's actor, else the client's
declared name), then access to the resource (a group in its ``access``, within an agent's
delegation), the body (JSON, within the listener's size limit, one well-formed message,
an ``Mcp-Method`` header that agrees with it) and, after ``initialize``, the session.

``initialize`` opens a session with the server (the client's sampling and elicitation
capabilities are dropped unless the resource's ``server_requests`` allow them) and one of
the gateway's, returned in ``MCP-Session-Id``. ``tools/list`` and ``tools/call`` go
through :class:`~mcp_gateway.governor.Governor`; ``resources/read`` is forwarded and its
answer masked; every other message is forwarded unchanged. A server that fails, hangs or
answers garbage is a JSON-RPC error (code -32003); one that forgot the session is a 404,
so the client initializes again. The agent's response to a request relayed to it is
handed to the call waiting for it (:mod:`mcp_gateway.server_requests`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web

from identity import Principal
from jitgate.errors import McpServerError, StoreUnavailable
from jitgate.gateway import Gateway
from mcp_gateway import jsonrpc
from mcp_gateway.downstream import Downstream
from mcp_gateway.envelope import is_modern
from mcp_gateway.governor import SERVER_FAILED, Governor
from mcp_gateway.http_edge import (
    SESSION_HEADER,
    VERSION_HEADER,
    McpRoute,
    as_agent,
    caller_of,
    id_of,
    initializing_client,
    no_session,
    read_message,
    refused,
    session_not_found,
    unavailable_text,
)
from mcp_gateway.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    Reply,
    Request,
)
from mcp_gateway.links import open_downstream
from mcp_gateway.masked_results import masked_answer
from mcp_gateway.pins_api import PinsApi
from mcp_gateway.proxy_modern import ModernProxy
from mcp_gateway.proxy_store import ProxySession, ProxyStore, StoredSession
from mcp_gateway.settings import McpServer
from mcp_gateway.stream import AgentStream

_MASKED_METHODS = frozenset(("resources/read", "prompts/get"))


class McpRelay(McpRoute):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store = ProxyStore(gateway.pool)
        self.links: dict[str, Downstream] = {}
        self.governor = Governor(gateway, self.store, self.links)
        self.modern = ModernProxy(gateway, self.governor)
        self._http: aiohttp.ClientSession | None = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/mcp/{resource}", self.post),
            web.get("/mcp/{resource}", self.get),
            web.delete("/mcp/{resource}", self.delete),
            *PinsApi(self.gateway, self.governor.pins).routes(),
        ]

    async def open(self, _app: web.Application) -> None:
        """The HTTP client every governed server is reached with (pooled connections)."""
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=60),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        for name, server in self.gateway.config.mcp_servers.items():
            self.links[name] = open_downstream(server, self._http, self.gateway.config.public_url)

    async def close(self, _app: web.Application) -> None:
        for link in self.links.values():
            await link.close()
        if self._http is not None:
            await self._http.close()

    async def end(self, request: web.Request) -> web.StreamResponse:
        found, stored = await self._admitted(request)
        if isinstance(found, web.Response):
            return found
        server, caller = found
        session = _session(request, stored, caller, None)
        if isinstance(session, web.Response):
            return session
        if session.downstream_session is not None:
            await self.links[server.name].end(
                session.downstream_session, session.protocol_version, session.principal
            )
        await self.store.end(session)
        return web.Response(status=204)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        found, stored = await self._admitted(request)
        if isinstance(found, web.Response):
            return found
        server, caller = found
        read = await read_message(request)
        if isinstance(read, web.Response):
            return read
        body, message = read
        if is_modern(request.headers.get(VERSION_HEADER)):
            return await self.modern.serve(request, server, caller, message, self._dispatch)
        request_id = id_of(message)
        if isinstance(message, Request) and message.method == "initialize":
            return await self._initialize(server, caller, message)
        session = _session(request, stored, caller, request_id)
        if isinstance(session, web.Response):
            return session
        stream = AgentStream(request)
        try:
            answer = await self._dispatch(session, message, body, stream)
        except McpServerError as exc:
            if exc.session_gone and not stream.streaming:
                await self.store.end(session)
                return session_not_found(request_id, str(exc))
            if request_id is None:
                return refused(502, SERVER_FAILED, str(exc))
            answer = json.dumps(jsonrpc.error(request_id, SERVER_FAILED, str(exc))).encode()
        except StoreUnavailable as exc:
            if not stream.streaming:
                raise
            answer = _unavailable(request_id, exc)
        return await stream.answer(answer)

    async def _dispatch(
        self, session: ProxySession, message: jsonrpc.Message, body: bytes, stream: AgentStream
    ) -> bytes | None:
        if isinstance(message, Reply) and self.governor.requests.settle(session, body):
            return None
        if not isinstance(message, Request):
            return await self.governor.forward(session, body, None)
        if message.method == "tools/call":
            return await self.governor.call_tool(session, message, body, stream)
        if message.method == "tools/list":
            return await self.governor.list_tools(session, message, body)
        answer = await self.governor.forward(session, body, message.id, stream)
        if answer is not None and message.method in _MASKED_METHODS:
            server = self.gateway.config.mcp_servers[session.resource]
            answer, _ = masked_answer(answer, self.governor.masking(server))
        return answer

    async def _admitted(
        self, request: web.Request
    ) -> tuple[tuple[McpServer, Principal] | web.Response, StoredSession | None]:
        """The resource and the caller when the caller may use it, else the refusal; and
        the session the request names, looked up at the same time as the token."""
        name = request.match_info["resource"]
        caller, stored = await asyncio.gather(
            caller_of(request, self.gateway),
            self.store.find(request.headers.get(SESSION_HEADER), name),
        )
        if isinstance(caller, web.Response):
            return caller, None
        server = self.gateway.config.mcp_servers.get(name)
        if server is None:
            return refused(404, INVALID_REQUEST, f"Not Found: no MCP server {name!r} here"), None
        groups = self.gateway.directory.groups_of(caller)
        if not groups & server.access.keys() or not caller.may_use(name):
            refusal = refused(403, INVALID_REQUEST, f"Forbidden: {caller} has no access to {name}")
            return refusal, None
        return (server, caller), stored

    async def _initialize(
        self, server: McpServer, caller: Principal, message: Request
    ) -> web.Response:
        client = initializing_client(message)
        if isinstance(client, web.Response):
            return client
        params = dict(message.params)
        params["capabilities"] = _offered(server, params.get("capabilities"))
        body = json.dumps({"jsonrpc": "2.0", "id": message.id, "method": "initialize",
                           "params": params}).encode()  # fmt: skip
        caller = as_agent(caller, client["name"])
        try:
            answer = await self.links[server.name].send(
                body, message.id, caller=caller, session_id=None, protocol_version=None
            )
        except McpServerError as exc:
            return web.json_response(jsonrpc.error(message.id, SERVER_FAILED, str(exc)))
        assert answer.body is not None and answer.message is not None
        result = answer.message.get("result")
        if not isinstance(result, dict):
            return web.Response(body=answer.body, content_type="application/json")
        version = result.get("protocolVersion")
        session = await self.store.open(
            server.name, caller, answer.session_id, version if isinstance(version, str) else None
        )
        return web.Response(
            body=answer.body, content_type="application/json", headers={SESSION_HEADER: session.id}
        )


def _session(
    request: web.Request,
    stored: StoredSession | None,
    caller: Principal,
    request_id: jsonrpc.RequestId | None,
) -> ProxySession | web.Response:
    if not request.headers.get(SESSION_HEADER):
        return no_session(request_id)
    session = stored.of(caller) if stored is not None else None
    if session is None:
        return session_not_found(request_id)
    return session


def _offered(server: McpServer, capabilities: Any) -> dict[str, Any]:
    """The client's capabilities as the server is told them: without sampling and
    elicitation where policy refuses them (a server then does not ask)."""
    offered = dict(capabilities) if isinstance(capabilities, dict) else {}
    if server.sampling == "deny":
        offered.pop("sampling", None)
    if server.elicitation == "deny":
        offered.pop("elicitation", None)
    return offered


def _unavailable(request_id: jsonrpc.RequestId | None, exc: StoreUnavailable) -> bytes:
    return json.dumps(jsonrpc.error(request_id, INTERNAL_ERROR, unavailable_text(exc))).encode()
