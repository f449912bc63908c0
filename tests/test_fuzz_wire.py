"""The mutational fuzzer (tests/fuzzwire.py) against a live gateway: no crash, no hang,
no unaudited statement.

``JITGATE_FUZZ_CASES`` sets how many cases run (500 by default; ``make fuzz`` runs
10,000), ``JITGATE_FUZZ_SEED`` the first case's seed (cases are numbered on from it), and
``JITGATE_FUZZ_REPLAY`` one seed to run alone, as a failure prints it."""

from __future__ import annotations

import logging
import os
import socket
import time
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
    frame,
    make_case,
    run_case,
)
from tests.harness import EVERYTHING, GatewayThread, gateway_config

ALICE = "alice@example.com"
BATCH = 100


def fuzz_seeds() -> list[int]:
    replay = os.environ.get("JITGATE_FUZZ_REPLAY")
    if replay:
        return [int(replay)]
    first = int(os.environ.get("JITGATE_FUZZ_SEED", "1000000"))
    return list(range(first, first + int(os.environ.get("JITGATE_FUZZ_CASES", "500"))))


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_fuzz_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TARGET_SCHEMA)
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(
        gateway_config(make_database("jg_fuzz_store"), target_dsn, engineers=EVERYTHING)
    )
    yield gateway
    gateway.stop()


class Tracebacks(logging.Handler):
    """Collects the gateway's log records that carry a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.name == "asyncio":
            self.seen.append(f"{record.name}: {record.getMessage()}\n{self.format(record)}")


def wait_for_no_sessions(gw: GatewayThread, cases: list[Case]) -> None:
    """Every case's session ends within 10 s of its client."""
    deadline = time.monotonic() + 10
    while gw.gateway.proxy.sessions:
        if time.monotonic() > deadline:
            ids = [s.context.session_id for s in gw.gateway.proxy.sessions if s.context]
            apps = gw.call(
                gw.gateway.pool.fetch(
                    "SELECT application_name FROM sessions WHERE id = ANY($1::uuid[])", ids
                )
            )
            open_seeds = {int(r["application_name"][2:]) for r in apps}
            raise Finding(
                "sessions still open 10s after their clients left:\n"
                + "\n".join(c.describe() for c in cases if c.seed in open_seeds)
            )
        time.sleep(0.02)


def committed_statements(target_dsn: str, apps: list[str]) -> set[tuple[str, str]]:
    """What the target committed that wrote ``fuzz_effects``: (application, SQL text)."""
    with psycopg.connect(target_dsn) as conn:
        rows = conn.execute(
            "SELECT DISTINCT app, query FROM fuzz_log WHERE app = ANY(%s)", (apps,)
        ).fetchall()
    return {(app, query) for app, query in rows}


def audited(gw: GatewayThread, apps: list[str]) -> dict[tuple[str, str], list[str]]:
    """The audit trail of the sessions named ``apps``: outcomes by (application, SQL)."""
    gw.flush_audit()
    rows = gw.call(
        gw.gateway.pool.fetch(
            "SELECT s.application_name, e.sql, e.outcome FROM sessions s"
            " JOIN statement_events e ON e.session_id = s.id"
            " WHERE s.application_name = ANY($1::text[])",
            apps,
        )
    )
    trail: dict[tuple[str, str], list[str]] = {}
    for app, sql, outcome in rows:
        trail.setdefault((app, sql), []).append(outcome)
    return trail


def unaudited(
    gw: GatewayThread, target_dsn: str, cases: list[Case]
) -> list[tuple[Case, str, list[str]]]:
    """Each statement the target committed whose session has no ``ok`` record of it."""
    by_app = {app_name(case.seed): case for case in cases}
    apps = list(by_app)
    trail = audited(gw, apps)
    missing = []
    for app, sql in sorted(committed_statements(target_dsn, apps)):
        outcomes = trail.get((app, sql), [])
        if "ok" not in outcomes:
            missing.append((by_app[app], sql, outcomes))
    return missing


def assert_serving(gw: GatewayThread, token: str) -> None:
    with psycopg.connect(gw.dsn(ALICE, token), connect_timeout=5) as conn:
        assert conn.execute("SELECT 41 + 1").fetchone() == (42,)


def test_mutated_client_streams(gw: GatewayThread, target_dsn: str) -> None:
    seeds = fuzz_seeds()
    token = gw.token(ALICE)
    tracebacks = Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    findings: list[str] = []
    started = time.monotonic()
    elapsed: list[float] = []
    try:
        for first in range(0, len(seeds), BATCH):
            cases = [make_case(seed) for seed in seeds[first : first + BATCH]]
            for case in cases:
                try:
                    elapsed.append(run_case(gw.port, ALICE, token, case).elapsed)
                except Finding as exc:
                    findings.append(f"{exc}\n{case.describe()}")
                except OSError as exc:
                    findings.append(f"the gateway refused a connection: {exc}\n{case.describe()}")
                if tracebacks.seen:
                    findings += [f"{t}\n{case.describe()}" for t in tracebacks.seen]
                    tracebacks.seen.clear()
            try:
                wait_for_no_sessions(gw, cases)
            except Finding as exc:
                findings.append(str(exc))
            for case, sql, outcomes in unaudited(gw, target_dsn, cases):
                findings.append(
                    f"committed without an ok audit record (outcomes {outcomes}): {sql!r}\n"
                    f"{case.describe()}"
                )
            assert_serving(gw, token)
            if len(findings) >= 5:
                break
    finally:
        logging.getLogger().removeHandler(tracebacks)
    took = time.monotonic() - started
    print(
        f"\nfuzz: {len(elapsed)} of {len(seeds)} cases from seed {seeds[0]} in {took:.1f}s"
        f" (slowest {max(elapsed, default=0):.2f}s), {len(findings)} findings"
    )
    assert not findings, "\n\n".join(findings)


# -- what the fuzzer found, one case each ----------------------------------------------------


def _session_run(gw: GatewayThread, app: str, sent: bytes | tuple[bytes, ...], ending: str) -> None:
    """Log in as ``app``, send ``sent`` (each part of a tuple a moment after the one before,
    so that the gateway reads it apart), then end by half-closing or by a probe."""
    conn = Connection(gw.port, ALICE, gw.token(ALICE), app)
    try:
        for part in sent if isinstance(sent, tuple) else (sent,):
            conn.send([part])
            time.sleep(0.05)
        if ending == "probe":
            conn.send([PROBE_SUFFIX])
            conn.read_until(lambda x: isinstance(x, m.DataRow), "answering the probe")
            assert not conn.eof
        conn.sock.shutdown(socket.SHUT_WR)
        conn.read_to_eof("ending")
    finally:
        conn.close()


def _trail_and_rows(
    gw: GatewayThread, target_dsn: str, app: str
) -> tuple[dict[str, list[str]], set[str]]:
    time.sleep(0.2)
    wait_for_no_sessions(gw, [])
    trail = {sql: outcomes for (_, sql), outcomes in audited(gw, [app]).items()}
    return trail, {sql for _, sql in committed_statements(target_dsn, [app])}


INSERT_A = "INSERT INTO fuzz_effects VALUES ('found a')"
SLOW_INSERT = "INSERT INTO fuzz_effects SELECT 'found slowly' FROM pg_sleep(0.3)"
INSERT_B = "INSERT INTO fuzz_effects VALUES ('found b')"
COPY_IN = "COPY fuzz_effects (tok) FROM STDIN"


FOUND: list[tuple[str, bytes | tuple[bytes, ...], str, dict[str, list[str]]]] = [
    # The client leaves (or breaks the protocol) while its write runs: the target
    # commits it, and the audit waits for the answer instead of saying interrupted.
    ("half-close", m.Query(SLOW_INSERT).encode(), "half-close", {SLOW_INSERT: ["ok"]}),
    (
        "violation-after-copy",
        (
            m.Query(SLOW_INSERT).encode()
            + m.Query(COPY_IN).encode()
            + m.CopyData(b"found\n").encode()
            + m.CopyDone().encode(),
            frame(ord("E"), b"no row limit\0"),
        ),
        "half-close",
        {SLOW_INSERT: ["ok"], COPY_IN: ["ok"]},
    ),
    # A failed Execute makes the target skip to the Sync, Queries included.
    (
        "query-after-failed-execute",
        m.Execute("no such portal", 0).encode()
        + m.Query(INSERT_A).encode()
        + m.Sync().encode()
        + m.Query(INSERT_B).encode(),
        "probe",
        {INSERT_A: ["skipped"], INSERT_B: ["ok"]},
    ),
    # The target answers a Sync that follows the CopyData its COPY failed at.
    (
        "sync-after-bad-copy-data",
        m.Query(COPY_IN).encode()
        + m.CopyData(b"two\tcolumns\n").encode()
        + m.Sync().encode()
        + m.Sync().encode()
        + m.CopyDone().encode()
        + m.Query(INSERT_A).encode(),
        "probe",
        {COPY_IN: ["error"], INSERT_A: ["ok"]},
    ),
    # A Query ends the copy window: the Sync after it is answered, not ignored.
    (
        "sync-after-query-in-copy",
        m.Parse("", COPY_IN, ()).encode()
        + m.Bind("", "", (), (), ()).encode()
        + m.Execute("", 0).encode()
        + m.CopyData(b"two\tcolumns\n").encode()
        + m.Query(INSERT_B).encode()
        + m.Sync().encode()
        + m.Query(INSERT_A).encode(),
        "probe",
        {COPY_IN: ["error"], INSERT_B: ["skipped"], INSERT_A: ["ok"]},
    ),
]


@pytest.mark.parametrize(("name", "sent", "ending", "expected"), FOUND, ids=[f[0] for f in FOUND])
def test_what_the_fuzzer_found(
    gw: GatewayThread,
    target_dsn: str,
    name: str,
    sent: bytes | tuple[bytes, ...],
    ending: str,
    expected: dict[str, list[str]],
) -> None:
    app = f"found-{name}"
    _session_run(gw, app, sent, ending)
    trail, committed = _trail_and_rows(gw, target_dsn, app)
    assert {sql: trail.get(sql) for sql in expected} == expected
    assert committed == {sql for sql, outcomes in expected.items() if outcomes == ["ok"]}


def test_a_sync_sent_after_the_copy_began_is_owed_nothing(
    gw: GatewayThread, target_dsn: str
) -> None:
    """The Sync reaches the relay after the target's CopyInResponse (the epoch check at
    CopyInResponse has gone by): still owed no answer."""
    app = "found-late-sync"
    conn = Connection(gw.port, ALICE, gw.token(ALICE), app)
    try:
        conn.send([m.Query(COPY_IN).encode()])
        conn.read_until(lambda x: isinstance(x, m.CopyInResponse), "starting the COPY")
        conn.send(
            [
                m.Sync().encode()
                + m.CopyData(b"late\n").encode()
                + m.CopyDone().encode()
                + m.Parse("", INSERT_A, ()).encode()
                + m.Bind("", "", (), (), ()).encode()
                + m.Execute("", 0).encode()
                + m.Sync().encode()
            ]
        )
        readies: list[m.BackendMessage] = []

        def second_ready(message: m.BackendMessage) -> bool:
            if isinstance(message, m.ReadyForQuery):
                readies.append(message)
            return len(readies) == 2

        conn.read_until(second_ready, "answering the COPY and the Execute")
    finally:
        conn.close()
    trail, committed = _trail_and_rows(gw, target_dsn, app)
    assert trail == {COPY_IN: ["ok"], INSERT_A: ["ok"]}
    assert committed == {COPY_IN, INSERT_A}


@pytest.mark.parametrize("code", [b"S", b"H"])
def test_a_sync_or_flush_with_a_payload_is_a_protocol_violation(
    gw: GatewayThread, code: bytes
) -> None:
    conn = Connection(gw.port, ALICE, gw.token(ALICE), f"found-{code.decode()}-payload")
    try:
        conn.send([frame(code[0], b"\x01\x02") + m.Query("SELECT 1").encode()])
        answers = conn.read_to_eof("refusing the message")
    finally:
        conn.close()
    errors = [(x.severity, x.code) for x in answers if isinstance(x, m.ErrorResponse)]
    assert errors == [("FATAL", "08P01")]
