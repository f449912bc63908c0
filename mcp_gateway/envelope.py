"""The per-request envelope of MCP protocol 2026-07-28, sans-IO.

A 2026-07-28 request stands alone: no ``initialize``, no session. Its ``params._meta``
carries the protocol version, the client's capabilities *for this request* and, usually,
the client's name and version. Over HTTP the ``MCP-Protocol-Version`` and ``Mcp-Method``
headers repeat the version and the method, and ``Mcp-Name`` the tool's name (a task's
id for ``tasks/*``): intermediaries route on them, so a header that disagrees with the
body is refused (-32020) rather than one of them believed.

:func:`envelope_of` reads a request's envelope or raises :class:`RpcError` with the code
to answer; :func:`http_status` is the HTTP status such an answer is sent with.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jitgate import __version__
from jitgate.errors import RpcError
from mcp_gateway.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    Request,
    RequestId,
)

MODERN_VERSIONS = ("2026-07-28",)
# What mcp_calls records as the session of a 2026-07-28 call, which has none.
STATELESS = "stateless"
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
HEADER_MISMATCH = -32020
MISSING_CAPABILITY = -32021
UNSUPPORTED_VERSION = -32022
# The body field each method's Mcp-Name header repeats.
_NAMED = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "tasks/get": "taskId",
    "tasks/update": "taskId",
    "tasks/cancel": "taskId",
}
_BASE64_HEADER = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")
_STATUS = {
    PARSE_ERROR: 400, INVALID_REQUEST: 400, INVALID_PARAMS: 400, HEADER_MISMATCH: 400,
    MISSING_CAPABILITY: 400, UNSUPPORTED_VERSION: 400, METHOD_NOT_FOUND: 404,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Envelope:
    version: str
    capabilities: Mapping[str, Any]
    client_name: str | None
    client_version: str | None

    def declares(self, extension: str) -> bool:
        """Whether the client supports ``extension`` on this request."""
        extensions = self.capabilities.get("extensions")
        return isinstance(extensions, Mapping) and isinstance(extensions.get(extension), Mapping)

    def require(self, extension: str, request_id: RequestId) -> None:
        """Raise -32021 unless the client declares ``extension`` on this request."""
        if not self.declares(extension):
            required: dict[str, Any] = {"requiredCapabilities": {"extensions": {extension: {}}}}
            raise RpcError(
                MISSING_CAPABILITY, "Missing required client capability", request_id, required
            )


def is_modern(version_header: str | None) -> bool:
    """Whether a request with this ``MCP-Protocol-Version`` header is a 2026-07-28 one."""
    return version_header in MODERN_VERSIONS


def envelope_of(message: Request, headers: Mapping[str, str]) -> Envelope:
    """``message``'s envelope, checked against the HTTP ``headers`` it came with."""
    meta = message.params.get("_meta")
    if not isinstance(meta, Mapping) or VERSION_KEY not in meta or CAPABILITIES_KEY not in meta:
        raise RpcError(
            INVALID_PARAMS,
            f"params._meta must carry {VERSION_KEY!r} and {CAPABILITIES_KEY!r}",
            message.id,
        )
    version, capabilities = meta[VERSION_KEY], meta[CAPABILITIES_KEY]
    if headers.get("MCP-Protocol-Version") != version:
        raise RpcError(HEADER_MISMATCH, "MCP-Protocol-Version does not match params._meta's"
                       " protocol version", message.id)  # fmt: skip
    if headers.get("Mcp-Method") != message.method:
        raise RpcError(HEADER_MISMATCH, "Mcp-Method does not match the body's method", message.id)
    named = _NAMED.get(message.method)
    value = message.params.get(named) if named else None
    if value is not None and _header_value(headers.get("Mcp-Name")) != value:
        raise RpcError(HEADER_MISMATCH, f"Mcp-Name does not match the body's {named}", message.id)
    if version not in MODERN_VERSIONS:
        raise RpcError(UNSUPPORTED_VERSION, "Unsupported protocol version", message.id,
                       {"supported": list(MODERN_VERSIONS), "requested": version})  # fmt: skip
    if not isinstance(capabilities, Mapping):
        raise RpcError(INVALID_PARAMS, f"{CAPABILITIES_KEY} must be an object", message.id)
    info = meta.get(CLIENT_INFO_KEY)
    info = info if isinstance(info, Mapping) else {}
    name, client_version = info.get("name"), info.get("version")
    return Envelope(
        version,
        capabilities,
        name if isinstance(name, str) else None,
        client_version if isinstance(client_version, str) else None,
    )


def own_params(version: str | None) -> dict[str, Any]:
    """The params of a request the gateway makes in its own name in protocol ``version``:
    for 2026-07-28 its envelope (no capabilities), else none."""
    if version not in MODERN_VERSIONS:
        return {}
    client = {"name": "jitgate", "version": __version__}
    return {"_meta": {VERSION_KEY: version, CAPABILITIES_KEY: {}, CLIENT_INFO_KEY: client}}


def routing_headers(message: Mapping[str, Any]) -> dict[str, str]:
    """The headers a 2026-07-28 request repeats its method and name in, for sending it on."""
    method = message.get("method")
    if not isinstance(method, str):
        return {}
    headers = {"Mcp-Method": method}
    params = message.get("params")
    named = _NAMED.get(method)
    value = params.get(named) if named and isinstance(params, Mapping) else None
    if isinstance(value, str):
        headers["Mcp-Name"] = _header_text(value)
    return headers


def http_status(code: int) -> int:
    """The HTTP status a 2026-07-28 error answer with JSON-RPC ``code`` is sent with."""
    return _STATUS.get(code, 200)


def _header_text(value: str) -> str:
    plain = value.isascii() and value.isprintable() and value == value.strip()
    if plain and not _BASE64_HEADER.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode()}?="


def _header_value(raw: str | None) -> str | None:
    """A header as the client meant it: values that are not plain ASCII travel as
    ``=?base64?…?=``."""
    if raw is None:
        return None
    found = _BASE64_HEADER.fullmatch(raw)
    if found is None:
        return raw
    try:
        return base64.b64decode(found["payload"], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
