"""Client connections are capped in all and per user (``postgres.limits``): one over a cap
ends with FATAL 53300 before any target backend is spent on it, and a session that ends,
also during startup, gives its place back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import psycopg
import pytest

from proxy import messages as m
from tests.harness import GatewayThread, gateway_config, scalar
from tests.test_faults import RawClient

ALICE, BOB, EVE = "alice@example.com", "bob@example.com", "eve@example.com"
PER_USER, TOTAL = 2, 4


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    return make_database("jg_limits_conn_target")


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(
        gateway_config(
            make_database("jg_limits_conn_store"),
            target_dsn,
            postgres={
                "listen": "127.0.0.1:0",
                "limits": {"connections": TOTAL, "connections_per_user": PER_USER},
            },
        )
    )
    yield gateway
    gateway.stop()


def backends(target_dsn: str) -> int:
    """Backends on the target's database, not counting the one asking."""
    return int(
        scalar(
            target_dsn,
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
    )


def refused(gw: GatewayThread, user: str, token: str, database: str = "prod") -> m.ErrorResponse:
    """Log in by hand; return the FATAL the gateway ends the connection with."""
    client = RawClient(gw.port)
    try:
        client.send(m.StartupMessage((("user", user), ("database", database))).encode())
        client.until(m.AuthenticationCleartextPassword)
        client.send(m.cleartext_password(token).encode())
        messages = client.until_eof()
    finally:
        client.close()
    errors = [x for x in messages if isinstance(x, m.ErrorResponse)]
    assert len(errors) == 1 and not any(isinstance(x, m.AuthenticationOk) for x in messages)
    assert errors[0].severity == "FATAL"
    return errors[0]


def test_one_connection_over_the_per_user_limit_is_refused_before_the_target(
    gw: GatewayThread, target_dsn: str
) -> None:
    token = gw.token(ALICE)
    with ExitStack() as stack:
        for _ in range(PER_USER):
            stack.enter_context(psycopg.connect(gw.dsn(ALICE, token)))
        before = backends(target_dsn)
        error = refused(gw, ALICE, token)
        assert error.code == "53300"
        assert f'too many connections for user "{ALICE}": the limit is {PER_USER}' in error.message
        assert "postgres.limits.connections_per_user" in (error.detail or "")
        assert backends(target_dsn) == before
        # Another user is not held back by alice's sessions.
        with psycopg.connect(gw.dsn(BOB, gw.token(BOB))) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    # Closed sessions give their places back.
    with ExitStack() as stack:
        for _ in range(PER_USER):
            conn = stack.enter_context(psycopg.connect(gw.dsn(ALICE, token)))
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_total_limit_counts_every_user(gw: GatewayThread, target_dsn: str) -> None:
    with ExitStack() as stack:
        for user in (ALICE, ALICE, BOB, BOB):
            stack.enter_context(psycopg.connect(gw.dsn(user, gw.token(user))))
        before = backends(target_dsn)
        error = refused(gw, EVE, gw.token(EVE))
        assert error.code == "53300"
        assert f"too many connections to this gateway: the limit is {TOTAL}" in error.message
        assert backends(target_dsn) == before


def test_sessions_that_fail_during_startup_give_their_place_back(gw: GatewayThread) -> None:
    token = gw.token(ALICE)
    for _ in range(PER_USER + 2):
        assert refused(gw, ALICE, token, database="no_such_resource").code == "3D000"
    for _ in range(PER_USER + 2):
        assert refused(gw, EVE, gw.token(EVE)).code == "28000"  # no access to prod
    with ExitStack() as stack:
        for _ in range(PER_USER):
            conn = stack.enter_context(psycopg.connect(gw.dsn(ALICE, token)))
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_client_that_goes_away_gives_its_place_back(gw: GatewayThread) -> None:
    token = gw.token(ALICE)
    for _ in range(PER_USER + 2):
        client = RawClient(gw.port)
        client.login(ALICE, token, "vanishing")
        client.close()
    # The gateway notices each close at once; give its loop a moment to run the callbacks.
    gw.call(_settle())
    with ExitStack() as stack:
        for _ in range(PER_USER):
            stack.enter_context(psycopg.connect(gw.dsn(ALICE, token)))


async def _settle() -> None:
    import asyncio

    await asyncio.sleep(0.2)
