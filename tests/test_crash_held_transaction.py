"""A statement held inside a transaction never runs outside it: when the gateway holding
it is killed (kill -9), the transaction ends with the connection, and the request is
cancelled once that gateway stops beating — approving it afterwards runs nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import yaml

from approvals.model import State
from approvals.sweep import sweep
from jitgate.errors import DecisionRefused
from tests.harness import GatewayThread, gateway_config, scalar
from tests.test_approvals import decide

ALICE, BOB = "alice@example.com", "bob@example.com"
UPDATE = "UPDATE counters SET n = 7 WHERE id = 1"


def test_a_request_held_in_a_transaction_dies_with_its_gateway(
    make_database: Callable[[str], str], pg_bin: Callable[[str], str], tmp_path: Path
) -> None:
    store, target = make_database("jg_crash_store"), make_database("jg_crash_target")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)")
        conn.execute("INSERT INTO counters VALUES (1, 0)")
    raw = {
        "database_url": store,
        "http": {"listen": "127.0.0.1:0"},
        "postgres": {"listen": "127.0.0.1:0", "hold_timeout": "60s"},
        "groups": {"engineers": [ALICE], "dba": [BOB]},
        "resources": {"prod": {"type": "postgres", "url": target, "approvers": ["dba"],
                               "access": {"engineers": {"read": "allow", "write": "review"}}}},
    }  # fmt: skip
    path = tmp_path / "jitgate.yaml"
    path.write_text(yaml.safe_dump(raw))
    jitgate = [sys.executable, "-m", "jitgate"]
    serve = subprocess.Popen(
        [*jitgate, "serve", "--config", str(path)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    psql = None
    try:
        assert serve.stderr is not None
        line = ""
        while "postgres on" not in line:
            line = serve.stderr.readline()
            assert line or serve.poll() is None, "jitgate serve did not start"
        match = re.search(r"postgres on [\d.]+:(\d+)", line)
        assert match is not None, line
        token = subprocess.run(
            [*jitgate, "token", "issue", "--config", str(path), "--user", ALICE],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()  # fmt: skip
        dsn = f"postgresql://alice%40example.com:{token}@127.0.0.1:{match[1]}/prod?sslmode=disable"
        psql = subprocess.Popen(
            [pg_bin("psql"), "-X", dsn, "-c", "BEGIN", "-c", UPDATE],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline, request_id = time.monotonic() + 20, None
        while request_id is None and time.monotonic() < deadline:
            request_id = scalar(store, f"SELECT max(id) FROM requests WHERE sql = '{UPDATE}'")
            time.sleep(0.05)
        assert request_id is not None, "the statement was not held"
        os.kill(serve.pid, signal.SIGKILL)
        serve.wait(timeout=10)
    finally:
        if serve.poll() is None:
            serve.kill()
        serve.wait(timeout=10)
        if serve.stderr is not None:
            serve.stderr.close()
        if psql is not None:
            psql.kill()
            psql.wait(timeout=10)
    with psycopg.connect(store, autocommit=True) as conn:  # that gateway stopped beating
        conn.execute("UPDATE gateways SET heartbeat_at = now() - interval '1 hour'")
    after = GatewayThread(gateway_config(store, target))
    try:
        after.call(sweep(after.gateway.approvals))
        view = after.call(after.gateway.approvals.store.view(request_id))
        assert view.state == State.CANCELLED and "transaction" in (view.state_reason or "")
        with pytest.raises(DecisionRefused):
            decide(after, request_id, BOB)
        after.call(sweep(after.gateway.approvals))
    finally:
        after.stop()
    assert scalar(target, "SELECT n FROM counters") == 0
