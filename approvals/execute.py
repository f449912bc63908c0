"""Running an approved statement on a fresh connection, and the impact preview.

Used when no client is waiting for the result (the hold timed out, or the request came from
chat, the CLI or an agent). The statement runs once, in a transaction, with the gateway's
credentials for the resource; a DML statement that touches more rows than the approved cap
is rolled back and reported as failed with the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import pgparse  # type: ignore[import-not-found]

from approvals.model import Outcome
from guard.session_limits import startup_values
from jitgate.config import Resource, UpstreamURL
from masking import MaskingPolicy, mask_text

PREVIEW_ROWS = 20
PREVIEW_WIDTH = 80
ESTIMATE_TIMEOUT = 2.0
_DML = frozenset(("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"))
_DML_TAGS = frozenset(("INSERT", "UPDATE", "DELETE", "MERGE"))


class CapExceeded(Exception):
    def __init__(self, rows: int, cap: int) -> None:
        super().__init__(
            f"touched {rows} rows, more than the {cap} approved; rolled back, nothing changed"
        )
        self.rows = rows
        self.cap = cap


def dml_kind(sql: str) -> str | None:
    """``UpdateStmt`` etc. when ``sql`` is exactly one INSERT/UPDATE/DELETE/MERGE."""
    try:
        statements = pgparse.parse(sql)
    except Exception:
        return None
    if len(statements) != 1:
        return None
    (kind,) = statements[0]["stmt"].keys()
    return str(kind) if kind in _DML else None


def single_statement(sql: str) -> bool:
    try:
        return len(pgparse.parse(sql)) == 1
    except Exception:
        return False


async def connect(
    url: UpstreamURL, *, within: float = 10.0, settings: Mapping[str, str] | None = None
) -> asyncpg.Connection:
    """A connection with ``url``'s credential; ``settings`` are sent as startup parameters."""
    ssl: Any = (
        False if url.sslmode in ("disable", "allow") or url.socket_path is not None else url.sslmode
    )
    return await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.user,
        password=url.password,
        database=url.database,
        ssl=ssl,
        timeout=within,
        server_settings={"application_name": "jitgate", **(settings or {})},
    )


async def fetch_rows(url: UpstreamURL, query: str) -> list[tuple[object, ...]]:
    """``query``'s rows, on a short-lived connection with ``url``'s credential."""
    conn = await connect(url, within=ESTIMATE_TIMEOUT * 2)
    try:
        return [tuple(row) for row in await conn.fetch(query)]
    finally:
        await conn.close(timeout=1)


async def estimate_rows(resource: Resource, sql: str) -> int | None:
    """The planner's row estimate for a single DML statement (EXPLAIN, never ANALYZE: nothing
    runs), on a side connection with a short statement_timeout; None when unknown."""
    if dml_kind(sql) is None:
        return None
    try:
        async with asyncio.timeout(ESTIMATE_TIMEOUT * 2):
            conn = await connect(resource.writer, within=ESTIMATE_TIMEOUT)
            try:
                await conn.execute(f"SET statement_timeout = {int(ESTIMATE_TIMEOUT * 1000)}")
                plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql)
            finally:
                await conn.close(timeout=1)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None
    top = json.loads(plan)[0]["Plan"]
    # A ModifyTable node's own estimate is 0 rows returned; its input is what it touches.
    plans = top.get("Plans") or [top]
    return int(plans[0].get("Plan Rows", 0))


def row_cap(estimate: int | None, factor: float, floor: int) -> int | None:
    """Rows an approved DML may touch when the approver set no explicit cap."""
    if estimate is None:
        return None
    return max(int(estimate * factor + 0.999), floor)


def preview_cell(
    value: object, column: str, policy: MaskingPolicy | None
) -> tuple[str | None, tuple[str, ...]]:
    if value is None:
        return None, ()
    text = "\\x" + value.hex() if isinstance(value, bytes) else str(value)
    entities: tuple[str, ...] = ()
    if policy is not None:
        result = mask_text(text, column=column, policy=policy)
        text, entities = result.value, result.entities
    if len(text) > PREVIEW_WIDTH:
        text = text[: PREVIEW_WIDTH - 1] + "…"
    return text, entities


def build_preview(
    columns: Sequence[str], rows: Sequence[Sequence[object]], policy: MaskingPolicy | None
) -> tuple[tuple[tuple[str | None, ...], ...], dict[str, int]]:
    masked: dict[str, int] = {}
    out = []
    for row in rows[:PREVIEW_ROWS]:
        cells = []
        for column, value in zip(columns, row, strict=False):
            text, entities = preview_cell(value, column, policy)
            for entity in entities:
                masked[entity] = masked.get(entity, 0) + 1
            cells.append(text)
        out.append(tuple(cells))
    return tuple(out), masked


def tag_rows(tag: str | None) -> int | None:
    if not tag:
        return None
    _, _, count = tag.rpartition(" ")
    return int(count) if count.isdigit() else None


async def run_detached(
    resource: Resource,
    sql: str,
    max_rows: int | None,
    policy: MaskingPolicy | None,
    url: UpstreamURL | None = None,
) -> Outcome:
    """Run ``sql`` once in a transaction on a fresh connection with ``url``'s credential
    (the resource's writer by default); never raises for SQL errors (they are the
    outcome)."""
    started = time.perf_counter()
    columns: tuple[str, ...] = ()
    rows: list[Sequence[object]] = []
    count = 0
    try:
        limits = startup_values(resource.session_limits)
        conn = await connect(url or resource.writer, settings=limits)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return Outcome(None, None, _ms(started), "08006", f"cannot reach {resource.name}: {exc}")
    try:
        async with conn.transaction():
            if single_statement(sql):
                statement = await conn.prepare(sql)
                columns = tuple(a.name for a in statement.get_attributes())
                if columns:
                    async for record in statement.cursor(prefetch=PREVIEW_ROWS):
                        if len(rows) < PREVIEW_ROWS + 1:
                            rows.append(tuple(record.values()))
                        count += 1
                else:
                    await statement.fetch()
                # After a cursor, asyncpg keeps no status: a SELECT's tag is its row count.
                tag = statement.get_statusmsg() or (f"SELECT {count}" if columns else None)
            else:
                tag = await conn.execute(sql)
            touched = tag_rows(tag)
            verb = (tag or "").split(" ", 1)[0]
            if max_rows is not None and verb in _DML_TAGS and (touched or 0) > max_rows:
                raise CapExceeded(touched or 0, max_rows)
    except CapExceeded as exc:
        return Outcome(tag, exc.rows, _ms(started), "54000", str(exc))
    except asyncpg.PostgresError as exc:
        return Outcome(None, None, _ms(started), exc.sqlstate, str(exc))
    except (OSError, asyncpg.InterfaceError) as exc:
        return Outcome(None, None, _ms(started), "08006", f"connection lost: {exc}")
    finally:
        with contextlib.suppress(Exception):
            await conn.close(timeout=2)
    preview, masked = build_preview(columns, rows, policy)
    return Outcome(
        command_tag=tag,
        rows=count if columns and verb == "SELECT" else tag_rows(tag),
        duration_ms=_ms(started),
        columns=columns,
        preview=preview,
        preview_truncated=len(rows) > PREVIEW_ROWS,
        masked=masked,
    )


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
