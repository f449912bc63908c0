"""The native fast path (proxy/_fastpath.c) against the Python relay it stands in for.

The same client traffic goes through a gateway with the engine and one without it; the
clients see the same bytes, and the audit trails and metrics hold the same statements. The
engine's own rules (what it takes, what it declines, what it files) are checked message by
message against the Python code they mirror.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sysconfig
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import psycopg
import pytest

from audit.events import StatementEvent, encode_batch, event_row, row_json
from bench.audit import measure
from guard.classify import numbers_key
from jitgate.cluster import Cluster
from proxy import messages as m
from proxy.fastpath import (
    HANDBACK_CLIENT_READ,
    HANDBACK_CLOSED,
    HANDBACK_TO_CLIENT,
    NATIVE_AVAILABLE,
    PyEngine,
    PyStats,
    engine_kind,
    new_pump,
)
from tests.faultproxy import FaultProxy
from tests.harness import GatewayThread, gateway_config
from tests.test_faults import RawClient, with_port

native = pytest.mark.skipif(not NATIVE_AVAILABLE, reason="built without a C compiler")

ALICE = "alice@example.com"
# Statements run twice or more: from the second time on the native gateway relays them
# in C. Errors, NULL tags, PII (masked: the engine must decline), a result larger than a
# read, a transaction, a notice, a multi-statement string and an empty result.
SCRIPT = [
    *(f"SELECT id, qty FROM stock WHERE id = {i}" for i in (1, 2, 3, 17, 42)),
    "SELECT 1/0",
    "SELECT 1/0",
    "SELECT email FROM people WHERE id = 1",
    "SELECT email FROM people WHERE id = 1",
    "SELECT id, note FROM people ORDER BY id",
    "SELECT id, note FROM people ORDER BY id",
    "SELECT g FROM generate_series(1, 50000) g",
    "SELECT g FROM generate_series(1, 50000) g",
    "BEGIN",
    "SELECT qty FROM stock WHERE id = 5",
    "SELECT qty FROM stock WHERE id = 6",
    "COMMIT",
    "SELECT count(*) FROM stock WHERE id < 0",
    "SELECT count(*) FROM stock WHERE id < 0",
    "SELECT id FROM stock WHERE id < 0",
    "SELECT id FROM stock WHERE id < 0",
    "SELECT 1; SELECT 2",
    "SELECT 1; SELECT 2",
    "SELECT 'é' AS accent, 7 AS n",
    "SELECT 'é' AS accent, 7 AS n",
    "SELECT no_such_column FROM stock",
    "SELECT no_such_column FROM stock",
]


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_fastpath_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE stock (id int PRIMARY KEY, qty int)")
        conn.execute("INSERT INTO stock SELECT g, g * 10 FROM generate_series(1, 100) g")
        conn.execute("CREATE TABLE people (id int PRIMARY KEY, email text, note text)")
        conn.execute(
            "INSERT INTO people VALUES (1, 'ann.lee@example.org', 'card 4111 1111 1111 1111'),"
            " (2, 'bo@example.net', 'nothing to see')"
        )
    return dsn


def _gateway(
    make_database: Callable[[str], str], target_dsn: str, native: bool, store: str = ""
) -> GatewayThread:
    name = store or "jg_fastpath_store_" + ("native" if native else "python")
    previous = os.environ.get("JITGATE_NATIVE")
    os.environ["JITGATE_NATIVE"] = "1" if native else "0"
    try:
        return GatewayThread(gateway_config(make_database(name), target_dsn))
    finally:
        if previous is None:
            del os.environ["JITGATE_NATIVE"]
        else:
            os.environ["JITGATE_NATIVE"] = previous


@pytest.fixture(scope="module")
def both(
    make_database: Callable[[str], str], target_dsn: str
) -> Iterator[dict[str, GatewayThread]]:
    gateways = {
        "native": _gateway(make_database, target_dsn, True),
        "python": _gateway(make_database, target_dsn, False),
    }
    yield gateways
    for gateway in gateways.values():
        gateway.stop()


def _psql(pg_bin: Callable[[str], str], gw: GatewayThread) -> str:
    args = [pg_bin("psql"), "-X", "-v", "ON_ERROR_STOP=0", gw.dsn(ALICE, gw.token(ALICE))]
    for sql in SCRIPT:
        args += ["-c", sql]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return done.stdout + done.stderr


def _trail(gw: GatewayThread, last: bool = False) -> list[tuple[Any, ...]]:
    """The audit trail of every session, or of the ``last`` one to start."""
    gw.flush_audit()
    rows = gw.call(
        gw.gateway.pool.fetch(
            "SELECT seq, sql, protocol, statement_class, decision, reasons, outcome, rows,"
            " command_tag, sqlstate, request_id, masked, ended_at >= started_at AS ordered"
            " FROM statement_events WHERE NOT $1 OR session_id ="
            " (SELECT id FROM sessions ORDER BY started_at DESC LIMIT 1)"
            " ORDER BY session_id, seq",
            last,
        )
    )
    return [tuple(r) for r in rows]


def _statement_counts(gw: GatewayThread) -> dict[str, float]:
    text = gw.gateway.metrics.render().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith(
            ("jitgate_statements_total", "jitgate_statement_duration_seconds_count")
        ):
            name, value = line.rsplit(" ", 1)
            counts[name] = float(value)
    return counts


@native
def test_clients_trails_and_metrics_are_the_same_with_and_without_the_engine(
    pg_bin: Callable[[str], str], both: dict[str, GatewayThread]
) -> None:
    assert both["native"].gateway.proxy.native and not both["python"].gateway.proxy.native
    outputs = {name: _psql(pg_bin, gw) for name, gw in both.items()}
    assert outputs["native"] == outputs["python"]
    assert "ann.lee@example.org" not in outputs["native"]
    assert "4111 1111 1111 1111" not in outputs["native"]
    assert "division by zero" in outputs["native"]
    trails = {name: _trail(gw) for name, gw in both.items()}
    assert trails["native"] == trails["python"]
    assert [row[1] for row in trails["native"]] == SCRIPT  # one event per Query
    assert all(row[-1] for row in trails["native"])
    by_sql = {row[1]: row for row in trails["native"]}
    assert by_sql["SELECT 1/0"][6:10] == ("error", 0, None, "22012")
    assert by_sql["SELECT g FROM generate_series(1, 50000) g"][7] == 50000
    assert _statement_counts(both["native"]) == _statement_counts(both["python"])
    # What the engine relayed: the numbered SELECTs whose shape (numbers of any length) the
    # session had admitted and whose int4 columns need no masking (ids 3, 17 and 42). Text,
    # int8 and row-less results, errors (a masking
    # session's errors may quote a value: the relay masks them), the multi-statement string
    # and the large result (its reads end inside messages) went through Python.
    ok, error, buckets, _ = both["native"].gateway.proxy._stats.snapshot()
    assert (ok, error) == (3, 0)
    assert sum(buckets) == ok + error


# Parameterized statements as drivers send them (psycopg without server-side prepares:
# Parse, Bind, Describe, Execute and Sync of the unnamed statement, in one write): from the
# second time on the native gateway relays those with plain results in C.
EXTENDED_SCRIPT: list[tuple[str, tuple[object, ...]]] = [
    *(("SELECT id, qty FROM stock WHERE id = %s", (i,)) for i in (1, 2, 3, 5, 6)),
    ("SELECT email FROM people WHERE id = %s", (1,)),
    ("SELECT email FROM people WHERE id = %s", (1,)),
    ("SELECT 1 / (qty - %s) FROM stock WHERE id = 1", (10,)),  # fails at Execute
    ("SELECT 1 / (qty - %s) FROM stock WHERE id = 1", (10,)),
    ("SELECT 1 / %s::int AS q", (0,)),  # fails at Bind (the planner folds the constant)
    ("SELECT count(*) FROM stock WHERE id < %s", (0,)),
    ("SELECT count(*) FROM stock WHERE id < %s", (0,)),
    ("SELECT id FROM stock WHERE id < %s", (0,)),
    ("SELECT id FROM stock WHERE id < %s", (0,)),
]


def _psycopg_script(gw: GatewayThread, prepare_threshold: int | None) -> list[object]:
    """EXTENDED_SCRIPT through psycopg: with the unnamed statement (``prepare_threshold``
    None), or prepared server-side at a statement's first run (0) and from then on bound
    by name (Bind, Describe, Execute, Sync)."""
    out: list[object] = []
    with psycopg.connect(
        gw.dsn(ALICE, gw.token(ALICE)), autocommit=True, prepare_threshold=prepare_threshold
    ) as conn:
        for sql, params in EXTENDED_SCRIPT:
            try:
                out.append(conn.execute(sql, params).fetchall())
            except psycopg.Error as exc:
                out.append((exc.sqlstate, str(exc)))
    return out


@native
def test_extended_round_trips_trails_and_answers_are_the_same_with_and_without_the_engine(
    both: dict[str, GatewayThread],
) -> None:
    taken_before, _, _, _ = both["native"].gateway.proxy._stats.snapshot()
    counts_before = {name: _statement_counts(gw) for name, gw in both.items()}
    outputs = {name: _psycopg_script(gw, None) for name, gw in both.items()}
    assert outputs["native"] == outputs["python"]
    assert outputs["native"][0] == [(1, 10)]
    assert "ann.lee@example.org" not in repr(outputs["native"])
    assert outputs["native"][7][0] == "22012"
    trails = {name: _trail(gw, last=True) for name, gw in both.items()}
    assert trails["native"] == trails["python"]
    assert [row[1:3] for row in trails["native"]] == [
        (sql.replace("%s", "$1"), "extended") for sql, _ in EXTENDED_SCRIPT
    ]
    assert trails["native"][8][6:10] == ("error", 0, None, "22012")
    assert trails["native"][9][6:10] == ("error", 0, None, "22012")  # not "skipped"
    # Taken in C: the second and later qty lookups (ids 2, 3, 5, 6), whose int4 column
    # needs no masking. Not a statement's first sight, the e-mail (masked), the errors
    # (the relay knows which message failed), the int8 count (int8 may hold an SSN) nor
    # the row-less result (no row taught the relay its columns), as for simple Queries.
    taken, _, _, _ = both["native"].gateway.proxy._stats.snapshot()
    assert taken - taken_before == 4
    counted = {
        name: {k: v - counts_before[name].get(k, 0) for k, v in _statement_counts(gw).items()}
        for name, gw in both.items()
    }
    assert counted["native"] == counted["python"]
    assert sum(v for k, v in counted["native"].items() if k.startswith("jitgate_statements")) == 14


@native
def test_prepared_statements_trails_and_answers_are_the_same_with_and_without_the_engine(
    both: dict[str, GatewayThread],
) -> None:
    taken_before, _, _, _ = both["native"].gateway.proxy._stats.snapshot()
    outputs = {name: _psycopg_script(gw, 0) for name, gw in both.items()}
    assert outputs["native"] == outputs["python"]
    assert outputs["native"][:5] == [[(i, i * 10)] for i in (1, 2, 3, 5, 6)]
    assert "ann.lee@example.org" not in repr(outputs["native"])
    trails = {name: _trail(gw, last=True) for name, gw in both.items()}
    assert trails["native"] == trails["python"]
    assert [row[1:3] for row in trails["native"]] == [
        (sql.replace("%s", "$1"), "extended") for sql, _ in EXTENDED_SCRIPT
    ]
    # Taken in C: the Binds of the prepared qty lookup after its first run (ids 2, 3, 5,
    # 6), as for the unnamed statement; not the masked e-mail, the errors, the int8 count
    # nor the row-less result.
    taken, _, _, _ = both["native"].gateway.proxy._stats.snapshot()
    assert taken - taken_before == 4


# As asyncpg runs them: each text prepared once under a name (Parse, Describe of the
# statement), then bound by name in binary, without a Describe (Bind, Execute, Sync).
ASYNCPG_SCRIPT: list[tuple[str, object]] = [
    *(("SELECT qty FROM stock WHERE id = $1", i) for i in (1, 2, 3, 5, 6)),
    ("SELECT email FROM people WHERE id = $1", 1),  # masked: the engine must decline
    ("SELECT email FROM people WHERE id = $1", 1),
    ("SELECT count(*) FROM stock WHERE id < $1", 0),  # int8 may hold a card: read by type
    ("SELECT count(*) FROM stock WHERE id < $1", 0),
    ("SELECT 1 / (qty - $1) FROM stock WHERE id = 1", 10),  # fails at Execute
    ("SELECT 1 / (qty - $1) FROM stock WHERE id = 1", 10),
    ("SELECT qty FROM stock WHERE id = $1", 7),
]


async def _asyncpg_script(gw: GatewayThread) -> list[object]:
    out: list[object] = []
    conn = await asyncpg.connect(gw.dsn(ALICE, gw.token(ALICE)), ssl=False)
    try:
        for sql, value in ASYNCPG_SCRIPT:
            try:
                out.append(await conn.fetchval(sql, value))
            except asyncpg.PostgresError as exc:
                out.append((exc.sqlstate, str(exc)))
    finally:
        await conn.close()
    return out


@native
def test_asyncpg_binds_trails_and_answers_are_the_same_with_and_without_the_engine(
    both: dict[str, GatewayThread],
) -> None:
    taken_before, _, _, _ = both["native"].gateway.proxy._stats.snapshot()
    outputs = {name: asyncio.run(_asyncpg_script(gw)) for name, gw in both.items()}
    assert outputs["native"] == outputs["python"]
    assert outputs["native"][:5] == [10, 20, 30, 50, 60]
    assert outputs["native"][5] == outputs["native"][6] != "ann.lee@example.org"
    assert outputs["native"][9][0] == "22012"
    trails = {name: _trail(gw, last=True) for name, gw in both.items()}
    assert trails["native"] == trails["python"]
    assert [row[1] for row in trails["native"]] == [sql for sql, _ in ASYNCPG_SCRIPT]
    # Bound in C, in binary and without a RowDescription: the qty lookups after the first
    # (its Bind, through the relay, told the engine that int4 rows need no masking).
    taken, _, _, _ = both["native"].gateway.proxy._stats.snapshot()
    assert taken - taken_before == 5


@native
def test_a_named_statement_is_bound_natively_only_while_the_target_has_it(
    both: dict[str, GatewayThread],
) -> None:
    """Close, DEALLOCATE and DEALLOCATE ALL drop a name at the target: a later Parse of the
    name is judged afresh, and the audit trail names what ran each time."""
    qty, ids = "SELECT qty FROM stock WHERE id = $1", "SELECT id FROM stock WHERE qty = $1"

    def prepare(client: RawClient, name: str, sql: str) -> None:
        client.send(m.Parse(name, sql, ()).encode() + m.Sync().encode())
        client.until(m.ReadyForQuery)

    def run(client: RawClient, name: str, value: bytes) -> list[tuple[bytes | None, ...]]:
        messages = (m.Bind("", name, (), (value,), ()), DESCRIBE_PORTAL, m.Execute("", 0))
        client.send(b"".join(message.encode() for message in (*messages, m.Sync())))
        answer = client.until(m.ReadyForQuery)
        return [message.values for message in answer if isinstance(message, m.DataRow)]

    def query(client: RawClient, sql: str) -> None:
        client.send(m.Query(sql).encode())
        client.until(m.ReadyForQuery)

    trails, taken = {}, {}
    for name, gw in both.items():
        stats = gw.gateway.proxy._stats
        client = RawClient(gw.port)
        before = stats.snapshot()[0]
        try:
            client.login(ALICE, gw.token(ALICE), f"jg-named-{name}")
            prepare(client, "n1", qty)
            assert [run(client, "n1", v) for v in (b"1", b"2", b"3")] == [
                [(b"10",)],
                [(b"20",)],
                [(b"30",)],
            ]
            client.send(m.Close("S", "n1").encode() + m.Sync().encode())
            client.until(m.ReadyForQuery)
            prepare(client, "n1", ids)
            assert run(client, "n1", b"40") == [(b"4",)]
            assert run(client, "n1", b"50") == [(b"5",)]
            query(client, "DEALLOCATE n1")
            prepare(client, "n1", qty)
            assert run(client, "n1", b"6") == [(b"60",)]
            assert run(client, "n1", b"7") == [(b"70",)]
            query(client, "DEALLOCATE ALL")
            prepare(client, "n1", ids)
            assert run(client, "n1", b"80") == [(b"8",)]
            assert run(client, "n1", b"90") == [(b"9",)]
        finally:
            client.close()
        taken[name] = stats.snapshot()[0] - before
        trails[name] = _trail(gw, last=True)
    assert trails["native"] == trails["python"]
    assert [row[1] for row in trails["native"]] == [
        qty, qty, qty, ids, ids, "DEALLOCATE n1", qty, qty, "DEALLOCATE ALL", ids, ids
    ]  # fmt: skip
    # Bound in C: every run but the first of each text (its answer teaches the gateway that
    # the int4 column needs no masking), runs right after a Parse of the name included.
    assert taken == {"native": 7, "python": 0}


@native
def test_the_unnamed_statement_a_native_round_trip_left_is_known_to_the_relay(
    both: dict[str, GatewayThread],
) -> None:
    qty, ids = "SELECT qty FROM stock WHERE id = $1", "SELECT id FROM stock WHERE qty = $1"

    def round_trip(client: RawClient, sql: str | None, value: bytes) -> list[tuple[bytes]]:
        messages = [] if sql is None else [m.Parse("", sql, ())]
        messages += [m.Bind("", "", (), (value,), ()), m.Describe("P", ""), m.Execute("", 0)]
        client.send(b"".join(message.encode() for message in (*messages, m.Sync())))
        answer = client.until(m.ReadyForQuery)
        return [message.values for message in answer if isinstance(message, m.DataRow)]

    trails, taken = {}, {}
    for name, gw in both.items():
        stats = gw.gateway.proxy._stats
        client = RawClient(gw.port)
        try:
            client.login(ALICE, gw.token(ALICE), f"jg-unnamed-{name}")
            assert round_trip(client, qty, b"1") == [(b"10",)]
            assert round_trip(client, ids, b"20") == [(b"2",)]
            before = stats.snapshot()[0]
            assert round_trip(client, qty, b"2") == [(b"20",)]  # the engine's, natively
            taken[name] = stats.snapshot()[0] - before
            # A Bind of the unnamed statement without a Parse: the relay's, and the
            # statement is the one the engine parsed last, not the relay's last.
            assert round_trip(client, None, b"3") == [(b"30",)]
        finally:
            client.close()
        trails[name] = _trail(gw, last=True)
    assert taken == {"native": 1, "python": 0}
    assert trails["native"] == trails["python"]
    assert [row[1:3] + row[6:8] for row in trails["native"]] == [
        (qty, "extended", "ok", 1),
        (ids, "extended", "ok", 1),
        (qty, "extended", "ok", 1),
        (qty, "extended", "ok", 1),
    ]


@native
def test_a_pipeline_records_the_statement_that_failed_and_those_the_target_skipped(
    both: dict[str, GatewayThread],
) -> None:
    def statement(sql: str) -> list[m.FrontendMessage]:
        return [m.Parse("", sql, ()), m.Bind("", "", (), (), ()), m.Execute("", 0)]

    sent = [
        *statement("SELECT 1"),
        *statement("SELECT no_such_column FROM stock"),  # refused by the target's Parse
        *statement("SELECT 3"),
        m.Sync(),
        *statement("SELECT 1 / 0"),  # fails when the target plans it, at Bind
        *statement("SELECT 4"),
        m.Sync(),
    ]
    trails = {}
    for name, gw in both.items():
        client = RawClient(gw.port)
        try:
            client.login(ALICE, gw.token(ALICE), f"jg-pipeline-{name}")
            client.send(b"".join(message.encode() for message in sent))
            client.until(m.ReadyForQuery)
            client.until(m.ReadyForQuery)
        finally:
            client.close()
        trails[name] = _trail(gw, last=True)
    assert trails["native"] == trails["python"]
    assert [row[1:2] + row[6:10] for row in trails["native"]] == [
        ("SELECT 1", "ok", 1, "SELECT 1", None),
        ("SELECT no_such_column FROM stock", "error", 0, None, "42703"),
        ("SELECT 3", "skipped", 0, None, None),
        ("SELECT 1 / 0", "error", 0, None, "22012"),
        ("SELECT 4", "skipped", 0, None, None),
    ]


# -- the engine's rules, message by message ------------------------------------------------


def _engine(blank: dict[bytes, bool] | None = None, native: bool = True) -> Any:
    engine_type, stats_type, is_native = engine_kind(native)
    assert is_native == native
    admitted: dict[str | bytes, tuple[str, tuple[str, ...]]] = {
        "SELECT 1": ("read", ()),
        b"SELECT qty FROM stock WHERE id = 0": ("read", ()),
        b"SELECT 0 + 0": ("read", ('a reason with "quotes" and \u00e9',)),
        "SELECT qty FROM stock WHERE qty > $1": ("read", ()),
    }
    stats = stats_type((0.001, 0.01))
    dirty: dict[Any, Any] = {}
    return engine_type(uuid.UUID(int=7), admitted, blank, stats, dirty), stats, dirty


def _query(sql: str) -> bytes:
    return m.Query(sql).encode()


def _answer(*messages: m.BackendMessage) -> bytes:
    return b"".join(message.encode() for message in messages)


INT4 = m.RowDescription((m.FieldDescription("qty", 0, 0, 23, 4, -1, 0),))
TEXT = m.RowDescription((m.FieldDescription("email", 0, 0, 25, -1, -1, 0),))
INT4_BINARY = m.RowDescription((m.FieldDescription("qty", 0, 0, 23, 4, -1, 1),))
DONE = m.ReadyForQuery("I")


@native
@pytest.mark.parametrize(
    ("sql", "taken"),
    [
        ("SELECT 1", True),
        ("SELECT 2", False),  # exact texts only: "SELECT 1" was not stored by its numbers
        ("SELECT qty FROM stock WHERE id = 7", True),
        ("SELECT qty FROM stock WHERE id = 73456789", True),  # any length: one key
        ("SELECT qty FROM stock WHERE id = 7.5", False),
        ("SELECT qty FROM stock WHERE id = 7 5", False),
        ("SELECT qty FROM stock WHERE id = 9 ", False),
        ("select qty FROM stock WHERE id = 9", False),
        ("SELECT 3 + 7", True),
        ("SELECT 3 + 7 -- x", False),
        ("SELECT 3 + 7 /* x */", False),
        ("SELECT qty FROM stock WHERE id = '9'", False),
        ('SELECT qty FROM "stock" WHERE id = 9', False),
        ("SELECT qty FROM stock WHERE id = $1", False),
        ("SELECT qty FROM stock WHERE id = \u0669", False),  # an Arabic-Indic digit
    ],
)
def test_the_engine_takes_exactly_the_admitted_texts_and_shapes(sql: str, taken: bool) -> None:
    engine, _, _ = _engine()
    admitted = {"SELECT 1", b"SELECT qty FROM stock WHERE id = 0", b"SELECT 0 + 0"}
    assert (sql in admitted or numbers_key(sql) in admitted) is taken  # the Python rule
    assert engine.query(_query(sql)) is taken
    assert engine.inflight is taken


@native
@pytest.mark.parametrize(
    "data",
    [
        _query("SELECT 1")[:-1],  # truncated
        _query("SELECT 1") + _query("SELECT 1"),  # two messages
        m.Parse("", "SELECT 1", ()).encode(),  # a Parse alone
        b"Q\x00\x00\x00\x0dSELECT\x001\x00",  # a NUL inside the text
        b"Q\x00\x00\x00\xffSELECT 1\x00",  # a length that is not the read's
    ],
)
def test_the_engine_declines_anything_but_one_whole_query(data: bytes) -> None:
    engine, _, _ = _engine()
    assert engine.query(data) is False
    assert not engine.inflight


PARAMETERIZED = "SELECT qty FROM stock WHERE qty > $1"  # admitted by _engine()
DESCRIBE_PORTAL = m.Describe("P", "")
SYNC = (m.Sync(),)


def _bound(
    name: str = "s1",
    *,
    portal: str = "",
    results: tuple[int, ...] = (0,),
    describe: m.FrontendMessage | None = DESCRIBE_PORTAL,
    rows: int = 0,
    end: tuple[m.FrontendMessage, ...] = SYNC,
) -> bytes:
    """One round trip of a named statement as libpq's PQexecPrepared sends it, varied."""
    messages: list[m.FrontendMessage] = [m.Bind(portal, name, (0,), (b"4",), results)]
    if describe is not None:
        messages.append(describe)
    messages += [m.Execute(portal, rows), *end]
    return b"".join(message.encode() for message in messages)


def _extended(
    sql: str = PARAMETERIZED,
    *,
    statement: str = "",
    portal: str = "",
    results: tuple[int, ...] = (0,),
    describe: m.FrontendMessage | None = DESCRIBE_PORTAL,
    rows: int = 0,
    end: tuple[m.FrontendMessage, ...] = SYNC,
) -> bytes:
    """One extended round trip as libpq's PQexecParams sends it (a Parse, then what
    :func:`_bound` sends for the statement it parsed), varied."""
    parse = m.Parse(statement, sql, (23,)).encode()
    return parse + _bound(
        statement, portal=portal, results=results, describe=describe, rows=rows, end=end
    )


@native
@pytest.mark.parametrize(
    ("data", "taken"),
    [
        (_extended(), True),
        (_extended(describe=None), True),
        (_extended(results=()), True),
        (_extended(results=(0, 0)), True),
        (_extended("SELECT qty FROM stock WHERE id = 7"), True),  # an admitted shape
        (_extended("SELECT 2"), False),  # not admitted
        (_extended(statement="s1"), False),  # a named statement
        (_extended(portal="p1"), False),  # a named portal
        (_extended(results=(1,)), True),  # binary results, in a session without masking
        (_extended(describe=m.Describe("S", "")), False),
        (_extended(rows=1), True),  # a row limit (asyncpg's fetchrow): see the answer
        (_extended(end=()), False),  # no Sync
        (_extended(end=(m.Sync(), m.Sync())), False),
        (_extended(end=(m.Flush(), m.Sync())), False),
        (_extended()[:-1], False),  # truncated
    ],
)
def test_the_engine_takes_exactly_one_plain_extended_round_trip(data: bytes, taken: bool) -> None:
    engine, _, _ = _engine()
    assert engine.query(data) is taken
    assert engine.inflight is taken
    assert (engine.extended is not None) is taken
    unnamed = engine.take_unnamed()
    assert (unnamed is not None) is taken
    assert engine.take_unnamed() is None  # told once


@native
@pytest.mark.parametrize(
    ("data", "taken"),
    [
        (_bound(), True),
        (_bound(describe=None), True),
        (_bound(results=()), True),
        (_bound("s2"), True),  # prepared, its text an admitted shape
        (_bound("s3"), False),  # prepared, its text not admitted
        (_bound("s4"), False),  # never prepared
        (_bound(""), False),  # the unnamed statement, without its Parse
        (_bound(portal="p1"), False),  # a named portal
        (_bound(results=(1,)), True),  # binary results, in a session without masking
        (_bound()[:-1], False),  # truncated
        (_extended(statement="s1"), False),  # a Parse of the name: the relay judges it
    ],
)
def test_the_engine_binds_exactly_the_named_statements_it_was_given(
    data: bytes, taken: bool
) -> None:
    engine, _, _ = _engine()
    engine.prepare(b"s1", PARAMETERIZED.encode())
    engine.prepare(b"s2", b"SELECT qty FROM stock WHERE id = 7")
    engine.prepare(b"s3", b"SELECT 2")
    assert engine.query(data) is taken
    assert engine.inflight is taken
    if taken:
        assert engine.extended[2] is False  # no Parse: the relay owes no ParseComplete
        sql, formats, name = engine.take_unnamed()
        assert name == data[6 : data.index(0, 6)]  # after "B", the length and portal ""
        codes = {_bound(results=()): (), _bound(results=(1,)): (1,)}
        assert formats == codes.get(data, (0,))
        assert sql == {b"s1": PARAMETERIZED, b"s2": "SELECT qty FROM stock WHERE id = 7"}[name]
    else:
        assert engine.take_unnamed() is None


@native
def test_a_named_statement_is_bound_until_the_relay_says_otherwise() -> None:
    engine, _, _ = _engine()
    answer = _answer(
        m.BindComplete(), INT4, m.DataRow((b"40",)), m.CommandComplete("SELECT 1"), DONE
    )

    def bound(name: str) -> bool:
        taken = bool(engine.query(_bound(name)))
        if taken:
            assert engine.result(answer) == ord("I")
        return taken

    engine.prepare(b"s1", PARAMETERIZED.encode())
    engine.prepare(b"s2", PARAMETERIZED.encode())
    assert bound("s1") and bound("s2")
    engine.prepare(b"s1", None)  # Close, DEALLOCATE, a refused or held Parse of the name
    assert not bound("s1") and bound("s2")
    engine.prepare(b"s1", PARAMETERIZED.encode())
    assert bound("s1")
    engine.forget_prepared()  # DEALLOCATE ALL, DISCARD ALL
    assert not bound("s1") and not bound("s2")
    with pytest.raises(ValueError, match="unnamed"):
        engine.prepare(b"", b"SELECT 1")
    # A text longer than the classifier caches is never one it admits: not kept (were it
    # admitted all the same, the engine would not bind it).
    long = PARAMETERIZED + " " * 9000
    engine_type, stats_type, _ = engine_kind(True)
    admitted = {long: ("read", ())}
    other = engine_type(uuid.UUID(int=8), admitted, None, stats_type((0.001,)), {})
    other.prepare(b"long", long.encode())
    assert not other.query(_bound("long"))
    assert other.query(_extended(long))  # the same text as the unnamed statement
    texts, events, *_ = _drain(engine)
    assert texts == [PARAMETERIZED]
    assert len(json.loads(events)) == 4
    assert [row[2] for row in json.loads(events)] == ["extended"] * 4


@native
def test_binary_results_are_taken_only_where_masking_cannot_need_them_read() -> None:
    """In a masking session the engine takes binary results of a described portal (its
    RowDescription decides, as for text) and those of a named statement bound with the
    codes the relay said give rows needing no masking; nothing else."""
    blank: dict[bytes, bool] = {INT4_BINARY.encode()[5:]: True}
    engine, _, _ = _engine(blank)
    engine.prepare(b"s1", PARAMETERIZED.encode())

    def answer(*values: bytes) -> bytes:
        return _answer(m.BindComplete(), m.DataRow(values), m.CommandComplete("SELECT 1"), DONE)

    assert not engine.query(_extended(results=(1,), describe=None))  # rows of unknown columns
    assert not engine.query(_bound(results=(1,), describe=None))
    assert engine.query(_extended(results=(1,)))  # described
    described = _answer(
        m.ParseComplete(), m.BindComplete(), INT4_BINARY, m.DataRow((b"\0\0\0\x28",)),
        m.CommandComplete("SELECT 1"), DONE,
    )  # fmt: skip
    assert engine.result(described) == ord("I")
    engine.blank_binds(b"s1", b"\x00\x01", 1)
    engine.blank_binds(b"s9", b"\x00\x01", 1)  # a name the engine may not bind: ignored
    assert not engine.query(_bound("s9", results=(1,), describe=None))
    assert engine.query(_bound(results=(1,), describe=None))
    assert engine.take_unnamed() == (PARAMETERIZED, (1,), b"s1")
    assert engine.result(answer(b"\0\0\0\x28", b"extra")) == 0  # not the described columns
    engine.take()
    assert engine.query(_bound(results=(1,), describe=None))
    assert engine.result(answer(b"\0\0\0\x28")) == ord("I")
    suspended = _answer(m.BindComplete(), m.DataRow((b"\0\0\0\x28",)), m.PortalSuspended(), DONE)
    assert engine.query(_bound(results=(1,), describe=None, rows=1))
    assert engine.result(suspended) == ord("I")  # the row limit reached, the Sync closed it
    assert engine.query(_bound(results=(0,), describe=None))  # text: taken, its rows are not
    assert engine.result(answer(b"40")) == 0
    engine.take()
    engine.prepare(b"s1", PARAMETERIZED.encode())  # prepared again: what was said is gone
    assert not engine.query(_bound(results=(1,), describe=None))
    texts, events, *_ = _drain(engine)
    rows = json.loads(events)
    assert texts == [PARAMETERIZED] and len(rows) == 3
    assert [row[9:11] for row in rows] == [[1, "SELECT 1"], [1, "SELECT 1"], [1, None]]


@native
def test_an_extended_round_trip_is_filed_from_its_whole_answer_only() -> None:
    engine, stats, _ = _engine()
    assert engine.query(_extended())
    assert engine.extended == (True, 1, True)
    assert engine.take_unnamed() == (PARAMETERIZED, (0,), b"")
    answer = _answer(
        m.ParseComplete(), m.BindComplete(), INT4, m.DataRow((b"40",)),
        m.CommandComplete("SELECT 1"), DONE,
    )  # fmt: skip
    assert engine.result(answer[:-6]) == 0  # not the whole answer: left to the relay
    assert engine.inflight and engine.pending == 0
    failed = _answer(
        m.ParseComplete(), m.BindComplete(), INT4,
        m.ErrorResponse((("S", "ERROR"), ("C", "22012"), ("M", "division by zero"))), DONE,
    )  # fmt: skip
    assert engine.result(failed) == 0  # an error: which message failed is the relay's
    assert engine.result(answer) == ord("I")
    assert not engine.inflight and engine.pending == 1
    texts, events, *_ = _drain(engine)
    (row,) = json.loads(events)
    assert texts == [PARAMETERIZED]
    assert row[2:7] + row[9:11] == ["extended", "read", "allow", [], "ok", 1, "SELECT 1"]
    assert stats.snapshot()[:2] == (1, 0)
    # ParseComplete and the like belong to an extended round trip only.
    assert engine.query(_query("SELECT 1"))
    assert engine.result(_answer(m.ParseComplete(), m.CommandComplete("SELECT 0"), DONE)) == 0


@native
def test_a_taken_query_files_its_record_when_the_whole_answer_is_read() -> None:
    engine, stats, dirty = _engine()
    assert engine.query(_query("SELECT qty FROM stock WHERE id = 4"))
    assert engine.query(_query("SELECT 1")) is False  # one at a time
    answer = _answer(INT4, m.DataRow((b"40",)), m.CommandComplete("SELECT 1"), DONE)
    assert engine.result(answer[:-1]) == 0  # not whole: nothing changes
    assert engine.inflight and engine.pending == 0
    assert engine.result(answer[:-6]) == 1  # whole messages: taken, more to come
    assert engine.inflight and engine.pending == 0
    assert engine.result(answer[-6:]) == ord("I")
    assert not engine.inflight and engine.pending == 1
    assert dirty == {engine: uuid.UUID(int=7)}
    assert engine.result(answer) == 0  # nothing in flight
    ok, error, buckets, total = stats.snapshot()
    assert (ok, error, sum(buckets)) == (1, 0, 1) and total >= 0


@native
@pytest.mark.parametrize(
    "answer",
    [
        _answer(m.CopyOutResponse(0, ()), DONE),
        _answer(DONE, m.NoticeResponse(())),  # something after it
        _answer(m.ParseComplete(), DONE),
        b"Z\x00\x00\x00\x05",  # truncated
    ],
)
def test_the_engine_declines_answers_that_are_not_plain(answer: bytes) -> None:
    engine, _, _ = _engine()
    assert engine.query(_query("SELECT 1"))
    assert engine.result(answer) == 0
    sql, known, started, *said = engine.take()
    assert (sql, known) == ("SELECT 1", ("read", ())) and started > 0
    assert said == [0, 0, "ok", None, None]
    assert not engine.inflight and engine.pending == 0


@native
def test_an_answer_declined_halfway_is_handed_over_with_what_it_said_so_far() -> None:
    engine, _, _ = _engine()
    assert engine.query(_query("SELECT 1"))
    error = m.ErrorResponse((("S", "ERROR"), ("C", "57014"), ("M", "canceled")))
    first = _answer(INT4, m.DataRow((b"1",)), m.DataRow((b"2",)), m.CommandComplete("SELECT 2"))
    assert engine.result(first) == 1
    assert engine.result(_answer(INT4, m.DataRow((b"3",)))) == 1
    assert engine.result(_answer(error)) == 1
    assert engine.result(_answer(m.CopyOutResponse(0, ()), DONE)) == 0
    taken = engine.take()
    assert taken[:2] == ("SELECT 1", ("read", ()))
    assert taken[3:] == (2, 1, "error", b"SELECT 2", "57014")
    assert not engine.inflight and engine.pending == 0


@native
def test_masking_sessions_relay_only_rows_of_columns_known_to_need_no_masking() -> None:
    blank: dict[bytes, bool] = {}
    engine, _, _ = _engine(blank)
    int_rows = _answer(INT4, m.DataRow((b"40",)), m.CommandComplete("SELECT 1"), DONE)
    text_rows = _answer(TEXT, m.DataRow((b"a@b.org",)), m.CommandComplete("SELECT 1"), DONE)
    assert engine.query(_query("SELECT 1"))
    assert engine.result(int_rows) == 0  # a description never judged: Python judges it
    blank[INT4.encode()[5:]] = True
    blank[TEXT.encode()[5:]] = False
    assert engine.result(text_rows) == 0
    assert engine.result(_answer(m.DataRow((b"40",)), m.CommandComplete("SELECT 1"), DONE)) == 0
    assert engine.result(int_rows) == ord("I")
    assert engine.description == INT4.encode()[5:]


@native
def test_drained_records_are_the_json_the_python_relay_writes() -> None:
    engine, _, _ = _engine()
    python = PyEngine(uuid.UUID(int=7), {}, None, PyStats(()), {})
    # A statement the Python relay filed (odd text and tag), then two the engine filed.
    event = StatementEvent(uuid.UUID(int=7), 0, "SELECT '\udcff\u00e9'", "simple", 1.5)
    event.outcome, event.command_tag, event.rows, event.ended_at = "ok", b"SELECT\xff 2", 2, 1.75
    event.masked = {"EMAIL": 1}
    for target in (engine, python):
        event.seq = target.next_seq()
        target.add(event_row(event))
    assert engine.query(_query("SELECT 5 + 6"))
    error = m.ErrorResponse((("S", "ERROR"), ("C", "22012"), ("M", "division by zero")))
    assert engine.result(_answer(error, DONE)) == ord("I")
    assert engine.query(_query("SELECT 1"))
    assert engine.result(_answer(m.CommandComplete("SELECT 0"), DONE)) == ord("I")
    texts, events, count, first, last, started = _drain(engine)
    assert (count, first, last, started) == (3, 1, 3, 1_500_000)
    assert texts == ["SELECT '\udcff\u00e9'", "SELECT 5 + 6", "SELECT 1"]
    rows = json.loads(events)
    assert rows[0] == json.loads(encode_batch([event])[1])[0]
    assert rows[0][10] == "SELECT\ufffd 2"
    assert rows[1][:7] == [
        2,
        1,
        "simple",
        "read",
        "allow",
        ['a reason with "quotes" and é'],
        "error",
    ]
    assert rows[1][9:] == [0, None, "22012"]  # the nulls a fast row would end with: left out
    assert rows[2][1:] == [
        2,
        "simple",
        "read",
        "allow",
        [],
        "ok",
        *rows[2][7:9],
        0,
        "SELECT 0",
    ]
    assert rows[2][7] >= rows[1][7] > 1_000_000_000_000_000 and rows[2][8] >= 0
    assert engine.drain(row_json) is None and engine.pending == 0
    python_texts, python_events, *_ = _drain(python)
    assert python_texts == texts[:1] and json.loads(python_events) == rows[:1]


def _drain(engine: Any) -> tuple[list[str], bytes, int, int, int, int] | None:
    """``engine.drain``, its texts read back from the text[] it built (which must hold the
    same texts as the NUL-separated form the masking prefilter reads)."""
    drained = engine.drain(row_json)
    if drained is None:
        return None
    joined, array, events, *rest = drained
    texts = [t.decode("utf-8", "surrogateescape") for t in joined.split(b"\0")[:-1]]
    assert _text_array(array) == [t.encode("utf-8", "surrogateescape") for t in texts]
    return (texts, events, *rest)


def _text_array(array: bytes) -> list[bytes]:
    """The elements of a one-dimensional text[] in PostgreSQL's binary format."""
    ndim, flags, element, length, lower = struct.unpack_from("!5i", array)
    assert (ndim, flags, element, lower) == (1, 0, 25, 1)
    elements, at = [], 20
    for _ in range(length):
        (size,) = struct.unpack_from("!i", array, at)
        elements.append(array[at + 4 : at + 4 + size])
        at += 4 + size
    assert at == len(array)
    return elements


def _round_trip(engine: Any, sql: str) -> bool:
    """Run ``sql`` through ``engine`` with an empty result: True when it took it."""
    if not engine.query(_query(sql)):
        return False
    assert engine.result(_answer(m.CommandComplete("SELECT 0"), DONE)) == ord("I")
    return True


@native
def test_records_of_the_engine_and_of_the_python_relay_drain_in_sequence() -> None:
    engine, _, _ = _engine()
    assert _round_trip(engine, "SELECT 1")
    event = StatementEvent(uuid.UUID(int=7), 0, "SELECT 'x'", "simple", 1.5)
    event.outcome, event.ended_at = "ok", 1.75
    event.seq = engine.next_seq()
    engine.add(event_row(event))
    assert _round_trip(engine, "SELECT 1")
    texts, events, count, first, last, started = _drain(engine)
    rows = json.loads(events)
    assert [row[0] for row in rows] == [1, 2, 3] and (count, first, last) == (3, 1, 3)
    assert [texts[row[1]] for row in rows] == ["SELECT 1", "SELECT 'x'", "SELECT 1"]
    assert started == rows[0][7] > 1_500_000


@native
def test_the_engine_follows_what_the_session_admits_and_keeps_what_it_filed() -> None:
    engine_type, stats_type, _ = engine_kind(True)
    admitted: dict[str | bytes, tuple[str, tuple[str, ...]]] = {"SELECT 1": ("read", ("one",))}
    engine = engine_type(uuid.UUID(int=7), admitted, None, stats_type(()), {})
    assert _round_trip(engine, "SELECT 1")
    admitted.clear()  # the hook chain's memo started over
    assert not engine.query(_query("SELECT 1"))
    admitted["SELECT 1"] = ("read", ("again",))
    assert _round_trip(engine, "SELECT 1")
    # More texts than the engine keeps: it starts over and goes on taking them.
    many = [f"SELECT {i} AS n" for i in range(1500)]
    admitted.update((sql, ("read", (f"r{i}",))) for i, sql in enumerate(many))
    assert all(_round_trip(engine, sql) for sql in many)
    assert all(_round_trip(engine, sql) for sql in many[:3])
    texts, events, count, *_ = _drain(engine)
    rows = json.loads(events)
    assert count == len(rows) == 1505
    assert [row[5] for row in rows] == [
        ["one"],
        ["again"],
        *([f"r{i}"] for i in range(1500)),
        *([f"r{i}"] for i in range(3)),
    ]
    assert [texts[row[1]] for row in rows] == ["SELECT 1", "SELECT 1", *many, *many[:3]]


def test_the_extension_is_built_wherever_a_compiler_is() -> None:
    """A broken build must not pass as a machine without a compiler."""
    compiler = sysconfig.get_config_var("CC") or "cc"
    if shutil.which(compiler.split()[0]) is not None:
        assert NATIVE_AVAILABLE


# -- the pump: sessions relayed on its own thread ----------------------------------------

# Numbered reads the session admits once and then repeats: the engine takes every repeat,
# so the session is handed to the pump; a new text in the middle is declined there and
# handed back, and the session goes on through the pump again.
PUMPED_SCRIPT = [
    *(f"SELECT id, qty FROM stock WHERE id = {i}" for i in range(20, 40)),
    "SELECT count(*) FROM stock",
    "SELECT 1/0",
    *(f"SELECT id, qty FROM stock WHERE id = {i}" for i in range(40, 60)),
]


@native
def test_a_busy_session_is_pumped_and_handed_back_with_nothing_lost(
    pg_bin: Callable[[str], str], both: dict[str, GatewayThread]
) -> None:
    pump = both["native"].gateway.proxy.pump
    assert pump is not None and both["python"].gateway.proxy.pump is None
    relayed, returned = pump.relayed, pump.returned
    outputs = {}
    for name, gw in both.items():
        args = [pg_bin("psql"), "-X", "-v", "ON_ERROR_STOP=0", gw.dsn(ALICE, gw.token(ALICE))]
        for sql in PUMPED_SCRIPT:
            args += ["-c", sql]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        outputs[name] = done.stdout + done.stderr
    assert outputs["native"] == outputs["python"]
    assert "division by zero" in outputs["native"] and "(1 row)" in outputs["native"]
    # 40 numbered reads: the first is judged in Python, three are taken on the loop
    # before the session is promoted; the rest (a query and its answer each) go through
    # the pump, apart from the two new texts that were handed back.
    assert pump.relayed - relayed >= 2 * 30
    assert pump.returned - returned >= 2  # the two new texts (and the client's exit)
    trails = {name: _trail(gw, last=True) for name, gw in both.items()}
    assert trails["native"] == trails["python"]
    assert [row[1] for row in trails["native"]] == PUMPED_SCRIPT


@native
def test_the_pump_keeps_relaying_with_tracemalloc_on(
    pg_bin: Callable[[str], str], both: dict[str, GatewayThread]
) -> None:
    """tracemalloc's hooks take the GIL on every raw allocation: the pump, which grows its
    records under their lock while the drain may wait for that lock holding the GIL, must
    not allocate there (it hung before its buffers came from libc's allocator)."""
    gw = both["native"]
    pump = gw.gateway.proxy.pump
    assert pump is not None
    relayed = pump.relayed
    dsn = gw.dsn(ALICE, gw.token(ALICE))
    tracemalloc.start()
    try:
        run = subprocess.run(
            [pg_bin("pgbench"), "-n", "-c", "4", "-T", "3", "-f", "-", dsn],
            input="SELECT id, qty FROM stock WHERE id = 7\n",
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        gw.flush_audit()
    finally:
        tracemalloc.stop()
    assert run.returncode == 0, run.stderr
    assert "number of failed transactions: 0" in run.stdout
    assert pump.relayed - relayed > 100


class _Recorder:
    available = True


@contextlib.contextmanager
def _watched_engine(
    recorder: _Recorder | None = None,
) -> Iterator[tuple[Any, Any, list[tuple[int, bytes | None]], Any]]:
    """An engine watched by a pump over two socket pairs: (engine, pump, hand-backs,
    (client app socket, client gateway socket, target gateway socket, target db socket)),
    all closed at the end."""
    engine, _, _ = _engine()
    handed: list[tuple[int, bytes | None]] = []
    pump = new_pump(lambda callback, *args: callback(*args))
    client_app, client_gw = socket.socketpair()
    target_gw, target_db = socket.socketpair()
    sockets = (client_app, client_gw, target_gw, target_db)
    engine.connect(
        recorder or _Recorder(),
        client_gw.send,
        target_gw.send,
        lambda data: None,
        lambda data: None,
        pump,
        lambda: None,
        lambda kind, data: handed.append((kind, data)),
    )
    engine.armed = True
    try:
        engine.watch(client_gw.fileno(), target_gw.fileno())
        yield engine, pump, handed, sockets
    finally:
        pump.close()
        for sock in sockets:
            sock.close()


def _assert_nothing_to_read(sock: socket.socket) -> None:
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(1024)


def _until(condition: Callable[[], bool], within: float = 5) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the pump did not act in time"
        time.sleep(0.005)


@native
def test_the_pump_relays_taken_round_trips_and_hands_back_the_rest() -> None:
    with _watched_engine() as (engine, pump, handed, sockets):
        client_app, _, _, target_db = sockets
        query = _query("SELECT qty FROM stock WHERE id = 4")
        client_app.sendall(query)
        target_db.settimeout(5)
        assert target_db.recv(1024) == query
        answer = _answer(INT4, m.DataRow((b"40",)), m.CommandComplete("SELECT 1"), DONE)
        target_db.sendall(answer)
        client_app.settimeout(5)
        assert client_app.recv(1024) == answer
        _until(lambda: engine.pending == 1)
        assert pump.relayed == 2 and engine.watched and not handed
        declined = _query("SELECT 2")  # not admitted: handed back, not sent on
        client_app.sendall(declined)
        _until(lambda: bool(handed))
        assert (
            handed == [(HANDBACK_CLIENT_READ, declined)]
            and not engine.watched
            and pump.returned == 1
        )
        _assert_nothing_to_read(target_db)


@native
def test_the_pump_takes_known_round_trips_without_the_gil_or_asks_the_recorder() -> None:
    recorder = _Recorder()
    with _watched_engine(recorder) as (engine, pump, handed, sockets):
        client_app, _, _, target_db = sockets
        target_db.settimeout(5)
        client_app.settimeout(5)

        def round_trip(i: int) -> None:
            query = _query(f"SELECT qty FROM stock WHERE id = {i}")
            client_app.sendall(query)
            assert target_db.recv(1024) == query
            row = m.DataRow((b"%d" % (i * 10),))
            answer = _answer(INT4, row, m.CommandComplete("SELECT 1"), DONE)
            target_db.sendall(answer)
            assert client_app.recv(1024) == answer

        assert pump.available
        round_trip(1)  # the shape's first sight: judged with the GIL
        learnt = pump.gil_reads
        assert learnt == 1
        for i in range(2, 10):
            round_trip(i)
        assert (pump.gil_reads, pump.relayed) == (learnt, 18)
        _until(lambda: engine.pending == 9)

        pump.available = False  # the store went down, the server says: the recorder is asked
        round_trip(1)
        assert pump.gil_reads == learnt + 1 and engine.watched and not handed
        recorder.available = False
        refused = _query("SELECT qty FROM stock WHERE id = 2")
        client_app.sendall(refused)
        _until(lambda: bool(handed))
        assert handed == [(HANDBACK_CLIENT_READ, refused)] and pump.gil_reads == learnt + 2
        _assert_nothing_to_read(target_db)  # nothing reached the target
        assert engine.pending == 10


@native
def test_records_the_pump_files_while_the_recorder_drains_are_drained_exactly_once() -> None:
    rounds = 2000
    with _watched_engine() as (engine, pump, handed, sockets):
        client_app, _, _, target_db = sockets
        target_db.settimeout(5)
        client_app.settimeout(5)

        def client() -> None:
            for i in range(1, rounds + 1):
                query = _query(f"SELECT qty FROM stock WHERE id = {i % 9 + 1}")
                client_app.sendall(query)
                assert target_db.recv(1024) == query
                answer = _answer(INT4, m.CommandComplete(f"SELECT {i}"), DONE)
                target_db.sendall(answer)
                assert client_app.recv(1024) == answer

        drained: list[tuple[int, str, str]] = []
        batches: list[int] = []

        def drain() -> None:
            taken = _drain(engine)
            if taken is not None:
                batches.append(taken[2])
                texts, events, count, first, last, _ = taken
                rows = json.loads(events)
                assert len(rows) == count and (rows[0][0], rows[-1][0]) == (first, last)
                drained.extend((row[0], texts[row[1]], row[10]) for row in rows)

        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(client)
            while not running.done():
                drain()  # while the pump files, without the GIL
                time.sleep(0.0002)  # the client's thread needs the GIL too
            running.result()
        drain()  # a record is filed before its answer is relayed: all are there
        assert engine.pending == 0
        assert not handed and pump.relayed == 2 * rounds
        assert len(batches) > 10  # drained many times while the pump filed
        assert drained == [
            (i, f"SELECT qty FROM stock WHERE id = {i % 9 + 1}", f"SELECT {i}")
            for i in range(1, rounds + 1)
        ]


@native
def test_the_pump_hands_back_what_a_full_socket_did_not_take_and_the_end_of_a_socket() -> None:
    with _watched_engine() as (engine, _, handed, sockets):
        client_app, client_gw, target_gw, target_db = sockets
        client_gw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client_app.sendall(_query("SELECT 1"))
        target_db.settimeout(5)
        target_db.recv(1024)
        rows = [m.DataRow((b"x" * 100,)) for _ in range(500)]
        answer = _answer(TEXT, *rows, m.CommandComplete("SELECT 500"), DONE)
        assert len(answer) < 65536  # one read of the pump
        target_db.sendall(answer)
        _until(lambda: bool(handed))
        [(kind, rest)] = handed
        assert kind == HANDBACK_TO_CLIENT and rest is not None and 0 < len(rest) < len(answer)
        received = b""
        client_app.settimeout(5)
        while len(received) < len(answer) - len(rest):
            received += client_app.recv(65536)
        assert received + rest == answer  # in order, nothing twice, nothing lost
        assert engine.pending == 1 and not engine.watched

        handed.clear()
        engine.watch(client_gw.fileno(), target_gw.fileno())
        client_app.close()
        _until(lambda: bool(handed))
        assert handed == [(HANDBACK_CLOSED, None)] and not engine.watched


def _promoted(conn: psycopg.Connection[Any], pump: Any) -> None:
    """Run repeats of one admitted shape (one-digit ids) on ``conn``: the first ones are
    judged in Python and taken on the event loop, and the pump relays the rest."""
    relayed = pump.relayed
    for i in range(PROMOTED):
        qty = conn.execute(f"SELECT qty FROM stock WHERE id = {i % 9 + 1}").fetchone()
        assert qty == ((i % 9 + 1) * 10,)
    assert pump.relayed - relayed >= 2 * (PROMOTED - 5)


PROMOTED = 10


def _session_end(gw: GatewayThread) -> list[tuple[Any, ...]]:
    gw.flush_audit()
    rows = gw.call(
        gw.gateway.pool.fetch(
            "SELECT end_reason, (SELECT count(*) FROM statement_events e"
            " WHERE e.session_id = s.id) FROM sessions s ORDER BY started_at"
        )
    )
    return [tuple(r) for r in rows]


@pytest.fixture
def lone(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    """A native gateway with a store of its own, for tests that end it."""
    gateway = _gateway(make_database, target_dsn, True, "jg_fastpath_store_lone")
    yield gateway
    gateway.stop()


@native
def test_a_pumped_client_that_vanishes_ends_its_session_with_every_statement_recorded(
    lone: GatewayThread,
) -> None:
    pump = lone.gateway.proxy.pump
    conn = psycopg.connect(lone.dsn(ALICE, lone.token(ALICE)), autocommit=True)
    _promoted(conn, pump)
    returned = pump.returned
    sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
    sock.shutdown(socket.SHUT_RDWR)  # gone without a Terminate message
    sock.close()
    _until(lambda: _session_end(lone) == [("client disconnected", PROMOTED)])
    assert pump.returned > returned
    assert not lone.gateway.proxy.sessions
    conn.close()


@native
def test_a_pumped_session_whose_target_goes_away_gets_an_error_and_is_recorded(
    make_database: Callable[[str], str], target_dsn: str
) -> None:
    url = urlsplit(target_dsn)
    assert url.hostname is not None and url.port is not None
    with FaultProxy(url.hostname, url.port) as link:
        gw = _gateway(make_database, with_port(target_dsn, link.port), True, "jg_fastpath_cut")
        try:
            pump = gw.gateway.proxy.pump
            conn = psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True)
            _promoted(conn, pump)
            link.cut("upstream")  # the target is gone; nothing tells the gateway yet
            relayed = pump.relayed
            with ThreadPoolExecutor(1) as client:
                running = client.submit(conn.execute, "SELECT qty FROM stock WHERE id = 1")
                _until(lambda: pump.relayed > relayed)  # the pump sent the statement on
                link.cut("client")  # and now the gateway's connection to the target breaks
                with pytest.raises(psycopg.OperationalError):
                    running.result(10)
            conn.close()
            _until(lambda: bool(_session_end(gw)) and _session_end(gw)[0][0] is not None)
            [(reason, statements)] = _session_end(gw)
            assert reason == "upstream connection lost"
            assert statements == PROMOTED + 1  # the one that found the target gone too
            outcomes = gw.call(
                gw.gateway.pool.fetch(
                    "SELECT outcome FROM statement_events ORDER BY seq DESC LIMIT 1"
                )
            )
            assert [row[0] for row in outcomes] == ["interrupted"]
        finally:
            gw.stop()


@native
def test_a_gateway_stopping_takes_its_pumped_sessions_back_and_ends_them(
    lone: GatewayThread,
) -> None:
    conn = psycopg.connect(lone.dsn(ALICE, lone.token(ALICE)), autocommit=True)
    _promoted(conn, lone.gateway.proxy.pump)
    started = time.monotonic()
    lone.call(lone.gateway.proxy.stop(5.0))
    assert time.monotonic() - started < 4  # drained at once, not at the deadline
    with pytest.raises(psycopg.OperationalError, match="jitgate is shutting down"):
        conn.execute("SELECT qty FROM stock WHERE id = 1")
    conn.close()


@native
def test_a_pumped_session_is_refused_while_the_store_is_down_and_loses_no_event(
    target_dsn: str,
) -> None:
    with Cluster() as store:
        gw = GatewayThread(gateway_config(store.dsn("postgres"), target_dsn))
        try:
            pump = gw.gateway.proxy.pump
            conn = psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True)
            _promoted(conn, pump)
            store.stop()
            # the recorder's next flush or health check fails; the server tells the pump
            _until(lambda: not pump.available, within=20)
            with pytest.raises(psycopg.errors.CannotConnectNow, match="audit store"):
                conn.execute("SELECT qty FROM stock WHERE id = 1")
            store.start()
            _until(lambda: pump.available, within=30)
            _promoted(conn, pump)
            conn.close()
            _until(lambda: not gw.gateway.proxy.sessions)
            gw.flush_audit()
            outcomes = gw.call(
                gw.gateway.pool.fetch(
                    "SELECT outcome, count(*) FROM statement_events GROUP BY outcome"
                )
            )
            assert dict(outcomes) == {"ok": 2 * PROMOTED, "refused": 1}
        finally:
            gw.stop()


@native
def test_the_audit_micro_benchmark_measures_each_part_of_recording() -> None:
    """``python -m bench.audit`` times what it says: every part costs something, and a
    batch holds each pgbench text (57 bytes and its NUL) and its event."""
    cost = measure(batches=2, passes=1)
    assert min(cost.filing, cost.draining, cost.storing) > 0
    assert cost.text_bytes == len(b"SELECT abalance FROM pgbench_accounts WHERE aid = 100000;\0")
    assert 60 < cost.event_bytes < 120
