"""The gateway's link to a governed MCP server: one JSON-RPC message out, the server's
answer to it back, as bytes. :class:`Downstream` is what the relay and the governor use,
whatever the transport: streamable HTTP (a resource's ``url``,
:mod:`mcp_gateway.http_downstream`) or a process the gateway runs itself and speaks to
over stdio (``command``, :mod:`mcp_gateway.stdio_downstream`); :mod:`mcp_gateway.links`
picks one.

Whatever a server sends is checked before it is used (:func:`response_to`): the answer
must be one JSON-RPC response to the request that was sent, with an object as ``result``
or a well-formed ``error``. Anything else — a server that cannot be reached, no answer
within ``timeout``, more than ``max_response_size`` bytes, an answer that is not that —
raises :class:`~jitgate.errors.McpServerError`, and nothing of it is relayed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from identity import Principal
from jitgate.errors import McpServerError
from mcp_gateway.jsonrpc import RequestId
from mcp_gateway.settings import McpServer

SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
ServerRequestHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
# A notification the server sent while answering a request (progress, a log message).
NotificationHandler = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Answer:
    """``body``: the response to the request sent (None for a notification or a reply,
    which the server only acknowledges); ``session_id``: the server's session header."""

    body: bytes | None
    message: dict[str, Any] | None
    session_id: str | None


class Downstream(Protocol):
    """One governed server, however it is reached."""

    server: McpServer

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
        """Send ``body`` (the message with id ``request_id``, None for one without) for
        ``caller``; the answer, or :class:`~jitgate.errors.McpServerError`. Requests the
        server sends meanwhile go to ``on_request``, its notifications about this request
        to ``on_notification`` (where the transport can tell them apart)."""
        ...

    async def end(self, session_id: str, protocol_version: str | None, caller: Principal) -> None:
        """The client ended its session."""
        ...

    async def close(self) -> None:
        """The gateway stops: let go of the server."""
        ...


def response_to(body: bytes, request_id: RequestId, name: str) -> dict[str, Any]:
    """``body`` as the JSON-RPC response to ``request_id`` from server ``name``, or
    McpServerError."""
    message = json_object(body, name)
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


async def reply_to(message: dict[str, Any], handler: ServerRequestHandler | None) -> dict[str, Any]:
    if handler is not None:
        return await handler(message)
    return {
        "jsonrpc": "2.0",
        "id": message["id"],
        "error": {"code": -32601, "message": "Method not found: the gateway answers no requests"},
    }


def json_object(data: bytes, name: str) -> dict[str, Any]:
    try:
        message = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise McpServerError(f"{name} answered something that is not JSON") from exc
    if not isinstance(message, dict):
        raise McpServerError(f"{name} answered a JSON value that is not a message")
    return message
