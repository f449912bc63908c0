"""COPY … FROM STDIN against a model of the protocol: random legal and illegal orders of
CopyData (good and bad lines), CopyDone, CopyFail, Sync, Flush, Query and
Parse/Bind/Execute during and after a COPY started by a Query or by an Execute.

Whatever the order, the session stays coherent (a following probe query answers, or the
connection ends with an ErrorResponse) and the audit equals what the target committed:
every statement the target's trigger saw commit has an ``ok`` record, and every simple
Query that writes and is recorded ``ok`` committed (its CommandComplete follows the commit).

``JITGATE_FUZZ_COPY_CASES`` sets how many sequences run (200 by default)."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator

import psycopg
import pytest

from proxy import messages as m
from tests.fuzzwire import (
    PROBE_SUFFIX,
    TARGET_SCHEMA,
    Case,
    Connection,
    Finding,
    app_name,
    token,
)
from tests.harness import EVERYTHING, GatewayThread, gateway_config
from tests.test_fuzz_wire import audited, committed_statements, wait_for_no_sessions

ALICE = "alice@example.com"
COPY_SQL = "COPY fuzz_effects (tok) FROM STDIN"
STEPS = ("copy", "copy-extended", "data", "bad-data", "done", "fail", "sync", "flush",
         "query", "pbe", "select")  # fmt: skip


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_copy_model_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TARGET_SCHEMA)
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(
        gateway_config(make_database("jg_copy_model_store"), target_dsn, engineers=EVERYTHING)
    )
    yield gateway
    gateway.stop()


def step(rng: random.Random, name: str) -> bytes:
    insert = f"INSERT INTO fuzz_effects VALUES ('{token(rng)}')"
    if name == "copy":
        return m.Query(COPY_SQL).encode()
    if name == "copy-extended":
        return b"".join(
            [
                m.Parse("", COPY_SQL, ()).encode(),
                m.Bind("", "", (), (), ()).encode(),
                m.Execute("", 0).encode(),
            ]
        )
    if name == "data":
        return m.CopyData(f"{token(rng)}\n{token(rng)}\n".encode()).encode()
    if name == "bad-data":
        return m.CopyData(b"two\tcolumns\n").encode()
    if name == "done":
        return m.CopyDone().encode()
    if name == "fail":
        return m.CopyFail("the client gave up").encode()
    if name == "sync":
        return m.Sync().encode()
    if name == "flush":
        return m.Flush().encode()
    if name == "query":
        return m.Query(insert).encode()
    if name == "pbe":
        return b"".join(
            [
                m.Parse("", insert, ()).encode(),
                m.Bind("", "", (), (), ()).encode(),
                m.Execute("", 0).encode(),
            ]
        )
    return m.Query("SELECT 1").encode()


def sequence(seed: int) -> tuple[list[str], list[bytes]]:
    """A random order of steps, most of them starting or inside a COPY."""
    rng = random.Random(seed)
    names: list[str] = []
    for _ in range(rng.randint(1, 3)):
        names.append(rng.choice(("copy", "copy", "copy-extended")))
        inside = rng.choices(STEPS[2:], weights=(6, 1, 2, 1, 2, 1, 1, 1, 1), k=rng.randint(0, 6))
        names += inside
    return names, [step(rng, name) for name in names]


def run_sequence(gw: GatewayThread, token_: str, seed: int) -> Case:
    names, messages = sequence(seed)
    rng = random.Random(seed)
    data = b"".join(messages)
    writes = messages if rng.random() < 0.5 else [data]
    case = Case(seed, "copy model", names, data, writes, "probe")
    conn = Connection(gw.port, ALICE, token_, app_name(seed))
    try:
        conn.send(writes)
        conn.send([PROBE_SUFFIX])
        seen = conn.read_until(
            lambda x: isinstance(x, m.DataRow) and x.values == (b"fuzz probe",),
            "answering the probe after a COPY",
        )
        if conn.eof and not any(isinstance(x, m.ErrorResponse) for x in seen):
            raise Finding(f"the connection ended without an ErrorResponse\n{case.describe()}")
    finally:
        conn.close()
    return case


def simple_writes_ok(gw: GatewayThread, apps: list[str]) -> set[tuple[str, str]]:
    """The simple Queries that write, recorded ok, of the sessions named ``apps``."""
    rows = gw.call(
        gw.gateway.pool.fetch(
            "SELECT s.application_name, e.sql FROM sessions s"
            " JOIN statement_events e ON e.session_id = s.id"
            " WHERE s.application_name = ANY($1::text[]) AND e.protocol = 'simple'"
            " AND e.outcome = 'ok' AND e.statement_class <> 'read'",
            apps,
        )
    )
    return {(r[0], r[1]) for r in rows}


def test_copy_in_orders_keep_the_audit_equal_to_the_target(
    gw: GatewayThread, target_dsn: str
) -> None:
    count = int(os.environ.get("JITGATE_FUZZ_COPY_CASES", "200"))
    first = int(os.environ.get("JITGATE_FUZZ_SEED", "1000000"))
    token_ = gw.token(ALICE)
    findings: list[str] = []
    cases: list[Case] = []
    for seed in range(first, first + count):
        try:
            cases.append(run_sequence(gw, token_, seed))
        except Finding as exc:
            findings.append(f"{exc}\ncopy model seed {seed}: {sequence(seed)[0]}")
    wait_for_no_sessions(gw, cases)
    apps = [app_name(case.seed) for case in cases]
    by_app = {app_name(case.seed): case for case in cases}
    trail = audited(gw, apps)
    committed = committed_statements(target_dsn, apps)
    for app, sql in sorted(committed):
        if "ok" not in trail.get((app, sql), []):
            outcomes = trail.get((app, sql), [])
            findings.append(
                f"committed, audited {outcomes}: {sql!r}\n{by_app[app].describe()}"
                f"\n  steps {by_app[app].mutations}"
            )
    for app, sql in sorted(simple_writes_ok(gw, apps) - committed):
        findings.append(
            f"audited ok, not committed: {sql!r}\n{by_app[app].describe()}"
            f"\n  steps {by_app[app].mutations}"
        )
    print(f"\ncopy model: {len(cases)} sequences, {len(findings)} findings")
    assert not findings, "\n\n".join(findings[:10])
