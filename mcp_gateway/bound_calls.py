"""Tool calls that policy sends to review: access requests bound to the exact call.

A held call becomes a request of the approvals core (the same state machine, cards,
decisions, expiry and alerts as a statement) whose text is the call in canonical form —
``{"server", "tool", "arguments"}`` as JSON with sorted keys — requested by the person,
naming the agent. Once approved, the identical call from the same person and agent (the
agent retries it) claims the request, APPROVED → EXECUTING by compare-and-set, and is
forwarded once; any other call, or another argument, is a new request. Two identical
retries at once: one wins the claim, the other is told it is running.

No gateway runs such a request by itself: it is held for its caller (``waiter``) with
no end, so :mod:`approvals.detached` never claims it. An approval is usable for the
resource's ``approval_ttl`` after the deciding approval; a retry after that cancels it
and opens a new request.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from approvals.model import Outcome, RequestView, State
from approvals.service import Approvals
from approvals.store import STORE_ERRORS, NewRequest, RequestRow, sql_digest
from identity import Principal
from jitgate.errors import DecisionRefused, StoreUnavailable
from mcp_gateway.settings import McpServer

SOURCE = "mcp_proxy"
STATEMENT_CLASS = "tool_call"
# Held for its caller with no end: a century.
_HELD_FOR = 100 * 365 * 86400.0
_OPEN = [str(State.PENDING), str(State.APPROVED), str(State.EXECUTING)]


@dataclass(frozen=True, slots=True)
class ToolCall:
    server: McpServer
    principal: Principal
    tool: str
    arguments: dict[str, Any]

    @property
    def canonical(self) -> str:
        call = {"server": self.server.name, "tool": self.tool, "arguments": self.arguments}
        return json.dumps(call, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class BoundCalls:
    def __init__(self, approvals: Approvals) -> None:
        self.approvals = approvals
        self.store = approvals.store

    async def find(self, call: ToolCall) -> RequestRow | None:
        """The open request bound to exactly ``call``, if there is one."""
        canonical = call.canonical
        try:
            record = await self.approvals.pool.fetchval(
                "SELECT id FROM requests WHERE source = $1 AND resource = $2"
                " AND requester = $3 AND agent IS NOT DISTINCT FROM $4 AND sql_sha256 = $5"
                " AND sql = $6 AND state = ANY($7::text[]) ORDER BY id DESC LIMIT 1",
                SOURCE, call.server.name, call.principal.email, call.principal.actor,
                sql_digest(canonical, None), canonical, _OPEN,
            )  # fmt: skip
            return None if record is None else await self.store.get(record)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot look the request up: {exc}") from exc

    async def get(self, request_id: int) -> RequestRow | None:
        try:
            return await self.store.get(request_id)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot read the request: {exc}") from exc

    async def view(self, row: RequestRow) -> RequestView:
        try:
            view = await self.store.view(row)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot read the request: {exc}") from exc
        assert view is not None
        return view

    async def open(self, call: ToolCall, reasons: tuple[str, ...], display: str) -> RequestView:
        """A new pending request for ``call``, its card posted; ``display`` is the call as
        approvers see it (masked)."""
        server, who = call.server, call.principal
        await self._check_pending(who.email, server)
        try:
            row = await self.store.insert(
                NewRequest(
                    resource=server.name, requester=who.email, agent=who.actor,
                    sql=call.canonical, params=None, display_sql=display,
                    statement_class=STATEMENT_CLASS, reasons=reasons, reason=None,
                    estimate=None, source=SOURCE, session_id=None,
                    approvals_required=server.approvals_required,
                    approver_groups=server.approvers, ttl=server.request_ttl,
                    waiter=uuid.uuid4(), hold_for=_HELD_FOR,
                )
            )  # fmt: skip
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot record the request: {exc}") from exc
        view = self.store.to_view(row, ())
        for notifier in self.approvals.notifiers:
            self.approvals.spawn(notifier.request_opened(view))
        return view

    async def claim(self, row: RequestRow, server: McpServer) -> RequestRow | None:
        """APPROVED → EXECUTING for the caller the request is held for, while the approval
        is fresh; None when another retry won, or it is no longer usable."""
        try:
            return await self.store.move(
                None, row.id, "claim",
                condition="AND waiter = $3 AND now() < (SELECT max(decided_at) FROM decisions"
                " d WHERE d.request_id = requests.id) + make_interval(secs => $4)",
                args=(row.waiter, server.approval_ttl),
                executor=self.approvals.gateway_id, started_at=datetime.now(UTC),
            )  # fmt: skip
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot claim the request: {exc}") from exc

    async def lapse(self, row: RequestRow, server: McpServer) -> None:
        """Cancel an approval nobody used within ``approval_ttl``."""
        why = f"the approved call was not made again within {server.approval_ttl:g} s"
        try:
            await self.approvals.cancel(row.id, why)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot cancel the request: {exc}") from exc

    async def finish(self, row: RequestRow, outcome: Outcome) -> None:
        try:
            await self.approvals.finish(row.id, outcome)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot record the outcome: {exc}") from exc

    async def _check_pending(self, requester: str, server: McpServer) -> None:
        limit = self.approvals.config.postgres.limits.pending_requests_per_user
        try:
            mine = await self.approvals.pool.fetchval(
                "SELECT count(*) FROM requests WHERE resource = $1 AND requester = $2"
                " AND state = 'pending'",
                server.name, requester,
            )  # fmt: skip
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot count pending requests: {exc}") from exc
        if mine >= limit:
            raise DecisionRefused(
                "too_many_requests",
                f"{requester} already has {mine} pending requests on {server.name}; the limit"
                f" is {limit} (postgres.limits.pending_requests_per_user)",
            )
