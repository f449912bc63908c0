"""The in-flight adapter: rewrites DataRow messages so that sensitive values never leave.

A relay keeps one :class:`RowMasker` per client session and, for each result:

1. builds a :class:`~masking.plan.ColumnPlan` from the RowDescription (or
   :meth:`ColumnPlan.unknown` when it saw none);
2. for each read of complete backend messages, calls :meth:`RowMasker.candidates` once; only
   DataRows whose bytes ``[start - 5, end)`` hold a returned offset can need masking, and
   when :meth:`RowMasker.every_row` is true for the plan, every DataRow of the result can;
3. calls :meth:`RowMasker.mask_row` for those rows, with the first offset at or after the
   row's start, and, when it returns a body, sends that body behind a fresh 5-byte header
   instead of the original row.

Whatever :meth:`~RowMasker.mask_row` would change in a row, :meth:`~RowMasker.candidates`
reports an offset inside that row, except for what only the column can tell (a column named
``ssn``, binary int8, bytea in hex, a layout read part by part; see
:attr:`~masking.plan.Column.opaque`) — which is exactly when :meth:`~RowMasker.every_row` is
true. Each value is read by :class:`~masking.values.ValueMasker`.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

from jitgate.errors import ProtocolError
from masking.detect import scanner_for
from masking.layouts import Masked, Nulled, splice
from masking.plan import ColumnPlan, Kind
from masking.policy import MaskingPolicy
from masking.values import ValueMasker, ValueRule

__all__ = ["ColumnPlan", "RowMasker"]

_INT32 = struct.Struct("!i")
_UINT16 = struct.Struct("!H")
_NO_HIT = sys.maxsize
# From 16 MiB a value's length no longer starts with a NUL (see Scanner.match_starts).
_LONG_ROW = 1 << 24


@dataclass(frozen=True, slots=True)
class _Prepared:
    """The rules of one plan's columns, kept while rows of that plan keep coming."""

    plan: ColumnPlan
    rules: tuple[ValueRule, ...]
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
        self._values = ValueMasker(policy, self._scanner)
        self._prepared = self._prepare(ColumnPlan.unknown())
        # Names of the described columns a value was masked in, since take_masked_columns.
        self._masked_columns: set[str] = set()

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

    def mask_row(
        self, payload: bytes | memoryview, plan: ColumnPlan, hit: int | None = None
    ) -> bytes | None:
        """The DataRow body ``payload`` (without its 5-byte header) with its sensitive values
        masked, lengths recomputed, or ``None`` when nothing changed. A value whose type
        cannot hold a mask (a card in int8, an address in inet) becomes NULL. Malformed
        bytes raise :class:`~jitgate.errors.ProtocolError`.

        ``hit``, when given, is the first offset :meth:`candidates` reported at or after the
        row's start, less that start: the row is not searched again up to it. It is never
        past the row's first prefilter match: a skip in :meth:`candidates` ends at a NUL,
        and each value's length starts with one in a row under 16 MiB (a longer row is
        searched again)."""
        prepared = self._prepared if self._prepared.plan is plan else self._prepare(plan)
        first = self._first
        size = len(payload)
        # Only values holding a prefilter match, and the columns marked always, are read.
        if hit is None or size >= _LONG_ROW:
            hit = first(payload)
        if hit < 0:
            if not prepared.every_row:
                return None
            hit = _NO_HIT
        rules = prepared.rules
        edits: list[tuple[int, int, bytes | Nulled]] = []
        unpack = _INT32.unpack_from
        values = self._values
        try:
            (count,) = _UINT16.unpack_from(payload, 0)
            if count > len(rules):
                rules = self._extend(prepared, count).rules
            pos = 2
            for index, rule in enumerate(rules[:count]):
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
                new: Masked = None
                # Text first, direct and uncopied: it is what nearly every masked value is.
                if kind is Kind.TEXT:
                    new = values.mask_text(payload[start:end], rule.cues)
                elif kind is not Kind.SKIP:
                    new = values.mask(rule, bytes(payload[start:end]))
                if new is not None:
                    edits.append((pos, end, new))
                    self._note_column(prepared.plan, index)
                pos = end
        except struct.error as exc:
            raise ProtocolError("truncated DataRow") from exc
        if pos != size:
            raise ProtocolError("DataRow length does not match its values")
        return splice(payload, edits) if edits else None

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
        self._values.tally(span.entity for span in spans)
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
        counts = self._values.counts
        self._values.counts = {}
        return counts

    def take_masked_columns(self) -> set[str]:
        """Names (lower case) of the described columns a value was masked in since the last
        call; resets them."""
        names, self._masked_columns = self._masked_columns, set()
        return names

    def _note_column(self, plan: ColumnPlan, index: int) -> None:
        if index < len(plan.columns):
            name = plan.columns[index].name
            if name:
                self._masked_columns.add(name.lower())

    def _prepare(self, plan: ColumnPlan) -> _Prepared:
        rules = tuple(self._values.rule(column) for column in plan.columns)
        blank = bool(rules) and all(r.kind is Kind.SKIP and not r.always for r in rules)
        self._prepared = _Prepared(plan, rules, any(rule.always for rule in rules), blank)
        return self._prepared

    def _extend(self, prepared: _Prepared, count: int) -> _Prepared:
        """Rules for values past the described columns (every value, for an unknown plan)."""
        plan = prepared.plan
        extra = (self._values.rule(plan.column(i)) for i in range(len(prepared.rules), count))
        self._prepared = _Prepared(plan, (*prepared.rules, *extra), prepared.every_row, False)
        return self._prepared
