"""What each column of a result holds, as far as masking cares: :class:`ColumnPlan`.

The type OID of a column decides how its values are read. Types that cannot hold text
(booleans, dates and times, UUIDs, floats, small integers...) are never scanned; int8 and
numeric are read as whole numbers only (a card or SSN stored as a number); text, json and
types jitgate does not know (extension types, enums, arrays, composites) are scanned in text
format. In binary format only the types whose binary form is their text (text, varchar,
bpchar, name, xml, json, and jsonb after its version byte) and int8/numeric are read. inet and
cidr columns are whole IP addresses, and date or timestamp columns named like a birth date
whole dates of birth, for policies that enable those entities. Arrays of numbers (int8[],
numeric[]) are not read.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from proxy import messages as m
from proxy.codec import decode_backend

INT4 = 23
INT8 = 20
NUMERIC = 1700
JSON = 114
JSONB = 3802
TEXT_TYPES = frozenset({19, 25, 142, 705, 1042, 1043})  # name text xml unknown bpchar varchar
INET_TYPES = frozenset({650, 869})  # cidr inet
DATE_TYPES = frozenset({1082, 1114, 1184})  # date timestamp timestamptz
# Types whose values never carry text: bool, bytea, "char", int2, int2vector, int4, regproc,
# oid, tid, xid, cid, oidvector, point..polygon, line, float4, float8, circle, macaddr8, money,
# macaddr, aclitem, time, interval, timetz, bit, varbit, uuid, pg_lsn, and arrays of them.
NO_TEXT_TYPES = frozenset(
    {
        16, 17, 18, 21, 22, 23, 24, 26, 27, 28, 29, 30, 600, 601, 602, 603, 604, 628, 700,
        701, 718, 774, 790, 829, 1033, 1083, 1186, 1266, 1560, 1562, 2950, 3220, 5069,
        1000, 1001, 1002, 1005, 1006, 1007, 1008, 1011, 1012, 1013, 1016, 1021, 1022, 1028,
        1115, 1182, 1183, 1185, 1187, 1231, 1270, 1561, 1563, 2951,
    }
)  # fmt: skip

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
        if oid in NO_TEXT_TYPES or self.binary:
            return Kind.SKIP
        return Kind.TEXT


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
