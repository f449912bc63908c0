"""What the audit trail records. Only metadata: raw result values are never kept, and SQL
texts are stored with their sensitive literals masked."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from masking import mask_texts, sensitive_in


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
# A session's records as drained for one ``statement_batches`` row: the distinct SQL texts
# (as :func:`batch_texts` gives them), the events as JSON (texts by index; UTF-8, except
# where a text that was not UTF-8 leaves its bytes), how many events, the first and last
# sequence numbers, the first start in µs since the epoch.
Drained = tuple[bytes, bytes, bytes, int, int, int, int]


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


def encode_batch(events: Sequence[StatementEvent]) -> tuple[bytes, bytes]:
    """One session's events as stored in ``statement_batches``: the binary ``text[]`` of
    the distinct SQL texts, and the events as a JSON array of arrays in the
    ``statement_events`` view's field order
    (seq, text index, protocol, class, decision, reasons, outcome, start in µs since the
    epoch, duration in µs, rows, command tag, SQLSTATE, access request id, entities masked in
    the result with their counts). A row may end early (the native engine leaves out the
    nulls its own rows would end with): the view reads a field past the end as null."""
    texts, rows = index_rows([event_row(e) for e in events])
    return stored_array(*batch_texts(texts)), stored_json(text_bytes(row_json(rows)))


def batch_texts(texts: Sequence[str]) -> tuple[bytes, bytes]:
    """A batch's distinct SQL texts as drained: each text's UTF-8 bytes followed by a NUL
    (what the masking prefilter reads), and the binary ``text[]`` of them that COPY sends.
    Lone surrogates (SQL that was not UTF-8) go back to their bytes."""
    encoded = [text_bytes(text) for text in texts]
    array = [struct.pack("!5i", 1, 0, _TEXT_OID, len(encoded), 1)]
    for text in encoded:
        array += (struct.pack("!i", len(text)), text)
    return b"".join(t + b"\0" for t in encoded), b"".join(array)


def text_bytes(text: str) -> bytes:
    """``text`` as UTF-8, lone surrogates (SQL that was not UTF-8) back to their bytes, as
    the native engine files it."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def stored_array(joined: bytes, array: bytes) -> bytes:
    """The ``text[]`` of a drained batch's texts as stored: ``array`` itself when the
    texts are valid UTF-8 and the masking prefilter finds nothing in ``joined``; else built
    again from the texts masked and made valid (:func:`stored_texts`)."""
    if _is_utf8(joined) and not sensitive_in(joined):
        return array
    texts = [t.decode("utf-8", "surrogateescape") for t in joined.split(b"\0")[:-1]]
    return batch_texts(stored_texts(texts))[1]


def stored_json(events: bytes) -> bytes:
    """A drained batch's events JSON as stored: valid UTF-8 (bytes of a text that was not
    are replaced)."""
    return events if _is_utf8(events) else events.decode("utf-8", "replace").encode()


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# COPY's binary format (the PostgreSQL manual, "COPY", "Binary Format").
COPY_HEADER = b"PGCOPY\n\xff\r\n\0" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)
_TEXT_OID = 25
_POSTGRES_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC, in µs since the Unix epoch
_ROW_HEAD = struct.Struct("!hi16siiiiiq")  # fields, then (length, value) for each of the four


def batch_row(
    session_id: UUID, first_seq: int, last_seq: int, started_us: int, array: bytes, events: bytes
) -> bytes:
    """One ``statement_batches`` row (:data:`BATCH_COLUMNS`) in COPY's binary format:
    ``array`` and ``events`` as stored (:func:`stored_array`, :func:`stored_json`), the
    start in µs since the Unix epoch."""
    return b"".join(
        (
            _ROW_HEAD.pack(
                6,
                16,
                session_id.bytes,
                4,
                first_seq,
                4,
                last_seq,
                8,
                started_us - _POSTGRES_EPOCH_US,
            ),
            struct.pack("!i", len(array)),
            array,
            struct.pack("!i", len(events)),
            events,
        )
    )


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
    # The agent acting for ``identity``, when one connected (sessions.agent).
    agent: str | None = None
