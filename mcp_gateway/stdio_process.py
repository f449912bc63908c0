"""A governed MCP server the gateway runs itself (a resource's ``command``): the process,
its stdin and stdout carrying MCP's stdio transport (one JSON-RPC message a line, UTF-8),
its stderr logged line by line.

The process gets ``env`` over a small inherited environment (``PATH``, ``HOME`` and the
like, as the official SDK's stdio client passes): the gateway's own secrets are not
handed on. It runs in a process group of its own, so stopping it (stdin closed, then
SIGTERM, then SIGKILL to the group, each after a grace period) also ends what it
started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from typing import Any

from jitgate.errors import McpServerError
from mcp_gateway.settings import McpServer

log = logging.getLogger("jitgate.mcp")

INHERITED_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "TZ")
GRACE = 2.0
_STDERR_LINE = 2000


class StdioProcess:
    def __init__(self, server: McpServer, process: asyncio.subprocess.Process) -> None:
        self.server = server
        self.process = process
        self.pid = process.pid
        self._stderr = asyncio.ensure_future(self._log_stderr())

    @classmethod
    async def start(cls, server: McpServer) -> StdioProcess:
        """The server's process, started now; OSError when it cannot be."""
        command = server.command
        assert command is not None
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ} | dict(command.env)
        process = await asyncio.create_subprocess_exec(
            *command.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=command.cwd,
            start_new_session=True,
            # One message a line: a longer line is more than the server may answer.
            limit=server.max_response_size + 1,
        )
        return cls(server, process)

    async def write(self, message: dict[str, Any]) -> None:
        """``message`` as one line on the server's stdin; McpServerError once it is gone."""
        line = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(line)
            await stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise McpServerError(f"{self.server.name} no longer reads its input: {exc}") from exc

    async def read(self) -> bytes | None:
        """The next line the server writes on stdout, None at its end; McpServerError
        for a line longer than ``max_response_size``."""
        stdout = self.process.stdout
        assert stdout is not None
        try:
            line = await stdout.readline()
        except ValueError:
            limit = self.server.max_response_size
            message = f"{self.server.name} sent a message of more than {limit} bytes"
            raise McpServerError(message) from None
        return line if line else None

    async def exit_status(self) -> str:
        """How the process ended ("exited with 1", "was killed by SIGKILL"), once it has."""
        try:
            code = await asyncio.wait_for(self.process.wait(), GRACE)
        except TimeoutError:
            return "stopped answering"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with {code}"

    async def stop(self) -> None:
        """End the process: stdin closed (a server ends at the end of its input), then
        SIGTERM and SIGKILL to its group, each after a grace period while it still runs:
        whatever it started and left behind in its group ends with it."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        await self._exited()
        for sent in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sent)
            await self._exited()
        self._stderr.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr

    async def _exited(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), GRACE)

    async def _log_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        while True:
            try:
                line = await stderr.readline()
            except ValueError:  # a line longer than the limit: its start is dropped
                continue
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()[:_STDERR_LINE]
            log.info("mcp server %s (pid %d): %s", self.server.name, self.pid, text)
