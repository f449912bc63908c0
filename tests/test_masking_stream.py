"""The in-flight row masker: DataRow and RowDescription bytes built with the project's codec,
masked rows decoded and re-framed with it; type OIDs, formats, JSON, column-name context,
NULLs for values whose type cannot hold a mask; and the prefilter's recall against
``mask_row`` over generated rows."""

from __future__ import annotations

import json
import random
import string

import pytest

from jitgate.errors import ProtocolError
from masking import DEFAULT_ENTITIES, MaskingPolicy, samples, stream
from masking.detect import Scanner, scanner_for
from masking.entities import ALL_ENTITIES
from masking.stream import ColumnPlan, RowMasker
from proxy import messages as m
from proxy.codec import Framer, decode_backend

TEXT, VARCHAR, BPCHAR, NAME, UNKNOWN = 25, 1043, 1042, 19, 705
INT2, INT4, INT8, NUMERIC, FLOAT8, BOOL, OID = 21, 23, 20, 1700, 701, 16, 26
DATE, TIMESTAMP, TIMESTAMPTZ, TIME, UUID = 1082, 1114, 1184, 1083, 2950
JSON, JSONB, XML, INET, TEXT_ARRAY, CITEXT = 114, 3802, 142, 869, 1009, 16385

CARD = "4242424242424242"
EMAIL = "alice@example.com"


def describe(*columns: tuple[str, int] | tuple[str, int, int]) -> bytes:
    fields = tuple(
        m.FieldDescription(c[0], 0, i + 1, c[1], -1, -1, c[2] if len(c) == 3 else 0)
        for i, c in enumerate(columns)
    )
    return m.RowDescription(fields).encode()[5:]


def plan_of(*columns: tuple[str, int] | tuple[str, int, int]) -> ColumnPlan:
    return ColumnPlan.from_row_description(describe(*columns))


def body(*values: bytes | str | None) -> bytes:
    raw = tuple(v.encode() if isinstance(v, str) else v for v in values)
    return m.DataRow(raw).encode()[5:]


def values(payload: bytes) -> tuple[bytes | None, ...]:
    """Decode a rewritten body, and check that it frames as one whole DataRow."""
    wire = b"D" + (len(payload) + 4).to_bytes(4, "big") + payload
    framer = Framer()
    out, frames = framer.feed(wire)
    assert frames == [(m.DATA_ROW, 5, len(wire))] and framer.buffered == 0
    row = decode_backend(m.DATA_ROW, out[5:])
    assert isinstance(row, m.DataRow)
    return row.values


def test_text_value_masked_and_neighbours_kept() -> None:
    masker = RowMasker(MaskingPolicy())
    plan = plan_of(("id", INT4), ("note", TEXT), ("other", VARCHAR))
    new = masker.mask_row(body("42", f"mail {EMAIL} now", "plain"), plan)
    assert new is not None
    assert values(new) == (b"42", b"mail [EMAIL] now", b"plain")
    assert masker.take_counts() == {"EMAIL": 1}
    assert masker.take_counts() == {}


def test_clean_row_is_none_and_nulls_survive() -> None:
    masker = RowMasker(MaskingPolicy())
    plan = plan_of(("a", TEXT), ("b", TEXT), ("c", TEXT))
    assert masker.mask_row(body(None, "hello", None), plan) is None
    new = masker.mask_row(body(None, CARD, None), plan)
    assert new is not None and values(new) == (None, b"************4242", None)


def test_multibyte_utf8_around_a_match_keeps_its_bytes() -> None:
    masker = RowMasker(MaskingPolicy())
    text = f"Zoë → {EMAIL} ✓ 東京 {CARD}€"
    new = masker.mask_row(body(text, "ü"), plan_of(("note", TEXT), ("x", TEXT)))
    assert new is not None
    assert values(new) == ("Zoë → [EMAIL] ✓ 東京 ************4242€".encode(), "ü".encode())


def test_binary_text_types_are_masked_as_their_utf8() -> None:
    masker = RowMasker(MaskingPolicy())
    plan = plan_of(("a", TEXT, 1), ("b", VARCHAR, 1), ("c", BPCHAR, 1), ("d", NAME, 1))
    new = masker.mask_row(body(EMAIL, EMAIL, EMAIL + "   ", "x"), plan)
    assert new is not None
    assert values(new) == (b"[EMAIL]", b"[EMAIL]", b"[EMAIL]   ", b"x")


@pytest.mark.parametrize("oid", [BOOL, INT2, INT4, OID, FLOAT8, DATE, TIMESTAMP, TIMESTAMPTZ,
                                 TIME, UUID])  # fmt: skip
def test_types_that_hold_no_text_are_never_touched(oid: int) -> None:
    masker = RowMasker(MaskingPolicy())
    plan = plan_of(("v", oid), ("note", TEXT))
    row = body(f"{CARD} {EMAIL} 123-45-6789", EMAIL)
    new = masker.mask_row(row, plan)
    assert new is not None and values(new) == (f"{CARD} {EMAIL} 123-45-6789".encode(), b"[EMAIL]")


def test_timestamp_column_is_untouched_even_when_the_prefilter_points_at_it() -> None:
    masker = RowMasker(MaskingPolicy())
    row = body("2024-01-15 10:30:00+00 4111111111111111")
    assert masker.candidates(row)
    assert masker.mask_row(row, plan_of(("at", TIMESTAMPTZ))) is None


@pytest.mark.parametrize("oid", [INT8, NUMERIC])
def test_text_int8_or_numeric_card_becomes_null_and_is_counted(oid: int) -> None:
    masker = RowMasker(MaskingPolicy())
    plan = plan_of(("card", oid), ("id", oid))
    new = masker.mask_row(body(CARD, "1234567890123"), plan)
    assert new is not None and values(new) == (None, b"1234567890123")
    assert masker.take_counts() == {"CREDIT_CARD": 1, "NULLED": 1}
    assert masker.mask_row(body("12.50", "-4242424242424242"), plan) is None


def test_binary_int8_card_becomes_null_and_small_ids_stay() -> None:
    masker = RowMasker(MaskingPolicy())
    plan = plan_of(("id", INT8, 1), ("card", INT8, 1))
    assert masker.every_row(plan)
    card, ident = int(CARD).to_bytes(8, "big"), (10**15).to_bytes(8, "big")
    new = masker.mask_row(body(ident, card), plan)
    assert new is not None and values(new) == (ident, None)
    assert masker.take_counts() == {"CREDIT_CARD": 1, "NULLED": 1}
    assert masker.mask_row(body((-1).to_bytes(8, "big", signed=True), ident), plan) is None


def _binary_numeric(number: int, fraction_digits: int = 0) -> bytes:
    groups = []
    while number:
        number, group = divmod(number, 10000)
        groups.insert(0, group)
    groups += [0] * fraction_digits
    header = (len(groups), len(groups) - 1 - fraction_digits, 0, 4 * fraction_digits)
    return b"".join(n.to_bytes(2, "big") for n in (*header, *groups))


def test_binary_numeric_card_becomes_null() -> None:
    masker = RowMasker(MaskingPolicy())
    plan = plan_of(("n", NUMERIC, 1))
    assert values(masker.mask_row(body(_binary_numeric(int(CARD))), plan) or b"") == (None,)
    assert masker.mask_row(body(_binary_numeric(4111111111111, 1)), plan) is None
    assert masker.mask_row(body(_binary_numeric(12345)), plan) is None


def test_bare_ssn_needs_the_column_name_and_that_makes_every_row_count() -> None:
    masker = RowMasker(MaskingPolicy())
    by_name = plan_of(("customer_ssn", TEXT), ("order_no", TEXT))
    assert masker.every_row(by_name)
    new = masker.mask_row(body("123456789", "123456789"), by_name)
    assert new is not None and values(new) == (b"[US_SSN]", b"123456789")
    plain = plan_of(("order_no", TEXT))
    assert not masker.every_row(plain)
    assert masker.mask_row(body("123456789"), plain) is None


def test_ssn_in_an_int8_column_named_ssn_becomes_null() -> None:
    masker = RowMasker(MaskingPolicy())
    for fmt, value in ((0, b"123456789"), (1, (123456789).to_bytes(8, "big"))):
        new = masker.mask_row(body(value), plan_of(("ssn", INT8, fmt)))
        assert new is not None and values(new) == (None,)


def test_ssn_in_an_int4_column_named_ssn_becomes_null_and_other_int4_stay_unread() -> None:
    """An int4 holds nine digits: a column named like an SSN is read as a number, in text
    and in binary; an int4 no name cues is never read, whatever its value."""
    masker = RowMasker(MaskingPolicy())
    for fmt, value in ((0, b"123456789"), (1, (123456789).to_bytes(4, "big"))):
        plan = plan_of(("customer_ssn", INT4, fmt), ("qty", INT4, fmt))
        assert not masker.blank(plan) and masker.every_row(plan)
        new = masker.mask_row(body(value, value), plan)
        assert new is not None and values(new) == (None, value)
        # a number that is no SSN (too short, negative) passes as it is
        for other in (b"42", b"-123456789"):
            small = other if fmt == 0 else int(other).to_bytes(4, "big", signed=True)
            assert masker.mask_row(body(small, small), plan) is None
    assert masker.blank(plan_of(("qty", INT4), ("ok", BOOL)))


def test_json_is_walked_structurally_and_stays_valid() -> None:
    masker = RowMasker(MaskingPolicy())
    doc = (
        '{"ssn": "123456789", "id": "123456789", "card": 4242424242424242, '
        f'"n": 1.5e3, "tags": ["{EMAIL}", null, true], "{EMAIL}": {{"ssn": [123456789]}}}}'
    )
    for oid in (JSON, JSONB):
        new = masker.mask_row(body(doc), plan_of(("doc", oid)))
        assert new is not None
        (text,) = values(new)
        assert text is not None
        assert text.decode() == (
            '{"ssn": "[US_SSN]", "id": "123456789", "card": "************4242", '
            '"n": 1.5e3, "tags": ["[EMAIL]", null, true], "[EMAIL]": {"ssn": ["[US_SSN]"]}}'
        )
        json.loads(text)


def test_jsonb_binary_keeps_its_version_byte() -> None:
    masker = RowMasker(MaskingPolicy())
    plan = plan_of(("doc", JSONB, 1))
    new = masker.mask_row(body(b'\x01{"email": "' + EMAIL.encode() + b'"}'), plan)
    assert new is not None and values(new) == (b'\x01{"email": "[EMAIL]"}',)
    # A version this code cannot read: a value that might hold something is dropped.
    unknown_version = body(b'\x02{"email": "' + EMAIL.encode() + b'"}')
    assert values(masker.mask_row(unknown_version, plan) or b"") == (None,)


def test_json_escapes_are_decoded_and_seen_by_the_prefilter() -> None:
    masker = RowMasker(MaskingPolicy())
    row = body('{"note": "mail alice\\u0040example.com, \\"quoted\\" \\u00e9"}')
    assert masker.candidates(row)
    new = masker.mask_row(row, plan_of(("doc", JSON)))
    assert new is not None
    (text,) = values(new)
    assert text is not None and json.loads(text) == {"note": 'mail [EMAIL], "quoted" é'}
    dsn = body('{"dsn": "postgres:\\/\\/app:s3cr3t!@db\\/x"}')
    assert masker.candidates(dsn)
    new = masker.mask_row(dsn, plan_of(("doc", JSONB)))
    assert new is not None and values(new) == (b'{"dsn": "postgres://app:[URI_PASSWORD]@db/x"}',)


def test_unknown_plan_scans_text_and_sniffs_json() -> None:
    masker = RowMasker(MaskingPolicy())
    plan = ColumnPlan.unknown()
    new = masker.mask_row(body(f"to {EMAIL}", '{"card": 4242424242424242}', "{x@y.io}"), plan)
    assert new is not None
    assert values(new) == (b"to [EMAIL]", b'{"card": "************4242"}', b"{[EMAIL]}")
    # Binary values of unknown type are scanned too (a text type's binary form is its
    # UTF-8): a result no one described never passes unread.
    binary = ColumnPlan.unknown([1])
    masked = masker.mask_row(body(f"to {EMAIL}"), binary)
    assert masked is not None and values(masked) == (b"to [EMAIL]",)


def test_other_text_like_types_are_scanned() -> None:
    masker = RowMasker(MaskingPolicy())
    plan = plan_of(("x", XML), ("tags", TEXT_ARRAY), ("c", CITEXT), ("u", UNKNOWN))
    row = body(f"<a>{EMAIL}</a>", f'{{{EMAIL},"b c"}}', EMAIL, EMAIL)
    new = masker.mask_row(row, plan)
    assert new is not None
    assert values(new) == (b"<a>[EMAIL]</a>", b'{[EMAIL],"b c"}', b"[EMAIL]", b"[EMAIL]")


def test_result_formats_from_bind() -> None:
    description = describe(("a", TEXT), ("b", INT8))
    assert [c.binary for c in ColumnPlan.from_row_description(description).columns] == [0, 0]
    for formats, expected in (([], [0, 0]), ([1], [1, 1]), ([0, 1], [0, 1]), ([1, 0], [1, 0])):
        plan = ColumnPlan.from_row_description(description, formats)
        assert [c.binary for c in plan.columns] == expected


def test_opt_in_whole_column_entities() -> None:
    plan = plan_of(("date_of_birth", DATE), ("created", DATE), ("client", INET))
    row = body("1985-04-12", "2024-01-01", "10.0.0.1")
    default = RowMasker(MaskingPolicy())
    assert not default.every_row(plan) and default.mask_row(row, plan) is None
    enabled = RowMasker(MaskingPolicy(entities=ALL_ENTITIES))
    assert enabled.every_row(plan)
    new = enabled.mask_row(row, plan)
    assert new is not None and values(new) == (None, b"2024-01-01", None)
    assert enabled.take_counts() == {"DATE_OF_BIRTH": 1, "IP_ADDRESS": 1, "NULLED": 2}


def test_hash_strategy_in_flight() -> None:
    masker = RowMasker(MaskingPolicy(default="hash", hash_key=b"k" * 16))
    first = masker.mask_row(body(EMAIL), plan_of(("e", TEXT)))
    again = masker.mask_row(body(EMAIL.upper()), plan_of(("e", TEXT)))
    assert first is not None and first == again
    assert values(first)[0] is not None and values(first)[0].startswith(b"[EMAIL:")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\x01\x00\x00\x00\x40a@b.io",  # the value runs past the end
        b"\x00\x02\x00\x00\x00\x06a@b.io",  # a column is missing
        b"\x00\x01\xff\xff\xff\xfea@b.io",  # length -2
        b"\x00\x01\x00\x00\x00\x06a@b.ioX",  # a byte too many
        b"a@b.io",  # a column count of 24896
    ],
)
def test_malformed_rows_raise_protocol_error(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        RowMasker(MaskingPolicy()).mask_row(payload, ColumnPlan.unknown())


# Columns whose names cue nothing, so that candidates() alone decides which rows are read.
GENERATED_COLUMNS = (
    ("note", TEXT), ("label", VARCHAR), ("doc", JSON), ("body", JSONB), ("amount", INT8),
    ("total", NUMERIC), ("tags", TEXT_ARRAY), ("at", TIMESTAMPTZ), ("ref", UUID), ("c", BPCHAR),
)  # fmt: skip
_FUZZ = string.ascii_letters + string.digits + '  @+-._:/\\"{}[]()#,;é→✓東'


def _sensitive(rng: random.Random) -> str:
    pick = rng.randrange(5)
    if pick == 0:
        return rng.choice(list(samples.POSITIVES.values()))(rng)
    if pick == 1:
        make, cue = rng.choice(list(samples.OPT_IN.values()))
        return cue.format(make(rng))
    if pick == 2:
        return rng.choice(list(samples.NEGATIVES.values()))(rng)
    if pick == 3:
        return rng.choice(("SSN ", "ssn: ", "")) + samples.ssn(rng).replace("-", "")
    return "".join(rng.choice(_FUZZ) for _ in range(rng.randint(1, 40)))


def _json(rng: random.Random) -> str:
    key = rng.choice(("ssn", "phone", "fax_no", "note", "id", "card", "dob", "nhs", "x"))
    value: object = _sensitive(rng)
    if rng.random() < 0.3:
        value = int(samples.card_number(rng)) if rng.random() < 0.5 else rng.randrange(10**10)
    text = json.dumps({key: value, "n": [value, {"k": rng.randrange(100)}]}, ensure_ascii=False)
    if rng.random() < 0.2:
        text = text.replace("@", "\\u0040").replace("-", "\\u002d")
    if rng.random() < 0.2:
        text = text.replace("/", "\\/")
    return text


def _sensitive_value(rng: random.Random, oid: int) -> str:
    if oid in (JSON, JSONB):
        return _json(rng)
    if oid in (INT8, NUMERIC):
        return rng.choice((samples.card_number(rng), str(rng.randrange(10**12))))
    if oid == TEXT_ARRAY:
        return "{" + json.dumps(_sensitive(rng)) + ',"x"}'
    return rng.choice(("{}", "{} ", "Zoë {}", "{}→", "{}s")).format(_sensitive(rng))


def _clean_value(rng: random.Random, oid: int) -> str | None:
    if rng.random() < 0.1:
        return None
    if oid in (JSON, JSONB):
        return json.dumps({"k": "Zoë", "n": [1, 2.5, None]}, ensure_ascii=rng.random() < 0.5)
    if oid in (INT8, NUMERIC):
        return str(rng.randrange(10**6))
    if oid == TIMESTAMPTZ:
        return f"2024-01-15 10:30:00+00 {samples.card_number(rng)}"  # never scanned
    if oid == UUID:
        return samples.NEGATIVES["uuid"](rng)
    return " ".join(rng.choice(("a", "Zoë", "→", "ok", "東京")) for _ in range(rng.randint(0, 6)))


def _result(rng: random.Random, rows: int) -> tuple[bytes, ColumnPlan]:
    """Rows of clean values, most with one sensitive (or look-alike) value in one column, so
    that a trigger missing for it leaves the row without a candidate."""
    columns = rng.sample(GENERATED_COLUMNS, rng.randint(1, len(GENERATED_COLUMNS)))
    description = describe(*columns)
    wire = [b"T" + (len(description) + 4).to_bytes(4, "big") + description]
    for _ in range(rows):
        row = [_clean_value(rng, oid) for _, oid in columns]
        at = rng.randrange(len(columns))
        row[at] = _sensitive_value(rng, columns[at][1])
        wire.append(m.DataRow(tuple(None if v is None else v.encode() for v in row)).encode())
    wire.append(rng.choice((m.PortalSuspended(), m.CommandComplete("SELECT 1"))).encode())
    return b"".join(wire), ColumnPlan.from_row_description(description)


def ungated_masker(policy: MaskingPolicy, monkeypatch: pytest.MonkeyPatch) -> RowMasker:
    """A masker whose scanner runs every detector on every value: what masking would do if
    the prefilter and the trigger set let everything through."""
    scanner = Scanner(policy.entities)
    every = list(range(len(scanner.detectors)))
    monkeypatch.setattr(scanner, "triggered", lambda data: every)
    monkeypatch.setattr(scanner, "first_match", lambda data, pos=0: pos if pos < len(data) else -1)
    with monkeypatch.context() as patch:
        patch.setattr(stream, "scanner_for", lambda entities: scanner)
        return RowMasker(policy)


@pytest.mark.parametrize("entities", [DEFAULT_ENTITIES, ALL_ENTITIES], ids=["default", "all"])
def test_prefilter_loses_nothing_the_detectors_find(
    entities: frozenset[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over generated results: the gated masker rewrites each row exactly as the ungated one
    does, and candidates() points into every row that changes."""
    rng = random.Random(99)
    policy = MaskingPolicy(entities=entities)
    masker, oracle = RowMasker(policy), ungated_masker(policy, monkeypatch)
    changed = 0
    for _ in range(150):
        wire, plan = _result(rng, 40)
        assert not masker.every_row(plan)
        offsets = masker.candidates(wire)
        assert offsets == sorted(offsets)
        _, frames = Framer().feed(wire)
        for code, start, end in frames:
            if code != m.DATA_ROW:
                continue
            expected = oracle.mask_row(wire[start:end], plan)
            assert masker.mask_row(wire[start:end], plan) == expected, wire[start:end]
            if expected is not None:
                changed += 1
                assert any(start - 5 <= o < end for o in offsets), wire[start:end]
    assert changed > 1500  # the generator does produce rows to mask


@pytest.mark.parametrize("entities", [DEFAULT_ENTITIES, ALL_ENTITIES], ids=["default", "all"])
def test_the_offset_the_relay_hands_over_is_where_the_row_is_first_searched_from(
    entities: frozenset[str],
) -> None:
    """Over generated results, as the relay calls it: the first offset candidates() reports
    at or after a row's start is never past the row's own first prefilter match (it may
    come first: a match may run on into the next message's type byte), and mask_row given
    it answers what mask_row searching the row itself does."""
    rng = random.Random(2024)
    masker = RowMasker(MaskingPolicy(entities=entities))
    first_match = scanner_for(frozenset(entities)).first_match
    handed = 0
    for _ in range(150):
        wire, plan = _result(rng, 40)
        offsets = masker.candidates(wire)
        _, frames = Framer().feed(wire)
        for code, start, end in frames:
            hit = next((o for o in offsets if o >= start), end)
            if code != m.DATA_ROW or hit >= end:
                continue
            row = wire[start:end]
            found = first_match(row)
            assert found < 0 or hit - start <= found, row
            assert masker.mask_row(memoryview(wire)[start:end], plan, hit - start) == (
                masker.mask_row(row, plan)
            ), row
            handed += 1
    assert handed > 3000


@pytest.mark.parametrize("after", [m.PortalSuspended(), m.CommandComplete("SELECT 1")])
@pytest.mark.parametrize("pad", [0, 36, 40, 49, 81, 87, 94])
def test_a_value_that_is_all_card_is_a_candidate_at_both_edges(after: object, pad: int) -> None:
    """Its length byte may read as a digit or letter before it, and the next message's type
    byte (PortalSuspended's is a lowercase 's') after it."""
    masker = RowMasker(MaskingPolicy())
    plan = plan_of(("a", TEXT), ("b", TEXT))
    card = "4111 1111 1111 1111"
    for row in (body(" " * pad + card, "x"), body("x", card + " " * pad), body(card, None)):
        wire = b"D" + (len(row) + 4).to_bytes(4, "big") + row + after.encode()  # type: ignore[attr-defined]
        assert masker.mask_row(row, plan) is not None
        assert any(o < len(row) + 5 for o in masker.candidates(wire))


def test_clean_results_have_no_candidates() -> None:
    rng = random.Random(5)
    masker = RowMasker(MaskingPolicy())
    plan_bytes = describe(("id", INT8), ("name", TEXT), ("at", TIMESTAMPTZ), ("amount", NUMERIC))
    rows = [
        m.DataRow((str(rng.randrange(10**9)).encode(), "Zoë Müller".encode(),
                   f"2024-0{rng.randint(1, 9)}-12 10:30:00.12345+02".encode(),
                   f"{rng.randrange(10**6)}.{rng.randrange(100):02d}".encode())).encode()
        for _ in range(2000)
    ]  # fmt: skip
    wire = b"T" + (len(plan_bytes) + 4).to_bytes(4, "big") + plan_bytes + b"".join(rows)
    assert masker.candidates(wire) == []


def test_relay_splice_reframes_and_leaves_nothing_sensitive() -> None:
    rng = random.Random(3)
    masker = RowMasker(MaskingPolicy())
    plan = plan_of(("id", INT4), ("note", TEXT))
    secrets = [samples.email(rng) for _ in range(50)]
    rows = [m.DataRow((str(i).encode(), f"row {i} {s}".encode())).encode()
            for i, s in enumerate(secrets)]  # fmt: skip
    wire = b"".join(rows) + m.CommandComplete("SELECT 50").encode()
    offsets = masker.candidates(wire)
    _, frames = Framer().feed(wire)
    out, pos = [], 0
    for code, start, end in frames:
        if code == m.DATA_ROW and any(start - 5 <= o < end for o in offsets):
            new = masker.mask_row(wire[start:end], plan)
            if new is not None:
                out += (wire[pos : start - 5], b"D", (len(new) + 4).to_bytes(4, "big"), new)
                pos = end
    out.append(wire[pos:])
    rewritten = b"".join(out)
    framer = Framer()
    buf, frames = framer.feed(rewritten)
    assert framer.buffered == 0 and len(frames) == 51
    notes = [decode_backend(code, buf[s:e]) for code, s, e in frames[:-1]]
    assert [n.values for n in notes] == [  # type: ignore[attr-defined]
        (str(i).encode(), f"row {i} [EMAIL]".encode()) for i in range(50)
    ]
    assert masker.take_counts() == {"EMAIL": 50}


def test_memoryview_and_bytearray_inputs() -> None:
    masker = RowMasker(MaskingPolicy())
    plan = ColumnPlan.from_row_description(memoryview(describe(("a", TEXT), ("b", TEXT))))
    row = body("x", f"to {EMAIL}")
    assert masker.candidates(bytearray(row)) == masker.candidates(memoryview(row)) != []
    new = masker.mask_row(memoryview(row), plan)
    assert new is not None and values(new) == (b"x", b"to [EMAIL]")


def test_broken_json_from_upstream_is_masked_as_text() -> None:
    masker = RowMasker(MaskingPolicy())
    new = masker.mask_row(body(f'{{"a": "bad \\x escape {EMAIL}"}}'), plan_of(("doc", JSON)))
    assert new is not None and values(new) == (b'{"a": "bad \\x escape [EMAIL]"}',)


def test_results_whose_columns_never_carry_text_are_blank() -> None:
    """``blank`` lets the relay skip the prefilter and the rows: only for columns that can
    hold nothing a detector finds, whatever their values."""
    masker = RowMasker(MaskingPolicy())
    assert masker.blank(plan_of(("abalance", INT4), ("ok", BOOL), ("id", UUID)))
    assert masker.blank(plan_of(("abalance", INT4, 1)))  # binary int4
    assert masker.blank(plan_of(("created", DATE)))
    assert not masker.blank(plan_of(("ssn", INT8)))  # a cue: a nine-digit SSN as a number
    assert masker.blank(plan_of(("birth", DATE)))  # dates of birth are opt-in
    with_birth = RowMasker(MaskingPolicy(entities=DEFAULT_ENTITIES | {"DATE_OF_BIRTH"}))
    assert not with_birth.blank(plan_of(("birth", DATE)))
    assert not masker.blank(plan_of(("n", INT8)))  # a card number stored as int8
    assert not masker.blank(plan_of(("n", INT4), ("note", TEXT)))
    assert not masker.blank(ColumnPlan.unknown())
    # and what blank leaves out is indeed never masked
    row = m.DataRow((b"123456789", b"t", b"4111111111111111")).encode()[5:]
    assert masker.mask_row(row, plan_of(("a", INT4), ("b", BOOL), ("c", INT4))) is None
    assert masker.mask_row(row, plan_of(("ssn", INT8), ("b", BOOL), ("c", INT4))) is not None
