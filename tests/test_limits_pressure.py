"""A real ``jitgate serve`` under connection floods and gigabyte claims keeps its memory
bounded and goes on serving: 2,000 connections claiming 1 GiB startup packets, 2,000
idle connections held open at once, and logged-in sessions claiming 1 GiB messages. Peak
memory is the process's high-water mark (VmHWM), read by the kernel."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from pathlib import Path

import psycopg
import yaml

from proxy import messages as m
from tests.harness import serve_process, token_for
from tests.test_faults import RawClient

ALICE = "alice@example.com"
FLOOD = 2000
LOGGED_IN = 20
GIB = 1 << 30
PEAK_BOUND_MB = 250


def _memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


def _closed_after_error(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    received = b""
    while chunk := sock.recv(1 << 16):
        received += chunk
    return received


def test_floods_and_gigabyte_claims_keep_memory_bounded(
    make_database: Callable[[str], str], tmp_path: Path
) -> None:
    store, target = make_database("jg_pressure_store"), make_database("jg_pressure_target")
    raw = {
        "database_url": store,
        "http": {"listen": "127.0.0.1:0"},
        "postgres": {"listen": "127.0.0.1:0", "limits": {"connections": FLOOD + 100}},
        "audit": {"spool": str(tmp_path / "spool")},
        "groups": {"engineers": [ALICE]},
        "resources": {"prod": {"type": "postgres", "url": target,
                               "access": {"engineers": {"read": "allow"}}}},
    }  # fmt: skip
    config = tmp_path / "jitgate.yaml"
    config.write_text(yaml.safe_dump(raw))
    token = token_for(config, ALICE)
    serve, port = serve_process(config)
    opened: list[socket.socket] = []
    try:
        at_start = _memory_mb(serve.pid, "VmRSS")
        # 1. Unauthenticated: each claims a 1 GiB startup packet (and sends only its header:
        # a client still sending when the gateway closes gets a reset, not the error).
        for _ in range(FLOOD // 250):
            batch = [socket.create_connection(("127.0.0.1", port)) for _ in range(250)]
            opened.extend(batch)
            for sock in batch:
                sock.sendall(struct.pack("!II", GIB, 196608))
            for sock in batch:
                assert _closed_after_error(sock)[:1] == b"E"  # an ErrorResponse, then EOF
                sock.close()
        # 2. Idle: 2,000 connections open at once, sending nothing.
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(FLOOD)]
        opened.extend(idle)
        # 3. Logged in: each claims a 1 GiB Query.
        clients = []
        for n in range(LOGGED_IN):
            client = RawClient(port)
            opened.append(client.sock)
            client.login(ALICE, token, f"pressure-{n}")
            client.send(b"Q" + struct.pack("!I", GIB))
            clients.append(client)
        for client in clients:
            ends = client.until_eof()
            assert any(isinstance(e, m.ErrorResponse) and "claims" in e.message for e in ends), ends
            client.close()
        peak = _memory_mb(serve.pid, "VmHWM")
        # Still serving, with the idle flood open.
        dsn = f"postgresql://alice%40example.com:{token}@127.0.0.1:{port}/prod?sslmode=disable"
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        for sock in opened:
            sock.close()
        serve.kill()
        serve.wait(timeout=10)
    assert peak < PEAK_BOUND_MB, f"peak {peak:.0f} MB (at start {at_start:.0f} MB)"
