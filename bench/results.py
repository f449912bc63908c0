"""Large results through psql, direct and through the gateway with masking on.

Two tables of ``ROWS`` rows (id, name, city, order number, timestamp, uuid, amount, note):
one with no sensitive value, one where every tenth row carries an e-mail, a card number and
a phone number. ``psql -c 'SELECT * FROM t'`` writes each to /dev/null; the wall time of
the whole command is compared, direct and via alternating, median of the rounds. Goals
(DESIGN.md): ≤ 1.1× the direct time with no PII, ≤ 1.5× with 10 % PII rows.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from bench import BenchError
from bench.pgbench import Endpoint
from bench.postgres import DATABASE_ERRORS, BenchServer

ROWS = 200_000
TABLES = (("clean", 0), ("pii_10pct", 10))
GOALS = {"clean": 1.1, "pii_10pct": 1.5}
_CREATE = """
CREATE TABLE {name} AS
SELECT g AS id, 'customer ' || g AS name, (ARRAY['Lyon','Porto','Turku','Graz'])[g % 4 + 1] AS city,
       'ORD-' || lpad((g * 7919 % 1000000)::text, 7, '0') AS order_no,
       timestamptz '2024-01-01' + g * interval '1 minute' AS created,
       md5(g::text)::uuid AS ref, (g % 1000) * 1.25 AS amount,
       CASE WHEN {every} > 0 AND g % {every_or_1} = 0
            THEN 'reach me at user' || g || '@example.com, card 4111 1111 1111 1111, +14155552671'
            ELSE 'delivered on time, thanks' END AS note
FROM generate_series(1, {rows}) g
"""


@dataclass(slots=True)
class ResultTiming:
    table: str
    direct: list[float] = field(default_factory=list)
    via: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return median(self.via) / median(self.direct)


async def prepare(server: BenchServer, database: str, rows: int = ROWS) -> None:
    conn = await server.connect(database)
    try:
        for name, every in TABLES:
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
            await conn.execute(
                _CREATE.format(name=name, every=every, every_or_1=every or 1, rows=rows)
            )
    except DATABASE_ERRORS as exc:
        raise BenchError(f"cannot create the result tables: {exc}") from exc
    finally:
        await conn.close()


async def time_results(
    psql: Path, direct: Endpoint, via: Endpoint, rounds: int
) -> list[ResultTiming]:
    timings = [ResultTiming(name) for name, _ in TABLES]
    for _ in range(rounds):
        for timing in timings:
            timing.direct.append(await _psql_seconds(psql, direct, timing.table))
            timing.via.append(await _psql_seconds(psql, via, timing.table))
    return timings


async def _psql_seconds(psql: Path, target: Endpoint, table: str) -> float:
    env = {**os.environ, "PGPASSWORD": target.password or "", "PGSSLMODE": "disable"}
    args = [
        str(psql), "-X", "-q", "-h", target.host, "-p", str(target.port), "-U", target.user,
        "-d", target.database, "-o", os.devnull, "-c", f"SELECT * FROM {table}",
    ]  # fmt: skip
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise BenchError(f"psql failed on {table}: {stderr.decode().strip()}")
    return elapsed


def result_lines(timings: list[ResultTiming], rows: int) -> list[str]:
    lines = [f"{rows:,} rows through psql (median seconds): direct vs via, masking on"]
    for t in timings:
        lines.append(
            f"  {t.table:<10} direct {median(t.direct):6.3f} s   via {median(t.via):6.3f} s"
            f"   via/direct {t.ratio:5.2f}"
        )
    for t in timings:
        goal = GOALS[t.table]
        verdict = "PASS" if t.ratio <= goal else "FAIL"
        lines.append(f"{verdict}  {t.table} result via/direct <= {goal}: {t.ratio:.2f}")
    return lines
