"""``describe``: what tables a resource has and what columns they hold, never their rows.

Read from ``information_schema`` with the resource's reader credential (``url``), so an
agent sees exactly the tables and columns that credential may see. The gateway writes
these queries itself; the table name travels as a bound parameter.
"""

from __future__ import annotations

import asyncpg

from approvals.execute import connect
from jitgate.config import Resource
from masking import mask_text
from mcp_gateway import texts
from mcp_gateway.results import ToolResult, refusal

# A database with more tables than this is listed in part (ask for one table by name).
MAX_TABLES = 500
_TIMEOUT = 10.0
_USER_SCHEMAS = "table_schema NOT IN ('pg_catalog', 'information_schema')"
_TABLES = (
    "SELECT table_schema, table_name, table_type FROM information_schema.tables"
    f" WHERE {_USER_SCHEMAS} ORDER BY 1, 2 LIMIT {MAX_TABLES + 1}"
)
# ``schema.table`` or a bare table name (in any schema the reader sees).
_COLUMNS = (
    "SELECT table_schema, table_name, column_name, data_type, is_nullable = 'YES'"
    f" FROM information_schema.columns WHERE {_USER_SCHEMAS}"
    " AND (table_name = $1 OR table_schema || '.' || table_name = $1)"
    " ORDER BY table_schema, table_name, ordinal_position"
)


async def describe_resource(resource: Resource, table: str) -> ToolResult:
    """The tables of ``resource``, or the columns of ``table`` in it."""
    try:
        conn = await connect(resource.url, within=_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return _unreachable(resource, exc)
    try:
        if not table:
            rows = await conn.fetch(_TABLES, timeout=_TIMEOUT)
            return _tables(resource, rows)
        return _columns(resource, table, await conn.fetch(_COLUMNS, table, timeout=_TIMEOUT))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return _unreachable(resource, exc)
    finally:
        await conn.close(timeout=1)


def _tables(resource: Resource, rows: list[asyncpg.Record]) -> ToolResult:
    listed = [
        {"schema": r[0], "name": r[1], "type": "view" if r[2] == "VIEW" else "table"}
        for r in rows[:MAX_TABLES]
    ]
    truncated = len(rows) > MAX_TABLES
    return ToolResult(
        texts.tables(resource.name, listed, truncated),
        {"resource": resource.name, "tables": listed, "truncated": truncated},
    )


def _columns(resource: Resource, table: str, rows: list[asyncpg.Record]) -> ToolResult:
    if not rows:
        return refusal("not_found", texts.no_table(resource.name, table))
    found: dict[str, list[dict[str, object]]] = {}
    for schema, name, column, data_type, nullable in rows:
        found.setdefault(f"{schema}.{name}", []).append(
            {"name": column, "type": data_type, "nullable": nullable}
        )
    text = "\n".join(texts.columns(name, columns) for name, columns in found.items())
    structured = {
        "resource": resource.name,
        "tables": [{"table": name, "columns": columns} for name, columns in found.items()],
    }
    return ToolResult(text, structured)


def _unreachable(resource: Resource, exc: BaseException) -> ToolResult:
    # A database's error can quote a value; it is masked like any other.
    reason = mask_text(str(exc)).value
    return refusal("unavailable", f"cannot read {resource.name}'s schema: {reason}")
