"""``python -m jitgate.demo`` end to end: a real cluster, a real gateway, the printed psql line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
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

    async def start_psql(self, sql: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self.psql,
            "-AtX",
            "-c",
            sql,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    @contextlib.asynccontextmanager
    async def inbox_as(self, user: str) -> AsyncIterator[Inbox]:
        """The web inbox the demo printed, with ``user`` picked as a visitor would."""
        printed = next(line for line in self.output if "/inbox" in line)
        match = re.search(r"(http://[\w.:]+)/inbox", printed)
        assert match is not None, printed
        # unsafe: keep the cookies a listener on an IP address sets.
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(match.group(1), cookie_jar=jar) as http:
            inbox = Inbox(http, match.group(1))
            async with inbox.post("/login", {"user": user}) as picked:
                assert picked.status == 200 and user in await picked.text()
            yield inbox


@dataclass
class Inbox:
    http: aiohttp.ClientSession
    origin: str

    def post(
        self, path: str, form: dict[str, str]
    ) -> contextlib.AbstractAsyncContextManager[aiohttp.ClientResponse]:
        return self.http.post(path, data=form, headers={"Origin": self.origin})

    async def decide(self, request_id: int, **form: str) -> int:
        async with self.post(f"/requests/{request_id}/decide", form) as response:
            return response.status

    async def awaiting(self) -> int:
        """The id of the first request the inbox shows as awaiting the user's decision."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            async with self.http.get("/inbox") as response:
                page = await response.text()
            awaiting = page.split("<h2>Your requests</h2>")[0]
            found = re.search(r'href="/requests/(\d+)"', awaiting)
            if found:
                return int(found.group(1))
            await asyncio.sleep(0.1)
        raise AssertionError("no request reached the inbox")


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


def test_alice_reads_on_the_read_only_role(demo: RunningDemo) -> None:
    result = demo.run_psql("SELECT current_user, current_setting('default_transaction_read_only')")
    assert result.stdout.strip() == "shop_reader|on", result.stderr


def test_reads_of_the_fake_pii_come_back_masked(demo: RunningDemo) -> None:
    result = demo.run_psql("SELECT email, ssn, card_number FROM customers ORDER BY id LIMIT 3")
    assert result.returncode == 0, result.stderr
    rows = [line.split("|") for line in result.stdout.strip().splitlines()]
    assert len(rows) == 3
    for email, ssn, card in rows:
        assert email == "[EMAIL]" and ssn == "[US_SSN]"
        assert card.startswith("*") and card[-4:].isdigit()


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


async def test_a_write_is_held_until_bob_approves_it_in_the_web_inbox(demo: RunningDemo) -> None:
    held = await demo.start_psql("DELETE FROM carts WHERE id = 1")
    async with demo.inbox_as("bob@example.com") as inbox:
        request_id = await inbox.awaiting()
        assert await inbox.decide(request_id, verdict="approve") == 200
    stdout, stderr = await asyncio.wait_for(held.communicate(), 60)
    assert held.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == "DELETE 1"
    assert f"request #{request_id}" in stderr.decode()  # the NOTICE said where it was posted
    assert demo.run_psql("SELECT count(*) FROM carts WHERE id = 1").stdout.strip() == "0"


async def test_a_rejected_write_does_not_run(demo: RunningDemo) -> None:
    held = await demo.start_psql("DELETE FROM carts WHERE id = 2")
    async with demo.inbox_as("bob@example.com") as inbox:
        request_id = await inbox.awaiting()
        assert await inbox.decide(request_id, verdict="reject", reason="carts stay") == 200
    _, stderr = await asyncio.wait_for(held.communicate(), 60)
    assert held.returncode != 0
    assert "ERROR:" in stderr.decode() and "carts stay" in stderr.decode()
    assert demo.run_psql("SELECT count(*) FROM carts WHERE id = 2").stdout.strip() == "1"


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
