"""What each column of a result holds, as far as masking cares: :class:`ColumnPlan`.

The type OID and format of a column decide how its values are read (:attr:`Column.kind`, the
one place that rule is written). Types that cannot hold text (booleans, dates and times,
UUIDs, floats, small integers...) are never scanned; int8 and numeric are read as whole numbers
only (a card or SSN stored as a number); bytea is read for text or JSON in its content (hex
or escaped in text format). In text format everything else is scanned as text: arrays,
composites, ranges, enums and extension types spell their parts out. In binary format
(asyncpg, psycopg's binary cursors) the values whose binary form is their text (text,
varchar, bpchar, name, xml, json; jsonb after its version byte) are scanned as such; arrays,
composites, int8 and numeric ranges and tsvectors are read part by part, each part by its own
type (:mod:`masking.layouts`); a value of a type jitgate does not know (an extension's, an
enum, a composite or array of the database's own types) is text when it is UTF-8 without a
NUL, else an array, composite or range when its bytes have that layout, and otherwise
undecodable: it is sent as NULL, never as it came. A domain is described by its base type.
inet and cidr columns are whole IP addresses, and date or timestamp columns named like a
birth date whole dates of birth, for policies that enable those entities.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from masking.pgtypes import ARRAY_ELEMENTS
from proxy import messages as m
from proxy.codec import decode_backend

INT4 = 23
INT8 = 20
NUMERIC = 1700
JSON = 114
JSONB = 3802
BYTEA = 17
RECORD = 2249
TSVECTOR = 3614
NUMBER_ARRAYS = frozenset({1016, 1231})  # int8[] numeric[]
HOLD_BYTEA = frozenset({1001, RECORD, 2287})  # bytea[] record record[]
FIRST_NORMAL_OID = 16384  # the database's own types (enums, composites…) from here on
TEXT_TYPES = frozenset({19, 25, 142, 705, 1042, 1043})  # name text xml unknown bpchar varchar
INET_TYPES = frozenset({650, 869})  # cidr inet
DATE_TYPES = frozenset({1082, 1114, 1184})  # date timestamp timestamptz
# Types whose values never carry text: bool, "char", int2, int2vector, int4, regproc, oid,
# tid, xid, cid, oidvector, point..polygon, line, float4, float8, circle, macaddr8, money,
# macaddr, aclitem, time, interval, timetz, bit, varbit, uuid, pg_lsn, xid8, the other reg*
# types, txid_snapshot, pg_snapshot, and arrays of them and of dates and times.
NO_TEXT_TYPES = frozenset(
    {
        16, 18, 21, 22, 23, 24, 26, 27, 28, 29, 30, 600, 601, 602, 603, 604, 628, 700,
        701, 718, 774, 790, 829, 1033, 1083, 1186, 1266, 1560, 1562, 2950, 3220, 5069,
        2202, 2203, 2204, 2205, 2206, 3734, 3769, 4089, 4096, 4191, 2970, 5038,
        1000, 1002, 1005, 1006, 1007, 1008, 1011, 1012, 1013, 1021, 1022, 1028,
        1115, 1182, 1183, 1185, 1187, 1270, 1561, 1563, 2951,
    }
)  # fmt: skip
# Built-in ranges and multiranges: their subtype. Those of int4, timestamps and dates carry
# no text in binary format; those of int8 and numeric are read for whole numbers.
RANGE_SUBTYPES = {3904: 23, 3906: 1700, 3908: 1114, 3910: 1184, 3912: 1082, 3926: 20}
MULTIRANGE_SUBTYPES = {4451: 23, 4532: 1700, 4533: 1114, 4534: 1184, 4535: 1082, 4536: 20}

# The length of the binary form of the fixed-size types that carry no text. Inside an array,
# composite or range a part of such a type passes unread only at that length; any other part
# of a type that carries no text is read like one of a type jitgate does not know.
PART_WIDTHS: dict[int, tuple[int, ...]] = {
    16: (1,), 18: (1,), 21: (2,), 23: (4,), 24: (4,), 26: (4,), 27: (6,), 28: (4,), 29: (4,),
    600: (16,), 601: (32,), 603: (32,), 628: (24,), 700: (4,), 701: (8,), 718: (24,),
    774: (8,), 790: (8,), 829: (6,), 1082: (4,), 1083: (8,), 1114: (8,), 1184: (8,),
    1186: (16,), 1266: (12,), 2950: (16,), 3220: (8,), 5069: (8,), 650: (8, 20), 869: (8, 20),
    2202: (4,), 2203: (4,), 2204: (4,), 2205: (4,), 2206: (4,), 3734: (4,), 3769: (4,),
    4089: (4,), 4096: (4,), 4191: (4,),
}  # fmt: skip
_NUMERIC_HEADER = struct.Struct("!hhHh")
_MAX_CARD_WEIGHT = 4  # base-10000 digits above the units: 20 decimal digits


class Kind(enum.IntEnum):
    """How the values of a column are read."""

    SKIP = 0
    TEXT = 1
    JSON = 2
    JSONB_BINARY = 3
    NUMBER = 4
    INET = 5
    DATE = 6
    SNIFF = 7
    """No description: text, or JSON when it parses as such."""
    BYTEA = 8
    """bytea: its content read as text, or as JSON when it parses as such."""
    ARRAY = 9
    """A binary array: each element by its type."""
    RECORD = 10
    """A binary composite: each field by its type."""
    RANGE = 11
    """A binary range of int8 or numeric: its bounds by their type."""
    MULTIRANGE = 12
    """A binary multirange of int8 or numeric: each range's bounds by their type."""
    TSVECTOR = 13
    """A binary tsvector: each lexeme as text."""
    NUMBERS = 14
    """int8[] or numeric[] in text format: scanned as text, NULL when anything is found (an
    array of numbers cannot hold a mask)."""
    UNDECLARED = 15
    """Binary, of a type jitgate does not know (:func:`masking.layouts.mask_undeclared`)."""
    HEX_TEXT = 16
    """Text format of a value that can hold bytea parts, which text shows in hex: arrays of
    bytea, records, and types of the database (a composite may have a bytea field). Each
    hex part's content is read as bytea is, then the whole as text."""


# Kinds of parts whose text the prefilter sees in their bytes.
_VISIBLE = frozenset({Kind.SKIP, Kind.TEXT, Kind.JSON, Kind.JSONB_BINARY, Kind.TSVECTOR})
_READ_WHOLE = frozenset({Kind.RECORD, Kind.RANGE, Kind.MULTIRANGE, Kind.UNDECLARED})


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name (context for the detectors), type OID and format."""

    name: str | None
    type_oid: int | None
    binary: bool

    @property
    def kind(self) -> Kind:
        oid = self.type_oid
        if oid is None:
            # No description: scanned as text whatever the format (a text type's binary
            # form is its UTF-8 bytes), never passed unread.
            return Kind.SNIFF
        if oid in TEXT_TYPES:
            return Kind.TEXT
        if oid == JSON or (oid == JSONB and not self.binary):
            return Kind.JSON
        if oid == JSONB:
            return Kind.JSONB_BINARY
        if oid in (INT8, NUMERIC):
            return Kind.NUMBER
        if oid in INET_TYPES:
            return Kind.INET
        if oid in DATE_TYPES:
            return Kind.DATE
        if oid == BYTEA:
            return Kind.BYTEA
        if oid in NO_TEXT_TYPES:
            return Kind.SKIP
        if oid in NUMBER_ARRAYS and not self.binary:
            return Kind.NUMBERS
        if self.binary:
            return _binary_kind(oid)
        return Kind.HEX_TEXT if oid in HOLD_BYTEA or oid >= FIRST_NORMAL_OID else Kind.TEXT

    @property
    def opaque(self) -> bool:
        """True when what masking reads in this column's values need not show in their bytes,
        so that no prefilter over them can pick the rows to read: numbers in binary, bytea in
        text (hex), binary layouts read part by part (composites, ranges, types jitgate does
        not know, arrays of such parts or of numbers)."""
        kind = self.kind
        if kind is Kind.ARRAY:
            assert self.type_oid is not None  # an ARRAY column is described
            element = Column(None, ARRAY_ELEMENTS[self.type_oid], True).kind
            return element not in _VISIBLE and element is not Kind.BYTEA
        if kind is Kind.NUMBER:
            return self.binary
        if kind is Kind.BYTEA:
            return not self.binary
        return kind in _READ_WHOLE or kind is Kind.HEX_TEXT


def _binary_kind(oid: int) -> Kind:
    """The kind of a binary value of type ``oid`` that neither holds its text as it is nor
    can never hold text."""
    if oid == TSVECTOR:
        return Kind.TSVECTOR
    if oid == RECORD:
        return Kind.RECORD
    if oid in RANGE_SUBTYPES:
        return Kind.RANGE if RANGE_SUBTYPES[oid] in (INT8, NUMERIC) else Kind.SKIP
    if oid in MULTIRANGE_SUBTYPES:
        return Kind.MULTIRANGE if MULTIRANGE_SUBTYPES[oid] in (INT8, NUMERIC) else Kind.SKIP
    if oid in ARRAY_ELEMENTS:
        element = Column(None, ARRAY_ELEMENTS[oid], True).kind
        return Kind.SKIP if element is Kind.SKIP else Kind.ARRAY
    return Kind.UNDECLARED


def _format(formats: Sequence[int], index: int) -> int:
    if not formats:
        return 0
    if len(formats) == 1:
        return formats[0]
    return formats[index] if index < len(formats) else 0


# eq=False: a plan is compared by identity, so a masker can cache per plan cheaply.
@dataclass(frozen=True, slots=True, eq=False)
class ColumnPlan:
    """The columns of one result. Values past the described columns (there should be none)
    are read as if no description had been seen."""

    columns: tuple[Column, ...]
    formats: tuple[int, ...] = ()

    @classmethod
    def from_row_description(
        cls, payload: bytes | memoryview, formats: Sequence[int] | None = None
    ) -> ColumnPlan:
        """The plan of a RowDescription body (without its 5-byte header). ``formats`` are the
        result-format codes of the client's Bind when the description came from Describe of
        a statement (``[]`` all text, one code for all, else one per column; missing codes
        are text); ``None`` takes the formats in the description. Malformed bytes raise
        :class:`~jitgate.errors.ProtocolError`."""
        fields = cast(m.RowDescription, decode_backend(m.ROW_DESCRIPTION, payload)).fields
        codes = [f.format for f in fields] if formats is None else formats
        columns = tuple(
            Column(f.name, f.type_oid, _format(codes, i) == 1) for i, f in enumerate(fields)
        )
        return cls(columns, tuple(codes))

    @classmethod
    def unknown(cls, formats: Sequence[int] = ()) -> ColumnPlan:
        """No description seen: values are scanned as text without column context (and
        walked as JSON when they parse as JSON), in either format."""
        return cls((), tuple(formats))

    def column(self, index: int) -> Column:
        if index < len(self.columns):
            return self.columns[index]
        return Column(None, None, _format(self.formats, index) == 1)


def binary_number(type_oid: int, value: bytes) -> str | None:
    """The decimal digits of a non-negative whole int4, int8 or numeric in binary format,
    else ``None`` (fractions, negatives, NaN and numbers above 20 digits are never cards)."""
    if type_oid in (INT4, INT8):
        size = 4 if type_oid == INT4 else 8
        number = int.from_bytes(value, "big", signed=True) if len(value) == size else -1
        return str(number) if number >= 0 else None
    if len(value) < _NUMERIC_HEADER.size:
        return None
    ndigits, weight, sign, _ = _NUMERIC_HEADER.unpack_from(value)
    whole = 0 < ndigits <= weight + 1 and weight <= _MAX_CARD_WEIGHT
    if sign != 0 or not whole or len(value) != _NUMERIC_HEADER.size + 2 * ndigits:
        return None
    number = 0
    for group in struct.unpack_from(f"!{ndigits}H", value, _NUMERIC_HEADER.size):
        number = number * 10000 + group
    return str(number * 10000 ** (weight + 1 - ndigits))
