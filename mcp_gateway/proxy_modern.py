"""The governing proxy for agents that speak MCP protocol 2026-07-28: no ``initialize``, no
session; every request carries its envelope (:mod:`mcp_gateway.envelope`) and is sent on
to the governed server as a request of that protocol.

``server/discover`` is asked of the server: one that speaks 2026-07-28 is offered as it
is, with the tasks extension added (the gateway serves it); one that does not (or fails)
makes the gateway answer -32022 naming the handshake revisions, and the agent's client
falls back to ``initialize`` and the session path of :mod:`mcp_gateway.relay`.

Every other request goes through the same chain as in a session (tools policy, pinning,
guardrails, approval, masking, records), as the person and the agent that request names.
What the server is told of the client's capabilities is narrowed as ``initialize`` is
narrowed: no sampling or elicitation policy refuses, and never the tasks extension, whose
tasks the gateway keeps itself. A call policy holds answers, for a request that declares
the tasks extension, a task (:mod:`mcp_gateway.proxy_tasks`), else ``pending_approval``
as in a session. A server's ``InputRequiredResult`` reaches the agent masked, and what
the agent answers with (``inputResponses`` of its retry) is recorded masked in
``mcp_calls`` as ``inputResponses``; one that asks for what policy refuses (sampling,
elicitation, roots) reaches the agent as a JSON-RPC error naming the refusal.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from approvals.model import Alert
from identity import Principal
from jitgate.errors import McpServerError, RpcError, StoreUnavailable
from jitgate.gateway import Gateway
from mcp_gateway import jsonrpc, proxy_texts
from mcp_gateway.envelope import (
    CAPABILITIES_KEY,
    MODERN_VERSIONS,
    STATELESS,
    UNSUPPORTED_VERSION,
    Envelope,
    envelope_of,
    http_status,
)
from mcp_gateway.governor import SERVER_FAILED, Governor
from mcp_gateway.http_edge import as_agent
from mcp_gateway.jsonrpc import METHOD_NOT_FOUND, Request
from mcp_gateway.proxy_store import ProxySession
from mcp_gateway.proxy_tasks import ProxyTasks
from mcp_gateway.settings import McpServer
from mcp_gateway.stream import AgentStream
from mcp_gateway.tasks import TASKS_EXTENSION

HANDSHAKE_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
_INPUTS = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation"}
Dispatch = Callable[[ProxySession, jsonrpc.Message, bytes, AgentStream], Awaitable[bytes | None]]


class ModernProxy:
    def __init__(self, gateway: Gateway, governor: Governor) -> None:
        self.gateway = gateway
        self.governor = governor

    async def serve(
        self,
        request: web.Request,
        server: McpServer,
        caller: Principal,
        message: jsonrpc.Message,
        dispatch: Dispatch,
    ) -> web.StreamResponse:
        """Answer ``message``; ``dispatch`` is the session path's, for what is alike."""
        if not isinstance(message, Request):
            return web.Response(status=202)
        try:
            envelope = envelope_of(message, request.headers)
            caller = as_agent(caller, envelope.client_name or "")
            session = ProxySession(STATELESS, server.name, caller, None, envelope.version)
            meta = _narrowed(server, message.params["_meta"])
            sent = Request(message.id, message.method, {**message.params, "_meta": meta})
            if message.method.startswith("tasks/"):
                value = await self._task(session, envelope, sent, meta)
                return web.json_response(jsonrpc.result(message.id, value))
            stream = AgentStream(request)
            answer = await self._answer(session, envelope, sent, stream, dispatch)
        except RpcError as exc:
            refused = jsonrpc.error(message.id, exc.code, str(exc), exc.data)
            return web.json_response(refused, status=http_status(exc.code))
        error = answer.get("error")
        status = http_status(error["code"]) if isinstance(error, dict) else 200
        return await stream.answer(answer, status)

    async def _answer(
        self,
        session: ProxySession,
        envelope: Envelope,
        message: Request,
        stream: AgentStream,
        dispatch: Dispatch,
    ) -> dict[str, Any]:
        body = _encoded(message)
        if message.method == "server/discover":
            return await self._discover(session, message, body)
        answered = message.params.get("inputResponses")
        if isinstance(answered, dict) and answered:
            await self._record_answers(session, answered)
        try:
            sent = await dispatch(session, message, body, stream)
        except McpServerError as exc:
            return jsonrpc.error(message.id, SERVER_FAILED, str(exc))
        answer: dict[str, Any] = json.loads(sent or b"{}")
        held = _held(answer)
        if held is not None and envelope.declares(TASKS_EXTENSION):
            tasks = ProxyTasks(self.gateway, self.governor, session.resource)
            return jsonrpc.result(message.id, await tasks.created(session.principal, held))
        result = answer.get("result")
        if isinstance(result, dict) and message.method == "tools/list":
            # The list is the caller's (policy, pins), and either may change at any time.
            result.update(cacheScope="private", ttlMs=0)
        if isinstance(result, dict):
            result.setdefault("resultType", "complete")
            refused = self._refused_inputs(session, result)
            if refused is not None:
                return jsonrpc.error(message.id, SERVER_FAILED, refused)
        return answer

    async def _discover(
        self, session: ProxySession, message: Request, body: bytes
    ) -> dict[str, Any]:
        try:
            sent = await self.governor.forward(session, body, message.id)
            result = json.loads(sent or b"{}").get("result")
        except McpServerError:
            result = None
        versions = result.get("supportedVersions") if isinstance(result, dict) else None
        if not isinstance(versions, list) or not set(versions) & set(MODERN_VERSIONS):
            raise RpcError(
                UNSUPPORTED_VERSION, "this server speaks 2026-07-28 only through initialize",
                message.id, {"supported": list(HANDSHAKE_VERSIONS),
                             "requested": MODERN_VERSIONS[0]},
            )  # fmt: skip
        assert isinstance(result, dict)
        capabilities = result.get("capabilities")
        capabilities = dict(capabilities) if isinstance(capabilities, dict) else {}
        extensions = capabilities.get("extensions")
        extensions = dict(extensions) if isinstance(extensions, dict) else {}
        capabilities["extensions"] = {**extensions, TASKS_EXTENSION: {}}
        result["capabilities"] = capabilities
        return jsonrpc.result(message.id, result)

    async def _task(
        self, session: ProxySession, envelope: Envelope, message: Request, meta: dict[str, Any]
    ) -> dict[str, Any]:
        envelope.require(TASKS_EXTENSION, message.id)
        tasks = ProxyTasks(self.gateway, self.governor, session.resource)
        if message.method == "tasks/get":
            return await tasks.poll(session, message.params, meta)
        if message.method == "tasks/cancel":
            return await tasks.cancel(session.principal, message.params)
        if message.method == "tasks/update":
            return await tasks.update(session.principal, message.params)
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {message.method}", message.id)

    async def _record_answers(self, session: ProxySession, answered: dict[str, Any]) -> None:
        """What the agent answers the server's input requests with, recorded masked
        before it is sent on."""
        call_id = await self.governor.store.call_started(session, "inputResponses", answered)
        with contextlib.suppress(StoreUnavailable):
            await self.governor.store.call_ended(
                call_id, "allow", "answered", f"{len(answered)} answers sent on", None
            )

    def _refused_inputs(self, session: ProxySession, result: dict[str, Any]) -> str | None:
        """Why the agent may not be asked what an ``InputRequiredResult`` asks, if so."""
        asked = result.get("inputRequests")
        if result.get("resultType") != "input_required" or not isinstance(asked, dict):
            return None
        server = self.gateway.config.mcp_servers[session.resource]
        for request in asked.values():
            method = str(request.get("method")) if isinstance(request, dict) else "?"
            setting = _INPUTS.get(method)
            if setting is None or getattr(server, setting) != "allow":
                text = proxy_texts.refused_server_request(server.name, method)
                who = session.principal.email
                self.gateway.approvals.emit(Alert("guardrail", text, who, server.name))
                return text
        return None


def _narrowed(server: McpServer, meta: dict[str, Any]) -> dict[str, Any]:
    """The envelope as the server is sent it: the client's capabilities without what
    policy refuses and without the tasks extension."""
    capabilities = dict(meta.get(CAPABILITIES_KEY) or {})
    if server.sampling == "deny":
        capabilities.pop("sampling", None)
    if server.elicitation == "deny":
        capabilities.pop("elicitation", None)
    extensions = capabilities.get("extensions")
    if isinstance(extensions, dict):
        capabilities["extensions"] = {k: v for k, v in extensions.items() if k != TASKS_EXTENSION}
    return {**meta, CAPABILITIES_KEY: capabilities}


def _held(answer: dict[str, Any]) -> int | None:
    """The request a call policy held opened, from the governor's ``pending_approval``."""
    result = answer.get("result")
    meta = result.get("_meta") if isinstance(result, dict) else None
    jitgate = meta.get("jitgate") if isinstance(meta, dict) else None
    if isinstance(jitgate, dict) and jitgate.get("status") == "pending_approval":
        request_id = jitgate.get("request_id")
        return request_id if isinstance(request_id, int) else None
    return None


def _encoded(message: Request) -> bytes:
    body = {"jsonrpc": "2.0", "id": message.id, "method": message.method, "params": message.params}
    return json.dumps(body, ensure_ascii=False).encode()
