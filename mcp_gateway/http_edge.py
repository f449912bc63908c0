"""What ``/mcp`` and ``/mcp/{resource}`` check alike before a message is served, and how
either refuses: one place, so both routes answer the same request the same way.

:class:`McpRoute` is the HTTP face of both: ``GET`` is 405 (neither opens a stream of its
own), and a store outage anywhere in ``POST`` or ``DELETE`` is a 503 with a JSON-RPC
error, never a guess. :func:`caller_of` checks the ``Origin`` (a web page elsewhere must
not drive the server: DNS rebinding) and the Bearer token; :func:`read_message` the
body: ``Content-Type: application/json`` (415), the listener's size limit (413), one
well-formed JSON-RPC message (400 with the JSON-RPC error), an ``Mcp-Method`` header that
agrees with it (400; -32020 in protocol 2026-07-28).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from identity import Principal
from jitgate.errors import RpcError, StoreUnavailable
from jitgate.gateway import Gateway
from jitgate.webauth import bearer_token, same_origin
from mcp_gateway import jsonrpc
from mcp_gateway.envelope import HEADER_MISMATCH, is_modern
from mcp_gateway.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    SESSION_NOT_FOUND,
    UNAUTHORIZED,
    Request,
)

SESSION_HEADER = "MCP-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
METHOD_HEADER = "Mcp-Method"
MAX_AGENT_NAME = 100


class McpRoute:
    """``POST`` and ``DELETE`` are :meth:`serve` and :meth:`end`, behind the store's 503."""

    async def get(self, _request: web.Request) -> web.Response:
        return web.Response(status=405, headers={"Allow": "POST, DELETE"})

    async def post(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self.serve(request)
        except StoreUnavailable as exc:
            return store_unavailable(exc)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self.end(request)
        except StoreUnavailable as exc:
            return store_unavailable(exc)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def end(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError


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


async def read_message(request: web.Request) -> tuple[bytes, jsonrpc.Message] | web.Response:
    """The body and the one JSON-RPC message in it, or the refusal to send."""
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
    declared = request.headers.get(METHOD_HEADER)
    if declared is not None and declared != getattr(message, "method", None):
        # 2026-07-28 names the mismatch of a routing header with a code of its own.
        modern = is_modern(request.headers.get(VERSION_HEADER))
        code = HEADER_MISMATCH if modern else INVALID_REQUEST
        return refused(400, code, f"Bad Request: the {METHOD_HEADER} header {declared!r} is not"
                       " the body's method", id_of(message))  # fmt: skip
    return body, message


def id_of(message: jsonrpc.Message) -> jsonrpc.RequestId | None:
    """The id a refusal of ``message`` answers: a request's, else none."""
    return message.id if isinstance(message, Request) else None


def no_session(request_id: jsonrpc.RequestId | None) -> web.Response:
    return refused(400, INVALID_REQUEST, f"Bad Request: no {SESSION_HEADER} header; send"
                   " initialize first", request_id)  # fmt: skip


def session_not_found(request_id: jsonrpc.RequestId | None, why: str | None = None) -> web.Response:
    why = why or "it ended or is not this token's"
    return refused(404, SESSION_NOT_FOUND, f"Session not found: {why}; initialize again",
                   request_id)  # fmt: skip


def initializing_client(message: Request) -> dict[str, Any] | web.Response:
    """The ``clientInfo`` an ``initialize`` declares, or the JSON-RPC error without one."""
    client = message.params.get("clientInfo")
    if not isinstance(client, dict) or not isinstance(client.get("name"), str):
        return web.json_response(
            jsonrpc.error(message.id, INVALID_PARAMS, "initialize needs clientInfo.name")
        )
    return client


def as_agent(caller: Principal, declared: str) -> Principal:
    """``caller`` with its agent: an agent's token names its agent; a person's own token
    is used by the agent the client declares."""
    if caller.actor is not None:
        return caller
    return dataclasses.replace(caller, actor=agent_name(declared))


def agent_name(declared: str) -> str:
    """What a client declares about itself, as cards and records show it: printable,
    at most :data:`MAX_AGENT_NAME` characters."""
    cleaned = "".join(c for c in declared if c.isprintable()).strip()[:MAX_AGENT_NAME]
    return cleaned or "unnamed agent"


def refused(
    status: int, code: int, message: str, request_id: jsonrpc.RequestId | None = None
) -> web.Response:
    return web.json_response(jsonrpc.error(request_id, code, message), status=status)


def store_unavailable(exc: StoreUnavailable) -> web.Response:
    return refused(503, INTERNAL_ERROR, unavailable_text(exc))


def unavailable_text(exc: StoreUnavailable) -> str:
    return f"jitgate's store is unavailable: {exc}"


def unauthorized(reason: str, error: str | None = "invalid_token") -> web.Response:
    """401 with RFC 6750's challenge: no error code when no token was sent at all."""
    response = refused(401, UNAUTHORIZED, f"Unauthorized: {reason}")
    challenge = 'Bearer realm="jitgate"'
    if error is not None:
        challenge += f', error="{error}", error_description="{reason}"'
    response.headers["WWW-Authenticate"] = challenge
    return response
