"""The answer to one POST of an agent: one JSON response, or an event stream once something
must reach the agent before the answer does.

MCP's streamable HTTP transport lets a server answer a request with ``text/event-stream``
when the client accepts it, and send on that stream, before the response, the
notifications (progress, log messages) and requests (sampling, elicitation) that belong
to the request. :class:`AgentStream` starts the stream only when the first such message
comes; a call that sends none is answered with plain JSON, as before.

Events carry only ``data`` (one JSON-RPC message each, already masked by the caller) and
no ``id``: a stream that breaks is not resumed, and the call's outcome stays on record
(``mcp_calls``) whatever happened to the connection.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from aiohttp import web

EVENT_STREAM = "text/event-stream"


class AgentStream:
    def __init__(self, request: web.Request, headers: dict[str, str] | None = None) -> None:
        self.request = request
        self.headers = headers or {}
        self.accepts = EVENT_STREAM in request.headers.get("Accept", "")
        self._response: web.StreamResponse | None = None
        self._gone = False

    @property
    def streaming(self) -> bool:
        return self._response is not None

    async def send(self, message: bytes | dict[str, Any]) -> bool:
        """Send ``message`` before the answer; False when the agent takes no stream or
        has gone (the message is then not sent: the call goes on and is recorded)."""
        if not self.accepts or self._gone:
            return False
        try:
            if self._response is None:
                self._response = web.StreamResponse(status=200, headers={
                    **self.headers, "Content-Type": EVENT_STREAM,
                    "Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no",
                })  # fmt: skip
                await self._response.prepare(self.request)
            await self._response.write(event(message))
        except ConnectionError:
            self._gone = True
            return False
        return True

    async def answer(
        self, body: bytes | dict[str, Any] | None, status: int = 200
    ) -> web.StreamResponse:
        """The request's answer: the last event of the stream if one was started, else a
        JSON response (202 without a body: ``body`` None)."""
        if self._response is not None:
            if not self._gone and body is not None:
                with contextlib.suppress(ConnectionError):
                    await self._response.write(event(body))
                    await self._response.write_eof()
            return self._response
        if body is None:
            return web.Response(status=202, headers=self.headers)
        if isinstance(body, dict):
            body = json.dumps(body, ensure_ascii=False).encode()
        return web.Response(
            body=body, status=status, content_type="application/json", headers=self.headers
        )


def event(message: bytes | dict[str, Any]) -> bytes:
    """One server-sent event whose data is ``message`` (a line of ``data`` per line)."""
    if isinstance(message, dict):
        message = json.dumps(message, ensure_ascii=False).encode()
    lines = message.splitlines() or [b""]
    return b"event: message\n" + b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"
