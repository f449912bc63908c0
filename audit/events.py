"""What the audit trail records. Only metadata: raw result values are never kept, and SQL
texts are stored with their sensitive literals masked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from masking import mask_texts


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
    command_tag: bytes | None = None
    sqlstate: str | None = None
    request_id: int | None = None
    masked: dict[str, int] | None = None


# One audit row: the fields of a ``statement_events`` entry in the order of
# :func:`encode_batch`, with the SQL text itself at index 1 until :func:`index_rows` replaces
# it by the text's index in the batch.
Row = tuple[Any, ...]
# A session's records as drained for one ``statement_batches`` row: the distinct SQL texts,
# the events as JSON (texts by index), how many events, the first and last sequence
# numbers, the first start in µs since the epoch.
Drained = tuple[list[str], str, int, int, int, int]


def event_row(event: StatementEvent) -> Row:
    """``event`` as an audit row, its SQL text in the place of the text index."""
    started = int(event.started_at * 1_000_000)
    return (
        event.seq,
        event.sql,
        event.protocol,
        event.statement_class,
        event.decision,
        event.reasons,
        event.outcome,
        started,
        max(0, int(event.ended_at * 1_000_000) - started) if event.ended_at else 0,
        event.rows,
        None if event.command_tag is None else event.command_tag.decode("utf-8", "replace"),
        event.sqlstate,
        event.request_id,
        event.masked,
    )


def index_rows(rows: Sequence[Row]) -> tuple[list[str], list[Row]]:
    """The distinct texts of ``rows`` and the rows with each text replaced by its index."""
    texts: dict[str, int] = {}
    indexed = []
    for row in rows:
        index = texts.get(row[1])
        if index is None:
            index = texts[row[1]] = len(texts)
        indexed.append((row[0], index, *row[2:]))
    return list(texts), indexed


def encode_batch(events: Sequence[StatementEvent]) -> tuple[list[str], str]:
    """One session's events as stored in ``statement_batches``: the distinct SQL texts, and
    the events as a JSON array of arrays in the ``statement_events`` view's field order
    (seq, text index, protocol, class, decision, reasons, outcome, start in µs since the
    epoch, duration in µs, rows, command tag, SQLSTATE, access request id, entities masked in
    the result with their counts)."""
    texts, rows = index_rows([event_row(e) for e in events])
    return stored_texts(texts), storable(row_json(rows))


def row_json(value: object) -> str:
    """The JSON of an event row (or of a list of them) as stored."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def stored_texts(texts: list[str]) -> list[str]:
    """A batch's SQL texts as stored: masked, valid UTF-8 (checked all at once: a text
    holding bytes that were not UTF-8 is rare)."""
    masked = _masked(texts)
    try:
        "".join(masked).encode("utf-8")
    except UnicodeEncodeError:
        return [storable(t) for t in masked]
    return masked


def _masked(texts: list[str]) -> list[str]:
    """``texts`` with their sensitive literals masked by the default policy, whatever the
    resource's result masking: the audit trail never holds a raw card, e-mail or key. The
    exact text of a held statement lives only in its access request, to be run."""
    return mask_texts(texts)


def storable(text: str) -> str:
    """``text`` as valid UTF-8: SQL decoded with surrogateescape (bytes that were not
    UTF-8) is stored with replacement characters rather than refused by the store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


BATCH_COLUMNS = ("session_id", "first_seq", "last_seq", "started_at", "texts", "events")


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
