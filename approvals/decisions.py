"""Deciding a request: who may, how decisions count, and the move they cause.

Approvers are the members of the request's approver groups; ``approvals_required``
distinct people must approve; an approver in several groups counts once (one decision row
per approver and request, a unique key); nobody decides their own request; one rejection
ends it. The request row is locked (``FOR UPDATE``) while a decision is recorded, so two
approvers deciding at once are counted one after the other.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg

from approvals.execute import row_cap
from approvals.model import Alert, RequestView, State, Verdict
from approvals.store import CHANNEL, RequestRow, _row
from identity import Directory
from jitgate.errors import DecisionRefused

if TYPE_CHECKING:
    from approvals.service import Approvals

log = logging.getLogger("jitgate.approvals")

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


def awaits(directory: Directory, user: str, view: RequestView) -> bool:
    """``view`` is pending and ``user`` may still decide it (:func:`decide` checks again)."""
    return (
        view.state == State.PENDING
        and user != view.requester
        and bool(directory.groups_of(user) & set(view.approver_groups))
        and all(d.approver != user for d in view.decisions)
    )


async def awaiting(approvals: Approvals, user: str, limit: int = 50) -> list[RequestView]:
    """The pending requests ``user`` may still decide, newest first."""
    groups = approvals.directory.groups_of(user)
    if not groups:
        return []
    rows = await approvals.store.list(states=[State.PENDING], approver_groups=groups, limit=limit)
    return [v for v in await approvals.store.views(rows) if awaits(approvals.directory, user, v)]


async def decide(
    approvals: Approvals,
    request_id: int,
    approver: str,
    verdict: Verdict,
    *,
    via: str,
    reason: str | None = None,
    max_rows: int | None = None,
) -> RequestView:
    """Record ``approver``'s decision; move the request when it settles it. Raises
    :class:`DecisionRefused` (with a ``code``) for anything the rules refuse."""
    approver = approver.strip().lower()
    expired = False
    async with approvals.pool.acquire() as conn, conn.transaction():
        record = await conn.fetchrow("SELECT * FROM requests WHERE id = $1 FOR UPDATE", request_id)
        if record is None:
            raise DecisionRefused("unknown_request", f"request #{request_id} does not exist")
        row = _row(record)
        _check_decider(approvals, row, approver, verdict)
        if reason is not None:  # stored, shown on cards and sent in alerts: never raw
            reason = approvals.masked(approvals.config.resources.get(row.resource), reason)
        if row.state == State.PENDING and row.expires_at <= datetime.now(UTC):
            expired = (
                await approvals.store.move(
                    conn, request_id, "expire", state_reason="not decided in time"
                )
                is not None
            )
        else:
            await _record_decision(approvals, conn, row, approver, verdict, via, reason, max_rows)
    if expired:
        await approvals.announce(request_id, alert="expired")
        raise DecisionRefused("expired", f"request #{request_id} has expired")
    view = await approvals.announce(request_id)
    assert view is not None
    log.info(
        "decision recorded",
        extra={"request": request_id, "identity": approver, "verdict": verdict, "via": via},
    )
    if view.state == State.REJECTED:
        approvals.emit(
            Alert("rejected", f"request #{view.id} rejected by {approver}: {reason or ''}",
                  view.requester, view.resource, view.id, view.session_id)
        )  # fmt: skip
    return view


def _check_decider(approvals: Approvals, row: RequestRow, approver: str, verdict: Verdict) -> None:
    if row.state != State.PENDING:
        raise DecisionRefused("already_decided", f"request #{row.id} is already {row.state}")
    if approver == row.requester:
        approvals.emit(
            Alert("self_approval", f"{approver} tried to {verdict} their own request #{row.id}",
                  approver, row.resource, row.id, row.session_id)
        )  # fmt: skip
        raise DecisionRefused("self_approval", f"you cannot {verdict} your own request #{row.id}")
    if not approvals.directory.groups_of(approver) & set(row.approver_groups):
        groups = ", ".join(row.approver_groups) or "no group"
        raise DecisionRefused(
            "not_approver",
            f"only members of {groups} can decide requests on {row.resource}",
        )


async def _record_decision(
    approvals: Approvals,
    conn: Connection,
    row: RequestRow,
    approver: str,
    verdict: Verdict,
    via: str,
    reason: str | None,
    max_rows: int | None,
) -> None:
    inserted = await conn.fetchval(
        "INSERT INTO decisions (request_id, approver, verdict, via, reason)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id, approver) DO NOTHING"
        " RETURNING id",
        row.id,
        approver,
        verdict,
        via,
        reason,
    )
    if inserted is None:
        raise DecisionRefused("already_voted", f"you already decided request #{row.id}")
    if verdict == "reject":
        await approvals.store.move(
            conn, row.id, "reject", state_reason=f"rejected by {approver}: {reason or ''}"
        )
        return
    approved_by = await conn.fetchval(
        "SELECT count(*) FROM decisions WHERE request_id = $1 AND verdict = 'approve'",
        row.id,
    )
    if approved_by < row.approvals_required:
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(row.id))
        return
    resource = approvals.config.resources.get(row.resource)
    cap = max_rows
    if cap is None and resource is not None:
        cap = row_cap(row.estimate, resource.blast_radius_factor, resource.blast_radius_floor)
    await approvals.store.move(
        conn, row.id, "approve", state_reason=f"approved by {approver}", max_rows=cap
    )
