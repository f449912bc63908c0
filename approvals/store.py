"""Requests and decisions in the store. The only code that writes ``requests.state``.

Each state move is one conditional UPDATE (``WHERE id = $1 AND state = $old``) that also
NOTIFYs ``jitgate_requests`` with the id, in the same statement: zero rows back means
another process moved the request first, and every gateway sharing the store hears about
every move.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from approvals.model import DecisionView, Outcome, RequestView, State, Verdict
from approvals.states import Event, next_state, sources_of

CHANNEL = "jitgate_requests"
STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
CANCEL_CHANNEL = "jitgate_cancel"


@dataclass(frozen=True, slots=True)
class NewRequest:
    resource: str
    requester: str
    agent: str | None
    sql: str
    params: tuple[str | None, ...] | None
    display_sql: str
    statement_class: str
    reasons: tuple[str, ...]
    reason: str | None
    estimate: int | None
    source: str
    session_id: UUID | None
    approvals_required: int
    approver_groups: tuple[str, ...]
    ttl: float
    waiter: UUID | None = None
    hold_for: float | None = None


@dataclass(frozen=True, slots=True)
class RequestRow:
    """A request as stored, including the exact SQL (never shown: see ``display_sql``)."""

    id: int
    resource: str
    requester: str
    agent: str | None
    sql: str
    params: tuple[str | None, ...] | None
    sql_sha256: bytes
    display_sql: str
    statement_class: str
    reasons: tuple[str, ...]
    reason: str | None
    estimate: int | None
    max_rows: int | None
    state: State
    state_reason: str | None
    source: str
    session_id: UUID | None
    approvals_required: int
    approver_groups: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    waiter: UUID | None
    outcome: Outcome | None

    @property
    def sql_intact(self) -> bool:
        """The SQL about to run is byte for byte the SQL that was approved."""
        return sql_digest(self.sql, self.params) == self.sql_sha256


def sql_digest(sql: str, params: tuple[str | None, ...] | None) -> bytes:
    digest = hashlib.sha256(sql.encode("utf-8", "surrogatepass"))
    if params is not None:
        digest.update(json.dumps(params).encode())
    return digest.digest()


class RequestStore:
    def __init__(self, pool: asyncpg.Pool, public_url: str) -> None:
        self._pool = pool
        self._public_url = public_url

    async def insert(self, new: NewRequest) -> RequestRow:
        row = await self._pool.fetchrow(
            "INSERT INTO requests (resource, requester, agent, sql, sql_sha256, display_sql,"
            " statement_class, reasons, reason, estimate, source, session_id,"
            " approvals_required, approver_groups, expires_at, waiter, hold_until, params)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
            " now() + make_interval(secs => $15), $16,"
            " now() + make_interval(secs => $17), $18) RETURNING *",
            new.resource,
            new.requester,
            new.agent,
            new.sql,
            sql_digest(new.sql, new.params),
            new.display_sql,
            new.statement_class,
            list(new.reasons),
            new.reason,
            new.estimate,
            new.source,
            new.session_id,
            new.approvals_required,
            list(new.approver_groups),
            new.ttl,
            new.waiter,
            new.hold_for,
            None if new.params is None else json.dumps(new.params),
        )
        assert row is not None
        return _row(row)

    async def get(self, request_id: int) -> RequestRow | None:
        row = await self._pool.fetchrow("SELECT * FROM requests WHERE id = $1", request_id)
        return None if row is None else _row(row)

    async def move(
        self,
        conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy | asyncpg.Pool | None,
        request_id: int,
        event: Event,
        *,
        state_reason: str | None = None,
        condition: str = "",
        args: Sequence[object] = (),
        **columns: object,
    ) -> RequestRow | None:
        """Compare-and-set: apply ``event`` to the request if it is in a state the event
        leaves from (and ``condition``, SQL over ``$3…``, holds). Returns the new row, or
        None when another process moved it first. ``columns`` are set alongside."""
        sources = [str(s) for s in sources_of(event)]
        targets = {next_state(State(s), event) for s in sources}
        (target,) = targets
        assignments = ["state = $2"]
        values: list[object] = [request_id, str(target), *args]
        if state_reason is not None:
            columns["state_reason"] = state_reason
        for name, value in columns.items():
            values.append(json.dumps(_outcome_json(value)) if name == "outcome" else value)
            assignments.append(f"{name} = ${len(values)}")
        values.append(sources)
        sql = (
            f"WITH moved AS (UPDATE requests SET {', '.join(assignments)}"
            f" WHERE id = $1 AND state = ANY(${len(values)}::text[]) {condition}"
            " RETURNING *)"
            f" SELECT moved.*, pg_notify('{CHANNEL}', moved.id::text) FROM moved"
        )
        row = await (conn or self._pool).fetchrow(sql, *values)
        return None if row is None else _row(row)

    async def decisions(self, request_id: int) -> list[DecisionView]:
        rows = await self._pool.fetch(
            "SELECT approver, verdict, via, reason, decided_at FROM decisions"
            " WHERE request_id = $1 ORDER BY decided_at, id",
            request_id,
        )
        return [_decision(r) for r in rows]

    async def view(self, request: RequestRow | int) -> RequestView | None:
        row = await self.get(request) if isinstance(request, int) else request
        if row is None:
            return None
        return self.to_view(row, await self.decisions(row.id))

    async def views(self, rows: Sequence[RequestRow]) -> list[RequestView]:
        """``rows`` as views, with their decisions read in one query."""
        by_request: dict[int, list[DecisionView]] = {row.id: [] for row in rows}
        for record in await self._pool.fetch(
            "SELECT request_id, approver, verdict, via, reason, decided_at FROM decisions"
            " WHERE request_id = ANY($1::bigint[]) ORDER BY decided_at, id",
            list(by_request),
        ):
            by_request[record["request_id"]].append(_decision(record))
        return [self.to_view(row, by_request[row.id]) for row in rows]

    def to_view(self, row: RequestRow, decisions: Sequence[DecisionView]) -> RequestView:
        return RequestView(
            id=row.id,
            resource=row.resource,
            requester=row.requester,
            agent=row.agent,
            sql=row.display_sql,
            statement_class=row.statement_class,
            reasons=row.reasons,
            reason=row.reason,
            estimate=row.estimate,
            max_rows=row.max_rows,
            state=row.state,
            state_reason=row.state_reason,
            source=row.source,
            session_id=row.session_id,
            approvals_required=row.approvals_required,
            approver_groups=row.approver_groups,
            decisions=tuple(decisions),
            created_at=row.created_at,
            expires_at=row.expires_at,
            outcome=row.outcome,
            url=f"{self._public_url}/requests/{row.id}",
        )

    async def list(
        self,
        *,
        requester: str | None = None,
        states: Sequence[State] | None = None,
        approver_groups: frozenset[str] | None = None,
        limit: int = 50,
    ) -> list[RequestRow]:
        where, args = [], []  # type: list[str], list[object]
        if requester is not None:
            args.append(requester)
            where.append(f"requester = ${len(args)}")
        if states is not None:
            args.append([str(s) for s in states])
            where.append(f"state = ANY(${len(args)}::text[])")
        if approver_groups is not None:
            args.append(sorted(approver_groups))
            where.append(f"approver_groups && ${len(args)}::text[]")
        args.append(limit)
        rows = await self._pool.fetch(
            "SELECT * FROM requests"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY id DESC LIMIT ${len(args)}",
            *args,
        )
        return [_row(r) for r in rows]


def _outcome_json(outcome: object) -> dict[str, Any] | None:
    if outcome is None:
        return None
    assert isinstance(outcome, Outcome)
    return {
        "command_tag": outcome.command_tag,
        "rows": outcome.rows,
        "duration_ms": outcome.duration_ms,
        "sqlstate": outcome.sqlstate,
        "error": outcome.error,
        "columns": list(outcome.columns),
        "preview": [list(r) for r in outcome.preview],
        "preview_truncated": outcome.preview_truncated,
        "masked": dict(outcome.masked),
        "session_id": None if outcome.session_id is None else str(outcome.session_id),
    }


def _outcome(raw: str | None) -> Outcome | None:
    if raw is None:
        return None
    data: Mapping[str, Any] = json.loads(raw)
    return Outcome(
        command_tag=data["command_tag"],
        rows=data["rows"],
        duration_ms=data["duration_ms"],
        sqlstate=data["sqlstate"],
        error=data["error"],
        columns=tuple(data["columns"]),
        preview=tuple(tuple(r) for r in data["preview"]),
        preview_truncated=data["preview_truncated"],
        masked=data["masked"],
        session_id=UUID(data["session_id"]) if data.get("session_id") else None,
    )


def _row(r: asyncpg.Record) -> RequestRow:
    return RequestRow(
        id=r["id"],
        resource=r["resource"],
        requester=r["requester"],
        agent=r["agent"],
        sql=r["sql"],
        params=None if r["params"] is None else tuple(json.loads(r["params"])),
        sql_sha256=bytes(r["sql_sha256"]),
        display_sql=r["display_sql"],
        statement_class=r["statement_class"],
        reasons=tuple(r["reasons"]),
        reason=r["reason"],
        estimate=r["estimate"],
        max_rows=r["max_rows"],
        state=State(r["state"]),
        state_reason=r["state_reason"],
        source=r["source"],
        session_id=r["session_id"],
        approvals_required=r["approvals_required"],
        approver_groups=tuple(r["approver_groups"]),
        created_at=r["created_at"],
        expires_at=r["expires_at"],
        waiter=r["waiter"],
        outcome=_outcome(r["outcome"]),
    )


def _decision(r: asyncpg.Record) -> DecisionView:
    verdict: Verdict = "approve" if r["verdict"] == "approve" else "reject"
    return DecisionView(r["approver"], verdict, r["via"], r["reason"], r["decided_at"])
