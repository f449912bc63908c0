"""Malformed client messages through a real gateway: every one gets an ErrorResponse with
SQLSTATE 08P01 before the connection ends, and none is logged as a traceback. A raw socket
speaks the protocol (startup, the token as cleartext password), then sends literal bytes."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable, Iterator

import pytest

from proxy import messages as m
from proxy.codec import Framer, decode_backend
from tests.harness import GatewayThread, gateway_config

ALICE = "alice@example.com"
# Each client message type with payloads cut short of their fields, and a few whose
# fields are there but wrong. Sync, Flush, Terminate and CopyDone carry nothing to cut.
TRUNCATED: dict[str, list[bytes]] = {
    "Q": [b"", b"SELECT 1"],
    "P": [b"", b"\0", b"s\0SELECT 1", b"\0SELECT 1\0", b"\0SELECT 1\0\0", b"\0SELECT $1\0\0\1\0\0"],
    "B": [b"", b"\0", b"\0\0", b"\0\0\0", b"\0\0\0\0\0\1", b"\0\0\0\0\0\1\0\0\0\x09ab", b"p\0s"],
    "D": [b"", b"S", b"P", b"Sname", b"X\0", b"\0"],
    "E": [b"", b"\0", b"\0\0\0", b"portal"],
    "C": [b"", b"S", b"P", b"Pname", b"Z\0"],
    "F": [b"", b"\0\0"],
    "f": [b""],
    "d": [],
    "p": [b""],
}


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str]) -> Iterator[GatewayThread]:
    target = make_database("jg_robust_wire_target")
    gateway = GatewayThread(gateway_config(make_database("jg_robust_wire_store"), target))
    yield gateway
    gateway.stop()


def _message(code: str, payload: bytes) -> bytes:
    return code.encode() + struct.pack("!i", len(payload) + 4) + payload


class RawClient:
    """A client socket past authentication, reading backend messages with the codec."""

    def __init__(self, gw: GatewayThread) -> None:
        self.sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        self.framer = Framer()
        self.inbox: list[m.BackendMessage] = []
        token = gw.token(ALICE)
        self.sock.sendall(m.StartupMessage((("user", ALICE), ("database", "prod"))).encode())
        self.until(m.AuthenticationCleartextPassword)
        self.sock.sendall(_message("p", token.encode() + b"\0"))
        self.until(m.ReadyForQuery)

    def until(self, kind: type) -> list[m.BackendMessage]:
        """Messages up to and including the first ``kind``; ``[]`` at end of stream."""
        seen: list[m.BackendMessage] = []
        while True:
            while self.inbox:
                message = self.inbox.pop(0)
                seen.append(message)
                if isinstance(message, kind):
                    return seen
            data = self.sock.recv(65536)
            if not data:
                return seen
            buf, frames = self.framer.feed(data)
            self.inbox += [decode_backend(code, buf[s:e]) for code, s, e in frames]

    def close(self) -> None:
        self.sock.close()


def _violation(answer: list[m.BackendMessage]) -> m.ErrorResponse | None:
    errors = [x for x in answer if isinstance(x, m.ErrorResponse)]
    return errors[0] if errors and errors[0].code == "08P01" else None


def test_an_empty_describe_gets_a_protocol_violation(gw: GatewayThread) -> None:
    client = RawClient(gw)
    try:
        client.sock.sendall(b"D\0\0\0\4")
        answer = client.until(m.ErrorResponse)
    finally:
        client.close()
    error = _violation(answer)
    assert error is not None, answer
    assert "Describe" in error.message


@pytest.mark.parametrize(
    ("code", "payload"),
    [(code, payload) for code, payloads in TRUNCATED.items() for payload in payloads],
    ids=repr,
)
def test_every_malformed_client_message_gets_a_protocol_violation(
    gw: GatewayThread, code: str, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = RawClient(gw)
    try:
        # Alone, and followed by a Sync as drivers send it.
        client.sock.sendall(_message(code, payload) + _message("S", b""))
        answer = client.until(m.ErrorResponse)
    finally:
        client.close()
    error = _violation(answer)
    assert error is not None, (code, payload, answer)
    assert not [r.getMessage() for r in caplog.records if r.exc_info]
