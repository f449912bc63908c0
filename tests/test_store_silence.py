"""A store that goes silent (its network drops everything, no reset) is noticed within
seconds: the proxy refuses statements once no batch has been taken for
``audit.max_lag`` (2 s here), instead of waiting out a 10 s write while statements run."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.faultproxy import FaultProxy
from tests.harness import EVERYTHING, GatewayThread, gateway_config

ALICE = "alice@example.com"
MAX_LAG = 2


def test_statements_are_refused_within_seconds_of_a_silent_store(
    make_database: Callable[[str], str],
) -> None:
    store = urlsplit(make_database("jg_silence_store"))
    target = make_database("jg_silence_target")
    with FaultProxy(store.hostname or "127.0.0.1", store.port or 5432) as proxy:
        login = store.netloc.rpartition("@")[0]
        via_proxy = store._replace(netloc=f"{login}@127.0.0.1:{proxy.port}").geturl()
        audit = {"flush_interval": "20ms", "max_lag": f"{MAX_LAG}s"}
        gw = GatewayThread(gateway_config(via_proxy, target, engineers=EVERYTHING, audit=audit))
        try:
            with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
                proxy.silence()
                silenced = time.monotonic()
                ran_after = 0
                with pytest.raises(psycopg.errors.CannotConnectNow, match="audit store"):
                    while time.monotonic() - silenced < 8:
                        conn.execute("SELECT 2")
                        ran_after += 1
                        time.sleep(0.01)
                refused_after = time.monotonic() - silenced
            assert refused_after < MAX_LAG + 1.5, refused_after
        finally:
            proxy.silence(False)
            gw.stop()
