"""COPY … FROM STDIN in every order a client may send it: PostgreSQL ignores a Sync or a
Flush sent while it copies in, so the gateway must not wait for an answer to one. The
witness is the target's rows against the audit trail: every statement that ran has its
record, with its real outcome and row count."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from proxy import messages as m
from tests.harness import EVERYTHING, GatewayThread, gateway_config, scalar
from tests.test_faults import RawClient

ALICE = "alice@example.com"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_copyin_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int, name text)")
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(
        gateway_config(make_database("jg_copyin_store"), target_dsn, engineers=EVERYTHING)
    )
    yield gateway
    gateway.stop()


def trail(gw: GatewayThread, application_name: str) -> list[tuple[str, str, int]]:
    gw.flush_audit()
    rows = gw.call(
        gw.gateway.pool.fetch(
            "SELECT e.sql, e.outcome, e.rows FROM statement_events e"
            " JOIN sessions s ON s.id = e.session_id"
            " WHERE s.application_name = $1 ORDER BY e.seq",
            application_name,
        )
    )
    return [(r["sql"], r["outcome"], r["rows"]) for r in rows]


@pytest.mark.parametrize(
    ("name", "between"),
    [
        ("sync", m.Sync().encode()),
        ("flush", m.Flush().encode()),
        ("sync-sync", m.Sync().encode() + m.Sync().encode()),
        ("none", b""),
    ],
)
def test_a_sync_sent_while_copying_in_is_not_owed_an_answer(
    gw: GatewayThread, target_dsn: str, name: str, between: bytes
) -> None:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE t")
    app = f"copy-in-{name}"
    client = RawClient(gw.port)
    try:
        client.login(ALICE, gw.token(ALICE), app)
        client.send(
            m.Query("COPY t FROM STDIN").encode()
            + between
            + m.CopyData(b"1\tx\n").encode()
            + m.CopyDone().encode()
            + m.Query("SELECT count(*) FROM t").encode()
            + m.Parse("", "INSERT INTO t VALUES (2, 'y')", ()).encode()
            + m.Bind("", "", (), (), ()).encode()
            + m.Execute("", 0).encode()
            + m.Sync().encode()
        )
        answers = [client.until(m.ReadyForQuery) for _ in range(3)]
        client.send(m.Query("SELECT 1").encode())
        client.until(m.ReadyForQuery)
    finally:
        client.close()
    tags = [[a.tag for a in answer if isinstance(a, m.CommandComplete)] for answer in answers]
    assert tags == [["COPY 1"], ["SELECT 1"], ["INSERT 0 1"]]
    assert scalar(target_dsn, "SELECT count(*) FROM t") == 2
    assert trail(gw, app)[-4:] == [
        ("COPY t FROM STDIN", "ok", 1),
        ("SELECT count(*) FROM t", "ok", 1),
        ("INSERT INTO t VALUES (2, 'y')", "ok", 1),
        ("SELECT 1", "ok", 1),
    ]


def test_an_extended_copy_in_with_an_early_sync_is_audited_once(
    gw: GatewayThread, target_dsn: str
) -> None:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE t")
    app = "copy-in-extended"
    client = RawClient(gw.port)
    try:
        client.login(ALICE, gw.token(ALICE), app)
        client.send(
            m.Parse("", "COPY t FROM STDIN", ()).encode()
            + m.Bind("", "", (), (), ()).encode()
            + m.Execute("", 0).encode()
            + m.Sync().encode()  # ignored: the target is copying in
            + m.CopyData(b"7\tz\n").encode()
            + m.CopyDone().encode()
            + m.Sync().encode()
            + m.Query("SELECT 2").encode()
        )
        first, second = client.until(m.ReadyForQuery), client.until(m.ReadyForQuery)
    finally:
        client.close()
    assert [a.tag for a in first if isinstance(a, m.CommandComplete)] == ["COPY 1"]
    assert [a.tag for a in second if isinstance(a, m.CommandComplete)] == ["SELECT 1"]
    assert trail(gw, app)[-2:] == [("COPY t FROM STDIN", "ok", 1), ("SELECT 2", "ok", 1)]
