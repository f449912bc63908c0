"""``python -m bench --quick`` end to end against the suite's server: it must produce the
side-by-side table and prove every statement through the gateway was audited. The numbers
themselves are not judged here (see DESIGN.md, "Quality bars")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bench.pgbench import Endpoint
from bench.pgbouncer import PgbouncerProcess, find_pgbouncer
from tests.conftest import over_unix_socket

ROOT = Path(__file__).resolve().parent.parent
_ROW = re.compile(
    r"^\s*(?P<clients>\d+)\s+(?P<protocol>simple|extended|prepared)\s+(?P<direct>\d+)"
    r"\s+(?P<via>\d+)"
    r"\s+(?P<ratio>\d+\.\d+)\s+[\d.]+\s+[\d.]+\s+-?[\d.]+\s+(?P<cpu>[\d.]+)$",
    re.M,
)
_FLOOR = re.compile(
    r"^for scale: the bare pass-through, ratio@8 (\d+\.\d+) at ([\d.]+) us/tx", re.M
)
_PGBOUNCER = re.compile(r"^for scale: PgBouncer [\d.]+, ratio@8 (\d+\.\d+) at ([\d.]+) us/tx", re.M)
_PARITY = re.compile(
    r"^gateway vs pgbouncer @8: (\d+\.\d+) of PgBouncer's rate \((\d+) vs (\d+) tps\)", re.M
)
_SOCKET = re.compile(
    r"^for scale: jitgate, target over its Unix socket, ratio@8 (\d+\.\d+) at ([\d.]+) us/tx",
    re.M,
)
_SOCKET_PARITY = re.compile(
    r"^gateway vs pgbouncer @8, target over its Unix socket: (\d+\.\d+) of PgBouncer's rate"
    r" \((\d+) vs (\d+) tps\)",
    re.M,
)
_CPU = re.compile(
    r"^gateway cpu @8: ([\d.]+) us/tx, in the kernel ([\d.]+), on the event loop ([\d.]+)"
    r"(?:; PgBouncer ([\d.]+) us/tx, in the kernel ([\d.]+))?$",
    re.M,
)
_AUDIT = re.compile(r"^audit: (\d+) statement events recorded, (\d+) transactions", re.M)
_ROUNDS = re.compile(r"^ratio@8 round by round: jitgate ([\d. ]+?)(?:; (.*))?$", re.M)
_CHAT_ROW = re.compile(
    r"^  (?:Microsoft Teams \(Action\.Execute\)|Slack \(block_actions\)) +p50 +([\d.]+) ms"
    r" +p90 +([\d.]+) ms +max +([\d.]+) ms +over (\d+) approvals$",
    re.M,
)
_MCP_ROW = re.compile(
    r"^  (direct to the MCP server|through the gateway) +p50 ([\d.]+)  p90 ([\d.]+)$", re.M
)
_MCP_VERDICT = re.compile(
    r"^(PASS|FAIL)  MCP tools/call added latency <= 2 ms p50: (-?[\d.]+) ms$", re.M
)
_CHAT_VERDICT = re.compile(
    r"^(PASS|FAIL)  (teams|slack) decision to threaded result <= 300 ms p50: ([\d.]+) ms$", re.M
)


def test_quick_bench_reports_ratios_and_a_complete_audit_trail(pg_dsn: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        env={**os.environ, "JITGATE_BENCH_DSN": pg_dsn},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows: dict[tuple[int, str], re.Match[str]] = {}
    for row in _ROW.finditer(run.stdout):  # the gateway's table comes first
        rows.setdefault((int(row["clients"]), row["protocol"]), row)
    assert set(rows) == {(1, "simple"), (8, "simple"), (8, "extended"), (8, "prepared")}, run.stdout
    for row in rows.values():
        direct, via = int(row["direct"]), int(row["via"])
        assert direct > 0 and via > 0
        assert abs(float(row["ratio"]) - via / direct) < 0.01
    floor = _FLOOR.search(run.stdout)
    assert floor is not None, run.stdout
    assert float(floor.group(1)) > 0 and float(floor.group(2)) > 0
    if find_pgbouncer() is None:
        assert "pgbouncer: not installed, not measured" in run.stdout, run.stdout
    else:
        reference = _PGBOUNCER.search(run.stdout)
        assert reference is not None, run.stdout
        assert float(reference.group(1)) > 0 and float(reference.group(2)) > 0
        parity = _PARITY.search(run.stdout)
        assert parity is not None, run.stdout
        gateway, pgbouncer = int(parity.group(2)), int(parity.group(3))
        assert gateway == int(rows[(8, "simple")]["via"])
        assert abs(float(parity.group(1)) - gateway / pgbouncer) < 0.01
    socket = _SOCKET.search(run.stdout)
    if over_unix_socket(pg_dsn) is None:
        assert socket is None and "the server's socket is not on this machine" in run.stdout
    else:
        # A second gateway reached the target over its socket, audited with the first.
        assert socket is not None, run.stdout
        assert float(socket.group(1)) > 0 and float(socket.group(2)) > 0
        assert re.search(
            r"^(PASS|FAIL)  ratio@8 >= 0\.65, target over its Unix socket: \d+\.\d+$",
            run.stdout,
            re.M,
        )
        if find_pgbouncer() is not None:
            assert _SOCKET_PARITY.search(run.stdout) is not None, run.stdout
    # Where the CPU goes: the kernel's part and the event loop's are parts of the total the
    # table gives (gw cpu us/tx at 8 clients), and PgBouncer's is there when it was measured.
    cpu = _CPU.search(run.stdout)
    assert cpu is not None, run.stdout
    total, kernel, loop = (float(cpu.group(i)) for i in (1, 2, 3))
    assert total == float(rows[(8, "simple")]["cpu"])
    assert 0 < kernel <= total and 0 < loop <= total
    assert (cpu.group(4) is not None) == (find_pgbouncer() is not None)
    if cpu.group(4) is not None:
        assert 0 < float(cpu.group(5)) <= float(cpu.group(4))
    audit = _AUDIT.search(run.stdout)
    assert audit is not None, run.stdout
    audited, served = int(audit.group(1)), int(audit.group(2))
    assert served > 0
    assert audited == served
    assert re.search(r"^(PASS|FAIL)  ratio@8 >= 0\.65: \d+\.\d+$", run.stdout, re.M)
    # One round (--quick): each relay's round-by-round ratio is its ratio in the table.
    rounds = _ROUNDS.search(run.stdout)
    assert rounds is not None, run.stdout
    assert abs(float(rounds.group(1)) - float(rows[(8, "simple")]["ratio"])) < 0.002
    others = (
        dict(part.split(" ") for part in rounds.group(2).split("; ")) if rounds.group(2) else {}
    )
    assert {"bare"} <= set(others) and ("pgbouncer" in others) == (find_pgbouncer() is not None)
    assert re.search(r"^(PASS|FAIL)  added latency@1 <= 50 us: -?\d+\.\d+ us$", run.stdout, re.M)
    # The tpcb-like row: writes allowed by policy, its transactions audited with the rest.
    tpcb = re.search(
        r"^pgbench tpcb-like .*: direct (\d+) tps, jitgate (\d+) tps \((\d+\.\d+) of direct",
        run.stdout,
        re.M,
    )
    assert tpcb is not None, run.stdout
    assert int(tpcb.group(2)) > 0
    assert abs(float(tpcb.group(3)) - int(tpcb.group(2)) / int(tpcb.group(1))) < 0.01
    assert_chat_rows(run.stdout, approvals=5)
    assert_mcp_rows(run.stdout, calls=100)


def assert_mcp_rows(stdout: str, calls: int) -> None:
    """Direct and through the gateway, then the verdict on the difference of the medians."""
    assert f"MCP tools/call, {calls} calls a path, alternating (ms):" in stdout, stdout
    rows = {path: (float(p50), float(p90)) for path, p50, p90 in _MCP_ROW.findall(stdout)}
    verdict = _MCP_VERDICT.search(stdout)
    assert len(rows) == 2 and verdict is not None, stdout
    (direct, _), (via, _) = rows["direct to the MCP server"], rows["through the gateway"]
    assert direct > 0 and via > 0 and all(p50 <= p90 for p50, p90 in rows.values())
    added = float(verdict.group(2))
    assert abs(added - (via - direct)) < 0.002
    assert verdict.group(1) == ("PASS" if added <= 2 else "FAIL")


def assert_chat_rows(stdout: str, approvals: int) -> None:
    """Teams and Slack side by side: each chat's row, then its verdict on the p50 it shows."""
    rows = _CHAT_ROW.findall(stdout)
    verdicts = _CHAT_VERDICT.findall(stdout)
    assert len(rows) == 2 and [chat for _, chat, _ in verdicts] == ["teams", "slack"], stdout
    for (p50, p90, most, count), (verdict, _, judged) in zip(rows, verdicts, strict=True):
        assert 0 < float(p50) <= float(p90) <= float(most) and int(count) == approvals
        assert judged == p50 and verdict == ("PASS" if float(p50) <= 300 else "FAIL")


def test_chat_bench_times_a_click_to_the_threaded_result_in_both_chats(pg_dsn: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.chat", "--rounds", "3"],
        cwd=ROOT,
        env={**os.environ, "JITGATE_BENCH_DSN": pg_dsn},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert_chat_rows(run.stdout, approvals=3)


def test_mcp_bench_times_a_proxied_tool_call_beside_the_direct_one(pg_dsn: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.mcp", "--calls", "50"],
        cwd=ROOT,
        env={**os.environ, "JITGATE_BENCH_DSN": pg_dsn},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert_mcp_rows(run.stdout, calls=50)


def test_pgbouncer_config_points_at_the_target_in_session_mode(tmp_path: Path) -> None:
    target = Endpoint("127.0.0.1", 5433, "bench owner", "jg_bench", "s3cret")
    config = PgbouncerProcess(Path("/usr/sbin/pgbouncer"), target, tmp_path).config()
    assert (
        "jg_bench = host=127.0.0.1 port=5433 dbname=jg_bench user='bench owner' password=s3cret"
    ) in config.splitlines()
    assert "pool_mode = session" in config.splitlines()
    assert "listen_addr = 127.0.0.1" in config.splitlines()
