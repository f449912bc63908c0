"""A resource reached over the server's Unix socket (a gateway beside its database), with
real clients: every path that connects to the target (sessions, the pump, cancel, detached
execution) goes through the socket, and an unreachable socket is a clear FATAL."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import psycopg
import pytest

from approvals.execute import run_detached
from jitgate.cluster import Cluster
from proxy.fastpath import native_enabled
from tests.conftest import fresh_database, over_unix_socket
from tests.harness import (
    EVERYTHING,
    GatewayThread,
    assert_cancel_stops_a_query,
    gateway_config,
    pgbench_init,
)


@pytest.fixture(scope="module")
def socket_target(pg_dsn: str) -> Iterator[str]:
    """A target database's URL over its server's Unix socket: the suite's server when its
    socket is on this machine, else a server of this module's own."""
    dsn = fresh_database(pg_dsn, "jg_socket_target")
    url = over_unix_socket(dsn)
    if url is not None:
        yield url
        return
    with Cluster() as cluster:
        url = over_unix_socket(fresh_database(cluster.dsn(), "jg_socket_target"))
        assert url is not None
        yield url


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], socket_target: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(
        gateway_config(make_database("jg_socket_store"), socket_target, engineers=EVERYTHING)
    )
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def alice(gw: GatewayThread) -> str:
    return gw.token("alice@example.com")


def test_sessions_reach_the_target_over_its_socket_and_are_recorded(
    gw: GatewayThread, alice: str
) -> None:
    url = gw.config.resources["prod"].url
    assert url.socket_path is not None
    with psycopg.connect(gw.dsn("alice@example.com", alice, application_name="sock")) as conn:
        # A backend reached over a Unix socket has no server address.
        assert conn.execute("SELECT inet_server_addr() IS NULL").fetchone() == (True,)
    gw.flush_audit()
    row = gw.call(
        gw.gateway.pool.fetchrow(
            "SELECT s.upstream_host, s.upstream_port, e.outcome FROM sessions s"
            " JOIN statement_events e ON e.session_id = s.id"
            " WHERE s.application_name = 'sock'"
        )
    )
    assert (row["upstream_host"], row["upstream_port"], row["outcome"]) == (
        url.host,
        url.port,
        "ok",
    )


def test_pgbench_through_the_socket_is_relayed_natively_and_audited(
    pg_bin: Callable[[str], str], gw: GatewayThread, socket_target: str, alice: str
) -> None:
    pgbench_init(pg_bin("pgbench"), socket_target)
    pump = gw.gateway.proxy.pump
    relayed = pump.relayed if pump is not None else 0
    run = subprocess.run(
        [pg_bin("pgbench"), "-n", "-S", "-c", "2", "-t", "300",
         gw.dsn("alice@example.com", alice, application_name="sockbench")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "number of transactions actually processed: 600/600" in run.stdout
    gw.flush_audit()
    recorded = gw.call(
        gw.gateway.pool.fetchval(
            "SELECT count(*) FROM statement_events e JOIN sessions s ON s.id = e.session_id"
            " WHERE s.application_name = 'sockbench' AND e.sql LIKE 'SELECT abalance%'"
            " AND e.outcome = 'ok'"
        )
    )
    assert recorded == 600
    if native_enabled():
        # The pump relays the sockets whatever their family.
        assert pump is not None and pump.relayed - relayed >= 2 * 500


def test_cancel_reaches_the_backend_over_the_socket(gw: GatewayThread, alice: str) -> None:
    assert_cancel_stops_a_query(gw.dsn("alice@example.com", alice))


async def test_detached_execution_uses_the_socket(gw: GatewayThread) -> None:
    outcome = await run_detached(
        gw.config.resources["prod"], "SELECT inet_server_addr() IS NULL AS local", None, None
    )
    assert (outcome.sqlstate, outcome.preview) == (None, (("True",),))


def test_a_missing_socket_is_a_clear_fatal(make_database: Callable[[str], str]) -> None:
    target = "postgresql://postgres@/postgres?host=/nonexistent-jitgate&port=5999"
    gateway = GatewayThread(gateway_config(make_database("jg_socket_store_bad"), target))
    try:
        token = gateway.token("alice@example.com")
        with pytest.raises(psycopg.OperationalError) as caught:
            psycopg.connect(gateway.dsn("alice@example.com", token))
        assert (
            'could not connect to resource "prod": /nonexistent-jitgate/.s.PGSQL.5999:'
            " No such file or directory" in str(caught.value)
        )
    finally:
        gateway.stop()
