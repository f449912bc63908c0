"""Connecting to a target database as the gateway: TCP, optional TLS, startup, password
authentication (trust, cleartext, md5, SCRAM-SHA-256), up to the first ReadyForQuery.

After :func:`connect_upstream` returns, the relay takes the protocol over with
:meth:`UpstreamProtocol.attach`; from then on every byte goes straight to the session.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from jitgate.config import UpstreamURL, socket_path
from jitgate.errors import AuthenticationError, ProtocolError, UpstreamError
from proxy import messages as m
from proxy.auth import ScramClient, md5_response
from proxy.codec import Framer, decode_backend

if TYPE_CHECKING:
    from proxy.relay import ClientSession

_SSL_REQUEST = m.SSLRequest().encode()


@dataclass(slots=True)
class UpstreamReady:
    protocol: UpstreamProtocol
    parameters: list[tuple[str, str]] = field(default_factory=list)
    process_id: int = 0
    secret_key: bytes = b""
    status: str = "I"


class UpstreamProtocol(asyncio.Protocol):
    """The gateway's connection to a target. Sequential reads during the handshake,
    callbacks into the owning session afterwards."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.framer = Framer()
        self.session: ClientSession | None = None
        self._inbox: deque[tuple[int, bytes]] = deque()
        self._raw: bytearray | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None
        self.closed = False

    # asyncio callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.session is not None:
            self.session.upstream_data(data)
            return
        if self._raw is not None:
            self._raw.extend(data)
        else:
            try:
                buf, frames = self.framer.feed(data)
            except ProtocolError as exc:
                self._lost = exc
            else:
                self._inbox.extend((t, bytes(buf[s:e])) for t, s, e in frames)
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.session is not None:
            self.session.upstream_lost(exc)
            return
        self._lost = exc or UpstreamError("the server closed the connection")
        self._wake()

    def pause_writing(self) -> None:
        if self.session is not None:
            self.session.pause_client_reading()

    def resume_writing(self) -> None:
        if self.session is not None:
            self.session.resume_client_reading()

    # handshake helpers -----------------------------------------------------------------

    def attach(self, session: ClientSession) -> bytes:
        """Hand the connection to ``session``; returns bytes that arrived after the
        handshake (e.g. an early NOTICE) for the session to relay."""
        self.session = session
        # From now on every read goes straight to the session: uvloop binds a protocol's
        # ``data_received`` when it is set, so this skips a call per read.
        self.data_received = session.upstream_data  # type: ignore[method-assign]
        if self.transport is not None:
            self.transport.set_protocol(self)
        leftover = b"".join(
            bytes([t]) + (len(p) + 4).to_bytes(4, "big") + p for t, p in self._inbox
        )
        self._inbox.clear()
        return leftover

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    async def recv(self) -> m.BackendMessage:
        while not self._inbox:
            if self._lost is not None:
                raise _as_upstream_error(self._lost)
            await self._wait()
        type_code, payload = self._inbox.popleft()
        return decode_backend(type_code, payload)

    async def recv_byte(self) -> bytes:
        self._raw = bytearray()
        while not self._raw:
            if self._lost is not None:
                raise _as_upstream_error(self._lost)
            await self._wait()
        byte, rest = bytes(self._raw[:1]), self._raw[1:]
        self._raw = None
        if rest:
            raise UpstreamError("the server sent data before the TLS handshake")
        return byte

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


async def connect_upstream(
    url: UpstreamURL, parameters: Mapping[str, str], *, connect_timeout: float = 10.0
) -> UpstreamReady:
    """Open an authenticated connection to ``url``; raise :class:`UpstreamError` or
    :class:`AuthenticationError` with a reason fit to show the client."""
    try:
        async with asyncio.timeout(connect_timeout):
            return await _connect(url, parameters)
    except TimeoutError as exc:
        raise UpstreamError(f"timed out after {connect_timeout:g}s") from exc


async def _connect(url: UpstreamURL, parameters: Mapping[str, str]) -> UpstreamReady:
    loop = asyncio.get_running_loop()
    path = url.socket_path
    try:
        if path is not None:
            transport, protocol = await loop.create_unix_connection(UpstreamProtocol, path)
        else:
            transport, protocol = await loop.create_connection(UpstreamProtocol, url.host, url.port)
    except OSError as exc:
        raise UpstreamError(f"{url.address}: {exc.strerror or exc}") from exc
    try:
        # As libpq: no TLS over a Unix socket (the config refuses a URL that requires it).
        if url.sslmode != "disable" and path is None:
            await _negotiate_tls(loop, transport, protocol, url)
        startup = m.StartupMessage(
            (("user", url.user), ("database", url.database), *parameters.items())
        )
        protocol.write(startup.encode())
        return await _authenticate(protocol, url)
    except BaseException:
        protocol.close()
        raise


async def _negotiate_tls(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.Transport,
    protocol: UpstreamProtocol,
    url: UpstreamURL,
) -> None:
    protocol.write(_SSL_REQUEST)
    answer = await protocol.recv_byte()
    if answer == b"N":
        if url.sslmode in ("require", "verify-ca", "verify-full"):
            raise UpstreamError(f"the server does not support TLS (sslmode={url.sslmode})")
        return
    if answer != b"S":
        raise UpstreamError(f"unexpected answer {answer!r} to SSLRequest")
    context = ssl.create_default_context()
    if url.sslmode in ("allow", "prefer", "require"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif url.sslmode == "verify-ca":
        context.check_hostname = False
    try:
        new_transport = await loop.start_tls(transport, protocol, context, server_hostname=url.host)
    except (ssl.SSLError, OSError) as exc:
        raise UpstreamError(f"TLS handshake failed: {exc}") from exc
    protocol.transport = cast(asyncio.Transport, new_transport)


async def _authenticate(protocol: UpstreamProtocol, url: UpstreamURL) -> UpstreamReady:
    ready = UpstreamReady(protocol)
    scram: ScramClient | None = None
    while True:
        msg = await protocol.recv()
        match msg:
            case m.AuthenticationOk():
                pass
            case m.AuthenticationCleartextPassword():
                protocol.write(m.cleartext_password(_password(url)).encode())
            case m.AuthenticationMD5Password(salt=salt):
                protocol.write(
                    m.PasswordMessage(md5_response(url.user, _password(url), salt) + b"\0").encode()
                )
            case m.AuthenticationSASL(mechanisms=mechanisms):
                if "SCRAM-SHA-256" not in mechanisms:
                    raise AuthenticationError(f"no supported SASL mechanism in {mechanisms}")
                scram = ScramClient(url.user, _password(url))
                protocol.write(m.sasl_initial_response("SCRAM-SHA-256", scram.first()).encode())
            case m.AuthenticationSASLContinue(data=data) if scram is not None:
                protocol.write(m.sasl_response(scram.final(data)).encode())
            case m.AuthenticationSASLFinal(data=data) if scram is not None:
                scram.verify(data)
            case m.AuthenticationRequest(code=code):
                raise AuthenticationError(f"authentication method {code} is not supported")
            case m.ParameterStatus(name=name, value=value):
                ready.parameters.append((name, value))
            case m.BackendKeyData(process_id=pid, secret_key=secret):
                ready.process_id, ready.secret_key = pid, secret
            case m.NoticeResponse():
                pass
            case m.ErrorResponse():
                raise UpstreamError(f"{msg.message} ({msg.code})", msg.code or "08006")
            case m.ReadyForQuery(status=status):
                ready.status = status
                return ready
            case m.NegotiateProtocolVersion():
                pass
            case _:
                raise UpstreamError(f"unexpected {type(msg).__name__} during startup")


def _password(url: UpstreamURL) -> str:
    if url.password is None:
        raise AuthenticationError("the server asks for a password but the resource URL has none")
    return url.password


def _as_upstream_error(exc: BaseException) -> Exception:
    if isinstance(exc, UpstreamError | ProtocolError | AuthenticationError):
        return exc
    return UpstreamError(str(exc) or "the server closed the connection")


async def send_cancel(host: str, port: int, process_id: int, secret_key: bytes) -> None:
    """Deliver a CancelRequest to an upstream backend (fire and forget, as libpq does);
    ``host`` may be a Unix socket's directory."""
    path = socket_path(host, port)
    try:
        async with asyncio.timeout(5):
            if path is not None:
                reader, writer = await asyncio.open_unix_connection(path)
            else:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(m.CancelRequest(process_id, secret_key).encode())
            await writer.drain()
            await reader.read()
            writer.close()
    except (OSError, TimeoutError):
        pass
