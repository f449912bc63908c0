"""Big statements never stall the gateway: one over ``postgres.max_statement_size`` is
refused before it is parsed, the session goes on, and other sessions do not wait for it."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.harness import EVERYTHING, GatewayThread, gateway_config, scalar

ALICE = "alice@example.com"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_limits_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int, name text)")
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(
        gateway_config(
            make_database("jg_limits_store"),
            target_dsn,
            engineers=EVERYTHING,
            postgres={"listen": "127.0.0.1:0", "max_statement_size": 65536},
        )
    )
    yield gateway
    gateway.stop()


def insert_of(size: int) -> str:
    rows = ",".join(f"({i}, 'item {i}')" for i in range(size // 16))
    return f"INSERT INTO items VALUES {rows}"


def count(target_dsn: str) -> int:
    return int(scalar(target_dsn, "SELECT count(*) FROM items"))


def test_a_statement_over_the_limit_is_refused_and_the_session_goes_on(
    gw: GatewayThread, target_dsn: str
) -> None:
    big = insert_of(9 << 20)
    with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="jitgate reads at most"):
            conn.execute(big.encode())
        with pytest.raises(psycopg.errors.ProgramLimitExceeded):
            conn.execute(big.encode() + b" RETURNING id", prepare=True)  # extended protocol
        under = insert_of(40000)
        assert len(under) < 65536
        conn.execute(under.encode())  # under the limit: runs
    assert count(target_dsn) == 40000 // 16


def test_other_sessions_do_not_wait_behind_a_9_mb_statement(gw: GatewayThread) -> None:
    token = gw.token(ALICE)
    worst = 0.0
    stop = threading.Event()

    def probe() -> None:
        nonlocal worst
        with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
            while not stop.is_set():
                started = time.perf_counter()
                conn.execute("SELECT 1")
                worst = max(worst, time.perf_counter() - started)
                time.sleep(0.005)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        big = insert_of(9 << 20).encode()
        with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
            for _ in range(3):
                with pytest.raises(psycopg.errors.ProgramLimitExceeded):
                    conn.execute(big)
    finally:
        stop.set()
        prober.join()
    assert worst < 1.0, f"another session waited {worst:.3f} s"


def test_the_rest_api_refuses_a_statement_over_the_limit_with_413(gw: GatewayThread) -> None:
    for size, code in ((200_000, "too_large"), (9 << 20, None)):  # the latter: body too big
        body = json.dumps({"resource": "prod", "sql": insert_of(size)}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{gw.http_port}/api/requests",
            data=body,
            headers={"Authorization": f"Bearer {gw.token(ALICE)}",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        with refused.value as response:
            assert response.code == 413
            if code is not None:
                assert json.loads(response.read())["code"] == code


def test_the_startup_message_limit_is_configurable(
    make_database: Callable[[str], str], target_dsn: str
) -> None:
    """What a client may send before its token is proved is bounded by
    ``postgres.max_startup_message_size``: a startup packet over it is refused from its
    length alone, one under it goes on to the password."""
    gateway = GatewayThread(
        gateway_config(
            make_database("jg_limits_startup_store"),
            target_dsn,
            postgres={"listen": "127.0.0.1:0", "max_startup_message_size": 2048},
        )
    )
    try:
        dsn = gateway.dsn("alice@example.com", gateway.token("alice@example.com"))
        with pytest.raises(psycopg.OperationalError, match="limit is 2048"):
            psycopg.connect(dsn, application_name="a" * 3000).close()
        with psycopg.connect(dsn, application_name="b" * 1500) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        gateway.stop()
