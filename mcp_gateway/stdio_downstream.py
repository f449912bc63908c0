"""A governed server the gateway runs itself and speaks to over stdio: one process per
resource, shared by every caller.

The gateway starts the process when it starts, initializes it once in its own name
(``clientInfo`` jitgate, no client capabilities: a server run this way is offered no
sampling, elicitation or roots) and keeps it running. A client's ``initialize`` is
answered with the server's own initialize result and a session of its own; its
``notifications/initialized`` and ``notifications/cancelled`` stay at the gateway.

Calls of all callers are multiplexed on the one process: each request is sent under an
id of the gateway's own and its answer handed back under the client's id, so callers
never see each other's answers. A request the server sends names no call either: a ping
is answered, anything else (sampling, elicitation, roots: it was offered none) refused
without asking any caller; its notifications are dropped, and a line that is not JSON is
logged and ignored.

When the process ends, dies or writes a line longer than ``max_response_size``, every
call in flight fails at once with a JSON-RPC error (-32003) saying so — an approved call
it was making is settled as failed by the governor — and the process is started again
after a pause that doubles from 0.1 s up to 30 s (back to 0.1 s once it ran a minute). A
call made meanwhile waits for it within ``timeout``. On shutdown the process is stopped
(:meth:`StdioProcess.stop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
from typing import Any

from identity import Principal
from jitgate import __version__
from jitgate.errors import McpServerError
from mcp_gateway.downstream import (
    Answer,
    NotificationHandler,
    ServerRequestHandler,
    json_object,
    response_to,
)
from mcp_gateway.jsonrpc import METHOD_NOT_FOUND, RequestId
from mcp_gateway.settings import McpServer
from mcp_gateway.stdio_process import StdioProcess

log = logging.getLogger("jitgate.mcp")

PROTOCOL_VERSION = "2025-11-25"
FIRST_PAUSE, LAST_PAUSE, STEADY = 0.1, 30.0, 60.0
_KEPT_AT_GATEWAY = frozenset(("notifications/initialized", "notifications/cancelled"))


class StdioDownstream:
    def __init__(self, server: McpServer) -> None:
        self.server = server
        self.pid: int | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._process: StdioProcess | None = None
        self._ready = asyncio.Event()
        self._initialized: dict[str, Any] = {}
        self._failure = f"{server.name} is starting"
        self._replies: set[asyncio.Future[None]] = set()
        self._supervisor = asyncio.ensure_future(self._supervise())

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
        # One process serves every caller: what it asks or tells names no call, so no
        # caller is handed its requests (on_request) or notifications (on_notification).
        name, timeout = self.server.name, self.server.timeout
        message = json_object(body, "the client")
        try:
            async with asyncio.timeout(timeout):
                process = await self._running()
                if request_id is None:  # a client's response goes nowhere: it was not asked
                    if message.get("method") not in (None, *_KEPT_AT_GATEWAY):
                        await process.write(message)
                    return Answer(None, None, session_id)
                if message.get("method") == "initialize":
                    reply = {"jsonrpc": "2.0", "id": request_id, "result": self._initialized}
                    data = json.dumps(reply).encode()
                    return Answer(data, reply, secrets.token_urlsafe(24))
                reply = await self._request(process, message)
        except TimeoutError:
            if self._process is None:
                raise McpServerError(f"{name} is not running: {self._failure}") from None
            raise McpServerError(f"{name} did not answer within {timeout:g} s") from None
        reply["id"] = request_id
        data = json.dumps(reply, ensure_ascii=False).encode()
        return Answer(data, response_to(data, request_id, name), session_id)

    async def end(self, session_id: str, protocol_version: str | None, caller: Principal) -> None:
        """Nothing to tell the server: the process outlives its callers' sessions."""

    async def close(self) -> None:
        self._supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._supervisor

    async def _running(self) -> StdioProcess:
        while self._process is None:
            if self._supervisor.done():
                raise McpServerError(f"{self.server.name} is stopped")
            await self._ready.wait()
        return self._process

    async def _request(self, process: StdioProcess, message: dict[str, Any]) -> dict[str, Any]:
        """``message`` sent under an id of the gateway's; the answer to it."""
        own = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[own] = answer
        try:
            await process.write({**message, "id": own})
            return await answer
        except asyncio.CancelledError:
            if not answer.done():  # gave up (the timeout): the server may stop working on it
                notice = {"requestId": own, "reason": "the gateway stopped waiting"}
                with contextlib.suppress(McpServerError):
                    await process.write(_notification("notifications/cancelled", notice))
            raise
        finally:
            self._waiting.pop(own, None)

    async def _supervise(self) -> None:
        pause = FIRST_PAUSE
        while True:
            started = time.monotonic()
            await self._run_once()
            if time.monotonic() - started > STEADY:
                pause = FIRST_PAUSE
            log.warning("mcp server %s: %s; starting it again in %.1f s",
                        self.server.name, self._failure, pause)  # fmt: skip
            await asyncio.sleep(pause)
            pause = min(pause * 2, LAST_PAUSE)

    async def _run_once(self) -> None:
        name = self.server.name
        try:
            process = await StdioProcess.start(self.server)
        except (OSError, ValueError) as exc:
            self._failure = f"cannot start {name}: {exc}"
            return
        reader = asyncio.ensure_future(self._read(process))
        try:
            async with asyncio.timeout(self.server.timeout):
                self._initialized = await self._initialize(process)
            await process.write(_notification("notifications/initialized", None))
            self._process, self.pid = process, process.pid
            self._ready.set()
            log.info("mcp server %s: started (pid %d)", name, process.pid)
            self._failure = await reader
        except asyncio.CancelledError:
            self._failure = f"{name} is stopping"
            raise
        except TimeoutError:
            self._failure = f"{name} did not answer initialize within {self.server.timeout:g} s"
        except McpServerError as exc:
            self._failure = str(exc)
        finally:
            self._ready.clear()
            self._process = None
            reader.cancel()
            await process.stop()
            for answer in list(self._waiting.values()):
                if not answer.done():
                    answer.set_exception(McpServerError(f"{self._failure} while answering"))

    async def _initialize(self, process: StdioProcess) -> dict[str, Any]:
        params = {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "jitgate", "version": __version__},
        }  # fmt: skip
        reply = await self._request(process, {"jsonrpc": "2.0", "method": "initialize",
                                               "params": params})  # fmt: skip
        result = reply.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("protocolVersion"), str):
            raise McpServerError(f"{self.server.name} refused initialize: {reply.get('error')}")
        return result

    async def _read(self, process: StdioProcess) -> str:
        """Hand each answer to its caller until the process ends; how it ended."""
        name = self.server.name
        while True:
            try:
                line = await process.read()
            except McpServerError as exc:
                return str(exc)
            if line is None:
                return f"{name} {await process.exit_status()}"
            try:
                message = json_object(line, name)
            except McpServerError:
                log.warning("mcp server %s wrote a line that is not JSON-RPC; ignored", name)
                continue
            if "method" in message and "id" in message:
                task = asyncio.ensure_future(self._answer(process, message))
                self._replies.add(task)
                task.add_done_callback(self._replies.discard)
            elif "method" not in message:
                own = message.get("id")
                answer = self._waiting.get(own) if isinstance(own, int) else None
                if answer is not None and not answer.done():
                    answer.set_result(message)

    async def _answer(self, process: StdioProcess, message: dict[str, Any]) -> None:
        """Reply to a request the server sent: a ping, or a refusal."""
        method = str(message.get("method"))[:100]
        if method == "ping":
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"], "result": {}}
        else:
            log.warning("mcp server %s asked %s; refused", self.server.name, method)
            text = (f"Method not found: {method}: jitgate runs this server for every caller"
                    " and asks none of them on its behalf")  # fmt: skip
            reply = {"jsonrpc": "2.0", "id": message["id"],
                     "error": {"code": METHOD_NOT_FOUND, "message": text}}  # fmt: skip
        with contextlib.suppress(McpServerError):
            await process.write(reply)


def _notification(method: str, params: dict[str, Any] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message
