"""PgBouncer beside the gateway, when the machine has it: the reference the proxy's speed
bar was set against ("pgbouncer parity while doing far more").

PgBouncer is not a dependency: the run measures it when a ``pgbouncer`` binary is on
``PATH`` or in ``/usr/sbin`` (Debian's package), and says it was not measured otherwise.
It runs in session mode (one server connection per client connection, as the gateway
holds one target connection per session), listens on TCP only, and lets clients in
without authentication (``auth_type = any``): its steady-state cost per round trip is the
relay itself, which is what the ratio compares. As root it drops to the account the
throw-away cluster runs as (PgBouncer refuses to run as root).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

from bench import BenchError
from bench.gateway import CpuTimes, cpu_times, free_port, stop_process, wait_listening
from bench.pgbench import Endpoint
from jitgate.cluster import server_account

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_SYSTEM_PLACES = (Path("/usr/sbin/pgbouncer"), Path("/usr/bin/pgbouncer"))


def find_pgbouncer() -> Path | None:
    """The ``pgbouncer`` binary on ``PATH`` or where Debian installs it; None if absent."""
    found = shutil.which("pgbouncer")
    if found:
        return Path(found)
    return next((place for place in _SYSTEM_PLACES if os.access(place, os.X_OK)), None)


def pgbouncer_version(binary: Path) -> str:
    """``PgBouncer 1.18.0`` (the first line ``--version`` prints)."""
    try:
        run = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"{binary} --version failed: {exc}") from exc
    return run.stdout.strip().splitlines()[0] if run.stdout.strip() else "PgBouncer"


def _value(text: str) -> str:
    """A value in a PgBouncer connection string, quoted when it needs to be."""
    if text and all(c.isalnum() or c in "._-@" for c in text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class PgbouncerProcess:
    """``pgbouncer`` on a free port in front of ``upstream``, its files in ``workdir``."""

    def __init__(self, binary: Path, upstream: Endpoint, workdir: Path) -> None:
        self.binary = binary
        self.upstream = upstream
        self.workdir = workdir
        self.port = free_port()
        self._process: asyncio.subprocess.Process | None = None

    def endpoint(self) -> Endpoint:
        return Endpoint("127.0.0.1", self.port, self.upstream.user, self.upstream.database)

    def config(self) -> str:
        target = self.upstream
        server = (
            f"host={_value(target.host)} port={target.port}"
            f" dbname={_value(target.database)} user={_value(target.user)}"
        )
        if target.password is not None:
            server += f" password={_value(target.password)}"
        return "\n".join(
            [
                "[databases]",
                f"{target.database} = {server}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                "auth_type = any",
                "pool_mode = session",
                "max_client_conn = 400",
                "default_pool_size = 400",
                "ignore_startup_parameters = extra_float_digits,options",
                "",
            ]
        )

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ini = self.workdir / "pgbouncer.ini"
        ini.write_text(self.config(), encoding="utf-8")
        command = [str(self.binary), "-q", str(ini)]
        account = server_account()
        if account is not None:
            os.chown(ini, account.pw_uid, account.pw_gid)
            command[1:1] = ["-u", account.pw_name]
        log = (self.workdir / "pgbouncer.log").open("wb")
        try:
            self._process = await asyncio.create_subprocess_exec(
                *command, stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        await wait_listening(
            self.port, self._process, "pgbouncer", _START_TIMEOUT, f":\n{self.log_tail()}"
        )

    def cpu_times(self) -> CpuTimes:
        if self._process is None:
            raise RuntimeError("pgbouncer is not running")
        return cpu_times(self._process.pid)

    def log_tail(self, lines: int = 10) -> str:
        path = self.workdir / "pgbouncer.log"
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> None:
        await stop_process(self._process, _STOP_TIMEOUT)
