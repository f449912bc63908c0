"""Guardrails on the wire: held or denied statements never reach the target, the session
goes on, and every refusal is audited. The target's own state is the witness."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest
import yaml
from psycopg.pq import DiagnosticField as DiagField

from approvals.model import Alert
from tests.harness import GatewayThread, gateway_config


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    return make_database("jg_guard_target")


@pytest.fixture
def items(target_dsn: str) -> Iterator[Callable[[], int]]:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g")

    def count() -> int:
        with psycopg.connect(target_dsn) as conn:
            row = conn.execute("SELECT count(*) FROM items").fetchone()
            assert row is not None
            return int(row[0])

    yield count


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    # Held statements wait only briefly here: the approvals tests cover what follows.
    gateway = GatewayThread(
        gateway_config(
            make_database("jg_guard_store"),
            target_dsn,
            postgres={"listen": "127.0.0.1:0", "hold_timeout": "300ms"},
        )
    )
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def alice(gw: GatewayThread) -> str:
    return gw.dsn("alice@example.com", gw.token("alice@example.com"))


@pytest.fixture(scope="module")
def bob(gw: GatewayThread) -> str:
    return gw.dsn("bob@example.com", gw.token("bob@example.com"))


def refused_events(gw: GatewayThread, sql: str) -> list[asyncpg.Record]:
    gw.flush_audit()
    return gw.call(
        gw.gateway.pool.fetch(
            "SELECT * FROM statement_events WHERE sql = $1 AND outcome = 'refused'", sql
        )
    )


def test_psql_denied_and_held_statements_never_run(
    pg_bin: Callable[[str], str], gw: GatewayThread, alice: str, items: Callable[[], int]
) -> None:
    result = subprocess.run(
        [pg_bin("psql"), "-X", alice,
         "-c", "DROP TABLE items",
         "-c", "DELETE FROM items",
         "-c", "DELETE FROM items WHERE id = 1",
         "-c", "SELECT 1; /* harmless */ delete from ITEMS where 1 = 1",
         "-c", "WITH gone AS (DELETE FROM items RETURNING *) SELECT count(*) FROM gone",
         "-c", "SET session_replication_role = replica",
         "-c", "SELECT count(*) AS still_there FROM items"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert items() == 10
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert errors == [
        "ERROR:  statement denied by jitgate policy",
        "ERROR:  statement denied by jitgate policy",
        "ERROR:  stopped waiting for request #1 (hold timeout); the request stays pending",
        "ERROR:  statement denied by jitgate policy",
        "ERROR:  statement denied by jitgate policy",
        "ERROR:  statement denied by jitgate policy",
    ]
    assert "still_there" in result.stdout and " 10\n" in result.stdout
    denied = refused_events(gw, "DROP TABLE items")
    assert denied and denied[-1]["decision"] == "deny"
    assert denied[-1]["statement_class"] == "destructive"
    held = refused_events(gw, "DELETE FROM items WHERE id = 1")
    assert held[-1]["decision"] == "review" and held[-1]["statement_class"] == "write"


async def test_extended_protocol_refusals(
    gw: GatewayThread, alice: str, items: Callable[[], int]
) -> None:
    conn = await asyncpg.connect(alice)
    try:
        with pytest.raises(asyncpg.QueryCanceledError, match="runs only on its connection"):
            await conn.execute("DELETE FROM items WHERE id = $1", 3)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="denied"):
            await conn.prepare("TRUNCATE items")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="denied"):
            await conn.fetch("SELECT pg_terminate_backend($1)", 1)
        assert await conn.fetchval("SELECT name FROM items WHERE id = $1", 3) == "item 3"
        async with conn.transaction():
            assert await conn.fetchval("SELECT count(*) FROM items") == 10
        tx = conn.transaction()
        await tx.start()
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DROP TABLE items")
        with pytest.raises(asyncpg.InFailedSQLTransactionError):
            await conn.fetchval("SELECT 1")  # a refusal aborts the transaction, as an error does
        await tx.rollback()
        assert await conn.fetchval("SELECT 2") == 2
    finally:
        await conn.close()
    assert items() == 10


def test_a_session_never_reuses_an_admission_for_a_statement_of_another_verdict(
    gw: GatewayThread, alice: str, items: Callable[[], int]
) -> None:
    """Statements the session already let through skip the hooks; one that differs only in
    a number whose value changes the verdict does not."""
    with psycopg.connect(alice, autocommit=True) as conn:
        for _ in range(3):
            conn.execute("EXPLAIN (ANALYZE 0) DELETE FROM items")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("EXPLAIN (ANALYZE 1) DELETE FROM items")
        for item in (1, 2, 10, 3):
            row = conn.execute(f"SELECT name FROM items WHERE id = {item}").fetchone()
            assert row == (f"item {item}",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT pg_terminate_backend(1) FROM items WHERE id = 1")
    assert items() == 10
    assert refused_events(gw, "EXPLAIN (ANALYZE 1) DELETE FROM items")[-1]["decision"] == "deny"


def test_prepare_and_execute_of_dml_are_seen_through(
    gw: GatewayThread, alice: str, items: Callable[[], int]
) -> None:
    with psycopg.connect(alice, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("PREPARE wipe AS DELETE FROM items")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("EXECUTE wipe")
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (10,)
    assert items() == 10


def test_an_approver_group_with_allow_runs_writes(bob: str, items: Callable[[], int]) -> None:
    with psycopg.connect(bob, autocommit=True) as conn:
        assert conn.execute("DELETE FROM items WHERE id = 1").rowcount == 1
        conn.execute("TRUNCATE items")  # dba: destructive allow
    assert items() == 0


def test_guard_cli_prints_the_decision(tmp_path: Path, target_dsn: str) -> None:
    config = tmp_path / "jitgate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": "postgresql://unused@127.0.0.1/unused",
                "groups": {"engineers": ["alice@example.com"]},
                "resources": {
                    "prod": {
                        "url": target_dsn,
                        "access": {"engineers": {"read": "allow", "write": "review"}},
                    }
                },
            }
        )
    )

    def guard(sql: str, user: str = "alice@example.com") -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-m", "jitgate", "guard", "--config", str(config),
             "--resource", "prod", "--user", user],
            input=sql, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        result: dict[str, object] = json.loads(out.stdout)
        return result

    assert guard("SELECT 1") == {
        "action": "allow",
        "statements": [{"class": "read", "reasons": []}],
    }
    held = guard("SELECT 1; UPDATE t SET a = 1 WHERE id = 2")
    assert held["action"] == "review"
    assert [s["class"] for s in held["statements"]] == ["read", "write"]  # type: ignore[attr-defined]
    dropped = guard("DROP TABLE t")
    assert dropped["action"] == "deny"
    assert guard("SELECT 1", user="stranger@example.com")["action"] == "deny"
    assert guard("this is not sql")["statements"][0]["class"] == "opaque"  # type: ignore[index]


class AlertLog:
    """An alerts channel that keeps what it is sent."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def alert(self, alert: Alert) -> None:
        self.alerts.append(alert)


def test_security_hears_of_denials_and_guardrail_hits(
    gw: GatewayThread, alice: str, bob: str, items: Callable[[], int]
) -> None:
    log = AlertLog()
    gw.gateway.approvals.alerts.append(log)
    try:
        with psycopg.connect(alice, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DROP TABLE items")
            conn.execute("SELECT count(*) FROM items")
        with psycopg.connect(bob, autocommit=True) as conn:
            conn.execute("TRUNCATE items")  # dba: destructive allowed, and still reported
        deadline = time.monotonic() + 5
        while len(log.alerts) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        gw.gateway.approvals.alerts.remove(log)
    assert [(a.kind, a.identity) for a in log.alerts] == [
        ("denied", "alice@example.com"),
        ("guardrail", "bob@example.com"),
    ]
    assert "destructive statement from bob@example.com on prod allowed by policy" in (
        log.alerts[1].summary
    )


def test_a_bind_of_a_sql_prepared_statement_is_judged_by_what_it_runs(
    gw: GatewayThread, alice: str, items: Callable[[], int]
) -> None:
    """A statement prepared by SQL ``PREPARE`` is reachable by the protocol's Bind by name,
    without any Parse: the Bind is judged as ``EXECUTE name``, by the class the session
    remembered, not let through as a statement the gateway does not know."""
    with psycopg.connect(alice, autocommit=True) as conn:
        pg = conn.pgconn
        denied = pg.exec_(b"PREPARE wipe AS DELETE FROM items")
        assert denied.error_field(DiagField.SQLSTATE) == b"42501"
        bound = pg.exec_prepared(b"wipe", [])
        assert bound.error_field(DiagField.SQLSTATE) == b"42501"
        detail = (bound.error_field(DiagField.MESSAGE_DETAIL) or b"").decode()
        assert "EXECUTE of prepared statement wipe (destructive)" in detail
        never = pg.exec_prepared(b"never_prepared", [])
        assert never.error_field(DiagField.SQLSTATE) == b"42501"
        assert (
            "unknown prepared statement never_prepared"
            in (never.error_field(DiagField.MESSAGE_DETAIL) or b"").decode()
        )
        assert conn.execute("SELECT 'usable'").fetchone() == ("usable",)
    assert items() == 10
    assert refused_events(gw, 'EXECUTE "wipe"')


def test_sql_execute_of_a_protocol_statement_keeps_its_class(
    gw: GatewayThread, alice: str, items: Callable[[], int]
) -> None:
    """A name a Parse prepared is reachable by SQL ``EXECUTE``; a SQL ``PREPARE`` of the
    same name fails at the target and must not lend the name its milder class."""
    with psycopg.connect(alice, autocommit=True) as conn:
        pg = conn.pgconn
        # A write: held at each Execute, so its Parse reaches the target.
        assert pg.prepare(b"a", b"DELETE FROM items WHERE id = 1").status == 1
        clash = pg.exec_(b"PREPARE a AS SELECT 1")
        assert clash.error_field(DiagField.SQLSTATE) == b"42P05"  # already exists
        executed = pg.exec_(b"EXECUTE a")
        assert executed.status == 7  # held for review, never approved here
        assert b"(hold timeout)" in (executed.error_message or b"")
        bound = pg.exec_prepared(b"a", [])
        assert bound.status == 7
        assert conn.execute("SELECT 'usable'").fetchone() == ("usable",)
    assert items() == 10


def test_a_second_parse_of_a_name_cannot_soften_it(
    gw: GatewayThread, alice: str, items: Callable[[], int]
) -> None:
    """Parsing a name again fails at the target, which keeps the first statement: its Binds
    stay judged by the stricter of the two, whichever Parse came first."""
    with psycopg.connect(alice, autocommit=True) as conn:
        pg = conn.pgconn
        assert pg.prepare(b"b", b"DELETE FROM items WHERE id = 2").status == 1
        again = pg.prepare(b"b", b"SELECT 1")
        assert again.error_field(DiagField.SQLSTATE) == b"42P05"
        assert pg.exec_prepared(b"b", []).status == 7  # held, as the DELETE is
        assert pg.exec_(b"EXECUTE b").status == 7
        assert conn.execute("SELECT 'usable'").fetchone() == ("usable",)
    assert items() == 10
