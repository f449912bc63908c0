"""The shortcuts of the masking hot path against their plain definitions: ``partial`` by byte
translation, Luhn by byte sums, e-mail labels without splitting, phone digits by deletion,
and the prefilter's skip to the end of a value, which must still leave an offset in every
row that masking changes."""

from __future__ import annotations

import random
import sys

import pytest

from masking import MaskingPolicy, phones, strategies, validators
from masking.stream import ColumnPlan, RowMasker
from proxy import messages as m
from proxy.codec import Framer, decode_backend

TEXT, INT4, TIMESTAMPTZ, UUID, NUMERIC = 25, 23, 1184, 2950, 1700
# One row of bench/results.py's PII table, as psql receives it.
PSQL_ROW = (
    b"1230", b"customer 1230", b"Porto", b"ORD-9737370", b"2024-01-01 20:30:00+00",
    b"2f2b2653-8cf9-3b61-0ef6-3c7d1a7f8e2a", b"287.50",
    b"reach me at user1230@example.com, card 4111 1111 1111 1111, +14155552671",
)  # fmt: skip


def reference_partial(value: str) -> str:
    alnum = sum(ch.isalnum() for ch in value)
    keep = strategies.KEEP_LAST if alnum >= 2 * strategies.KEEP_LAST else 0
    seen, out = 0, []
    for ch in value:
        seen += ch.isalnum()
        out.append(ch if not ch.isalnum() or seen > alnum - keep else "*")
    return "".join(out)


def reference_luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def reference_email(candidate: str) -> bool:
    local, _, domain = candidate.rpartition("@")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return all(label and not label.startswith("-") for label in domain.split("."))


def reference_phone(candidate: str) -> bool:
    digits = "".join(ch for ch in candidate.replace("(0)", "", 1) if ch in "0123456789")
    if candidate.count(".") == 1 or (candidate[1:].isdigit() and len(digits) < 10):
        return False
    return phones.valid_international(digits)


def test_alnum_pattern_is_str_isalnum_over_all_unicode() -> None:
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    expected = "".join("*" if ch.isalnum() else ch for ch in every)
    assert strategies._ALNUM.sub("*", every) == expected


@pytest.mark.parametrize("alphabet", ["4242 -x_*Z", "ab1 -*_é東9Z٣²"], ids=["ascii", "unicode"])
def test_partial_matches_its_definition(alphabet: str) -> None:
    rng = random.Random(alphabet)
    for _ in range(20_000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        assert strategies.partial("CREDIT_CARD", value) == reference_partial(value), value


def test_luhn_matches_its_definition() -> None:
    rng = random.Random(1)
    for _ in range(20_000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 30)))
        assert validators.luhn_ok(digits) == reference_luhn(digits), digits


def test_email_labels_match_splitting() -> None:
    rng = random.Random(2)
    for _ in range(20_000):
        candidate = "".join(rng.choice("ab.-@") for _ in range(rng.randint(0, 10)))
        assert validators.valid_email(candidate) == reference_email(candidate), candidate


def test_phone_digits_match_counting() -> None:
    rng = random.Random(3)
    for _ in range(20_000):
        candidate = "+" + "".join(rng.choice("0123456789 -().") for _ in range(rng.randint(1, 20)))
        if any(ch.isdigit() for ch in candidate):
            assert phones.valid_phone(candidate) == reference_phone(candidate), candidate


def _wire(rows: list[tuple[bytes | None, ...]]) -> bytes:
    return b"".join(m.DataRow(row).encode() for row in rows) + m.CommandComplete("SELECT").encode()


def _plan(*oids: int) -> ColumnPlan:
    fields = tuple(m.FieldDescription(f"c{i}", 0, i, oid, -1, -1, 0) for i, oid in enumerate(oids))
    return ColumnPlan.from_row_description(m.RowDescription(fields).encode()[5:])


def test_the_benchmark_row_is_masked_whole() -> None:
    masker = RowMasker(MaskingPolicy())
    plan = _plan(INT4, TEXT, TEXT, TEXT, TIMESTAMPTZ, UUID, NUMERIC, TEXT)
    wire = m.DataRow(PSQL_ROW).encode()
    new = masker.mask_row(memoryview(wire)[5:], plan)
    assert new is not None
    row = decode_backend(m.DATA_ROW, new)
    assert isinstance(row, m.DataRow)
    assert row.values == (*PSQL_ROW[:7], b"reach me at [EMAIL], card **** **** **** 1111, [PHONE]")
    assert masker.take_counts() == {"EMAIL": 1, "CREDIT_CARD": 1, "PHONE": 1}
    assert len(masker.candidates(wire)) == 1  # three entities, one value: one RE2 search


def test_every_changed_row_keeps_an_offset_after_skips() -> None:
    """Values ending in a card (whose match may take in the next length's NUL), NULLs, long
    values whose length has no second NUL, and several PII values per row."""
    rng = random.Random(4)
    pieces = [
        b"4111 1111 1111 1111", b"x 4111111111111111", b"mail a@b.io", b"+14155552671 ",
        b"plain", None, b"y" * 70_000 + b" z@example.com", b"4111-1111-1111-1111 ",
    ]  # fmt: skip
    rows = [tuple(rng.choice(pieces) for _ in range(4)) for _ in range(300)]
    wire = _wire(rows)
    masker, plan = RowMasker(MaskingPolicy()), _plan(TEXT, TEXT, TEXT, TEXT)
    offsets = masker.candidates(wire)
    _, frames = Framer().feed(wire)
    changed = 0
    for code, start, end in frames:
        if code == m.DATA_ROW and masker.mask_row(wire[start:end], plan) is not None:
            changed += 1
            assert any(start - 5 <= o < end for o in offsets), wire[start : start + 80]
    assert changed > 250
