"""The floor under the proxy figures: a bare uvloop TCP pass-through, run beside the gateway.

``python -m bench.passthrough LISTEN_PORT HOST PORT`` forwards every connection on
127.0.0.1:LISTEN_PORT to HOST:PORT with asyncio Protocols on uvloop, one write per read and
nothing else: no framing, no policy, no masking, no audit. What pgbench loses through it is
what any userspace proxy loses on this machine (two more socket hops per round trip), so its
ratio, measured in the same run, says how much of the gateway's gap is the hop itself.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import cast

import uvloop

from bench.gateway import CpuTimes, cpu_times, free_port, stop_process, wait_listening
from bench.pgbench import Endpoint

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_ROOT = Path(__file__).resolve().parent.parent


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Client(asyncio.Protocol):
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, self.upstream = await loop.create_connection(
                lambda: _Upstream(self), self.host, self.port
            )
        except OSError:
            self.close()
            return
        for data in self.early:
            self._forward(data)
        self.early.clear()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.early.append(data)
        else:
            self._forward(data)

    def _forward(self, data: bytes) -> None:
        assert self.upstream is not None and self.upstream.transport is not None
        self.upstream.transport.write(data)

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


async def _serve(listen_port: int, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(host, port), "127.0.0.1", listen_port)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with server:
        await stop


class PassThroughProcess:
    """``python -m bench.passthrough`` on a free port in front of ``upstream``."""

    def __init__(self, upstream: Endpoint) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._process: asyncio.subprocess.Process | None = None

    def endpoint(self) -> Endpoint:
        return Endpoint(
            "127.0.0.1",
            self.port,
            self.upstream.user,
            self.upstream.database,
            self.upstream.password,
        )

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.passthrough",
            str(self.port),
            self.upstream.host,
            str(self.upstream.port),
            cwd=_ROOT,
        )
        await wait_listening(self.port, self._process, "the pass-through", _START_TIMEOUT)

    def cpu_times(self) -> CpuTimes:
        if self._process is None:
            raise RuntimeError("the pass-through is not running")
        return cpu_times(self._process.pid)

    async def stop(self) -> None:
        await stop_process(self._process, _STOP_TIMEOUT)


def main(argv: list[str]) -> int:
    listen_port, host, port = int(argv[0]), argv[1], int(argv[2])
    uvloop.run(_serve(listen_port, host, port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
