"""The gateway under faults: malformed bytes, bad credentials, links cut mid-result, the
audit store going away. Every fault must end in a concrete answer (an ErrorResponse with
the right SQLSTATE, a recorded session end, an audit event) and never in a hang or a leak."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import psycopg
import pytest

from audit.events import BATCH_COLUMNS, batch_row, batch_texts
from audit.recorder import write_batches
from jitgate.cluster import Cluster
from proxy import messages as m
from proxy.codec import Framer, decode_backend
from store.tokens import issue_token, revoke_tokens
from tests.faultproxy import FaultProxy
from tests.harness import GatewayThread, gateway_config

ALICE = "alice@example.com"
EVE = "eve@example.com"
TIMEOUT = 5.0
ROWS = 200_000
BIG_SELECT = f"SELECT g, repeat('x', 40) AS pad FROM generate_series(1, {ROWS}) g"


def with_port(dsn: str, port: int) -> str:
    """``dsn`` with its host and port replaced by ``127.0.0.1:port``."""
    url = urlsplit(dsn)
    userinfo, at, _ = url.netloc.rpartition("@")
    return url._replace(netloc=f"{userinfo}{at}127.0.0.1:{port}").geturl()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


async def async_wait_until(
    predicate: Callable[[], bool], what: str, within: float = TIMEOUT
) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(0.02)


def no_sessions(gw: GatewayThread) -> Callable[[], bool]:
    return lambda: not gw.gateway.proxy.sessions


def session_of(gw: GatewayThread, application_name: str) -> asyncpg.Record:
    gw.flush_audit()
    rows = gw.call(
        gw.gateway.pool.fetch(
            "SELECT * FROM sessions WHERE application_name = $1", application_name
        )
    )
    assert len(rows) == 1, rows
    return rows[0]


def events_of(gw: GatewayThread, session: asyncpg.Record) -> list[tuple[str, str, int]]:
    gw.flush_audit()
    rows = gw.call(
        gw.gateway.pool.fetch(
            "SELECT sql, outcome, rows FROM statement_events WHERE session_id = $1 ORDER BY seq",
            session["id"],
        )
    )
    return [(r["sql"], r["outcome"], r["rows"]) for r in rows]


def assert_serving(gw: GatewayThread, token: str) -> None:
    """A fresh libpq connection through the gateway still works."""
    with psycopg.connect(gw.dsn(ALICE, token), connect_timeout=5) as conn:
        assert conn.execute("SELECT 41 + 1").fetchone() == (42,)


async def assert_serving_async(gw: GatewayThread, token: str) -> None:
    conn = await asyncpg.connect(gw.dsn(ALICE, token), timeout=TIMEOUT)
    try:
        assert await conn.fetchval("SELECT 41 + 1") == 42
    finally:
        await conn.close()


class RawClient:
    """A Postgres client written by hand on a blocking socket, for bytes no driver sends."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self._framer = Framer()
        self._inbox: deque[m.BackendMessage] = deque()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _receive(self) -> bool:
        """Read one chunk into the inbox; False at EOF. A silent gateway fails the test."""
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            pytest.fail(f"the gateway sent nothing for {TIMEOUT:g}s and did not close")
        buf, frames = self._framer.feed(data)
        self._inbox.extend(decode_backend(t, buf[s:e]) for t, s, e in frames)
        return bool(data)

    def until(self, kind: type[m.BackendMessage]) -> list[m.BackendMessage]:
        """Every message up to and including the first of type ``kind``."""
        seen: list[m.BackendMessage] = []
        while True:
            while self._inbox:
                message = self._inbox.popleft()
                seen.append(message)
                if isinstance(message, kind):
                    return seen
            if not self._receive():
                pytest.fail(f"EOF before {kind.__name__}; got {seen}")

    def until_eof(self) -> list[m.BackendMessage]:
        """Every message up to the gateway closing the connection."""
        while self._receive():
            pass
        assert self._framer.buffered == 0, "the stream ended inside a message"
        messages = list(self._inbox)
        self._inbox.clear()
        return messages

    def login(self, user: str, token: str, application_name: str) -> None:
        """Startup and cleartext password exchange, up to the first ReadyForQuery."""
        params = (("user", user), ("database", "prod"), ("application_name", application_name))
        self.send(m.StartupMessage(params).encode())
        self.until(m.AuthenticationCleartextPassword)
        self.send(m.cleartext_password(token).encode())
        greeting = self.until(m.ReadyForQuery)
        assert isinstance(greeting[0], m.AuthenticationOk), greeting

    def close(self) -> None:
        self.sock.close()


def send_after_login(
    gw: GatewayThread, token: str, app: str, sent: bytes
) -> list[m.BackendMessage]:
    """Log in by hand, send ``sent``, and return everything the gateway says until EOF."""
    client = RawClient(gw.port)
    try:
        client.login(ALICE, token, app)
        client.send(sent)
        return client.until_eof()
    finally:
        client.close()


def assert_fatal(messages: list[m.BackendMessage], code: str, text: str) -> m.ErrorResponse:
    """The last message before EOF is a FATAL ErrorResponse with ``code`` and ``text``."""
    assert messages, "the gateway closed without an ErrorResponse"
    error = messages[-1]
    assert isinstance(error, m.ErrorResponse), messages
    assert (error.severity, error.code) == ("FATAL", code), error
    assert text in error.message, error
    return error


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    return make_database("jg_faults_target")


@pytest.fixture(scope="module")
def target_proxy(target_dsn: str) -> Iterator[FaultProxy]:
    """Sits between the gateway and its ``prod`` target; transparent until told to cut."""
    url = urlsplit(target_dsn)
    assert url.hostname is not None and url.port is not None
    with FaultProxy(url.hostname, url.port) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def gw(
    make_database: Callable[[str], str], target_dsn: str, target_proxy: FaultProxy
) -> Iterator[GatewayThread]:
    config = gateway_config(
        make_database("jg_faults_store"), with_port(target_dsn, target_proxy.port)
    )
    gateway = GatewayThread(config)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def alice(gw: GatewayThread) -> str:
    return gw.token(ALICE)


# -- malformed bytes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "code", "text"),
    [
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n",
            "08P01",
            "startup packet claims",
            id="http",
        ),
        pytest.param(
            struct.pack("!i", 7) + b"abc", "08P01", "invalid startup packet length 7", id="short"
        ),
        pytest.param(struct.pack("!i", 10_001), "08P01", "startup packet claims", id="long"),
        pytest.param(
            struct.pack("!ii", 8, 2 << 16), "0A000", "unsupported protocol version 2.0", id="v2"
        ),
    ],
)
def test_garbage_before_startup_is_answered_fatal(
    gw: GatewayThread, alice: str, sent: bytes, code: str, text: str
) -> None:
    client = RawClient(gw.port)
    try:
        client.send(sent)
        messages = client.until_eof()
    finally:
        client.close()
    assert len(messages) == 1
    assert_fatal(messages, code, text)
    wait_until(no_sessions(gw), "the gateway to forget the connection")
    assert_serving(gw, alice)


@pytest.mark.parametrize(
    ("password", "text"),
    [
        pytest.param(b"p" + struct.pack("!i", 2), "invalid message length 2", id="bad-length"),
        pytest.param(m.Query("SELECT 1").encode(), "expected a password message", id="query"),
        # Before a token is proved nothing large is buffered: 1 GiB claimed, refused at once.
        pytest.param(
            b"p" + struct.pack("!i", 1 << 30),
            "claims 1073741824 bytes, limit is 16384",
            id="1GiB-before-login",
        ),
        pytest.param(
            b"p" + struct.pack("!i", 16389), "claims 16389 bytes, limit is 16384", id="16KiB+5"
        ),
    ],
)
def test_malformed_password_message_is_answered_fatal(
    gw: GatewayThread, alice: str, password: bytes, text: str
) -> None:
    client = RawClient(gw.port)
    try:
        client.send(m.StartupMessage((("user", ALICE), ("database", "prod"))).encode())
        client.until(m.AuthenticationCleartextPassword)
        client.send(password)
        assert_fatal(client.until_eof(), "08P01", text)
    finally:
        client.close()
    wait_until(no_sessions(gw), "the gateway to forget the connection")
    assert_serving(gw, alice)


@pytest.mark.parametrize(
    ("sent", "text"),
    [
        pytest.param(
            b"Q" + struct.pack("!i", (1 << 30) + 1), "claims 1073741825 bytes", id="over-1GiB"
        ),
        pytest.param(b"z" + struct.pack("!i", 4), "unexpected message type 'z'", id="unknown-type"),
        pytest.param(b"Q" + struct.pack("!i", 3), "invalid message length 3", id="length-3"),
    ],
)
def test_malformed_message_after_login_ends_the_session(
    gw: GatewayThread, alice: str, sent: bytes, text: str, request: pytest.FixtureRequest
) -> None:
    app = f"jg-malformed-{request.node.callspec.id}"
    messages = send_after_login(gw, alice, app, sent)
    assert len(messages) == 1
    assert_fatal(messages, "08P01", text)
    wait_until(no_sessions(gw), "the session to end")
    session = session_of(gw, app)
    assert session["ended_at"] is not None
    assert events_of(gw, session) == []
    assert_serving(gw, alice)


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"Q" + struct.pack("!i", 7) + b"abc", id="query-without-nul"),
        pytest.param(b"P" + struct.pack("!i", 7) + b"ab\0", id="parse-without-query"),
        pytest.param(b"B" + struct.pack("!i", 6) + b"ab", id="bind-without-nul"),
        pytest.param(b"E" + struct.pack("!i", 4), id="empty-execute"),
        pytest.param(b"C" + struct.pack("!i", 4), id="empty-close"),
    ],
)
def test_malformed_payload_after_login_is_answered_fatal(
    gw: GatewayThread, alice: str, sent: bytes, request: pytest.FixtureRequest
) -> None:
    """Well-framed messages whose payload the relay cannot read: the client must be told
    why (FATAL 08P01), not just see the connection drop."""
    app = f"jg-bad-payload-{request.node.callspec.id}"
    messages = send_after_login(gw, alice, app, sent)
    wait_until(no_sessions(gw), "the session to end")
    assert session_of(gw, app)["ended_at"] is not None
    assert_fatal(messages, "08P01", "")
    assert_serving(gw, alice)


# -- credentials and access -----------------------------------------------------------------


async def refused_connect(dsn: str) -> asyncpg.PostgresError:
    with pytest.raises(asyncpg.PostgresError) as refused:
        await asyncpg.connect(dsn, timeout=TIMEOUT)
    return refused.value


async def test_wrong_token_is_refused(gw: GatewayThread, alice: str) -> None:
    error = await refused_connect(gw.dsn(ALICE, "jg_" + "x" * 43))
    assert isinstance(error, asyncpg.InvalidPasswordError)
    assert error.sqlstate == "28P01"
    assert 'password authentication failed for user "alice@example.com"' in str(error)
    await async_wait_until(no_sessions(gw), "the gateway to forget the connection")
    await assert_serving_async(gw, alice)


async def test_expired_token_is_refused(gw: GatewayThread, alice: str) -> None:
    ttl = 0.5
    token = gw.call(issue_token(gw.gateway.pool, ALICE, ttl))
    expires = time.monotonic() + ttl
    await assert_serving_async(gw, token)
    await asyncio.sleep(expires - time.monotonic() + 0.2)
    error = await refused_connect(gw.dsn(ALICE, token))
    assert isinstance(error, asyncpg.InvalidPasswordError)
    assert error.sqlstate == "28P01"
    await async_wait_until(no_sessions(gw), "the gateway to forget the connection")
    await assert_serving_async(gw, alice)


async def test_revoked_token_is_refused(gw: GatewayThread, alice: str) -> None:
    token = gw.token(ALICE)
    await assert_serving_async(gw, token)
    assert gw.call(revoke_tokens(gw.gateway.pool, token=token)) == 1
    error = await refused_connect(gw.dsn(ALICE, token))
    assert isinstance(error, asyncpg.InvalidPasswordError)
    assert error.sqlstate == "28P01"
    await async_wait_until(no_sessions(gw), "the gateway to forget the connection")
    await assert_serving_async(gw, alice)


async def test_unknown_resource_is_refused(gw: GatewayThread, alice: str) -> None:
    error = await refused_connect(gw.dsn(ALICE, alice, resource="nowhere"))
    assert isinstance(error, asyncpg.InvalidCatalogNameError)
    assert error.sqlstate == "3D000"
    assert 'resource "nowhere" does not exist' in str(error)
    await async_wait_until(no_sessions(gw), "the gateway to forget the connection")
    await assert_serving_async(gw, alice)


async def test_user_without_access_is_refused(gw: GatewayThread, alice: str) -> None:
    error = await refused_connect(gw.dsn(EVE, gw.token(EVE)))
    assert isinstance(error, asyncpg.InvalidAuthorizationSpecificationError)
    assert error.sqlstate == "28000"
    assert 'user "eve@example.com" has no access to resource "prod"' in str(error)
    await async_wait_until(no_sessions(gw), "the gateway to forget the connection")
    count = gw.call(
        gw.gateway.pool.fetchval("SELECT count(*) FROM sessions WHERE identity = $1", EVE)
    )
    assert count == 0
    await assert_serving_async(gw, alice)


# -- links cut mid-result -------------------------------------------------------------------


def test_upstream_cut_mid_result(gw: GatewayThread, alice: str, target_proxy: FaultProxy) -> None:
    app = "jg-fault-upstream-cut"
    target_proxy.cut_after(300_000, "both")
    client = RawClient(gw.port)
    try:
        try:
            client.login(ALICE, alice, app)
        finally:
            target_proxy.cut_after(None)
        link = target_proxy.links[-1]
        client.send(m.Query(BIG_SELECT).encode())
        messages = client.until_eof()
    finally:
        client.close()
    assert link.cut_side == "both"
    assert len(link.to_client) == 300_000
    assert isinstance(messages[0], m.RowDescription)
    rows = sum(isinstance(message, m.DataRow) for message in messages)
    assert 0 < rows < ROWS
    assert len(messages) == rows + 2
    assert_fatal(messages, "08006", 'connection to resource "prod" was lost')
    wait_until(no_sessions(gw), "the session to end")
    session = session_of(gw, app)
    assert session["end_reason"] == "upstream connection lost"
    # The audit trail says how many rows left before the link broke.
    assert events_of(gw, session) == [(BIG_SELECT, "interrupted", rows)]
    assert_serving(gw, alice)


def test_upstream_cut_while_idle(gw: GatewayThread, alice: str, target_proxy: FaultProxy) -> None:
    """An idle client hears at once that its target is gone, not at its next statement."""
    app = "jg-fault-upstream-idle"
    client = RawClient(gw.port)
    try:
        client.login(ALICE, alice, app)
        target_proxy.cut("both")
        messages = client.until_eof()
    finally:
        client.close()
    assert target_proxy.links[-1].cut_side == "both"
    assert len(messages) == 1
    assert_fatal(messages, "08006", 'connection to resource "prod" was lost')
    wait_until(no_sessions(gw), "the session to end")
    session = session_of(gw, app)
    assert session["end_reason"] == "upstream connection lost"
    assert events_of(gw, session) == []
    assert_serving(gw, alice)


async def target_backends(target_dsn: str, application_name: str) -> int:
    conn = await asyncpg.connect(target_dsn, timeout=TIMEOUT)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application_name
        )
    finally:
        await conn.close()
    return count


async def test_client_vanishes_mid_result(gw: GatewayThread, alice: str, target_dsn: str) -> None:
    app = "jg-fault-client-gone"
    with FaultProxy("127.0.0.1", gw.port) as client_proxy:
        # Only the gateway's side is reset: the client hears nothing, as over a dead link.
        client_proxy.cut_after(200_000, "upstream")
        dsn = with_port(gw.dsn(ALICE, alice), client_proxy.port)
        conn = await asyncpg.connect(
            dsn, timeout=TIMEOUT, server_settings={"application_name": app}
        )
        try:
            assert await target_backends(target_dsn, app) == 1
            fetch = asyncio.create_task(conn.fetch(BIG_SELECT))
            assert await asyncio.to_thread(client_proxy.wait_cut, TIMEOUT)
            link = client_proxy.links[0]
            assert link.cut_side == "upstream"
            assert len(link.to_client) == 200_000
            await async_wait_until(no_sessions(gw), "the gateway to end the session")
            assert not fetch.done()
        finally:
            conn.terminate()
        with pytest.raises(asyncpg.ConnectionDoesNotExistError):
            await fetch
    deadline = time.monotonic() + TIMEOUT
    while await target_backends(target_dsn, app):
        assert time.monotonic() < deadline, "the target backend outlived its client"
        await asyncio.sleep(0.05)
    session = session_of(gw, app)
    assert session["end_reason"] == "client disconnected"
    [(sql, outcome, rows)] = events_of(gw, session)
    assert (sql, outcome) == (BIG_SELECT, "interrupted")
    # Rows were relayed before the client vanished; the audit trail must not say none were.
    assert rows > 0
    await assert_serving_async(gw, alice)


# -- the audit store goes away ----------------------------------------------------------------


async def test_store_outage_refuses_statements_and_loses_no_event(target_dsn: str) -> None:
    app = "jg-fault-store-outage"
    slow_sql = "SELECT 'during' FROM pg_sleep(3)"
    with Cluster() as store:
        gw = GatewayThread(gateway_config(store.dsn("postgres"), target_dsn))
        recorder = gw.gateway.recorder
        try:
            conn = await asyncpg.connect(
                gw.dsn(ALICE, gw.token(ALICE)),
                timeout=TIMEOUT,
                server_settings={"application_name": app},
            )
            assert await conn.fetchval("SELECT 'before'") == "before"
            # Accepted while the store is up, finished while it is down.
            slow = asyncio.create_task(conn.fetchval(slow_sql))
            target = await asyncpg.connect(target_dsn, timeout=TIMEOUT)
            try:
                running = (
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = $1 AND state = 'active'"
                )
                deadline = time.monotonic() + TIMEOUT
                while not await target.fetchval(running, app):
                    assert time.monotonic() < deadline, "the slow statement never started"
                    await asyncio.sleep(0.02)
            finally:
                await target.close()
            await asyncio.to_thread(store.stop)
            assert await slow == "during"
            # A flush caught by the outage may wait out its pool acquire (5 s) first.
            await async_wait_until(
                lambda: not recorder.available, "the recorder to see the outage", within=15
            )
            assert recorder.pending >= 1

            with pytest.raises(asyncpg.CannotConnectNowError) as refused:
                await conn.fetchval("SELECT 'refused'")
            assert refused.value.sqlstate == "57P03"
            assert "audit store is unavailable" in str(refused.value)
            # A statement the session already ran is refused too: the gate is always asked.
            with pytest.raises(asyncpg.CannotConnectNowError):
                await conn.fetchval("SELECT 'before'")
            assert not conn.is_closed()

            await asyncio.to_thread(store.start)
            await async_wait_until(lambda: recorder.available, "the store to be back", within=20)
            assert await conn.fetchval("SELECT 'after'") == "after"
            await conn.close()
            await async_wait_until(no_sessions(gw), "the session to end")

            session = session_of(gw, app)
            assert session["end_reason"] == "client terminated"
            assert [(sql, outcome) for sql, outcome, _ in events_of(gw, session)] == [
                ("SELECT 'before'", "ok"),
                (slow_sql, "ok"),
                ("SELECT 'refused'", "refused"),
                ("SELECT 'before'", "refused"),
                ("SELECT 'after'", "ok"),
            ]
        finally:
            gw.stop()


def test_the_store_ending_the_audit_connection_refuses_and_loses_nothing(
    gw: GatewayThread, alice: str
) -> None:
    """The recorder keeps one store connection for its COPYs. When the store ends it (an
    administrator, idle_session_timeout, a pooler's restart), the next flush writes on a
    new one: the store is not called down, no statement is refused, none goes unrecorded."""
    app = "jg-fault-writer-ended"
    flips: list[bool] = []
    gw.gateway.recorder.on_availability(flips.append)
    writer = (
        "SELECT pid FROM pg_stat_activity"
        " WHERE query LIKE 'COPY \"statement_batches\"%' AND pid <> pg_backend_pid()"
    )
    with psycopg.connect(gw.dsn(ALICE, alice), application_name=app, autocommit=True) as conn:
        conn.execute("SELECT 'before'")
        gw.flush_audit()
        [first] = [r[0] for r in gw.call(gw.gateway.pool.fetch(writer))]

        async def end_writer_then_record() -> None:
            await gw.gateway.pool.execute("SELECT pg_terminate_backend($1)", first)
            await gw.gateway.recorder.flush()

        conn.execute("SELECT 'while'")
        gw.call(end_writer_then_record())
        for n in range(5):
            assert conn.execute(f"SELECT 'after {n}'").fetchone() == (f"after {n}",)
        gw.flush_audit()
        [second] = [r[0] for r in gw.call(gw.gateway.pool.fetch(writer))]
    assert second != first
    assert flips == []
    session = session_of(gw, app)
    assert [(sql, outcome) for sql, outcome, _ in events_of(gw, session)] == [
        ("SELECT 'before'", "ok"),
        ("SELECT 'while'", "ok"),
        *((f"SELECT 'after {n}'", "ok") for n in range(5)),
    ]


def test_a_batch_retried_after_its_commit_was_lost_is_stored_once(
    gw: GatewayThread, alice: str
) -> None:
    """A flush whose connection broke after the commit leaves its batch queued; the next
    flush must store the rest of what it holds, not fail on the stored one for ever."""
    app = "jg-fault-batch-twice"
    with psycopg.connect(gw.dsn(ALICE, alice), application_name=app, autocommit=True) as conn:
        conn.execute("SELECT 'once'")
        conn.execute("SELECT 'twice'")
    session = session_of(gw, app)
    query = f"SELECT {', '.join(BATCH_COLUMNS)} FROM statement_batches WHERE session_id = $1"
    stored = [tuple(r) for r in gw.call(gw.gateway.pool.fetch(query, session["id"]))]
    assert stored
    later = (stored[0][0], 100, 100, *stored[0][3:])

    def encoded(row: tuple[Any, ...]) -> bytes:
        session_id, first, last, started, texts, events = row
        micros = (started - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        return batch_row(session_id, first, last, micros, batch_texts(texts)[1], events.encode())

    async def write_again() -> None:
        async with gw.gateway.pool.acquire() as conn:
            await write_batches(conn, [encoded(row) for row in (*stored, later)])

    gw.call(write_again())
    again = [tuple(r) for r in gw.call(gw.gateway.pool.fetch(query, session["id"]))]
    assert sorted(again) == sorted([*stored, later])


def test_function_call_message_is_refused_and_the_session_goes_on(
    gw: GatewayThread, alice: str
) -> None:
    client = RawClient(gw.port)
    try:
        client.login(ALICE, alice, "jg-function-call")
        # pg_terminate_backend's OID would do harm; the legacy message itself is refused.
        client.send(m.FunctionCall(2096, (0,), (b"1",), 0).encode())
        answer = client.until(m.ReadyForQuery)
        errors = [msg for msg in answer if isinstance(msg, m.ErrorResponse)]
        assert [(e.severity, e.code) for e in errors] == [("ERROR", "0A000")]
        assert "FunctionCall" in (errors[0].message or "")
        client.send(m.Query("SELECT 'after'").encode())
        rows = [msg for msg in client.until(m.ReadyForQuery) if isinstance(msg, m.DataRow)]
        assert rows == [m.DataRow((b"after",))]
    finally:
        client.close()
    session = session_of(gw, "jg-function-call")
    recorded = events_of(gw, session)
    assert recorded[0][:2] == ("<FunctionCall message>", "refused")
