"""``python -m bench``: pgbench select-only, direct and through the gateway, in one run.

The paths alternate (direct, via, direct, via …) so that whatever else the machine is
doing slows both alike; each figure is the median over ``--rounds``. Simple-protocol runs
also go, in the same rounds, through a bare uvloop pass-through (:mod:`bench.passthrough`):
the floor any userspace proxy stands on, on this machine, today; and through PgBouncer
when the machine has it (:mod:`bench.pgbouncer`): the reference the speed bar was set
against, so a run on a faster or slower machine says where the bar stands there. When the
server's Unix socket is on this machine, a second gateway and a second PgBouncer reach the
target through it (a gateway deployed beside its database), measured the same way; the
ratio bar is judged for both transports, and the gateway's CPU per transaction is split
into the kernel's part and its event loop's (the audit batches) beside PgBouncer's. After
the runs the store's audit trail must hold
exactly one statement event per transaction pgbench reported through the gateways, and the
gateway's memory is read with 200 idle sessions open. Then the other bars: an approval's
decision to its result, the same through Teams and Slack, large results through psql, and
what the MCP governing proxy adds to a ``tools/call`` (:mod:`bench.mcp`).

Exit status: 0 when the run completed, even if a quality bar was missed (this is a
measurement); 1 when the run broke or a statement went unaudited.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import asyncpg

from bench import BenchError
from bench.approvals import ROUNDS, approval_latency, latency_lines
from bench.chat import chat_latency, chat_lines
from bench.gateway import RESOURCE, USER, CpuTimes, GatewayProcess
from bench.mcp import CALLS as MCP_CALLS
from bench.mcp import mcp_latency, mcp_lines
from bench.passthrough import PassThroughProcess
from bench.pgbench import SELECT_ONLY_SQL_PREFIX, Endpoint, Pgbench, PgbenchResult, Workload
from bench.pgbouncer import PgbouncerProcess, find_pgbouncer, pgbouncer_version
from bench.postgres import DATABASE_ERRORS, BenchServer
from bench.report import Comparison, cpu_line, goal_lines, parity_line, rounds_line, table
from bench.results import ROWS as RESULT_ROWS
from bench.results import prepare, result_lines, time_results
from proxy.fastpath import native_enabled, pump_enabled

STORE_DATABASE = "jg_bench_store"
TARGET_DATABASE = "jg_bench"
SCALE = 10
WORKLOADS = ((1, "simple"), (8, "simple"), (8, "extended"), (8, "prepared"))
IDLE_SESSIONS = 200
BARE_TITLE = (
    "the same rounds through a bare uvloop pass-through (bench/passthrough.py: no parsing,"
    " no policy, no audit), for scale; via = the pass-through"
)
PGBOUNCER_TITLE = (
    "the same rounds through {version} in session mode (bench/pgbouncer.py: the reference"
    " the speed bar was set against), for scale; via = PgBouncer"
)
SOCKET_GATEWAY_TITLE = (
    "the same rounds through a second jitgate whose resource URL names the target's Unix"
    " socket (a gateway beside its database; audited like the first), for scale;"
    " via = that gateway"
)
SOCKET_PGBOUNCER_TITLE = (
    "the same rounds through {version} with the target over its Unix socket, for scale;"
    " via = PgBouncer"
)
SOCKET_MISSING = (
    "target over its Unix socket: the server's socket is not on this machine, not measured"
)
PGBOUNCER_MISSING = (
    "pgbouncer: not installed, not measured (Debian: apt install pgbouncer; it is only the"
    " reference the ratio bar was set against)"
)
_CONNECT_CONCURRENCY = 20
_AUDIT_WAIT = 20.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, help="seconds per pgbench run (default 10)")
    parser.add_argument("--rounds", type=int, help="direct/via pairs per workload (default 3)")
    parser.add_argument("--quick", action="store_true", help="2 s runs, one round")
    args = parser.parse_args(argv)
    duration = args.duration or (2 if args.quick else 10)
    rounds = args.rounds or (1 if args.quick else 3)
    if duration < 1 or rounds < 1:
        parser.error("--duration and --rounds must be at least 1")
    try:
        return asyncio.run(_bench(duration, rounds, 20 if args.quick else IDLE_SESSIONS))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _bench(duration: int, rounds: int, idle_sessions: int) -> int:
    _say(f"load average at start: {_loadavg()}  ({os.cpu_count()} CPUs)")
    with BenchServer() as server, tempfile.TemporaryDirectory(prefix="jitgate-bench-") as tmp:
        pgbench = Pgbench(server.binary("pgbench"))
        _say(f"{await pgbench.version()}; PostgreSQL from {server.origin}")
        await server.recreate_database(STORE_DATABASE)
        await server.recreate_database(TARGET_DATABASE)
        _say(f"pgbench -i -s {SCALE} into {TARGET_DATABASE} …")
        await pgbench.initialize(server.endpoint(TARGET_DATABASE), SCALE)
        gateway = GatewayProcess(
            Path(tmp),
            store_url=server.url(STORE_DATABASE),
            target_url=server.url(TARGET_DATABASE),
        )
        target = server.endpoint(TARGET_DATABASE)
        bare = PassThroughProcess(target)
        references = [Reference("bare", "the bare pass-through", BARE_TITLE, bare)]
        found = find_pgbouncer()
        version = pgbouncer_version(found) if found is not None else ""
        if found is not None:
            process = PgbouncerProcess(found, target, Path(tmp) / "pgbouncer")
            title = PGBOUNCER_TITLE.format(version=version)
            references.append(Reference("pgbouncer", version, title, process))
        socket_dir = await server.socket_dir()
        if socket_dir is not None:
            (Path(tmp) / "socket").mkdir()
            beside = GatewayProcess(
                Path(tmp) / "socket",
                store_url=server.url(STORE_DATABASE),
                target_url=server.socket_url(TARGET_DATABASE, socket_dir),
            )
            label = "jitgate, target over its Unix socket"
            references.append(
                Reference("gw-socket", label, SOCKET_GATEWAY_TITLE, beside, audited=True)
            )
            if found is not None:
                upstream = server.socket_endpoint(TARGET_DATABASE, socket_dir)
                process = PgbouncerProcess(found, upstream, Path(tmp) / "pgbouncer-socket")
                title = SOCKET_PGBOUNCER_TITLE.format(version=version)
                label = f"{version}, target over its Unix socket"
                references.append(Reference("pgb-socket", label, title, process))
        try:
            await gateway.start()
            for reference in references:
                await reference.process.start()
            native = "on" if native_enabled() else "off (JITGATE_NATIVE=0 or not built)"
            pump = "on" if native_enabled() and pump_enabled() else "off"
            _say(
                f"gateway pid {gateway.pid} on 127.0.0.1:{gateway.pg_port};"
                f" native fast path {native}, pump {pump}"
            )
            if found is None:
                _say(PGBOUNCER_MISSING)
            if socket_dir is None:
                _say(SOCKET_MISSING)
            return await _measure(
                server, gateway, references, pgbench, duration, rounds, idle_sessions
            )
        except BenchError as exc:
            raise BenchError(f"{exc}\ngateway log:\n{gateway.log_tail()}") from exc
        finally:
            for reference in references:
                await reference.process.stop()
            await gateway.stop()


class _Relay(Protocol):
    def endpoint(self) -> Endpoint: ...
    def cpu_times(self) -> CpuTimes: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class Reference:
    """Another relay measured in the gateway's rounds (simple protocol only), for scale."""

    def __init__(
        self, name: str, label: str, title: str, process: _Relay, *, audited: bool = False
    ) -> None:
        self.name, self.label, self.title, self.process = name, label, title, process
        self.comparisons: list[Comparison] = []
        # A jitgate: its transactions are counted against the shared audit trail.
        self.audited = audited
        self.transactions = 0

    def at(self, clients: int) -> Comparison:
        """The simple-protocol comparison at ``clients``."""
        for comparison in self.comparisons:
            if comparison.clients == clients:
                return comparison
        comparison = Comparison(clients, "simple")
        self.comparisons.append(comparison)
        return comparison

    async def measure(self, pgbench: Pgbench, workload: Workload, plain: PgbenchResult) -> str:
        """One run through this relay beside the direct run ``plain``; its part of the
        round's line."""
        before = self.process.cpu_times()
        passed = await pgbench.select_only(self.process.endpoint(), workload)
        self.transactions += passed.transactions
        comparison = self.at(workload.clients)
        comparison.direct.append(plain)
        comparison.via.append(passed)
        cpu_us = comparison.add_cpu(self.process.cpu_times().since(before), passed.transactions)
        return f"   {self.name} {passed.tps:8.0f} tps ({cpu_us:.1f} us/tx)"

    def scale_line(self) -> str:
        at_8, at_1 = self.at(8), self.at(1)
        return (
            f"for scale: {self.label}, ratio@8 {at_8.ratio:.3f} at"
            f" {at_8.cpu_us_per_tx:.1f} us/tx, added latency@1 {at_1.added_latency_us:.1f} us"
        )


async def _measure(
    server: BenchServer,
    gateway: GatewayProcess,
    references: list[Reference],
    pgbench: Pgbench,
    duration: int,
    rounds: int,
    idle_sessions: int,
) -> int:
    direct, via = server.endpoint(TARGET_DATABASE), gateway.endpoint()
    warmup = Workload(clients=8, protocol="simple", duration=max(1, duration // 5))
    _say(f"warm-up: {warmup.duration} s each way, 8 clients")
    await pgbench.select_only(direct, warmup)
    served = (await pgbench.select_only(via, warmup)).transactions
    for reference in references:
        if reference.audited:
            reference.transactions += (
                await pgbench.select_only(reference.process.endpoint(), warmup)
            ).transactions
    comparisons = [Comparison(clients, protocol) for clients, protocol in WORKLOADS]
    for round_number in range(1, rounds + 1):
        for comparison in comparisons:
            workload = Workload(comparison.clients, comparison.protocol, duration)
            plain = await pgbench.select_only(direct, workload)
            before = gateway.cpu_times()
            gated = await pgbench.select_only(via, workload)
            comparison.direct.append(plain)
            comparison.via.append(gated)
            spent = gateway.cpu_times().since(before)
            cpu_us_per_tx = comparison.add_cpu(spent, gated.transactions)
            served += gated.transactions
            line = (
                f"round {round_number}/{rounds}  {comparison.label:<21}"
                f"direct {plain.tps:8.0f} tps {plain.latency_ms:7.3f} ms   "
                f"via {gated.tps:8.0f} tps {gated.latency_ms:7.3f} ms   "
                f"gateway cpu {cpu_us_per_tx:6.1f} us/tx"
            )
            if comparison.protocol == "simple":
                # Each round starts the references one further along, so that none is
                # always the furthest in time from the direct run it is compared with.
                turn = round_number % max(len(references), 1)
                for reference in references[turn:] + references[:turn]:
                    line += await reference.measure(pgbench, workload, plain)
            _say(line)
    tpcb = await _tpcb_like(pgbench, direct, gateway, references, duration, rounds)
    # Each tpcb-like transaction reads one balance with the select-only statement.
    served += sum(r.transactions for r in tpcb.via)
    served += sum(r.transactions for r in references if r.audited)
    audited, total_events, waited = await _audited_statements(server, served)
    rss_before, rss_after = await _idle_sessions_rss(gateway, idle_sessions)
    _say("")
    _say(
        f"pgbench select-only, scale {SCALE}, {duration} s per run, median of {rounds}"
        f" round{'s' if rounds > 1 else ''}; direct = PostgreSQL, via = jitgate"
        " (classification, policy, masking and audit on); latency = pgbench average"
    )
    _say(table(comparisons))
    _say("")
    for reference in references:
        _say(reference.title)
        _say(table(reference.comparisons))
        _say("")
    matched = audited == served
    _say(
        f"audit: {audited} statement events recorded, {served} transactions reported by pgbench"
        f" through the gateways: {'MATCH' if matched else 'MISMATCH'}"
        f" (plus {total_events - audited} events of pgbench's own start-up queries;"
        f" counted {waited:.1f} s after the last run)"
    )
    if not matched:
        for relay in (gateway, *(r.process for r in references if r.audited)):
            if isinstance(relay, GatewayProcess):
                _say(f"end of the log of the gateway on port {relay.pg_port}:\n{relay.log_tail()}")
    per_session = (rss_after - rss_before) / idle_sessions
    _say(
        f"gateway rss: {rss_before / 1024:.1f} MiB idle, {rss_after / 1024:.1f} MiB with"
        f" {idle_sessions} idle sessions: {per_session:+.1f} KiB per session"
    )
    latencies = await approval_latency(
        server, gateway, TARGET_DATABASE, rounds=5 if rounds == 1 else ROUNDS
    )
    chats = await chat_latency(server, rounds=5 if rounds == 1 else ROUNDS)
    mcp_calls = await mcp_latency(server, calls=100 if rounds == 1 else MCP_CALLS)
    result_rows = RESULT_ROWS if rounds > 1 else RESULT_ROWS // 10
    await prepare(server, TARGET_DATABASE, result_rows)
    timings = await time_results(
        server.binary("psql"), server.endpoint(TARGET_DATABASE), gateway.endpoint(), rounds
    )
    _say(f"load average at end: {_loadavg()}")
    _say("")
    at_8, at_1 = comparisons[1], comparisons[0]
    named = {reference.name: reference for reference in references}
    beside = named.get("gw-socket")
    for line in goal_lines(
        at_8.ratio, at_1.added_latency_us, None if beside is None else beside.at(8).ratio
    ):
        _say(line)
    _say(rounds_line([("jitgate", at_8), *((r.name, r.at(8)) for r in references)]))
    for reference in references:
        _say(reference.scale_line())
    if "pgbouncer" in named:
        _say(parity_line(at_8, named["pgbouncer"].at(8)))
    _say(cpu_line(at_8, named["pgbouncer"].at(8) if "pgbouncer" in named else None))
    _say(f"pgbench tpcb-like (writes allowed by policy), 8 clients: direct {tpcb.direct_tps:.0f}"
         f" tps, jitgate {tpcb.via_tps:.0f} tps ({tpcb.ratio:.3f} of direct,"
         f" {tpcb.cpu_us_per_tx:.1f} us/tx)")  # fmt: skip
    if "pgbouncer" in named and named["pgbouncer"].comparisons[-1].protocol == "tpcb-like":
        _say(parity_line(tpcb, named["pgbouncer"].comparisons[-1], "tpcb-like"))
    if beside is not None and "pgb-socket" in named:
        _say(parity_line(beside.at(8), named["pgb-socket"].at(8), "target over its Unix socket"))
    for line in latency_lines(latencies):
        _say(line)
    for line in chat_lines(chats):
        _say(line)
    for line in mcp_lines(mcp_calls):
        _say(line)
    for line in result_lines(timings, result_rows):
        _say(line)
    return 0 if matched else 1


async def _tpcb_like(
    pgbench: Pgbench,
    direct: Endpoint,
    gateway: GatewayProcess,
    references: list[Reference],
    duration: int,
    rounds: int,
) -> Comparison:
    """pgbench's default tpcb-like script at 8 clients, direct, through the gateway as a
    user who may write, and through PgBouncer, round by round."""
    tpcb = Comparison(8, "tpcb-like")
    pgbouncer = next((r for r in references if r.name == "pgbouncer"), None)
    beside = None
    if pgbouncer is not None:
        beside = Comparison(8, "tpcb-like")
        pgbouncer.comparisons.append(beside)
    for round_number in range(1, rounds + 1):
        plain = await pgbench.tpcb_like(direct, 8, duration)
        before = gateway.cpu_times()
        gated = await pgbench.tpcb_like(gateway.writer_endpoint(), 8, duration)
        tpcb.direct.append(plain)
        tpcb.via.append(gated)
        cpu = tpcb.add_cpu(gateway.cpu_times().since(before), gated.transactions)
        line = (
            f"round {round_number}/{rounds}  8 clients, tpcb-like  direct {plain.tps:8.0f} tps"
            f"   via {gated.tps:8.0f} tps   gateway cpu {cpu:6.1f} us/tx"
        )
        if pgbouncer is not None and beside is not None:
            before = pgbouncer.process.cpu_times()
            passed = await pgbench.tpcb_like(pgbouncer.process.endpoint(), 8, duration)
            beside.direct.append(plain)
            beside.via.append(passed)
            pgb_cpu = beside.add_cpu(pgbouncer.process.cpu_times().since(before),
                                     passed.transactions)  # fmt: skip
            line += f"   pgbouncer {passed.tps:8.0f} tps ({pgb_cpu:.1f} us/tx)"
        _say(line)
    return tpcb


async def _audited_statements(server: BenchServer, expected: int) -> tuple[int, int, float]:
    """(select-only statement events, all statement events, seconds waited) once the former
    reach ``expected`` or :data:`_AUDIT_WAIT` seconds have passed: the gateways flush in
    batches, and one count over millions of events takes a while itself."""
    conn = await server.connect(STORE_DATABASE)
    try:
        started = time.monotonic()
        deadline = started + _AUDIT_WAIT
        while True:
            (row,) = await conn.fetch(
                "SELECT count(*) FILTER (WHERE sql LIKE $1) AS audited, count(*) AS total"
                " FROM statement_events",
                SELECT_ONLY_SQL_PREFIX + "%",
            )
            audited, total = int(row["audited"]), int(row["total"])
            now = time.monotonic()
            if audited == expected or now >= deadline:
                return audited, total, now - started
            await asyncio.sleep(0.1)
    except DATABASE_ERRORS as exc:
        raise BenchError(f"cannot count the audit trail: {exc}") from exc
    finally:
        await conn.close()


async def _idle_sessions_rss(gateway: GatewayProcess, count: int) -> tuple[int, int]:
    """The gateway's RSS (KiB) before and after opening ``count`` idle sessions
    (:data:`IDLE_SESSIONS` in a full run)."""
    before = gateway.rss_kib()
    gate = asyncio.Semaphore(_CONNECT_CONCURRENCY)

    async def connect() -> asyncpg.Connection:
        async with gate:
            return await asyncpg.connect(
                host="127.0.0.1",
                port=gateway.pg_port,
                user=USER,
                password=gateway.token,
                database=RESOURCE,
                ssl=False,
                timeout=30,
            )

    opened = await asyncio.gather(*(connect() for _ in range(count)), return_exceptions=True)
    connections = [c for c in opened if isinstance(c, asyncpg.Connection)]
    try:
        failures = [c for c in opened if isinstance(c, BaseException)]
        if failures:
            raise BenchError(
                f"{len(failures)} of {count} sessions failed to open: {failures[0]}"
            ) from failures[0]
        # Let the gateway settle every session before reading its memory.
        await asyncio.sleep(1.0)
        return before, gateway.rss_kib()
    finally:
        await asyncio.gather(*(c.close(timeout=5) for c in connections), return_exceptions=True)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3])


def _say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
