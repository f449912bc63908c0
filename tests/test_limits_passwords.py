"""Wrong tokens back off per user and per client address: after a few failures each
further attempt waits, is refused with FATAL 28P01 before any token is asked for, and a
burst raises exactly one security alert, which never carries a token tried."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from approvals.model import Alert
from proxy import messages as m
from tests.harness import GatewayThread, gateway_config
from tests.test_faults import RawClient

ALICE, BOB = "alice@example.com", "bob@example.com"
FREE, BACKOFF, MAX_BACKOFF, ALERT_AFTER = 3, 0.4, 1.0, 8


class AlertLog:
    """An alerts channel that keeps what it is sent."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def alert(self, alert: Alert) -> None:
        self.alerts.append(alert)


@pytest.fixture
def gw(make_database: Callable[[str], str]) -> Iterator[GatewayThread]:
    gateway = GatewayThread(
        gateway_config(
            make_database("jg_limits_pw_store"),
            make_database("jg_limits_pw_target"),
            postgres={
                "listen": "127.0.0.1:0",
                "limits": {
                    "passwords": {
                        "failures_before_backoff": FREE,
                        "backoff": f"{BACKOFF}s",
                        "max_backoff": f"{MAX_BACKOFF}s",
                        "alert_after": ALERT_AFTER,
                        "alert_window": "60s",
                    }
                },
            },
        )
    )
    yield gateway
    gateway.stop()


def attempt(gw: GatewayThread, user: str, token: str, source: str = "127.0.0.1") -> str:
    """One login: ``"ok"``, ``"wrong"`` (the token was asked for and refused) or
    ``"refused"`` (FATAL 28P01 without the token being asked for)."""
    client = RawClient(gw.port)
    if source != "127.0.0.1":  # Linux answers on all of 127/8: another client address
        client.sock.close()
        client.sock = socket.create_connection(
            ("127.0.0.1", gw.port), timeout=5, source_address=(source, 0)
        )
    try:
        client.send(m.StartupMessage((("user", user), ("database", "prod"))).encode())
        first = client.until(m.BackendMessage)[-1]  # type: ignore[type-abstract]
        if isinstance(first, m.ErrorResponse):
            assert (first.severity, first.code) == ("FATAL", "28P01")
            return "refused"
        assert isinstance(first, m.AuthenticationCleartextPassword), first
        client.send(m.cleartext_password(token).encode())
        answer = client.until(m.BackendMessage)[-1]  # type: ignore[type-abstract]
        if isinstance(answer, m.AuthenticationOk):
            return "ok"
        assert isinstance(answer, m.ErrorResponse) and answer.code == "28P01", answer
        return "wrong"
    finally:
        client.close()


def wrong_token(i: int) -> str:
    return f"jg_wrong-guess-{i:04d}-0123456789abcdef"


def test_failures_back_off_and_a_burst_raises_one_alert(
    gw: GatewayThread, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = AlertLog()
    gw.gateway.approvals.alerts.append(alerts)
    caplog.set_level(logging.DEBUG)
    outcomes = [attempt(gw, ALICE, wrong_token(i)) for i in range(3 * ALERT_AFTER)]
    assert outcomes[:FREE] == ["wrong"] * FREE
    # Hammering at once: from here on (almost) every attempt is refused unasked.
    assert outcomes[FREE:].count("refused") >= len(outcomes[FREE:]) - 1
    # The right token is refused too while the backoff lasts, from the same address...
    token = gw.token(ALICE)
    assert attempt(gw, ALICE, token) == "refused"
    # ... and any user from that address; the same user from another address is refused.
    assert attempt(gw, BOB, gw.token(BOB)) == "refused"
    assert attempt(gw, ALICE, token, source="127.0.0.2") == "refused"
    # Another user from another address is not held back.
    assert attempt(gw, BOB, gw.token(BOB), source="127.0.0.2") == "ok"
    deadline = time.monotonic() + 5
    while not alerts.alerts and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert [a.kind for a in alerts.alerts] == ["password_failures"]
    assert alerts.alerts[0].identity == ALICE
    assert "127.0.0.1" in alerts.alerts[0].summary
    # After the longest backoff the right token gets in, and resets the user's failures.
    time.sleep(MAX_BACKOFF + 0.1)
    assert attempt(gw, ALICE, token) == "ok"
    assert attempt(gw, ALICE, wrong_token(999), source="127.0.0.3") == "wrong"
    assert attempt(gw, ALICE, token, source="127.0.0.3") == "ok"
    with psycopg.connect(gw.dsn(ALICE, token)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    logged = caplog.text + "".join(a.summary for a in alerts.alerts)
    assert "jg_wrong-guess" not in logged and token not in logged


def test_backoff_waits_grow_and_a_slow_client_is_checked_again(gw: GatewayThread) -> None:
    for i in range(FREE):
        assert attempt(gw, ALICE, wrong_token(i)) == "wrong"
    assert attempt(gw, ALICE, wrong_token(10)) == "refused"
    time.sleep(BACKOFF + 0.05)
    assert attempt(gw, ALICE, wrong_token(11)) == "wrong"  # the wait is over: checked
    time.sleep(BACKOFF + 0.05)
    assert attempt(gw, ALICE, wrong_token(12)) == "refused"  # the wait doubled
    time.sleep(BACKOFF + 0.05)
    assert attempt(gw, ALICE, wrong_token(13)) == "wrong"
