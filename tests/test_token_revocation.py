"""Revoking an access token ends the sessions it opened within seconds, and cancels what
they were waiting to have approved: a revoked identity opens no request and runs nothing."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from approvals.model import State
from store.tokens import revoke_tokens
from tests.harness import GatewayThread, gateway_config, scalar

ALICE = "alice@example.com"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_revoke_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)")
        conn.execute("INSERT INTO counters VALUES (1, 0)")
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(
        gateway_config(
            make_database("jg_revoke_store"),
            target_dsn,
            postgres={"listen": "127.0.0.1:0", "hold_timeout": "60s"},
        )
    )
    yield gateway
    gateway.stop()


def test_a_revoked_token_ends_its_open_session_and_cancels_its_held_request(
    pg_bin: Callable[[str], str], gw: GatewayThread, target_dsn: str
) -> None:
    token = gw.token(ALICE)
    idle = psycopg.connect(gw.dsn(ALICE, token), autocommit=True)
    update = "UPDATE counters SET n = 5 WHERE id = 1"
    held = subprocess.Popen(
        [pg_bin("psql"), "-X", gw.dsn(ALICE, token), "-c", update],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        pending: list[int] = []
        while not pending and time.monotonic() < deadline:
            rows = gw.call(gw.gateway.approvals.store.list(states=[State.PENDING], limit=10))
            pending = [r.id for r in rows if r.requester == ALICE]
            time.sleep(0.05)
        assert pending, "the statement was not held"
        assert idle.execute("SELECT 1").fetchone() == (1,)
        revoked_at = time.monotonic()
        assert gw.call(revoke_tokens(gw.gateway.pool, token=token)) == 1
        _, err = held.communicate(timeout=15)
        # Told by the cancelled request or by the end of the session, whichever is first.
        assert "access token was revoked" in err or "was revoked or has expired" in err, err
        with pytest.raises(psycopg.OperationalError):
            while time.monotonic() - revoked_at < 10:
                idle.execute("SELECT 1")
                time.sleep(0.2)
        assert time.monotonic() - revoked_at < 6
        view = gw.call(gw.gateway.approvals.store.view(pending[0]))
        assert view.state == State.CANCELLED
    finally:
        held.kill()
        idle.close()
    assert scalar(target_dsn, "SELECT n FROM counters") == 0
