"""A ``jitgate serve`` subprocess for the benchmark, and what /proc says about it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from bench import BenchError
from bench.pgbench import Endpoint

USER = "bench@example.com"
APPROVER = "approver@example.com"
# May write without review: pgbench's tpcb-like script runs as this user.
WRITER = "writer@example.com"
RESOURCE = "bench"
_STORE_VARIABLE = "JITGATE_BENCH_STORE_URL"
_TARGET_VARIABLE = "JITGATE_BENCH_TARGET_URL"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class CpuTimes(NamedTuple):
    """CPU seconds of a process: in user space and in the kernel (all its threads), and of
    its main thread alone (a jitgate's event loop; the whole of a single-threaded relay)."""

    user: float
    system: float
    main_thread: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def since(self, before: CpuTimes) -> CpuTimes:
        return CpuTimes(*(now - then for now, then in zip(self, before, strict=True)))


def cpu_times(pid: int) -> CpuTimes:
    """What /proc says process ``pid`` has spent so far."""
    user, system = _ticks(Path(f"/proc/{pid}/stat"))
    main = sum(_ticks(Path(f"/proc/{pid}/task/{pid}/stat")))
    return CpuTimes(user / _CLOCK_TICKS, system / _CLOCK_TICKS, main / _CLOCK_TICKS)


def _ticks(stat: Path) -> tuple[int, int]:
    """utime and stime of a ``stat`` file of /proc, in clock ticks."""
    # The command name may contain spaces and parentheses; the fields follow the last ")".
    fields = stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


async def wait_listening(
    port: int, process: asyncio.subprocess.Process, name: str, within: float, log: str = ""
) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; BenchError if ``process`` exits
    first (with ``log``, what it said) or ``within`` seconds pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if process.returncode is not None:
                raise BenchError(f"{name} exited at start{log}") from None
            if loop.time() > deadline:
                raise BenchError(f"{name} did not start listening") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return


async def stop_process(process: asyncio.subprocess.Process | None, within: float) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not ended ``within`` seconds."""
    if process is None or process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), within)
    except TimeoutError:
        process.kill()
        await process.wait()


def bench_config(pg_port: int, http_port: int) -> dict[str, Any]:
    """One engineer who may read resource ``bench`` (writes are held for review), one writer
    who may also write, and one approver; both URLs come from the environment, as the
    credentials in them would in production."""
    return {
        "database_url": f"${{{_STORE_VARIABLE}}}",
        "public_url": f"http://127.0.0.1:{http_port}",
        "http": {"listen": f"127.0.0.1:{http_port}"},
        # The idle-session row holds 200 sessions of one user at once.
        "postgres": {
            "listen": f"127.0.0.1:{pg_port}",
            "hold_timeout": "5s",
            "limits": {"connections_per_user": 1000},
        },
        "audit": {"flush_interval": "50ms"},
        "groups": {"engineers": [USER], "approvers": [APPROVER], "writers": [WRITER]},
        "resources": {
            RESOURCE: {
                "type": "postgres",
                "url": f"${{{_TARGET_VARIABLE}}}",
                "access": {
                    "engineers": {"read": "allow", "write": "review"},
                    "writers": {"read": "allow", "write": "allow"},
                },
                "approvers": ["approvers"],
            }
        },
    }


class GatewayProcess:
    """``python -m jitgate serve`` on free ports, with a token for :data:`USER`.

    Its log goes to ``workdir/gateway.log``; errors quote the end of it.
    """

    def __init__(
        self, workdir: Path, *, store_url: str, target_url: str,
        more: dict[str, Any] | None = None, notify: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        """``more``: sections added to :func:`bench_config` (chats), ``notify`` the
        resource's channels, ``secrets`` the environment variables they name as ``${VAR}``."""
        self.pg_port = free_port()
        self.http_port = free_port()
        self._config = workdir / "gateway.yaml"
        self._log = workdir / "gateway.log"
        self._more = more or {}
        self._notify = notify
        self._env = {**os.environ, _STORE_VARIABLE: store_url, _TARGET_VARIABLE: target_url,
                     **(secrets or {})}  # fmt: skip
        self._process: asyncio.subprocess.Process | None = None
        self.token = ""
        self.writer_token = ""

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the gateway is not running")
        return self._process.pid

    def endpoint(self) -> Endpoint:
        return Endpoint("127.0.0.1", self.pg_port, USER, RESOURCE, self.token)

    def writer_endpoint(self) -> Endpoint:
        """As :data:`WRITER`, whose writes are allowed without review."""
        return Endpoint("127.0.0.1", self.pg_port, WRITER, RESOURCE, self.writer_token)

    async def start(self) -> None:
        """Write the config, issue the token, start serving and wait for ``/healthz``."""
        config = {**bench_config(self.pg_port, self.http_port), **self._more}
        if self._notify:
            config["resources"][RESOURCE]["notify"] = self._notify
        self._config.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.token = await self.issue_token(USER)
        self.writer_token = await self.issue_token(WRITER)
        with self._log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self._jitgate("serve"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self._env,
            )
        await self._wait_healthy()

    async def issue_token(self, user: str) -> str:
        issue = await asyncio.create_subprocess_exec(
            *self._jitgate("token", "issue", "--user", user),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
        )
        stdout, stderr = await issue.communicate()
        if issue.returncode != 0:
            raise BenchError(f"jitgate token issue failed: {stderr.decode().strip()}")
        return stdout.decode().strip()

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if the gateway has not drained in time."""
        await stop_process(self._process, _STOP_TIMEOUT)

    def cpu_times(self) -> CpuTimes:
        return cpu_times(self.pid)

    def rss_kib(self) -> int:
        """The gateway's resident set size in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise BenchError(f"no VmRSS in /proc/{self.pid}/status")

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        return "(no gateway log)"

    def _jitgate(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "jitgate", *args, "--config", str(self._config)]

    async def _wait_healthy(self) -> None:
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is not None and self._process.returncode is not None:
                raise BenchError(f"the gateway exited at start:\n{self.log_tail()}")
            if await asyncio.to_thread(_status, url) == 200:
                return
            await asyncio.sleep(0.1)
        raise BenchError(f"the gateway was not healthy after {_START_TIMEOUT:.0f} s")


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None
