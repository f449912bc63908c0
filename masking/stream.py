"""The in-flight adapter: rewrites DataRow messages so that sensitive values never leave.

A relay keeps one :class:`RowMasker` per client session and, for each result:

1. builds a :class:`~masking.plan.ColumnPlan` from the RowDescription (or
   :meth:`ColumnPlan.unknown` when it saw none);
2. for each read of complete backend messages, calls :meth:`RowMasker.candidates` once; only
   DataRows whose bytes ``[start - 5, end)`` hold a returned offset can need masking, and
   when :meth:`RowMasker.every_row` is true for the plan, every DataRow of the result can;
3. calls :meth:`RowMasker.mask_row` for those rows and, when it returns a body, sends that
   body behind a fresh 5-byte header instead of the original row.

Whatever :meth:`~RowMasker.mask_row` would change in a row, :meth:`~RowMasker.candidates`
reports an offset inside that row, except for what only the column can tell (a column named
``ssn``, binary int8) — which is exactly when :meth:`~RowMasker.every_row` is true.
"""

from __future__ import annotations

import enum
import json
import re
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from jitgate.errors import ProtocolError
from masking.detect import NO_CUES, scanner_for
from masking.entities import BIRTH_CUE, DATE_OF_BIRTH, IP_ADDRESS, NULLED
from masking.jsonwalk import mask_json, whole_number
from masking.plan import INT4, Column, ColumnPlan, Kind, binary_number
from masking.policy import MaskingPolicy

__all__ = ["ColumnPlan", "RowMasker"]

_INT32 = struct.Struct("!i")
_UINT16 = struct.Struct("!H")
_NULL = _INT32.pack(-1)
_JSONB_VERSION = b"\x01"
_NO_HIT = sys.maxsize
_BIRTH = re.compile(BIRTH_CUE, re.IGNORECASE | re.ASCII)


class _Nulled(enum.Enum):
    NULL = enum.auto()


@dataclass(frozen=True, slots=True)
class _Rule:
    """How masking treats one column under one policy. ``always``: the row prefilter cannot
    see what this column may need (context from its name, binary numbers, whole-column
    entities), so it is read in every row."""

    kind: Kind
    binary: bool
    type_oid: int | None
    cues: frozenset[int]
    entity: str | None
    always: bool


@dataclass(frozen=True, slots=True)
class _Prepared:
    """The rules of one plan's columns, kept while rows of that plan keep coming."""

    plan: ColumnPlan
    rules: tuple[_Rule, ...]
    every_row: bool
    blank: bool = False


# Fields of an error or notice that never quote data: severity, SQLSTATE, positions, the
# server's source file, line and routine.
_KEPT_FIELDS = frozenset((b"S", b"V", b"C", b"P", b"p", b"F", b"L", b"R"))


class RowMasker:
    """Masks DataRow bodies by one :class:`~masking.policy.MaskingPolicy` and counts what it
    masked. Not shared between sessions or threads."""

    def __init__(self, policy: MaskingPolicy) -> None:
        self._policy = policy
        self._scanner = scanner_for(policy.entities)
        self._first = self._scanner.first_match
        self._triggered = self._scanner.triggered
        # A plain dict, not a Counter: its item reads and writes are the interpreter's fast path.
        self._counts: dict[str, int] = {}
        self._prepared = self._prepare(ColumnPlan.unknown())

    def candidates(self, buf: bytes | bytearray | memoryview) -> list[int]:
        """Sorted offsets into ``buf`` (any run of complete backend messages) where something
        may need masking, at least one inside every DataRow that :meth:`mask_row` would
        change: one RE2 pass over the bytes, Python work per value with a match and never
        per row; ``[]`` for clean data."""
        return self._scanner.match_starts(buf)

    def every_row(self, plan: ColumnPlan) -> bool:
        """True when some column of ``plan`` can need masking that :meth:`candidates` cannot
        see, so every DataRow of the result must go through :meth:`mask_row`."""
        prepared = self._prepared if self._prepared.plan is plan else self._prepare(plan)
        return prepared.every_row

    def blank(self, plan: ColumnPlan) -> bool:
        """True when no value of a DataRow holding exactly ``plan``'s columns can need
        masking (every column is of a type that never carries text, such as integers up to
        int4, booleans, floats, UUIDs, times, or dates not named like a birth date, and no
        column name cues a detector): such rows need neither :meth:`candidates` nor
        :meth:`mask_row`. A row with more values than columns is not covered."""
        prepared = self._prepared if self._prepared.plan is plan else self._prepare(plan)
        return prepared.blank

    def mask_row(self, payload: bytes | memoryview, plan: ColumnPlan) -> bytes | None:
        """The DataRow body ``payload`` (without its 5-byte header) with its sensitive values
        masked, lengths recomputed, or ``None`` when nothing changed. A value whose type
        cannot hold a mask (a card in int8, an address in inet) becomes NULL. Malformed
        bytes raise :class:`~jitgate.errors.ProtocolError`."""
        prepared = self._prepared if self._prepared.plan is plan else self._prepare(plan)
        first = self._first
        # Only values holding a prefilter match, and the columns marked always, are read.
        hit = first(payload)
        if hit < 0:
            if not prepared.every_row:
                return None
            hit = _NO_HIT
        rules = prepared.rules
        size = len(payload)
        edits: list[tuple[int, int, bytes | _Nulled]] = []
        unpack = _INT32.unpack_from
        try:
            (count,) = _UINT16.unpack_from(payload, 0)
            if count > len(rules):
                rules = self._extend(prepared, count).rules
            pos = 2
            for rule in rules[:count]:
                (length,) = unpack(payload, pos)
                start = pos + 4
                if length < 0:
                    if length != -1:
                        raise ProtocolError(f"DataRow value of length {length}")
                    pos = start
                    continue
                end = start + length
                if hit < end:
                    # A value that ends the row (a note, typically) leaves nothing to search.
                    hit = first(payload, end) if end < size else -1
                    if hit < 0:
                        hit = _NO_HIT
                elif not rule.always:
                    pos = end
                    continue
                kind = rule.kind
                new: bytes | _Nulled | None = None
                # Text first, direct and uncopied: it is what nearly every masked value is.
                if kind is Kind.TEXT:
                    new = self._mask_text(payload[start:end], rule.cues)
                elif kind is not Kind.SKIP:
                    new = self._mask_value(rule, bytes(payload[start:end]))
                if new is not None:
                    edits.append((pos, end, new))
                pos = end
        except struct.error as exc:
            raise ProtocolError("truncated DataRow") from exc
        if pos != size:
            raise ProtocolError("DataRow length does not match its values")
        return _splice(payload, edits) if edits else None

    def mask_line(self, line: bytes | memoryview) -> bytes | None:
        """A line of COPY … TO STDOUT (text or CSV) with every sensitive span masked, or
        None when nothing changed. The line is scanned whole, as text without column
        context (COPY names no columns); masks hold no tab, comma, quote or backslash, so
        the line keeps its fields."""
        if self._first(line) < 0:
            return None
        text = bytes(line).decode("utf-8", "surrogateescape")
        scanner = self._scanner
        spans = scanner.find(text, scanner.cued_by(None))
        if not spans:
            return None
        counts = self._counts
        for span in spans:
            counts[span.entity] = counts.get(span.entity, 0) + 1
        return self._policy.mask(text, spans).encode("utf-8", "surrogateescape")

    def mask_notice(self, body: bytes | memoryview) -> bytes | None:
        """An ErrorResponse or NoticeResponse body with its texts masked (message, detail,
        hint, context, the statement it quotes…; not its severity, SQLSTATE, position or
        source location), or None when nothing changed."""
        if self._first(body) < 0:
            return None
        data = bytes(body)
        fields, pos, changed = [], 0, False
        while pos < len(data) and data[pos] != 0:
            nul = data.index(0, pos + 1)
            code, text = data[pos : pos + 1], data[pos + 1 : nul]
            masked = None if code in _KEPT_FIELDS else self.mask_line(text)
            changed |= masked is not None
            fields.append(code + (text if masked is None else masked) + b"\0")
            pos = nul + 1
        return b"".join(fields) + b"\0" if changed else None

    def mask_notification(self, body: bytes | memoryview) -> bytes | None:
        """A NotificationResponse body with its payload masked, or None when unchanged."""
        data = bytes(body)
        channel_end = data.index(0, 4)
        payload = data[channel_end + 1 : -1]
        masked = self.mask_line(payload)
        return None if masked is None else data[: channel_end + 1] + masked + b"\0"

    def take_counts(self) -> dict[str, int]:
        """Entity name → values masked since the last call (``NULLED`` counts values replaced
        by NULL, which are also counted under their entity); resets the counts."""
        counts = self._counts
        self._counts = {}
        return counts

    def _prepare(self, plan: ColumnPlan) -> _Prepared:
        rules = tuple(self._rule(column) for column in plan.columns)
        blank = bool(rules) and all(r.kind is Kind.SKIP and not r.always for r in rules)
        self._prepared = _Prepared(plan, rules, any(rule.always for rule in rules), blank)
        return self._prepared

    def _extend(self, prepared: _Prepared, count: int) -> _Prepared:
        """Rules for values past the described columns (every value, for an unknown plan)."""
        plan = prepared.plan
        extra = (self._rule(plan.column(i)) for i in range(len(prepared.rules), count))
        self._prepared = _Prepared(plan, (*prepared.rules, *extra), prepared.every_row, False)
        return self._prepared

    def _rule(self, column: Column) -> _Rule:
        kind = column.kind
        entities = self._policy.entities
        # An int4 holds nine digits: read as a number where the column's name cues an
        # entity that can be one (``ssn``); an int4 nothing names is never read.
        readable = kind is not Kind.SKIP or column.type_oid == INT4
        cues = self._scanner.cued_by(column.name) if readable else NO_CUES
        if kind is Kind.SKIP and cues:
            kind = Kind.NUMBER
        entity = None
        if kind is Kind.INET:
            entity = IP_ADDRESS if IP_ADDRESS in entities else None
        elif kind is Kind.DATE:
            dob = DATE_OF_BIRTH in entities and _BIRTH.search(column.name or "") is not None
            entity = DATE_OF_BIRTH if dob else None
        if kind in (Kind.INET, Kind.DATE) and entity is None:
            kind = Kind.SKIP
        always = bool(cues) or entity is not None or (kind is Kind.NUMBER and column.binary)
        return _Rule(kind, column.binary, column.type_oid, cues, entity, always)

    def _mask_value(self, rule: _Rule, value: bytes) -> bytes | _Nulled | None:
        kind = rule.kind
        if kind is Kind.SNIFF:
            if self._first(value) < 0:
                return None
            kind = Kind.JSON if _is_json(value) else Kind.TEXT
        if kind is Kind.TEXT:
            return self._mask_text(value, rule.cues)
        if kind is Kind.JSON:
            return self._mask_json(value, rule.cues)
        if kind is Kind.JSONB_BINARY:
            if value[:1] != _JSONB_VERSION:
                # A jsonb version this code cannot parse: drop it rather than let it through.
                return self._null(()) if self._first(value) >= 0 else None
            body = self._mask_json(value[1:], rule.cues)
            return None if body is None else _JSONB_VERSION + body
        if kind is Kind.NUMBER:
            return self._mask_number(rule, value)
        assert rule.entity is not None  # INET and DATE rules carry their entity
        return self._null([rule.entity])

    def _mask_text(self, value: bytes | memoryview, cues: frozenset[int]) -> bytes | None:
        hits = self._triggered(value)
        if not hits and not cues:
            return None
        text = str(value, "utf-8", "surrogateescape")
        spans = self._scanner.find(text, cues, hits)
        if not spans:
            return None
        counts = self._counts
        for _, _, entity in spans:  # _tally() inline: this runs for every masked value
            counts[entity] = counts.get(entity, 0) + 1
        return self._policy.mask(text, spans).encode("utf-8", "surrogateescape")

    def _mask_json(self, value: bytes, cues: frozenset[int]) -> bytes | None:
        if not cues and self._first(value) < 0:
            return None
        found: list[str] = []
        text = value.decode("utf-8", "surrogateescape")
        try:
            masked = mask_json(text, self._scanner, self._policy, cues, found)
        except ValueError:
            # Not JSON after all (a broken or hostile upstream): mask it as plain text.
            return self._mask_text(value, cues)
        if masked is None:
            return None
        self._tally(found)
        return masked.encode("utf-8", "surrogateescape")

    def _mask_number(self, rule: _Rule, value: bytes) -> _Nulled | None:
        if rule.binary:
            assert rule.type_oid is not None  # NUMBER rules come from described columns
            digits = binary_number(rule.type_oid, value)
        else:
            digits = value.decode("ascii") if value.isdigit() else None
        if digits is None:
            return None
        span = whole_number(self._scanner, digits, rule.cues)
        return None if span is None else self._null([span.entity])

    def _null(self, entities: Iterable[str]) -> _Nulled:
        self._tally([*entities, NULLED])
        return _Nulled.NULL

    def _tally(self, entities: Iterable[str]) -> None:
        counts = self._counts
        for entity in entities:
            counts[entity] = counts.get(entity, 0) + 1


def _is_json(value: bytes) -> bool:
    if value[:1] not in (b"{", b"["):
        return False
    try:
        json.loads(value)
    except (ValueError, RecursionError):
        return False
    return True


def _splice(payload: bytes | memoryview, edits: list[tuple[int, int, bytes | _Nulled]]) -> bytes:
    """``payload`` with each ``(length_at, end, new)`` value replaced, its length rewritten."""
    parts: list[bytes | memoryview] = []
    pos = 0
    for length_at, end, new in edits:
        if new is _Nulled.NULL:
            parts += (payload[pos:length_at], _NULL)
        else:
            parts += (payload[pos:length_at], _INT32.pack(len(new)), new)
        pos = end
    parts.append(payload[pos:])
    return b"".join(parts)
