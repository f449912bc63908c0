"""A session on a reader credential always gets an answer when a statement that may be
held fails before it could be held: the reader refuses its Bind (EXECUTE revoked, a
locking read in a read-only transaction), or an earlier message of the pipeline failed.
The target then skips everything up to the client's Sync, and so does the gateway: no
request is opened for a statement the target would not run, the client gets the target's
own error at once (before any Sync), and ReadyForQuery closes the pipeline as PostgreSQL
closes it. Clients that bind values (psycopg binary, asyncpg executemany, psycopg
pipelines) and bytes written by hand."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import psycopg
import pytest

from jitgate.roles import reader_role_sql, writer_schemas
from proxy import messages as m
from tests.harness import GatewayThread, gateway_config, scalar
from tests.test_approvals import decide, final_view
from tests.test_faults import RawClient
from tests.test_reader_wire import with_reader

ALICE, BOB = "alice@example.com", "bob@example.com"
DATABASE = "jg_reader_hold_target"
READER, WRITER = "jg_reader_h", "jg_writer_h"
LARGE_OBJECT = 525252
# No answer in this long is a hang (a held statement times out in 0.3 s).
ANSWER = 8.0


def as_role(dsn: str, role: str) -> str:
    parts = urlsplit(dsn)
    return parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}").geturl()


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str], pg_dsn: str) -> str:
    dsn = make_database(DATABASE)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for role in (READER, WRITER):
            conn.execute(f"DROP ROLE IF EXISTS {role}".encode())
        conn.execute(f"CREATE ROLE {WRITER} LOGIN".encode())
        conn.execute(f"ALTER DATABASE {DATABASE} OWNER TO {WRITER}".encode())
    with psycopg.connect(as_role(dsn, WRITER), autocommit=True) as conn:
        conn.execute(b"CREATE TABLE tickets (id int PRIMARY KEY, status text)")
        conn.execute(b"INSERT INTO tickets SELECT g, 'open' FROM generate_series(1, 5) g")
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    base = gateway_config(
        make_database("jg_reader_hold_store"),
        target_dsn,
        engineers={"read": "allow", "write": "review"},
        postgres={"listen": "127.0.0.1:0", "hold_timeout": "0.3s"},
    )
    config = with_reader(base, as_role(target_dsn, READER), as_role(target_dsn, WRITER))
    schemas = asyncio.run(writer_schemas(config.resources["prod"]))
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute(reader_role_sql(READER, WRITER, DATABASE, schemas).encode())
    gateway = GatewayThread(config)
    yield gateway
    gateway.stop()


@pytest.fixture
def target(target_dsn: str) -> Callable[[str], object]:
    with psycopg.connect(as_role(target_dsn, WRITER), autocommit=True) as conn:
        conn.execute(b"UPDATE tickets SET status = 'open'")
        conn.execute(b"SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
    return lambda sql: scalar(target_dsn, sql)


def requests(gw: GatewayThread) -> int:
    return len(gw.call(gw.gateway.approvals.store.list(limit=1000)))


def last_request(gw: GatewayThread) -> int:
    return max((row.id for row in gw.call(gw.gateway.approvals.store.list(limit=1000))), default=0)


def within(run: Callable[[], Any]) -> Any:
    """``run()``'s result; the test fails if it has none in ANSWER seconds."""
    box: list[tuple[Any, BaseException | None]] = []

    def go() -> None:
        try:
            box.append((run(), None))
        except BaseException as exc:  # raised again in the test's thread
            box.append((None, exc))

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    worker.join(ANSWER)
    assert box, f"the session got no answer in {ANSWER} s"
    result, raised = box[0]
    if raised is not None:
        raise raised
    return result


def psycopg_error(dsn: str, *steps: str, binary: bool = False) -> psycopg.Error:
    """The error the last of ``steps`` raises; the session then answers ``SELECT 1``."""

    def run() -> psycopg.Error:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for step in steps[:-1]:
                conn.execute(step.encode(), binary=binary)
            with pytest.raises(psycopg.Error) as raised:
                conn.execute(steps[-1].encode(), binary=binary)
            assert conn.info.transaction_status == (
                psycopg.pq.TransactionStatus.INERROR
                if len(steps) > 1
                else psycopg.pq.TransactionStatus.IDLE
            )
            conn.execute(b"ROLLBACK")
            assert conn.execute(b"SELECT 1").fetchone() == (1,)
            return raised.value

    return within(run)  # type: ignore[no-any-return]


def raw_session(gw: GatewayThread, application_name: str = "reader-hold-errors") -> RawClient:
    client = RawClient(gw.port)
    client.login(ALICE, gw.token(ALICE), application_name)
    return client


def trail(gw: GatewayThread, application_name: str) -> list[tuple[str, str]]:
    """The session's statements as audited: text and outcome, in order."""
    gw.flush_audit()
    rows = gw.call(
        gw.gateway.pool.fetch(
            "SELECT e.sql, e.outcome FROM statement_events e"
            " JOIN sessions s ON s.id = e.session_id"
            " WHERE s.application_name = $1 ORDER BY e.seq",
            application_name,
        )
    )
    return [(r["sql"], r["outcome"]) for r in rows]


def kinds(messages: list[m.BackendMessage]) -> list[str]:
    return [type(x).__name__ for x in messages]


def still_answers(client: RawClient) -> None:
    client.send(m.Query("SELECT 1").encode())
    answer = client.until(m.ReadyForQuery)
    assert kinds(answer) == ["RowDescription", "DataRow", "CommandComplete", "ReadyForQuery"]
    assert answer[-1].status == "I"  # type: ignore[attr-defined]


# -- the four attacks -------------------------------------------------------------------------


def test_binary_call_of_a_function_the_reader_may_not_execute_gets_its_error(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    before = requests(gw)
    error = psycopg_error(
        gw.dsn(ALICE, gw.token(ALICE)), f"SELECT lo_from_bytea({LARGE_OBJECT}, 'x')", binary=True
    )
    assert error.sqlstate == "42501" and "lo_from_bytea" in str(error), error
    assert requests(gw) == before
    assert target("SELECT count(*) FROM pg_largeobject_metadata") == 0


def test_binary_locking_read_in_a_reader_transaction_gets_its_error(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    before = requests(gw)
    dsn = gw.dsn(ALICE, gw.token(ALICE))
    for locking in (
        "SELECT t.id FROM tickets t JOIN tickets u ON u.id = t.id FOR UPDATE OF u SKIP LOCKED",
        "SELECT id FROM tickets WHERE id = 1 FOR UPDATE",
    ):
        error = psycopg_error(dsn, "BEGIN", locking, binary=True)
        assert error.sqlstate in ("25006", "42501"), error
    error = psycopg_error(dsn, "SELECT id FROM tickets WHERE id = 1 FOR UPDATE", binary=True)
    assert error.sqlstate in ("25006", "42501"), error
    assert requests(gw) == before


def test_asyncpg_executemany_of_a_held_update_is_refused_once(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    """The first Execute is held (its hold times out); the target then skips the rest of
    the batch to its Sync, and so does the gateway: one request, for the first."""
    before = requests(gw)

    async def run() -> str | None:
        conn = await asyncpg.connect(gw.dsn(ALICE, gw.token(ALICE)), command_timeout=ANSWER)
        try:
            with pytest.raises(asyncpg.PostgresError) as raised:
                await conn.executemany(
                    "UPDATE tickets SET status = $1 WHERE id = $2", [("x", 1), ("y", 2), ("z", 3)]
                )
            assert await conn.fetchval("SELECT 1") == 1
            return raised.value.sqlstate
        finally:
            await conn.close()

    assert within(lambda: asyncio.run(run())) == "57014"
    assert requests(gw) == before + 1
    assert target("SELECT count(*) FROM tickets WHERE status <> 'open'") == 0


SCS_OFF = b"SELECT set_config('standard_' || 'conforming_strings', 'off', false)"


def test_a_pipeline_behind_a_denied_setting_change_gets_its_error(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    def run() -> str | None:
        with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True) as conn:
            with pytest.raises(psycopg.Error) as raised, conn.pipeline():
                conn.execute(SCS_OFF)
                conn.execute(b"SELECT 'a\\'; DELETE FROM tickets WHERE id > 0; --'")
            assert conn.execute(b"SELECT 1").fetchone() == (1,)
            assert conn.execute(b"SHOW standard_conforming_strings").fetchone() == ("on",)
            return raised.value.sqlstate

    assert within(run) == "42501"
    assert target("SELECT count(*) FROM tickets WHERE status <> 'open'") == 0


# -- siblings ---------------------------------------------------------------------------------

LO_CALL = f"SELECT lo_from_bytea({LARGE_OBJECT}, 'x')"


def test_a_function_the_reader_may_not_execute_bound_in_text_gets_its_error(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    before = requests(gw)

    def run() -> psycopg.Error:
        with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True) as conn:
            with pytest.raises(psycopg.Error) as raised:
                conn.execute(b"SELECT lo_from_bytea(%s, 'x')", (LARGE_OBJECT,))
            assert conn.execute(b"SELECT 1").fetchone() == (1,)
            return raised.value

    error = within(run)
    assert error.sqlstate == "42501" and "lo_from_bytea" in str(error), error
    assert requests(gw) == before
    assert target("SELECT count(*) FROM pg_largeobject_metadata") == 0


def test_a_failed_bind_is_answered_at_a_flush_before_any_sync(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    before = requests(gw)
    client = raw_session(gw)
    try:
        client.send(
            m.Parse("", LO_CALL, ()).encode()
            + m.Bind("", "", (), (), (1,)).encode()
            + m.Describe("P", "").encode()
            + m.Execute("", 0).encode()
            + m.Flush().encode()
        )
        answer = client.until(m.ErrorResponse)
        assert kinds(answer) == ["ParseComplete", "ErrorResponse"], answer
        assert answer[-1].code == "42501"  # type: ignore[attr-defined]
        client.send(m.Sync().encode())
        assert kinds(client.until(m.ReadyForQuery)) == ["ReadyForQuery"]
        still_answers(client)
    finally:
        client.close()
    assert requests(gw) == before


def test_a_statement_described_before_its_bind_fails_gets_its_error(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    before = requests(gw)
    client = raw_session(gw)
    try:
        client.send(
            m.Parse("lo", LO_CALL, ()).encode()
            + m.Describe("S", "lo").encode()
            + m.Bind("", "lo", (), (), ()).encode()
            + m.Execute("", 0).encode()
            + m.Sync().encode()
        )
        answer = client.until(m.ReadyForQuery)
        assert kinds(answer) == [
            "ParseComplete", "ParameterDescription", "RowDescription", "ErrorResponse",
            "ReadyForQuery",
        ], answer  # fmt: skip
        assert answer[-2].code == "42501" and answer[-1].status == "I"  # type: ignore[attr-defined]
        still_answers(client)
    finally:
        client.close()
    assert requests(gw) == before


def test_held_statements_behind_a_failed_one_are_skipped_to_the_sync(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    """As PostgreSQL skips a pipeline to its Sync after an error: the held updates behind
    a refused Bind open no request, and the ones behind a held update that was refused
    (its hold timed out) neither."""
    update = "UPDATE tickets SET status = 'x' WHERE id = {}"

    def held(n: int) -> bytes:
        return (
            m.Parse("", update.format(n), ()).encode()
            + m.Bind("", "", (), (), ()).encode()
            + m.Execute("", 0).encode()
        )

    before = requests(gw)
    client = raw_session(gw, "several-held")
    try:
        client.send(
            m.Parse("", LO_CALL, ()).encode() + m.Bind("", "", (), (), ()).encode()
            + m.Execute("", 0).encode() + held(1) + held(2) + m.Sync().encode()
        )  # fmt: skip
        answer = client.until(m.ReadyForQuery)
        assert kinds(answer) == ["ParseComplete", "ErrorResponse", "ReadyForQuery"], answer
        assert answer[1].code == "42501"  # type: ignore[attr-defined]
        assert requests(gw) == before
        client.send(held(3) + m.Flush().encode() + held(4) + held(5) + m.Sync().encode())
        answer = client.until(m.ReadyForQuery)
        assert kinds(answer) == [
            "ParseComplete", "BindComplete", "NoticeResponse", "ErrorResponse", "ReadyForQuery",
        ], answer  # fmt: skip
        assert answer[3].code == "57014" and answer[-1].status == "I"  # type: ignore[attr-defined]
        still_answers(client)
    finally:
        client.close()
    assert requests(gw) == before + 1
    assert target("SELECT count(*) FROM tickets WHERE status <> 'open'") == 0
    assert trail(gw, "several-held") == [
        (LO_CALL, "skipped"),
        (update.format(1), "skipped"),
        (update.format(2), "skipped"),
        (update.format(3), "refused"),
        (update.format(4), "skipped"),
        (update.format(5), "skipped"),
        ("SELECT 1", "ok"),
    ]


def test_a_psycopg_pipeline_of_held_updates_is_refused_once(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    before = requests(gw)

    def run() -> str | None:
        with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True) as conn:
            with pytest.raises(psycopg.Error) as raised, conn.pipeline():
                for n in (1, 2, 3):
                    conn.execute(b"UPDATE tickets SET status = %s WHERE id = %s", ("x", n))
                conn.execute(b"SELECT 1")
            assert conn.execute(b"SELECT 1").fetchone() == (1,)
            return raised.value.sqlstate

    assert within(run) == "57014"
    assert requests(gw) == before + 1
    assert target("SELECT count(*) FROM tickets WHERE status <> 'open'") == 0


def test_a_query_held_behind_unflushed_extended_messages_is_answered(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    """Parse, Bind and Describe with neither Flush nor Sync, then a simple Query that is
    held: the target answers the three only when asked, before the hold's verdict."""
    client = raw_session(gw)
    try:
        client.send(
            m.Parse("", "SELECT 1", ()).encode()
            + m.Bind("", "", (), (), ()).encode()
            + m.Describe("P", "").encode()
            + m.Query("UPDATE tickets SET status = 'x' WHERE id = 1").encode()
        )
        answer = client.until(m.ReadyForQuery)
        assert kinds(answer) == [
            "ParseComplete", "BindComplete", "RowDescription", "NoticeResponse", "ErrorResponse",
            "ReadyForQuery",
        ], answer  # fmt: skip
        assert answer[-2].code == "57014"  # type: ignore[attr-defined]
        still_answers(client)
    finally:
        client.close()
    assert target("SELECT count(*) FROM tickets WHERE status <> 'open'") == 0


def test_a_query_held_behind_a_failed_bind_is_skipped_to_the_sync(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    before = requests(gw)
    client = raw_session(gw)
    try:
        client.send(
            m.Parse("", LO_CALL, ()).encode() + m.Bind("", "", (), (), ()).encode()
            + m.Query("UPDATE tickets SET status = 'x' WHERE id = 1").encode()
            + m.Sync().encode()
        )  # fmt: skip
        answer = client.until(m.ReadyForQuery)
        assert kinds(answer) == ["ParseComplete", "ErrorResponse", "ReadyForQuery"], answer
        still_answers(client)
    finally:
        client.close()
    assert requests(gw) == before


@pytest.fixture(scope="module")
def patient(gw: GatewayThread) -> Iterator[GatewayThread]:
    """The same reader gateway, with time for an approver to decide."""
    postgres = dataclasses.replace(gw.config.postgres, hold_timeout=20.0)
    gateway = GatewayThread(dataclasses.replace(gw.config, postgres=postgres))
    yield gateway
    gateway.stop()


def test_an_approved_execute_that_fails_on_the_writer_skips_the_pipeline_to_its_sync(
    patient: GatewayThread, target: Callable[[str], object]
) -> None:
    """The held Execute runs on a writer connection of its own and fails there: the reader
    connection then skips what the client pipelined behind it, as one connection would."""
    earlier = last_request(patient)
    client = raw_session(patient)
    try:
        client.send(
            m.Parse("", "UPDATE tickets SET id = 2 WHERE id = 1", ()).encode()
            + m.Bind("", "", (), (), ()).encode()
            + m.Execute("", 0).encode()
            + m.Parse("", "SELECT 1", ()).encode()
            + m.Bind("", "", (), (), ()).encode()
            + m.Execute("", 0).encode()
            + m.Sync().encode()
        )
        request_id = last_request(patient)
        while request_id == earlier:
            time.sleep(0.05)
            request_id = last_request(patient)
        decide(patient, request_id, BOB)
        answer = client.until(m.ReadyForQuery)
        assert kinds(answer) == [
            "ParseComplete", "BindComplete", "NoticeResponse", "ErrorResponse", "ReadyForQuery",
        ], answer  # fmt: skip
        assert answer[3].code == "23505" and answer[-1].status == "I"  # type: ignore[attr-defined]
        still_answers(client)
    finally:
        client.close()
    assert final_view(patient, request_id).outcome.sqlstate == "23505"
    assert target("SELECT count(*) FROM tickets WHERE id = 1") == 1
