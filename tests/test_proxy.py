"""The proxy with real clients: psql, pgbench, asyncpg (extended protocol), psycopg 3."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator

import asyncpg
import psycopg
import pytest
from psycopg.pq import DiagnosticField as DiagField

from proxy import messages as m
from tests.harness import (
    EVERYTHING,
    GatewayThread,
    assert_cancel_stops_a_query,
    gateway_config,
    pgbench_init,
)
from tests.test_faults import RawClient


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_proxy_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g")
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    # Everything allowed: these tests are about the protocol, not the policy.
    config = gateway_config(make_database("jg_proxy_store"), target_dsn, engineers=EVERYTHING)
    gateway = GatewayThread(config)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def alice(gw: GatewayThread) -> str:
    return gw.token("alice@example.com")


def events(gw: GatewayThread, where: str = "true", *args: object) -> list[asyncpg.Record]:
    gw.flush_audit()
    return gw.call(
        gw.gateway.pool.fetch(
            f"SELECT * FROM statement_events WHERE {where} ORDER BY started_at, seq", *args
        )
    )


def psql(
    pg_bin: Callable[[str], str], gw: GatewayThread, token: str, *commands: str, **env: str
) -> subprocess.CompletedProcess[str]:
    args = [pg_bin("psql"), "-X", "-v", "ON_ERROR_STOP=0", gw.dsn("alice@example.com", token)]
    for command in commands:
        args += ["-c", command]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env or None)


def test_psql_queries_pass_through_and_are_recorded(
    pg_bin: Callable[[str], str], gw: GatewayThread, alice: str
) -> None:
    result = psql(
        pg_bin,
        gw,
        alice,
        "SELECT name FROM items WHERE id = 7",
        "SELECT 1 AS one; SELECT 2 AS two",
        "SELECT no_such_column FROM items",
        "SELECT count(*) FROM items",
    )
    assert "item 7" in result.stdout
    assert "one" in result.stdout and "two" in result.stdout
    assert 'column "no_such_column" does not exist' in result.stderr
    assert " 100\n" in result.stdout  # the session went on after the error
    recorded = {e["sql"]: e for e in events(gw, "sql LIKE 'SELECT%'")}
    assert recorded["SELECT name FROM items WHERE id = 7"]["rows"] == 1
    assert recorded["SELECT 1 AS one; SELECT 2 AS two"]["rows"] == 2
    failed = recorded["SELECT no_such_column FROM items"]
    assert (failed["outcome"], failed["sqlstate"]) == ("error", "42703")
    assert recorded["SELECT count(*) FROM items"]["outcome"] == "ok"


def test_psql_copy_in_both_directions(
    pg_bin: Callable[[str], str], gw: GatewayThread, alice: str, tmp_path: object
) -> None:
    result = psql(
        pg_bin,
        gw,
        alice,
        "CREATE TABLE copied (id int, note text)",
        "COPY copied FROM STDIN",
        "COPY (SELECT id, name FROM items WHERE id <= 3 ORDER BY id) TO STDOUT",
    )
    assert "1\titem 1\n2\titem 2\n3\titem 3" in result.stdout, result.stderr
    rows = "".join(f"{i}\tnote {i}\n" for i in range(500))
    loaded = subprocess.run(
        [pg_bin("psql"), "-X", gw.dsn("alice@example.com", alice), "-c",
         "COPY copied FROM STDIN"],
        input=rows, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert loaded.stdout.strip() == "COPY 500", loaded.stderr
    copy_events = events(gw, "sql = 'COPY copied FROM STDIN' AND outcome = 'ok'")
    assert copy_events[-1]["rows"] == 500


async def test_asyncpg_extended_protocol(gw: GatewayThread, alice: str) -> None:
    conn = await asyncpg.connect(gw.dsn("alice@example.com", alice))
    try:
        assert await conn.fetchval("SELECT name FROM items WHERE id = $1", 42) == "item 42"
        statement = await conn.prepare("SELECT id FROM items WHERE id > $1 ORDER BY id")
        assert [r["id"] for r in await statement.fetch(97)] == [98, 99, 100]
        assert await statement.fetchval(99) == 100
        await conn.execute("CREATE TEMP TABLE pairs (a int, b text)")
        await conn.executemany(
            "INSERT INTO pairs VALUES ($1, $2)", [(i, str(i)) for i in range(50)]
        )
        assert await conn.fetchval("SELECT count(*) FROM pairs") == 50
        async with conn.transaction():
            await conn.execute("INSERT INTO pairs VALUES (1000, 'in tx')")
        with pytest.raises(asyncpg.UndefinedTableError):
            await conn.fetch("SELECT * FROM missing_table WHERE x = $1", 1)
        assert await conn.fetchval("SELECT $1::int + 1", 1) == 2
        await conn.copy_records_to_table("pairs", records=[(2000 + i, "copy") for i in range(300)])
        assert await conn.fetchval("SELECT count(*) FROM pairs WHERE b = 'copy'") == 300
        out = []
        await conn.copy_from_query("SELECT a FROM pairs WHERE b = 'copy' ORDER BY a LIMIT 2",
                                   output=lambda chunk: _collect(out, chunk))  # fmt: skip
        assert b"".join(out) == b"2000\n2001\n"
        cursor_rows = []
        async with conn.transaction():
            async for record in conn.cursor("SELECT id FROM items ORDER BY id", prefetch=30):
                cursor_rows.append(record["id"])
        assert cursor_rows == list(range(1, 101))
    finally:
        await conn.close()
    executed = events(gw, "protocol = 'extended' AND sql LIKE 'SELECT id FROM items WHERE id >%'")
    assert [e["rows"] for e in executed][-2:] == [3, 1]
    portal_fetches = events(
        gw, "sql = 'SELECT id FROM items ORDER BY id' AND protocol = 'extended'"
    )
    assert sum(e["rows"] for e in portal_fetches) == 100


async def _collect(out: list[bytes], chunk: bytes) -> None:
    out.append(bytes(chunk))


def test_psycopg_pipeline_and_notifications(gw: GatewayThread, alice: str) -> None:
    with psycopg.connect(gw.dsn("alice@example.com", alice), autocommit=True) as conn:
        with conn.pipeline():
            cursors = [conn.execute("SELECT %s::int * 2", (i,)) for i in range(20)]
        assert [c.fetchone()[0] for c in cursors] == [i * 2 for i in range(20)]  # type: ignore[index]
        notices: list[str] = []
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("DO $$ BEGIN RAISE NOTICE 'hello through the gateway'; END $$")
        assert notices == ["hello through the gateway"]
        conn.execute("LISTEN jitgate_channel")
        conn.execute("NOTIFY jitgate_channel, 'payload-1'")
        received = next(conn.notifies(timeout=5))
        assert (received.channel, received.payload) == ("jitgate_channel", "payload-1")
        assert conn.info.parameter_status("server_version")
        conn.execute("SET application_name = 'renamed'")
        assert conn.info.parameter_status("application_name") == "renamed"


def test_cancel_request_reaches_the_upstream_backend(gw: GatewayThread, alice: str) -> None:
    assert_cancel_stops_a_query(gw.dsn("alice@example.com", alice))
    cancelled = events(gw, "sql = 'SELECT pg_sleep(30)'")
    assert cancelled[-1]["sqlstate"] == "57014"


async def test_many_concurrent_sessions_and_idle_clients(gw: GatewayThread, alice: str) -> None:
    conns = await asyncio.gather(
        *(asyncpg.connect(gw.dsn("alice@example.com", alice)) for _ in range(60))
    )
    try:
        await asyncio.sleep(1.0)  # idle clients stay connected
        results = await asyncio.gather(
            *(c.fetchval("SELECT $1::int", i) for i, c in enumerate(conns))
        )
        assert results == list(range(60))
        assert len(gw.gateway.proxy.sessions) >= 60
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    for _ in range(50):
        if len(gw.gateway.proxy.sessions) == 0:
            break
        await asyncio.sleep(0.05)
    assert len(gw.gateway.proxy.sessions) == 0


def test_pgbench_simple_extended_and_prepared(
    pg_bin: Callable[[str], str], gw: GatewayThread, target_dsn: str, alice: str
) -> None:
    pgbench_init(pg_bin("pgbench"), target_dsn)
    for mode in ("simple", "extended", "prepared"):
        run = subprocess.run(
            [pg_bin("pgbench"), "-n", "-M", mode, "-c", "4", "-t", "50",
             gw.dsn("alice@example.com", alice)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert "number of transactions actually processed: 200/200" in run.stdout
        assert "number of failed transactions: 0" in run.stdout
    updates = events(gw, "sql LIKE 'UPDATE pgbench_accounts%'")
    assert len(updates) == 600
    assert {e["protocol"] for e in updates} == {"simple", "extended"}
    assert all(e["outcome"] == "ok" and e["rows"] == 1 for e in updates)


def test_session_rows_record_who_and_where(gw: GatewayThread, alice: str) -> None:
    with psycopg.connect(gw.dsn("alice@example.com", alice, application_name="audit-check")) as c:
        c.execute("SELECT 1")
    deadline = time.monotonic() + 5
    while True:  # the gateway files the session's end when it sees the connection close
        gw.flush_audit()
        row = gw.call(
            gw.gateway.pool.fetchrow(
                "SELECT * FROM sessions WHERE application_name = 'audit-check'"
            )
        )
        if row["ended_at"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert row["identity"] == "alice@example.com"
    assert row["resource"] == "prod"
    assert row["client_addr"].startswith("127.0.0.1:")
    assert row["ended_at"] is not None and row["end_reason"] == "client terminated"


def test_a_name_prepared_again_by_sql_is_audited_as_what_runs(
    gw: GatewayThread, alice: str
) -> None:
    """A protocol-level statement dropped by SQL (DEALLOCATE, also through the extended
    protocol, DEALLOCATE ALL, DISCARD ALL) and prepared again under its name by SQL is
    audited as that name's EXECUTE, never as the text the first Parse prepared."""
    with psycopg.connect(gw.dsn("alice@example.com", alice), autocommit=True) as conn:
        pg = conn.pgconn
        for drop in (b"DEALLOCATE again", b"DEALLOCATE ALL", b"DISCARD ALL", None):
            assert pg.prepare(b"again", b"SELECT 'first parse'").status == 1
            assert pg.exec_prepared(b"again", []).get_value(0, 0) == b"first parse"
            if drop is None:  # the extended protocol's DEALLOCATE
                conn.execute("DEALLOCATE again")
            else:
                assert pg.exec_(drop).status == 1
            assert pg.exec_(b"PREPARE again AS SELECT 'second, by SQL'").status == 1
            assert pg.exec_prepared(b"again", []).get_value(0, 0) == b"second, by SQL"
            assert pg.exec_(b"DEALLOCATE again").status == 1
    ran = [e["sql"] for e in events(gw, "sql LIKE '%again%' OR sql LIKE '%first parse%'")]
    assert ran.count("SELECT 'first parse'") == 4  # each first Execute, never the second
    assert ran.count('EXECUTE "again"') == 4


def test_a_name_whose_parse_failed_is_audited_as_what_sql_prepares_under_it(
    gw: GatewayThread, alice: str
) -> None:
    """A Parse the target refuses (an unknown table) leaves its name free there, and a SQL
    ``PREPARE`` may take it: the Binds of the name are then judged and audited as its
    ``EXECUTE``, never as the text of the Parse that failed."""
    with psycopg.connect(gw.dsn("alice@example.com", alice), autocommit=True) as conn:
        pg = conn.pgconn
        failed = pg.prepare(b"taken", b"SELECT 'failed parse' FROM no_such_table")
        assert failed.error_field(DiagField.SQLSTATE) == b"42P01"
        assert pg.exec_(b"PREPARE taken AS SELECT 'prepared by SQL'").status == 1
        for _ in range(4):  # on the native path too, once the session is busy
            assert pg.exec_prepared(b"taken", []).get_value(0, 0) == b"prepared by SQL"
    ran = [e["sql"] for e in events(gw, "sql LIKE '%taken%' OR sql LIKE '%failed parse%'")]
    assert ran.count('EXECUTE "taken"') == 4
    assert "SELECT 'failed parse' FROM no_such_table" not in ran  # a Parse runs nothing


def test_a_parse_the_target_refuses_leaves_the_name_to_what_it_had(
    gw: GatewayThread, alice: str
) -> None:
    """A Parse of a name SQL ``PREPARE`` holds fails at the target, which keeps its
    statement: the Binds of the name are judged and audited as its ``EXECUTE``, never as
    the text of the Parse that failed."""
    with psycopg.connect(gw.dsn("alice@example.com", alice), autocommit=True) as conn:
        pg = conn.pgconn
        assert pg.exec_(b"PREPARE kept AS SELECT 'prepared by SQL'").status == 1
        refused = pg.prepare(b"kept", b"SELECT 'refused parse'")
        assert refused.error_field(DiagField.SQLSTATE) == b"42P05"  # already exists
        for _ in range(4):  # on the native path too, once the session is busy
            assert pg.exec_prepared(b"kept", []).get_value(0, 0) == b"prepared by SQL"
    ran = [e["sql"] for e in events(gw, "sql LIKE '%kept%' OR sql LIKE '%refused parse%'")]
    assert ran.count('EXECUTE "kept"') == 4
    assert "SELECT 'refused parse'" not in ran


def test_binds_sent_before_a_refused_parse_is_answered_reach_what_sql_prepared(
    gw: GatewayThread, alice: str
) -> None:
    """A client that does not wait for the answer to its Parse of a name SQL ``PREPARE``
    holds: its Bind reaches the SQL statement (the target refused the Parse), and is
    judged and audited as that name's ``EXECUTE``, not as the Parse's text."""
    client = RawClient(gw.port)
    try:
        client.login("alice@example.com", alice, "jg-pipelined-parse")
        client.send(m.Query("PREPARE piped AS SELECT 'prepared by SQL'").encode())
        client.until(m.ReadyForQuery)
        client.send(
            b"".join(
                message.encode()
                for message in (
                    m.Parse("piped", "SELECT 'refused parse'", ()),
                    m.Sync(),
                    m.Bind("", "piped", (), (), ()),
                    m.Execute("", 0),
                    m.Sync(),
                )
            )
        )
        refused = client.until(m.ReadyForQuery)
        assert any(isinstance(r, m.ErrorResponse) for r in refused)
        ran = client.until(m.ReadyForQuery)
        assert [r.values for r in ran if isinstance(r, m.DataRow)] == [(b"prepared by SQL",)]
    finally:
        client.close()
    audited = [e["sql"] for e in events(gw, "sql LIKE '%piped%' OR sql LIKE '%refused parse%'")]
    assert audited == ["PREPARE piped AS SELECT 'prepared by SQL'", 'EXECUTE "piped"']


def test_an_execute_of_a_sql_cursor_is_audited_as_its_fetch(gw: GatewayThread, alice: str) -> None:
    """A cursor SQL ``DECLARE`` opened is a portal the protocol's Execute can read without
    any Bind: judged and audited as ``FETCH ALL FROM "name"``, not as an empty text."""
    client = RawClient(gw.port)
    try:
        client.login("alice@example.com", alice, "jg-cursor")
        client.send(
            m.Query("BEGIN; DECLARE curs CURSOR FOR SELECT id FROM items WHERE id <= 3").encode()
        )
        client.until(m.ReadyForQuery)
        client.send(m.Execute("curs", 0).encode() + m.Sync().encode())
        answer = client.until(m.ReadyForQuery)
        assert [r.values for r in answer if isinstance(r, m.DataRow)] == [(b"1",), (b"2",), (b"3",)]
        client.send(m.Query("COMMIT").encode())
        client.until(m.ReadyForQuery)
    finally:
        client.close()
    (fetched,) = events(gw, "sql = 'FETCH ALL FROM \"curs\"'")
    assert (fetched["statement_class"], fetched["outcome"], fetched["rows"]) == ("read", "ok", 3)
