"""Approved requests no client waits for: claimed by whichever gateway wins the
compare-and-set, run once on a fresh connection (:func:`approvals.execute.run_detached`),
recorded as a session of their own, and finished with their outcome."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from approvals.execute import run_detached
from approvals.model import Outcome
from approvals.store import STORE_ERRORS, RequestRow
from audit.events import SessionRecord, StatementEvent
from audit.spool import done_frame, intent_frame
from jitgate.config import Resource, UpstreamURL
from jitgate.errors import StoreUnavailable

if TYPE_CHECKING:
    from approvals.service import Approvals

log = logging.getLogger("jitgate.approvals")


async def execute_if_unattended(approvals: Approvals, request_id: int) -> None:
    try:
        row = await approvals.store.move(
            None,
            request_id,
            "claim",
            condition="AND (waiter IS NULL OR hold_until < now())",
            executor=approvals.gateway_id,
            started_at=datetime.now(UTC),
        )
    except STORE_ERRORS as exc:
        log.warning("cannot claim request", extra={"request": request_id, "error": str(exc)})
        return
    if row is not None:
        await approvals.announce(row.id)
        await run_detached_request(approvals, row)


async def run_detached_request(approvals: Approvals, row: RequestRow) -> None:
    resource = approvals.config.resources.get(row.resource)
    if resource is None:
        await approvals.finish(row.id, Outcome(None, None, 0.0, "3D000", "unknown resource"))
        return
    if not row.sql_intact:
        await approvals.finish(
            row.id, Outcome(None, None, 0.0, "XX001", "the stored statement was altered")
        )
        return
    if row.params is not None:
        await approvals.finish(
            row.id,
            Outcome(None, None, 0.0, "57014", "an extended-protocol statement runs only "
                    "on its client's connection, and that client stopped waiting"),
        )  # fmt: skip
        return
    outcome = await run_audited(
        approvals, resource, row.requester, row.sql, row.statement_class, row.reasons, row.max_rows,
        row.id, f"jitgate request #{row.id}", agent=row.agent,
    )  # fmt: skip
    await approvals.finish(row.id, outcome)


async def run_audited(
    approvals: Approvals,
    resource: Resource,
    identity: str,
    sql: str,
    statement_class: str,
    reasons: tuple[str, ...],
    max_rows: int | None,
    request_id: int | None,
    application_name: str,
    url: UpstreamURL | None = None,
    agent: str | None = None,
) -> Outcome:
    """Run ``sql`` once on a fresh connection with ``url``'s credential (the resource's
    writer by default), recorded as a session of its own (``identity``'s, and ``agent``'s
    when one asked)."""
    session_id = uuid.uuid4()
    url = url or resource.writer
    started = time.time()
    try:
        await approvals.recorder.open_session(
            SessionRecord(
                id=session_id, identity=identity, resource=resource.name,
                client_addr=None, application_name=application_name,
                gateway=f"{socket.gethostname()}:{approvals.gateway_id}",
                started_at=datetime.now(UTC), cancel_pid=0, cancel_secret=b"\0" * 4,
                upstream_host=url.host, upstream_port=url.port,
                upstream_pid=0, upstream_secret=b"\0" * 4, agent=agent,
            )
        )  # fmt: skip
    except StoreUnavailable:
        return Outcome(None, None, 0.0, "57P03", "the audit store is unavailable")
    event = StatementEvent(session_id, 1, sql, "request", started)
    event.statement_class, event.decision, event.reasons = (
        statement_class, "allow" if request_id is None else "review", reasons,
    )  # fmt: skip
    event.request_id = request_id
    spool = approvals.spool
    try:
        if spool is not None:  # audit before effect, as the relay does (audit/spool.py)
            spool.write([intent_frame(event)])
    except OSError as exc:
        approvals.recorder.close_session(session_id, "audit spool unavailable")
        return Outcome(None, None, 0.0, "57P03", f"the audit spool cannot take it: {exc}")
    outcome = dataclasses.replace(
        await run_detached(resource, sql, max_rows, approvals.masking(resource), url),
        session_id=session_id,
    )
    event.outcome = "ok" if outcome.ok else "error"
    event.rows = outcome.rows or 0
    event.command_tag = outcome.command_tag.encode() if outcome.command_tag else None
    event.sqlstate = outcome.sqlstate
    event.ended_at = time.time()
    if spool is not None:
        with contextlib.suppress(OSError):  # the intent is there: unknown at worst
            spool.write([done_frame(event)])
    approvals.recorder.record(event)
    approvals.recorder.close_session(session_id, "statement executed")
    return outcome
