"""A governed MCP server reached over streamable HTTP (a resource's ``url``), with the
gateway's own aiohttp client. A request of protocol 2026-07-28 is sent with the routing
headers that protocol requires (``Mcp-Method``, ``Mcp-Name``).

The server may answer with one JSON body or with an event stream
(:mod:`mcp_gateway.sse`). On a stream it may first send requests of its own (sampling,
elicitation, roots, ping): each is handed to ``on_request``, whose reply is posted back
at once; its notifications (progress, log messages) to ``on_notification``. Whatever it
sends is checked before it is used
(:func:`~mcp_gateway.downstream.response_to`). Anything else — a refused connection, a
status other than 2xx, a body that is not a response, more than ``max_response_size``
bytes, no answer within ``timeout`` — raises :class:`~jitgate.errors.McpServerError`, and
nothing of it is relayed.

Outbound credentials are the resource's ``headers`` (from the environment) or, with
``auth: {type: token_exchange}``, a token of the caller's own obtained by token exchange
(:mod:`mcp_gateway.downstream_tokens`): the client's own token never travels downstream.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from identity import Principal
from jitgate.errors import McpServerError
from mcp_gateway.downstream import (
    SESSION_HEADER,
    VERSION_HEADER,
    Answer,
    NotificationHandler,
    ServerRequestHandler,
    json_object,
    reply_to,
    response_to,
)
from mcp_gateway.downstream_tokens import DownstreamTokens
from mcp_gateway.envelope import is_modern, routing_headers
from mcp_gateway.jsonrpc import RequestId
from mcp_gateway.settings import McpServer
from mcp_gateway.sse import EventStream


class HttpDownstream:
    def __init__(self, server: McpServer, http: aiohttp.ClientSession, issuer: str) -> None:
        assert server.url is not None
        self.server = server
        self.url = server.url
        self.http = http
        self.tokens = None if server.auth is None else DownstreamTokens(server, http, issuer)
        self._headers = {
            **server.headers,
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }

    async def send(
        self,
        body: bytes,
        request_id: RequestId | None,
        *,
        caller: Principal,
        session_id: str | None,
        protocol_version: str | None,
        on_request: ServerRequestHandler | None = None,
        on_notification: NotificationHandler | None = None,
    ) -> Answer:
        headers = await self._caller_headers(session_id, protocol_version, caller)
        if is_modern(protocol_version):
            headers.update(routing_headers(json_object(body, "the client")))
        name, timeout = self.server.name, self.server.timeout
        try:
            async with asyncio.timeout(timeout):
                async with self.http.post(
                    self.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    return await self._answer(
                        response, request_id, headers, on_request, on_notification
                    )
        except TimeoutError:
            raise McpServerError(f"{name} did not answer within {timeout:g} s") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise McpServerError(f"cannot reach {name}: {exc}") from exc

    async def end(self, session_id: str, protocol_version: str | None, caller: Principal) -> None:
        """Tell the server the session is over (DELETE); its answer does not matter."""
        try:
            headers = await self._caller_headers(session_id, protocol_version, caller)
            async with asyncio.timeout(self.server.timeout):
                async with self.http.delete(self.url, headers=headers):
                    pass
        except (TimeoutError, aiohttp.ClientError, ValueError, McpServerError):
            return

    async def close(self) -> None:
        """Nothing of its own to let go of: the relay closes the shared HTTP client."""

    async def _caller_headers(
        self, session_id: str | None, version: str | None, caller: Principal
    ) -> dict[str, str]:
        headers = dict(self._headers)
        if self.tokens is not None:
            headers["Authorization"] = f"Bearer {await self.tokens.token_for(caller)}"
        if session_id is not None:
            headers[SESSION_HEADER] = session_id
        if version is not None:
            headers[VERSION_HEADER] = version
        return headers

    async def _answer(
        self,
        response: aiohttp.ClientResponse,
        request_id: RequestId | None,
        headers: dict[str, str],
        on_request: ServerRequestHandler | None,
        on_notification: NotificationHandler | None,
    ) -> Answer:
        name = self.server.name
        session_id = response.headers.get(SESSION_HEADER)
        if response.status == 404 and SESSION_HEADER in headers:
            raise McpServerError(f"{name} no longer knows the session", session_gone=True)
        if request_id is None:
            if not 200 <= response.status < 300:
                raise McpServerError(f"{name} answered HTTP {response.status}")
            return Answer(None, None, session_id)
        kind = response.content_type
        if kind == "text/event-stream" and response.status == 200:
            return await self._from_stream(
                response, request_id, headers, on_request, on_notification
            )
        if kind != "application/json":
            raise McpServerError(f"{name} answered HTTP {response.status} with {kind or 'no'} body")
        body = await self._read(response)
        # A JSON-RPC error is relayed whatever the status (servers answer 400 with one).
        message = response_to(body, request_id, name)
        if not 200 <= response.status < 300 and "error" not in message:
            raise McpServerError(f"{name} answered HTTP {response.status}")
        return Answer(body, message, session_id)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.server.max_response_size
        body = bytearray()
        async for chunk in response.content.iter_chunked(1 << 16):
            body += chunk
            if len(body) > limit:
                raise McpServerError(f"{self.server.name} answered more than {limit} bytes")
        return bytes(body)

    async def _from_stream(
        self,
        response: aiohttp.ClientResponse,
        request_id: RequestId,
        headers: dict[str, str],
        on_request: ServerRequestHandler | None,
        on_notification: NotificationHandler | None,
    ) -> Answer:
        stream, limit, name = EventStream(), self.server.max_response_size, self.server.name
        async for chunk in response.content.iter_any():
            for data in stream.feed(chunk):
                message = json_object(data, name)
                if "method" in message and "id" in message:
                    reply = await reply_to(message, on_request)
                    await self._post_reply(reply, headers)
                elif "method" not in message:
                    message = response_to(data, request_id, name)
                    return Answer(data, message, response.headers.get(SESSION_HEADER))
                elif on_notification is not None:
                    await on_notification(data)
            if stream.pending > limit:
                raise McpServerError(f"{name} sent an event of more than {limit} bytes")
        raise McpServerError(f"{name} ended its stream without answering")

    async def _post_reply(self, reply: dict[str, Any], headers: dict[str, str]) -> None:
        body = json.dumps(reply).encode()
        async with self.http.post(self.url, data=body, headers=headers) as response:
            await response.read()
