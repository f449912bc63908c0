"""The gateway's client to a governed MCP server: one JSON-RPC message out over streamable
HTTP, the server's answer to it back, as bytes.

The server may answer with one JSON body or with an event stream
(:mod:`mcp_gateway.sse`). On a stream it may first send requests of its own (sampling,
elicitation, roots, ping): each is handed to ``on_request``, whose reply is posted back
at once; its notifications are dropped. Whatever it sends is checked before it is used:
the answer must be one JSON-RPC response to the request that was sent, with an object as
``result`` or a well-formed ``error``. Anything else — a refused connection, a status
other than 2xx, a body that is not that, more than ``max_response_size`` bytes, no answer
within ``timeout`` — raises :class:`~jitgate.errors.McpServerError`, and nothing of it is
relayed.

Outbound credentials are the resource's ``headers`` (from the environment): the client's
own token never travels downstream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from jitgate.errors import McpServerError
from mcp_gateway.jsonrpc import RequestId
from mcp_gateway.settings import McpServer
from mcp_gateway.sse import EventStream

SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
ServerRequestHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Answer:
    """``body``: the response to the request sent (None for a notification or a reply,
    which the server only acknowledges); ``session_id``: the server's session header."""

    body: bytes | None
    message: dict[str, Any] | None
    session_id: str | None


class Downstream:
    def __init__(self, server: McpServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http
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
        session_id: str | None,
        protocol_version: str | None,
        on_request: ServerRequestHandler | None = None,
    ) -> Answer:
        """Send ``body`` (the message with id ``request_id``, None for one without)."""
        headers = self._session_headers(session_id, protocol_version)
        name, timeout = self.server.name, self.server.timeout
        try:
            async with asyncio.timeout(timeout):
                async with self.http.post(
                    self.server.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    return await self._answer(response, request_id, headers, on_request)
        except TimeoutError:
            raise McpServerError(f"{name} did not answer within {timeout:g} s") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise McpServerError(f"cannot reach {name}: {exc}") from exc

    async def end(self, session_id: str, protocol_version: str | None) -> None:
        """Tell the server the session is over (DELETE); its answer does not matter."""
        headers = self._session_headers(session_id, protocol_version)
        try:
            async with asyncio.timeout(self.server.timeout):
                async with self.http.delete(self.server.url, headers=headers):
                    pass
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return

    def _session_headers(self, session_id: str | None, version: str | None) -> dict[str, str]:
        headers = dict(self._headers)
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
            return await self._from_stream(response, request_id, headers, on_request)
        if kind != "application/json":
            raise McpServerError(f"{name} answered HTTP {response.status} with {kind or 'no'} body")
        body = await self._read(response)
        # A JSON-RPC error is relayed whatever the status (servers answer 400 with one).
        message = self.response_to(body, request_id)
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
    ) -> Answer:
        stream, limit, name = EventStream(), self.server.max_response_size, self.server.name
        async for chunk in response.content.iter_any():
            for data in stream.feed(chunk):
                message = _json_object(data, name)
                if "method" in message and "id" in message:
                    reply = await _reply_to(message, on_request)
                    await self._post_reply(reply, headers)
                elif "method" not in message:
                    message = self.response_to(data, request_id)
                    return Answer(data, message, response.headers.get(SESSION_HEADER))
            if stream.pending > limit:
                raise McpServerError(f"{name} sent an event of more than {limit} bytes")
        raise McpServerError(f"{name} ended its stream without answering")

    async def _post_reply(self, reply: dict[str, Any], headers: dict[str, str]) -> None:
        body = json.dumps(reply).encode()
        async with self.http.post(self.server.url, data=body, headers=headers) as response:
            await response.read()

    def response_to(self, body: bytes, request_id: RequestId) -> dict[str, Any]:
        """``body`` as the JSON-RPC response to ``request_id``, or McpServerError."""
        name = self.server.name
        message = _json_object(body, name)
        if message.get("jsonrpc") != "2.0" or message.get("id") != request_id:
            raise McpServerError(f"{name} answered something that is not a response to it")
        if "result" in message and isinstance(message["result"], dict):
            return message
        error = message.get("error")
        if (
            isinstance(error, dict)
            and isinstance(error.get("code"), int)
            and isinstance(error.get("message"), str)
            and "result" not in message
        ):
            return message
        raise McpServerError(f"{name} answered a response with neither a result nor an error")


async def _reply_to(
    message: dict[str, Any], handler: ServerRequestHandler | None
) -> dict[str, Any]:
    if handler is not None:
        return await handler(message)
    return {
        "jsonrpc": "2.0",
        "id": message["id"],
        "error": {"code": -32601, "message": "Method not found: the gateway answers no requests"},
    }


def _json_object(data: bytes, name: str) -> dict[str, Any]:
    try:
        message = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise McpServerError(f"{name} answered something that is not JSON") from exc
    if not isinstance(message, dict):
        raise McpServerError(f"{name} answered a JSON value that is not a message")
    return message
