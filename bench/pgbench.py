"""Running pgbench and reading its report."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError

# Statements of the built-in select-only script; pgbench sends a few of its own at start-up.
SELECT_ONLY_SQL_PREFIX = "SELECT abalance FROM pgbench_accounts"

_TRANSACTIONS = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_LATENCY = re.compile(r"^latency average = ([\d.]+) ms", re.M)
# pgbench ≥ 14 prints one tps line; older releases print the rate with and without the
# time spent connecting, and the latter is the one comparable with the newer line.
_TPS = re.compile(
    r"^tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)",
    re.M,
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where pgbench connects: host, port, role, database and the password (or none)."""

    host: str
    port: int
    user: str
    database: str
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Workload:
    """The select-only script with ``clients`` connections for ``duration`` seconds, sent
    with pgbench's query ``protocol`` (``simple``, ``extended`` or ``prepared``)."""

    clients: int
    protocol: str
    duration: int


@dataclass(frozen=True, slots=True)
class PgbenchResult:
    """One pgbench run: committed transactions, their rate and mean latency."""

    transactions: int
    tps: float
    latency_ms: float


def parse_report(text: str) -> PgbenchResult:
    """The numbers of pgbench's closing report; raises BenchError if one is missing."""
    transactions, tps, latency = (p.search(text) for p in (_TRANSACTIONS, _TPS, _LATENCY))
    if transactions is None or tps is None or latency is None:
        raise BenchError(f"pgbench printed no complete report:\n{text.strip()}")
    return PgbenchResult(
        transactions=int(transactions.group(1)),
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)),
    )


class Pgbench:
    """One pgbench binary. Every connection it makes is plain TCP (``PGSSLMODE=disable``), so
    the direct and the gateway path differ only by the gateway."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    async def version(self) -> str:
        return (await self._run(["--version"], None)).strip()

    async def initialize(self, target: Endpoint, scale: int) -> None:
        await self._run(["-i", "-s", str(scale), "-q", *self._connection(target)], target)

    async def select_only(self, target: Endpoint, workload: Workload) -> PgbenchResult:
        threads = min(workload.clients, 2)
        args = [
            "-S", "-n", "-M", workload.protocol, "-c", str(workload.clients),
            "-j", str(threads), "-T", str(workload.duration), *self._connection(target),
        ]  # fmt: skip
        return parse_report(await self._run(args, target))

    async def tpcb_like(self, target: Endpoint, clients: int, duration: int) -> PgbenchResult:
        """pgbench's default script (three UPDATEs, a SELECT and an INSERT in a transaction),
        simple protocol."""
        args = [
            "-n", "-M", "simple", "-c", str(clients), "-j", str(min(clients, 2)),
            "-T", str(duration), *self._connection(target),
        ]  # fmt: skip
        return parse_report(await self._run(args, target))

    @staticmethod
    def _connection(target: Endpoint) -> list[str]:
        return ["-h", target.host, "-p", str(target.port), "-U", target.user, target.database]

    async def _run(self, args: list[str], target: Endpoint | None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        env["PGSSLMODE"] = "disable"
        if target is not None and target.password is not None:
            env["PGPASSWORD"] = target.password
        process = await asyncio.create_subprocess_exec(
            str(self.binary),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        stdout, stderr = await process.communicate()
        if process.returncode != 0:
            output = (stderr or stdout).decode(errors="replace").strip()
            command = " ".join(["pgbench", *args])
            raise BenchError(f"{command} failed (exit {process.returncode}): {output}")
        return stdout.decode(errors="replace")
