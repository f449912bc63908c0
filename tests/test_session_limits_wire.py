"""Timeouts a session cannot lift. Resource ``prod`` fixes ``statement_timeout`` (1 s),
``lock_timeout`` and ``idle_in_transaction_session_timeout``; its users' policy allows
every class, so only the gateway's pin stands between them and an endless statement. Each
attack tries one way to lift a timeout, then sleeps 5 s: the database must cancel the
sleep (57014). Resource ``free``, the same target without ``session_limits``, changes
nothing."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from jitgate.config import parse_upstream_url
from jitgate.errors import DecisionRefused
from proxy import messages as m
from tests.harness import EVERYTHING, GatewayThread, gateway_config
from tests.test_faults import RawClient

ALICE = "alice@example.com"
LIMITS = {
    "statement_timeout": 1000,
    "lock_timeout": 300,
    "idle_in_transaction_session_timeout": 60000,
}
SLEEP = "SELECT pg_sleep(5)"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_limits_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
        conn.execute("INSERT INTO items SELECT generate_series(1, 10)")
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    config = gateway_config(make_database("jg_limits_store"), target_dsn, engineers=EVERYTHING)
    prod = config.resources["prod"]
    limited = dataclasses.replace(prod, session_limits=LIMITS)
    free = dataclasses.replace(prod, name="free", url=parse_upstream_url(target_dsn, "url"))
    gateway = GatewayThread(
        dataclasses.replace(config, resources={**config.resources, "prod": limited, "free": free})
    )
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def token(gw: GatewayThread) -> str:
    return gw.token(ALICE)


def assert_sleep_cancelled(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
        conn.execute(SLEEP)
    assert time.monotonic() - started < 4


def test_the_limits_are_in_effect_on_the_target(gw: GatewayThread, token: str) -> None:
    with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
        shown = [conn.execute(f"SHOW {name}").fetchone() for name in LIMITS]
        assert shown == [("1s",), ("300ms",), ("1min",)]
        assert_sleep_cancelled(conn)


@pytest.mark.parametrize(
    "attack",
    [
        "SET statement_timeout = 0",
        "SET SESSION statement_timeout TO '1h'",
        "set Statement_Timeout = 0; SELECT 1",
        'SET U&"statement\\005ftimeout" = 0',
        "SELECT set_config('statement_timeout', '0', false)",
        "SELECT pg_catalog.set_config('STATEMENT_TIMEOUT'::text, '0', false)",
        "SELECT id FROM items WHERE set_config('statement_timeout', '0', false) IS NOT NULL",
        "SELECT * FROM set_config('statement_timeout', '0', false)",
        "WITH s AS (SELECT set_config('statement_timeout', '0', false)) SELECT * FROM s",
        "SELECT set_config(name, '0', false) FROM pg_settings WHERE name LIKE 'statement%'",
        "UPDATE pg_settings SET setting = '0' WHERE name = 'statement_timeout'",
        "ALTER ROLE CURRENT_USER SET statement_timeout = 0",
        "ALTER DATABASE jg_limits_target SET statement_timeout = 0",
        "ALTER SYSTEM SET statement_timeout = 0",
        "CREATE FUNCTION lift() RETURNS int LANGUAGE sql SET statement_timeout = 0 AS 'SELECT 1'",
        "PREPARE lift AS SELECT set_config('statement_timeout', '0', false)",
        "DO $$BEGIN PERFORM set_config('statement_timeout', '0', false); END$$",
        "DO $$BEGIN EXECUTE 'SET STATEMENT_TIMEOUT = 0'; END$$",
        "CREATE FUNCTION lift() RETURNS void LANGUAGE plpgsql"
        " AS $$BEGIN EXECUTE 'RESET lock_timeout'; END$$",
    ],
)
def test_a_statement_that_could_lift_a_limit_is_refused_whatever_the_policy(
    gw: GatewayThread, token: str, attack: str
) -> None:
    with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="session_limits fix"):
            conn.execute(attack.encode())
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1s",)
        assert_sleep_cancelled(conn)


def test_set_local_inside_a_transaction_is_refused(gw: GatewayThread, token: str) -> None:
    with psycopg.connect(gw.dsn(ALICE, token)) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("SET LOCAL statement_timeout = 0")
        conn.rollback()
        conn.execute("SELECT 1")
        assert_sleep_cancelled(conn)


@pytest.mark.parametrize(
    "back",
    [
        "RESET statement_timeout",
        "SET statement_timeout TO DEFAULT",
        "RESET ALL",
        "DISCARD ALL",
        "SET SESSION AUTHORIZATION DEFAULT",
        "RESET SESSION AUTHORIZATION",
    ],
)
def test_returning_to_the_defaults_returns_to_the_limits(
    gw: GatewayThread, token: str, back: str
) -> None:
    with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
        conn.execute(back.encode())
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1s",)
        assert conn.execute("SHOW lock_timeout").fetchone() == ("300ms",)
        assert_sleep_cancelled(conn)


def test_a_pipeline_cannot_slip_a_lift_past_the_gateway(gw: GatewayThread, token: str) -> None:
    with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
        refused = pytest.raises(psycopg.errors.FeatureNotSupported)
        with refused, conn.pipeline():
            conn.execute("SET LOCAL statement_timeout = 0")
            conn.execute("SELECT set_config('lock_timeout', '0', false)")
            conn.execute(SLEEP)
        assert_sleep_cancelled(conn)


def test_psql_cannot_lift_the_limit(
    pg_bin: Callable[[str], str], gw: GatewayThread, token: str
) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [pg_bin("psql"), "-X", gw.dsn(ALICE, token), "-c", "SET statement_timeout = 0",
         "-c", "RESET ALL", "-c", SLEEP],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert "session_limits fix" in result.stderr
    assert "canceling statement due to statement timeout" in result.stderr
    assert time.monotonic() - started < 4


def test_a_startup_parameter_cannot_lift_the_limit(gw: GatewayThread, token: str) -> None:
    client = RawClient(gw.port)
    try:
        params = (("user", ALICE), ("database", "prod"), ("statement_timeout", "0"))
        client.send(m.StartupMessage(params).encode())
        client.until(m.AuthenticationCleartextPassword)
        client.send(m.cleartext_password(token).encode())
        fatal = client.until(m.ErrorResponse)[-1]
        assert fatal.code == "0A000"  # type: ignore[attr-defined]
        assert "statement_timeout=0 is not supported" in fatal.message  # type: ignore[attr-defined]
    finally:
        client.close()

    async def with_asyncpg() -> None:
        with pytest.raises(asyncpg.FeatureNotSupportedError, match="lock_timeout=0"):
            await asyncpg.connect(gw.dsn(ALICE, token), server_settings={"lock_timeout": "0"})
        conn = await asyncpg.connect(
            gw.dsn(ALICE, token), server_settings={"lock_timeout": "300ms"}
        )
        try:
            with pytest.raises(asyncpg.QueryCanceledError):
                await conn.execute(SLEEP)
        finally:
            await conn.close()

    gw.call(with_asyncpg())
    # options=-c is never passed on: the limit holds
    with psycopg.connect(gw.dsn(ALICE, token, options="-c%20statement_timeout%3D0")) as conn:
        assert_sleep_cancelled(conn)


def test_the_lock_timeout_holds(gw: GatewayThread, token: str, target_dsn: str) -> None:
    with psycopg.connect(target_dsn) as holder:
        holder.execute("SELECT * FROM items WHERE id = 1 FOR UPDATE")
        with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
            with pytest.raises(psycopg.errors.FeatureNotSupported):
                conn.execute("SET lock_timeout = 0")
            started = time.monotonic()
            with pytest.raises(psycopg.errors.LockNotAvailable):
                conn.execute("UPDATE items SET id = id WHERE id = 1")
            assert time.monotonic() - started < 4
        holder.rollback()


def test_idle_in_transaction_cannot_be_lifted_by_a_raw_parse(gw: GatewayThread, token: str) -> None:
    client = RawClient(gw.port)
    try:
        client.login(ALICE, token, "raw")
        client.send(
            m.Parse("", "SET idle_in_transaction_session_timeout = 0", ()).encode()
            + m.Bind("", "", (), (), ()).encode()
            + m.Execute("", 0).encode()
            + m.Sync().encode()
        )
        answer = client.until(m.ReadyForQuery)
        errors = [x for x in answer if isinstance(x, m.ErrorResponse)]
        assert [e.code for e in errors] == ["0A000"]
        client.send(m.Query("SHOW idle_in_transaction_session_timeout").encode())
        rows = [x for x in client.until(m.ReadyForQuery) if isinstance(x, m.DataRow)]
        assert rows[0].values == (b"1min",)
    finally:
        client.close()


def test_without_session_limits_nothing_changes(gw: GatewayThread, token: str) -> None:
    with psycopg.connect(gw.dsn(ALICE, token, "free"), autocommit=True) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
        conn.execute("SET statement_timeout = '200ms'")
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(SLEEP)
        conn.execute("SELECT set_config('statement_timeout', '0', false)")
        assert conn.execute("SELECT pg_sleep(0.3)::text").fetchone() == ("",)


def test_statements_asked_for_outside_psql_keep_the_limits(gw: GatewayThread) -> None:
    """The REST API, chat and agents run allowed statements on connections of their own:
    opened with the limits, and refused a lift the same way."""

    def ask(sql: str) -> Any:
        asked = gw.call(
            gw.gateway.approvals.ask(resource_name="prod", identity=ALICE, sql=sql, source="api")
        )
        return asked.outcome

    with pytest.raises(DecisionRefused, match="sets statement_timeout, which the session_limits"):
        ask("SET statement_timeout = 0; SELECT pg_sleep(5)")
    started = time.monotonic()
    assert ask(SLEEP).sqlstate == "57014"
    assert time.monotonic() - started < 4
