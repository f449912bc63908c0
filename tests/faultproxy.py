"""A TCP proxy that breaks links on purpose, for fault-injection tests.

It runs its own asyncio loop on a background thread, so synchronous and asynchronous tests
drive it alike. Every accepted connection becomes a :class:`Link` that records the bytes it
forwarded in each direction. Links can be cut on command (:meth:`FaultProxy.cut`) or once a
link has forwarded a set number of bytes from the upstream to the client
(:meth:`FaultProxy.cut_after`, "cut mid-result").

Cutting resets the chosen side with a TCP RST, as a dead network path eventually does. A
side that is not cut stays open but silent: nothing more is read from it or sent to it, so
its peer learns nothing, as a peer beyond a broken link would. Without a cut, an EOF or
error on either side closes both, as a plain TCP relay does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

Side = Literal["client", "upstream", "both"]
T = TypeVar("T")

_CHUNK = 1 << 16
_LINGER_RESET = struct.pack("ii", 1, 0)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()


class Link:
    """One proxied connection; its attributes may be read from any thread."""

    def __init__(
        self,
        client: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter,
        cut_after: tuple[int, Side] | None,
        on_cut: threading.Event,
        silent: threading.Event | None = None,
    ) -> None:
        self.to_upstream = bytearray()
        self.to_client = bytearray()
        self.cut_side: Side | None = None
        self.ended = threading.Event()
        self._client = client
        self._upstream = upstream
        self._cut_after = cut_after
        self._on_cut = on_cut
        self._silent = silent or threading.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def relay(self, client: asyncio.StreamReader, upstream: asyncio.StreamReader) -> None:
        self._tasks = [
            asyncio.create_task(self._pump(client, self._upstream, self.to_upstream, False)),
            asyncio.create_task(self._pump(upstream, self._client, self.to_client, True)),
        ]
        try:
            await asyncio.wait(self._tasks)
        finally:
            self.ended.set()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: bytearray,
        towards_client: bool,
    ) -> None:
        try:
            while data := await reader.read(_CHUNK):
                if towards_client and self._cut_after is not None:
                    limit, side = self._cut_after
                    room = limit - len(record)
                    if len(data) >= room:
                        record += data[:room]
                        # A reset discards unsent data: wait until all of it is sent.
                        writer.transport.set_write_buffer_limits(0)
                        writer.write(data[:room])
                        await writer.drain()
                        self.cut(side)
                        return
                if self._silent.is_set():
                    continue  # a black hole: nothing forwarded, nothing reset
                record += data
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        if self.cut_side is None:
            self.close()

    def cut(self, side: Side) -> None:
        """Reset ``side`` and stop relaying; call on the proxy's loop. A side an earlier
        cut left silent can be reset by a later one."""
        already = self.cut_side
        if already == "both" or already == side:
            return
        if already is None:
            current = asyncio.current_task()
            for task in self._tasks:
                if task is not current:
                    task.cancel()
        self.cut_side = side if already is None else "both"
        if side in ("client", "both") and already != "client":
            _reset(self._client)
        if side in ("upstream", "both") and already != "upstream":
            _reset(self._upstream)
        self._on_cut.set()

    def close(self) -> None:
        """Close both sides; call on the proxy's loop."""
        for writer in (self._client, self._upstream):
            if not writer.is_closing():
                writer.close()


class FaultProxy:
    """Forwards every connection to ``127.0.0.1:port`` to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.links: list[Link] = []
        self._cut_after: tuple[int, Side] | None = None
        self._cut = threading.Event()
        self._silent = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            _reset(writer)
            return
        link = Link(writer, up_writer, self._cut_after, self._cut, self._silent)
        self.links.append(link)
        await link.relay(reader, up_reader)

    def cut_after(self, nbytes: int | None, side: Side = "both") -> None:
        """Cut ``side`` of each link opened from now on once it has forwarded ``nbytes``
        from the upstream to the client. Exactly that many are sent; if the client side is
        reset, the kernel may drop a tail the client had not yet received.
        ``None`` disarms; links already open keep the setting they started with."""
        self._cut_after = None if nbytes is None else (nbytes, side)

    def cut(self, side: Side = "both") -> None:
        """Cut ``side`` of every open link now (or of a link cut before, its silent side)."""

        async def cut_all() -> None:
            for link in self.links:
                if link.cut_side is not None or not link.ended.is_set():
                    link.cut(side)

        self._call(cut_all())

    def silence(self, on: bool = True) -> None:
        """Drop every byte either way on every link, open or new, without resetting any
        (a network that goes quiet); ``on=False`` forwards again."""
        if on:
            self._silent.set()
        else:
            self._silent.clear()

    def wait_cut(self, timeout: float) -> bool:
        """Wait until some link has been cut; False on timeout."""
        return self._cut.wait(timeout)

    def close(self) -> None:
        """Close every link, silent sides included, and stop the proxy."""

        async def shut() -> None:
            self._server.close()
            for link in self.links:
                link.close()
            await self._server.wait_closed()
            # Let the transports' close callbacks run before the loop stops.
            await asyncio.sleep(0.05)

        try:
            self._call(shut())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
