"""A hold dies with its client. A psql killed while its statement waits for approval is
noticed at once: what only that client could run (inside its transaction, or bound through
the extended protocol) is cancelled and its target connection released; a plain statement
is left to run once without the client, as when Ctrl-C stops the wait."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from approvals.model import State
from jitgate.errors import DecisionRefused
from tests.harness import GatewayThread, gateway_config, scalar
from tests.test_approvals import decide, final_view

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_holdgone_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)")
    return dsn


@pytest.fixture
def counters(target_dsn: str) -> Callable[[], int]:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE counters")
        conn.execute("INSERT INTO counters VALUES (1, 0)")
    return lambda: int(scalar(target_dsn, "SELECT n FROM counters"))


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(
        gateway_config(
            make_database("jg_holdgone_store"),
            target_dsn,
            postgres={"listen": "127.0.0.1:0", "hold_timeout": "60s"},
        )
    )
    yield gateway
    gateway.stop()


def backends(target_dsn: str, app: str) -> int:
    return int(
        scalar(
            target_dsn,
            f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'",
        )
    )


def held_psql(pg_bin: Callable[[str], str], gw: GatewayThread, app: str, *sql: str) -> int:
    """A psql sending each of ``sql`` in turn, killed while the last one is held; the id
    of its request."""
    env = {**os.environ, "PGAPPNAME": app}
    commands = [arg for statement in sql for arg in ("-c", statement)]
    process = subprocess.Popen(
        [pg_bin("psql"), "-X", gw.dsn(ALICE, gw.token(ALICE)), *commands],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    request_id = 0
    deadline = time.monotonic() + 15
    while not request_id and time.monotonic() < deadline:
        pending = gw.call(gw.gateway.approvals.store.list(states=[State.PENDING], limit=50))
        request_id = next((r.id for r in pending if r.sql == sql[-1]), 0)
        time.sleep(0.05)
    assert request_id, f"no request for {sql[-1]!r}"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    return request_id


def wait_for(predicate: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g}s: {what}")
        time.sleep(0.05)


def test_a_killed_client_inside_a_transaction_cancels_its_request(
    pg_bin: Callable[[str], str], gw: GatewayThread, target_dsn: str, counters: Callable[[], int]
) -> None:
    app = "held-in-tx"
    request_id = held_psql(pg_bin, gw, app, "BEGIN", "UPDATE counters SET n = 9 WHERE id = 1")
    wait_for(lambda: backends(target_dsn, app) == 0, "the target connection is released")
    wait_for(
        lambda: gw.call(gw.gateway.approvals.store.view(request_id)).state == State.CANCELLED,
        "the request is cancelled",
    )
    with pytest.raises(DecisionRefused):
        decide(gw, request_id, BOB)
    assert counters() == 0


def test_a_killed_client_leaves_a_plain_statement_to_run_once_without_it(
    pg_bin: Callable[[str], str], gw: GatewayThread, target_dsn: str, counters: Callable[[], int]
) -> None:
    app = "held-plain"
    request_id = held_psql(pg_bin, gw, app, "UPDATE counters SET n = n + 1 WHERE id = 1")
    wait_for(lambda: backends(target_dsn, app) == 0, "the target connection is released")
    decide(gw, request_id, BOB)
    done = final_view(gw, request_id)
    assert done.state == State.EXECUTED and done.outcome.rows == 1
    assert counters() == 1
