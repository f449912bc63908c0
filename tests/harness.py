"""Running a real gateway beside the tests: its own thread and uvloop event loop, real
sockets, a real store and target. Clients (psql, pgbench, asyncpg, psycopg) connect to it
exactly as users do."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
import pytest
import uvloop

from jitgate.config import STATEMENT_CLASSES, Config, parse_config
from jitgate.gateway import Gateway
from store.tokens import issue_token

T = TypeVar("T")


EVERYTHING = {c: "allow" for c in STATEMENT_CLASSES}


TEST_SPOOL = Path(tempfile.gettempdir()) / "jitgate-test-spool"


def gateway_config(
    store_dsn: str,
    target_dsn: str,
    *,
    engineers: dict[str, str] | None = None,
    **overrides: Any,
) -> Config:
    """A config with resource ``prod`` on ``target_dsn``; ``alice`` is an engineer (read
    allow, write review, privilege deny, the rest denied, unless ``engineers`` says
    otherwise), ``bob`` a DBA and ``eve`` in a group without access to ``prod``."""
    target = urlsplit(target_dsn)
    raw: dict[str, Any] = {
        "database_url": store_dsn,
        "public_url": "http://127.0.0.1:8080",
        "http": {"listen": "127.0.0.1:0"},
        "postgres": {"listen": "127.0.0.1:0", "hold_timeout": "5s"},
        # The spool under the temporary directory, not the user's state directory.
        "audit": {"flush_interval": "20ms", "spool": str(TEST_SPOOL)},
        "groups": {
            "engineers": ["alice@example.com"],
            "dba": ["bob@example.com"],
            "outsiders": ["eve@example.com"],
        },
        "resources": {
            "prod": {
                "type": "postgres",
                "url": target_dsn,
                "access": {
                    "engineers": engineers
                    or {"read": "allow", "write": "review", "privilege": "deny"},
                    "dba": {c: "allow" for c in ("read", "write", "ddl", "destructive")},
                },
                "approvers": ["dba"],
            },
            "other": {
                "type": "postgres",
                "url": target._replace(path="/postgres").geturl(),
                "access": {"dba": {"read": "allow"}},
            },
        },
    }
    for key, value in overrides.items():
        raw[key] = value
    return parse_config(raw, {})


def scalar(dsn: str, sql: str) -> Any:
    """The first value of the first row ``sql`` returns on ``dsn`` (a fresh connection)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql.encode()).fetchone()
        assert row is not None, sql
        return row[0]


def assert_cancel_stops_a_query(dsn: str) -> None:
    """What psql's Ctrl-C does: a CancelRequest on a new connection with the key the
    gateway handed out, which the gateway maps to the upstream backend's key. The query
    stops and the session goes on."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        timer = threading.Timer(0.5, conn.cancel_safe)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 10
        assert conn.execute("SELECT 'still usable'").fetchone() == ("still usable",)


class GatewayThread:
    """A gateway serving from a background thread; :meth:`call` runs a coroutine there."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.gateway: Gateway = self.call(self._open())

    async def _open(self) -> Gateway:
        gateway = await Gateway.open(self.config)
        await gateway.start()
        return gateway

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    @property
    def port(self) -> int:
        return self.gateway.proxy.port

    @property
    def http_port(self) -> int:
        return self.gateway.http_port

    def token(self, user: str, ttl: float = 3600) -> str:
        return self.call(issue_token(self.gateway.pool, user, ttl))

    def dsn(self, user: str, token: str, resource: str = "prod", **params: str) -> str:
        extra = "".join(f"&{k}={v}" for k, v in params.items())
        return (
            f"postgresql://{user.replace('@', '%40')}:{token}@127.0.0.1:{self.port}/{resource}"
            f"?sslmode=disable{extra}"
        )

    def flush_audit(self) -> None:
        assert self.call(self.gateway.recorder.flush()), "audit store refused the flush"

    def stop(self, drain_timeout: float = 5.0) -> None:
        try:
            self.call(self.gateway.stop(drain_timeout))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


def pgbench_init(pgbench: str, dsn: str) -> None:
    """``pgbench -i -s 1`` into the database at ``dsn``."""
    init = subprocess.run(
        [pgbench, "-i", "-s", "1", "-q", dsn], capture_output=True, text=True, timeout=120
    )
    assert init.returncode == 0, init.stderr


def serve_process(config: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A real ``jitgate serve --config config`` process (its log beside the config) and
    its Postgres port, once it listens."""
    log = config.with_suffix(f".{time.monotonic_ns()}.log")
    with log.open("wb") as sink:
        serve = subprocess.Popen(
            [sys.executable, "-m", "jitgate", "serve", "--config", str(config)],
            stderr=sink,
            stdout=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(r"postgres on [\d.]+:(\d+)", log.read_text())
        if match:
            return serve, int(match[1])
        assert serve.poll() is None, f"jitgate serve did not start: {log.read_text()}"
        time.sleep(0.05)
    serve.kill()
    raise AssertionError("jitgate serve did not start in 60 s")


def token_for(config: Path, user: str) -> str:
    """``jitgate token issue`` for ``user``, as an admin runs it."""
    return subprocess.run(
        [sys.executable, "-m", "jitgate", "token", "issue", "--config", str(config),
         "--user", user],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip


def ask_api(gw: GatewayThread, token: str, sql: str) -> tuple[int, dict[str, Any]]:
    """``POST /api/requests`` for ``sql`` on ``prod`` with ``token``: status and JSON body."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{gw.http_port}/api/requests",
        data=json.dumps({"resource": "prod", "sql": sql}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())
