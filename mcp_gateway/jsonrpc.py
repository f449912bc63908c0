"""JSON-RPC 2.0 as MCP's streamable HTTP transport carries it: one message per POST body.

Sans-IO: :func:`parse` takes the body's bytes and returns one typed message or raises
:class:`~jitgate.errors.RpcError` with the code to answer; :func:`result` and
:func:`error` build the objects to send back. MCP narrows JSON-RPC: ids are strings or
integers (never null), params are objects, and since protocol 2025-06-18 a body holds one
message, never a batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jitgate.errors import RpcError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# jitgate's own, in the range JSON-RPC leaves to servers.
UNAUTHORIZED = -32001
SESSION_NOT_FOUND = -32002

RequestId = str | int


@dataclass(frozen=True, slots=True)
class Request:
    id: RequestId
    method: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notification:
    method: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """A response or error from the client (to a request of the server's)."""

    id: RequestId | None


Message = Request | Notification | Reply


def parse(body: bytes) -> Message:
    """The one JSON-RPC message in ``body``; raises :class:`RpcError` for anything else."""
    try:
        decoded = json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RpcError(PARSE_ERROR, f"Parse error: the body is not JSON ({exc})") from exc
    if isinstance(decoded, list):
        raise RpcError(INVALID_REQUEST, "Invalid Request: batches are not supported")
    if not isinstance(decoded, dict):
        raise RpcError(INVALID_REQUEST, "Invalid Request: a message is a JSON object")
    request_id = decoded.get("id")
    if request_id is not None and not _valid_id(request_id):
        raise RpcError(INVALID_REQUEST, "Invalid Request: an id is a string or an integer")
    if decoded.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', request_id)
    if "method" not in decoded:
        if request_id is not None and ("result" in decoded or "error" in decoded):
            return Reply(request_id)
        raise RpcError(INVALID_REQUEST, "Invalid Request: no method, result or error", request_id)
    method, params = decoded["method"], decoded.get("params", {})
    if not isinstance(method, str):
        raise RpcError(INVALID_REQUEST, "Invalid Request: the method is a string", request_id)
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: params are an object", request_id)
    if "id" not in decoded:
        return Notification(method, params)
    if request_id is None:
        raise RpcError(INVALID_REQUEST, "Invalid Request: the id must not be null")
    return Request(request_id, method, params)


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _valid_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def result(request_id: RequestId, value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def error(
    request_id: RequestId | None, code: int, message: str, data: Any = None
) -> dict[str, Any]:
    """An error response; ``request_id`` None where the request's id could not be read."""
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": body}
