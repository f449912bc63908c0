"""What the audit trail records. Only metadata: raw result values are never kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID


@dataclass(slots=True)
class StatementEvent:
    """One statement a client sent, filled in as it travels the hook chain and completes."""

    session_id: UUID
    seq: int
    sql: str
    protocol: str
    started_at: float
    statement_class: str = "read"
    decision: str = "allow"
    reasons: tuple[str, ...] = ()
    outcome: str = "ok"
    ended_at: float = 0.0
    rows: int = 0
    command_tag: str | None = None
    sqlstate: str | None = None

    def as_record(self) -> tuple[object, ...]:
        """The row for ``statement_events``, in :data:`EVENT_COLUMNS` order."""
        return (
            self.session_id,
            self.seq,
            self.sql,
            self.protocol,
            self.statement_class,
            self.decision,
            list(self.reasons),
            self.outcome,
            datetime.fromtimestamp(self.started_at, UTC),
            datetime.fromtimestamp(self.ended_at or self.started_at, UTC),
            self.rows,
            self.command_tag,
            self.sqlstate,
        )


EVENT_COLUMNS = (
    "session_id", "seq", "sql", "protocol", "statement_class", "decision", "reasons",
    "outcome", "started_at", "ended_at", "rows", "command_tag", "sqlstate",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A client connection, written when it is accepted."""

    id: UUID
    identity: str
    resource: str
    client_addr: str | None
    application_name: str | None
    gateway: str
    started_at: datetime
    cancel_pid: int
    cancel_secret: bytes = field(repr=False)
    upstream_host: str
    upstream_port: int
    upstream_pid: int
    upstream_secret: bytes = field(repr=False)
