"""Values read part by part, fed as literal bytes: binary arrays, composites, ranges,
tsvectors, values of types jitgate does not know, bytea in every form. What cannot be read
becomes NULL and is counted; what can is masked in place and keeps its layout."""

from __future__ import annotations

import random
import struct
from typing import cast

import pytest

from masking import MaskingPolicy
from masking.entities import NULLED
from masking.layouts import bytea_content, bytea_text
from masking.plan import Column, Kind
from masking.stream import ColumnPlan, RowMasker
from proxy import messages as m
from proxy.codec import decode_backend

TEXT, INT4, INT8, BYTEA, TEXT_ARRAY, INT8_ARRAY, INT8RANGE = 25, 23, 20, 17, 1009, 1016, 3926
RECORD, TSVECTOR, JSONB, UUID, TIMESTAMPTZ, FLOAT8, BOOL = 2249, 3614, 3802, 2950, 1184, 701, 16
ENUM = 16_500  # a type of the database: jitgate cannot know its layout
EMAIL = b"alice@example.com"
CARD = b"4111111111111111"


def part(data: bytes | None) -> bytes:
    return struct.pack("!i", -1) if data is None else struct.pack("!i", len(data)) + data


def array(element: int, *items: bytes | None, dims: tuple[int, ...] | None = None) -> bytes:
    dims = (len(items),) if dims is None else dims
    head = struct.pack("!iiI", len(dims), any(i is None for i in items), element)
    return head + b"".join(struct.pack("!ii", d, 1) for d in dims) + b"".join(map(part, items))


def record(*fields: tuple[int, bytes | None]) -> bytes:
    body = b"".join(struct.pack("!I", oid) + part(data) for oid, data in fields)
    return struct.pack("!i", len(fields)) + body


def through(oid: int, value: bytes, binary: bool = True) -> tuple[bytes | None, dict[str, int]]:
    """``value`` in a one-column result of type ``oid`` after the masker, and its counts."""
    field = m.FieldDescription("col", 0, 1, oid, -1, -1, int(binary))
    plan = ColumnPlan.from_row_description(m.RowDescription((field,)).encode()[5:])
    masker = RowMasker(MaskingPolicy())
    body = masker.mask_row(m.DataRow((value,)).encode()[5:], plan)
    counts = masker.take_counts()
    if body is None:
        return value, counts
    return cast(m.DataRow, decode_backend(m.DATA_ROW, body)).values[0], counts


def test_arrays_of_any_dimension_keep_their_nulls_and_shape() -> None:
    value = array(TEXT, b"a", None, b"mail " + EMAIL, b"b", dims=(2, 2))
    out, counts = through(TEXT_ARRAY, value)
    assert out == array(TEXT, b"a", None, b"mail [EMAIL]", b"b", dims=(2, 2))
    assert counts == {"EMAIL": 1}
    clean = array(TEXT, b"a", None)
    assert through(TEXT_ARRAY, clean) == (clean, {})


def test_a_number_element_that_is_a_card_becomes_a_null_element() -> None:
    value = array(INT8, struct.pack("!q", 42), struct.pack("!q", int(CARD)))
    out, counts = through(INT8_ARRAY, value)
    assert out == array(INT8, struct.pack("!q", 42), None)  # the has-NULLs flag set
    assert counts == {"CREDIT_CARD": 1, NULLED: 1}
    out, counts = through(INT8_ARRAY, b"{42," + CARD + b"}", binary=False)
    assert out is None and counts == {"CREDIT_CARD": 1, NULLED: 1}


def test_composites_nest_arrays_and_json() -> None:
    inner = array(JSONB, b'\x01{"mail": "' + EMAIL + b'"}')
    value = record((INT4, struct.pack("!i", 7)), (TEXT_ARRAY, inner), (TEXT, None), (ENUM, EMAIL))
    out, counts = through(RECORD, value)
    masked = array(JSONB, b'\x01{"mail": "[EMAIL]"}')
    assert out == record(
        (INT4, struct.pack("!i", 7)), (TEXT_ARRAY, masked), (TEXT, None), (ENUM, b"[EMAIL]")
    )
    assert counts == {"EMAIL": 2}


def test_a_type_jitgate_does_not_know_is_text_a_layout_or_null() -> None:
    assert through(ENUM, EMAIL) == (b"[EMAIL]", {"EMAIL": 1})
    assert through(ENUM, b"pending") == (b"pending", {})  # every row is read, clean passes
    # The array or composite of a database's own types, recognised by its layout.
    assert through(ENUM + 1, array(ENUM, EMAIL))[0] == array(ENUM, b"[EMAIL]")
    assert through(ENUM + 1, record((ENUM, EMAIL)))[0] == record((ENUM, b"[EMAIL]"))
    # A range of text (no subtype in its bytes): bounds read the same way.
    text_range = b"\x02" + part(EMAIL) + part(b"zzz")
    assert through(ENUM + 2, text_range)[0] == b"\x02" + part(b"[EMAIL]") + part(b"zzz")
    # hstore's layout, a geometry, a NUL inside: nothing it could be read as. NULL, counted.
    for opaque in (b"\x00\x00\x00\x01\x00\x00\x00\x04mail" + part(EMAIL), b"\x01\x01\x00\x00\x00"):
        assert through(ENUM, opaque) == (None, {NULLED: 1})


def test_malformed_layouts_are_null_never_passed() -> None:
    good = array(TEXT, EMAIL)
    for broken in (good[:-1], good + b"x", b"\x00\x00\x00\x07" + good[4:]):
        out, counts = through(TEXT_ARRAY, broken)
        assert out is None and counts[NULLED] == 1, broken
    assert through(TSVECTOR, b"\x00\x00\x00\x01" + EMAIL)[0] is None  # no NUL, no positions


def test_mangled_values_never_leave_with_the_raw_value() -> None:
    rng = random.Random(20)
    good = record((TEXT, b"x " + EMAIL), (TEXT_ARRAY, array(TEXT, EMAIL, None)))
    for _ in range(2000):
        mangled = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            mangled[rng.randrange(len(mangled))] = rng.randrange(256)
        for oid in (RECORD, ENUM):
            out, _ = through(oid, bytes(mangled))
            assert out is None or EMAIL not in out, bytes(mangled)


def test_ranges_and_tsvectors() -> None:
    bounds = b"\x02" + part(struct.pack("!q", int(CARD))) + part(struct.pack("!q", 9))
    assert through(INT8RANGE, bounds) == (None, {"CREDIT_CARD": 1, NULLED: 1})
    assert through(INT8RANGE, b"\x01") == (b"\x01", {})  # empty
    lexeme = b"\x00\x00\x00\x02" + EMAIL + b"\x00\x00\x01\x00\x03" + b"now\x00\x00\x00"
    out, counts = through(TSVECTOR, lexeme)
    assert out == b"\x00\x00\x00\x02[EMAIL]\x00\x00\x01\x00\x03now\x00\x00\x00"
    assert counts == {"EMAIL": 1}


@pytest.mark.parametrize("content", [b"card " + CARD, b'{"mail": "' + EMAIL + b'"}'])
def test_bytea_is_masked_in_the_form_it_came_in(content: bytes) -> None:
    hexed, escaped = bytea_text(content, b"\\x"), bytea_text(content + b"\\\x00", b"")
    assert bytea_content(hexed) == content and bytea_content(escaped) == content + b"\\\x00"
    for value, binary in ((content, True), (hexed, False), (escaped, False)):
        out, counts = through(BYTEA, value, binary)
        assert out is not None and sum(counts.values()) == 1
        plain = out if binary else bytea_content(out)
        assert CARD not in plain and EMAIL not in plain
        assert out[:2] == value[:2]  # hex stays hex, escape stays escape
    image = b"\x89PNG\r\n\x1a\n\x00\x00"
    assert through(BYTEA, bytea_text(image, b"\\x"), binary=False)[1] == {}


def test_types_that_hold_no_text_stay_unread_in_binary() -> None:
    masker = RowMasker(MaskingPolicy())
    for oid in (INT4, UUID, TIMESTAMPTZ, FLOAT8, BOOL, 1007, 3904):  # int4[], int4range
        field = m.FieldDescription("col", 0, 1, oid, -1, -1, 1)
        plan = ColumnPlan.from_row_description(m.RowDescription((field,)).encode()[5:])
        assert masker.blank(plan), oid
    # Text in binary arrays shows in the bytes: only rows the prefilter picks are read.
    assert not Column("col", TEXT_ARRAY, True).opaque
    assert Column("col", ENUM, True).kind is Kind.UNDECLARED and Column("col", ENUM, True).opaque
    assert Column("col", BYTEA, False).opaque and not Column("col", BYTEA, True).opaque
