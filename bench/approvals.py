"""Approval to result: how long a held client waits once the decision arrives.

A client (asyncpg, through the gateway) sends a small write that policy holds; once the
request is pending, the approver's decision is POSTed to the REST API and the clock runs
from sending that request until the client has its result. Measured ``ROUNDS`` times; the
goal (DESIGN.md) is ≤ 300 ms at the median.
"""

from __future__ import annotations

import asyncio
import time
from statistics import median, quantiles

import aiohttp
import asyncpg

from bench import BenchError
from bench.gateway import APPROVER, RESOURCE, USER, GatewayProcess
from bench.postgres import DATABASE_ERRORS, BenchServer

ROUNDS = 20
GOAL_MS = 300.0
_TABLE = "jg_bench_counter"
_APPEAR_TIMEOUT = 10.0


async def approval_latency(
    server: BenchServer, gateway: GatewayProcess, target_database: str, rounds: int = ROUNDS
) -> list[float]:
    """Milliseconds from each decision request to the held client's result."""
    direct = await server.connect(target_database)
    try:
        await direct.execute(f"DROP TABLE IF EXISTS {_TABLE}")
        await direct.execute(f"CREATE TABLE {_TABLE} (id int PRIMARY KEY, n int NOT NULL)")
        await direct.execute(f"INSERT INTO {_TABLE} VALUES (1, 0)")
    except DATABASE_ERRORS as exc:
        raise BenchError(f"cannot prepare {_TABLE}: {exc}") from exc
    approver = await gateway.issue_token(APPROVER)
    base = f"http://127.0.0.1:{gateway.http_port}/api"
    headers = {"Authorization": f"Bearer {approver}"}
    client = await asyncpg.connect(
        host="127.0.0.1", port=gateway.pg_port, user=USER, password=gateway.token,
        database=RESOURCE, ssl=False, timeout=30,
    )  # fmt: skip
    latencies: list[float] = []
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            for _ in range(rounds):
                held = asyncio.create_task(
                    client.execute(f"UPDATE {_TABLE} SET n = n + 1 WHERE id = 1")
                )
                request_id = await _pending_request(http, base)
                started = time.perf_counter()
                async with http.post(
                    f"{base}/requests/{request_id}/decisions", json={"verdict": "approve"}
                ) as response:
                    if response.status != 200:
                        raise BenchError(f"decision refused: {await response.text()}")
                status = await asyncio.wait_for(held, 30)
                latencies.append((time.perf_counter() - started) * 1000)
                if status != "UPDATE 1":
                    raise BenchError(f"the approved statement answered {status!r}")
        count = await direct.fetchval(f"SELECT n FROM {_TABLE} WHERE id = 1")
        if count != rounds:
            raise BenchError(f"{rounds} approvals ran the statement {count} times")
    finally:
        await client.close(timeout=5)
        await direct.close()
    return latencies


async def _pending_request(http: aiohttp.ClientSession, base: str) -> int:
    deadline = time.monotonic() + _APPEAR_TIMEOUT
    while time.monotonic() < deadline:
        async with http.get(f"{base}/requests", params={"pending": "1"}) as response:
            body = await response.json()
        if response.status != 200:
            raise BenchError(f"cannot list pending requests: {body}")
        if body["requests"]:
            return int(body["requests"][0]["id"])
        await asyncio.sleep(0.01)
    raise BenchError("the held statement did not become a pending request")


def latency_lines(latencies: list[float]) -> list[str]:
    p50 = median(latencies)
    p90 = quantiles(latencies, n=10, method="inclusive")[-1] if len(latencies) > 1 else p50
    verdict = "meets" if p50 <= GOAL_MS else "MISSES"
    return [
        f"approval to result: p50 {p50:.1f} ms, p90 {p90:.1f} ms, max {max(latencies):.1f} ms"
        f" over {len(latencies)} approvals (each ran exactly once)",
        f"goal: approval to result <= {GOAL_MS:.0f} ms p50: {verdict}",
    ]
