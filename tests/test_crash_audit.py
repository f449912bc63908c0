"""Nothing the target committed goes unaudited, whenever the gateway is killed.

A real ``jitgate serve`` relays pgbench's tpcb-like write load (simple protocol, so every
INSERT's values are in its text) and is killed with SIGKILL at a random moment, several
times; then a gateway starts again and recovers the spools. Every row pgbench committed to
``pgbench_history`` must match exactly one audited INSERT, and no statement is recorded
twice. Without the spool, the records of the statements of the last flush interval die
with the process.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import yaml

from tests.harness import GatewayThread, gateway_config, pgbench_init, serve_process, token_for

ALICE = "alice@example.com"
KILLS = int(os.environ.get("JITGATE_CRASH_KILLS", "3"))
_VALUES = re.compile(r"VALUES \((\d+), (\d+), (\d+), (-?\d+), CURRENT_TIMESTAMP\)")


def test_every_committed_statement_is_audited_across_kill_9(
    make_database: Callable[[str], str], pg_bin: Callable[[str], str], tmp_path: Path
) -> None:
    store, target = make_database("jg_crash_audit_store"), make_database("jg_crash_audit_target")
    pgbench_init(pg_bin("pgbench"), target)
    spool = tmp_path / "spool"
    raw = {
        "database_url": store,
        "http": {"listen": "127.0.0.1:0"},
        "postgres": {"listen": "127.0.0.1:0"},
        "audit": {"spool": str(spool), "flush_interval": "200ms"},
        "groups": {"engineers": [ALICE]},
        "resources": {"prod": {"type": "postgres", "url": target, "access": {"engineers": {
            "read": "allow", "write": "allow"}}}},
    }  # fmt: skip
    config = tmp_path / "jitgate.yaml"
    config.write_text(yaml.safe_dump(raw))
    token = token_for(config, ALICE)
    rng = random.Random(int(os.environ.get("JITGATE_CRASH_SEED", "7")))
    for _ in range(KILLS):
        serve, port = serve_process(config)
        bench = subprocess.Popen(
            [pg_bin("pgbench"), "-n", "-c", "4", "-T", "30", "-M", "simple",
             f"postgresql://alice%40example.com@127.0.0.1:{port}/prod?sslmode=disable"],
            env={**os.environ, "PGPASSWORD": token},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_for_commits(target, bench)
            time.sleep(rng.uniform(0.0, 1.5))
            os.kill(serve.pid, signal.SIGKILL)
            serve.wait(timeout=10)
        finally:
            serve.kill()
            bench.kill()
            bench.wait(timeout=30)
    assert list(spool.glob("*/*.seg")), "the killed gateways left no spool"
    recovering = GatewayThread(gateway_config(store, target, audit={"spool": str(spool)}))
    recovering.stop()
    assert not list(spool.glob("*/*.seg")), "the spools were not recovered"

    with psycopg.connect(target) as conn:
        committed = Counter(conn.execute("SELECT tid, bid, aid, delta FROM pgbench_history"))
    with psycopg.connect(store) as conn:
        inserts = conn.execute(
            "SELECT sql, outcome FROM statement_events"
            " WHERE sql LIKE 'INSERT INTO pgbench_history%'"
        ).fetchall()
        keys = conn.execute(
            "SELECT session_id, seq, extract(epoch FROM started_at) FROM statement_events"
        ).fetchall()
    audited: Counter[tuple[int, ...]] = Counter()
    for sql, outcome in inserts:
        match = _VALUES.search(sql)
        assert match is not None, sql
        if outcome in ("ok", "unknown"):
            audited[tuple(int(v) for v in match.groups())] += 1
    assert sum(committed.values()) > 100, "the load committed too little to prove anything"
    missing = committed - audited
    assert not missing, f"{sum(missing.values())} committed rows have no audited INSERT"
    assert len(keys) == len(set(keys)), "a statement was recorded twice"
    # Only a statement in flight at the kill (one per client) lacks its real outcome.
    with psycopg.connect(store) as conn:
        unknown = conn.execute(
            "SELECT count(*) FROM statement_events WHERE outcome = 'unknown'"
        ).fetchone()[0]
    assert unknown <= 4 * KILLS
    print(
        f"\n{KILLS} kills: {sum(committed.values())} rows committed, {len(keys)} statements"
        f" audited ({unknown} in flight at a kill, outcome unknown), 0 missing, 0 twice"
    )
    assert len({(k[0], k[1]) for k in keys}) == len(keys), "two records share a sequence number"


def _wait_for_commits(target: str, bench: subprocess.Popen[bytes]) -> None:
    """Until the load commits through the gateway (then a kill lands mid-load)."""
    with psycopg.connect(target, autocommit=True) as conn:
        before = conn.execute("SELECT count(*) FROM pgbench_history").fetchone()
        deadline = time.monotonic() + 30
        while conn.execute("SELECT count(*) FROM pgbench_history").fetchone() == before:
            assert bench.poll() is None, "pgbench stopped before committing anything"
            assert time.monotonic() < deadline, "nothing committed through the gateway in 30 s"
            time.sleep(0.02)
