"""``python -m jitgate.demo`` end to end: a real cluster, a real gateway, the printed psql line."""

from __future__ import annotations

import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jitgate.cluster import Cluster

READY_TIMEOUT = 120.0


@dataclass
class RunningDemo:
    process: subprocess.Popen[str]
    datadir: Path
    psql: list[str]
    output: list[str]

    def run_psql(self, sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.psql, "-AtX", "-c", sql], capture_output=True, text=True, timeout=30
        )


def _read_lines(stream: Iterator[str], output: list[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        output.append(line)
        lines.put(line)
    lines.put(None)


@pytest.fixture(scope="module")
def demo() -> Iterator[RunningDemo]:
    # Outside pytest's private tmp tree: the server account must be able to enter it.
    root = Path(tempfile.mkdtemp(prefix="jitgate-demo-"))
    process = subprocess.Popen(
        [sys.executable, "-m", "jitgate.demo"],
        env={**os.environ, "JITGATE_DEMO_DIR": str(root)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, output, lines), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        psql: list[str] | None = None
        while psql is None:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            assert line is not None, "the demo ended early:\n" + "".join(output)
            if "dbname=shop" in line:
                psql = shlex.split(line)
        yield RunningDemo(process, root / "pgdata", psql, output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(10)
        process.stdout.close()
        Cluster(root / "pgdata").stop()
        shutil.rmtree(root, ignore_errors=True)


def test_the_printed_psql_line_reads_the_shop(demo: RunningDemo) -> None:
    result = demo.run_psql("SELECT count(*) FROM customers")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1000"


def test_the_demo_session_is_audited(demo: RunningDemo) -> None:
    marker = "SELECT 'demo-audit-marker'"
    assert demo.run_psql(marker).returncode == 0
    printed = next(line for line in demo.output if "statement_events" in line and " -c " in line)
    psql, store_url = shlex.split(printed)[:2]
    deadline = time.monotonic() + 10
    recorded = ""
    while time.monotonic() < deadline and "alice@example.com" not in recorded:
        recorded = subprocess.run(
            [psql, "-X", "-At", store_url, "-c",
             "SELECT s.identity FROM statement_events e JOIN sessions s ON s.id = e.session_id"
             f" WHERE e.sql = $${marker}$$"],
            capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip
        time.sleep(0.2)
    assert recorded.strip() == "alice@example.com"


def test_a_write_is_held_and_does_not_run(demo: RunningDemo) -> None:
    result = demo.run_psql("DELETE FROM carts WHERE id = 1")
    assert result.returncode != 0
    assert "ERROR:  approval required" in result.stderr
    assert demo.run_psql("SELECT count(*) FROM carts WHERE id = 1").stdout.strip() == "1"


def test_sigterm_stops_the_gateway_and_the_cluster(demo: RunningDemo) -> None:
    demo.process.send_signal(signal.SIGTERM)
    assert demo.process.wait(60) == 0, "".join(demo.output)
    assert not (demo.datadir / "postmaster.pid").exists()
    assert not _processes_using(demo.datadir)


def _processes_using(datadir: Path) -> list[str]:
    """Command lines of live processes that name ``datadir`` (``postgres -D DATADIR``)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if str(datadir) in words:
            found.append(" ".join(words))
    return found
