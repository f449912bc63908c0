"""What the approvals core tells the outside world: neutral views of requests, decisions
and outcomes, the notifier interface chat adapters implement, and security alerts.

Views carry only what may be shown: :attr:`RequestView.sql` is the statement with its
sensitive literals masked, and outcome previews hold masked values. The exact SQL that is
executed never leaves the store except on the way to the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol
from uuid import UUID

Verdict = Literal["approve", "reject"]
Channel = Literal["slack", "teams", "web", "cli", "mcp", "psql"]


class State(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    EXECUTING = "executing"
    EXECUTED = "executed"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset(
    (State.EXECUTED, State.FAILED, State.REJECTED, State.EXPIRED, State.CANCELLED)
)


@dataclass(frozen=True, slots=True)
class DecisionView:
    approver: str
    verdict: Verdict
    via: str
    reason: str | None
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an executed (or failed) request ended. ``preview`` holds the first returned rows,
    already masked and width-limited; ``total_rows`` counts every row returned or affected."""

    command_tag: str | None
    rows: int | None
    duration_ms: float
    sqlstate: str | None = None
    error: str | None = None
    columns: tuple[str, ...] = ()
    preview: tuple[tuple[str | None, ...], ...] = ()
    preview_truncated: bool = False
    masked: Mapping[str, int] = field(default_factory=dict)
    session_id: UUID | None = None
    """The session the statement ran in: the held client's own, or one of its own when
    it ran without a waiting client."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        """``DELETE 3 in 12 ms`` or ``failed: <error> (SQLSTATE)``."""
        if self.error is not None:
            code = f" ({self.sqlstate})" if self.sqlstate else ""
            return f"failed: {self.error}{code}"
        tag = self.command_tag or "OK"
        return f"{tag} in {self.duration_ms:.0f} ms"


@dataclass(frozen=True, slots=True)
class RequestView:
    """One access request as adapters may show it. ``sql`` is masked for display."""

    id: int
    resource: str
    requester: str
    agent: str | None
    sql: str
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
    decisions: tuple[DecisionView, ...]
    created_at: datetime
    expires_at: datetime
    outcome: Outcome | None
    url: str

    @property
    def approvals(self) -> int:
        return sum(1 for d in self.decisions if d.verdict == "approve")

    @property
    def rejection(self) -> DecisionView | None:
        return next((d for d in self.decisions if d.verdict == "reject"), None)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class Notifier(Protocol):
    """A surface where approvers see requests (Slack, Teams, the web inbox).

    Calls are made after the store has changed; an adapter that cannot deliver retries on
    its own (its outbox) and never raises into the core.
    """

    name: str

    def where(self, request: RequestView) -> str | None:
        """Where this surface shows ``request`` ("#db-approvals"), or None if it does not."""
        ...

    async def request_opened(self, request: RequestView) -> None: ...

    async def request_changed(self, request: RequestView) -> None:
        """A decision was recorded or the state moved (approved, rejected, expired, ...)."""
        ...

    async def request_finished(self, request: RequestView) -> None:
        """Executed or failed: ``request.outcome`` is set."""
        ...

    async def reminder(self, request: RequestView) -> None: ...


AlertKind = Literal[
    "denied",
    "guardrail",
    "rejected",
    "expired",
    "self_approval",
    "signature_failure",
    "secrets_masked",
    "password_failures",
    "sign_in_refused",
]


@dataclass(frozen=True, slots=True)
class Alert:
    """A security event for the alerts channel and the SIEM. ``summary`` is masked."""

    kind: AlertKind
    summary: str
    identity: str | None = None
    resource: str | None = None
    request_id: int | None = None
    session_id: UUID | None = None
    at: datetime | None = None


class AlertSink(Protocol):
    async def alert(self, alert: Alert) -> None: ...
