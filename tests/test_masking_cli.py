"""``jitgate mask`` masks a value exactly as the gateway's row masker masks a cell of a result
with that column name and type; type names resolve to the OIDs PostgreSQL itself gives them."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from collections import Counter
from typing import cast

import psycopg
import pytest

from masking.cell import mask_value
from masking.entities import NULLED
from masking.pgtypes import type_oid
from masking.policy import MaskingPolicy
from masking.stream import ColumnPlan, RowMasker
from proxy import messages as m
from proxy.codec import decode_backend

VALUES = (
    "write to jane.doe@example.com please",
    "card 4242 4242 4242 4242, exp 12/29",
    "4111111111111111",
    "123-45-6789",
    "123456789",
    "+1 415 555 0134",
    "GB82 WEST 1234 5698 7654 32",
    "key AKIAIOSFODNN7EXAMPLE in the log",
    '{"ssn": "123456789", "card": 4111111111111111, "note": "mail a@b.co"}',
    '[{"email": "x@example.org"}, 5555555555554444]',
    '{"broken": "a@b.co"',
    "ORD-2024-000123",
    "123e4567-e89b-12d3-a456-426614174000",
    "1985-04-12",
    "10.1.2.3",
    "\\x34323432343234323432343234323432",
    "{a@b.co,c@d.co}",
)
COLUMNS = (None, "email", "ssn", "note", "date_of_birth", "order_id", "phone", "")
TYPES = (
    None, "text", "varchar(64)", "character varying", "bpchar", "name", "json", "JSONB",
    "int8", "bigint", "int4", "numeric(20,0)", "bytea", "uuid", "date", "timestamptz",
    "inet", "text[]", "unknown", "xml", "citext", "int8[]", "record",
)  # fmt: skip


def gateway(value: str, column: str | None, oid: int) -> tuple[str | None, Counter[str]]:
    """What the relay sends for ``value`` as the second cell of a DataRow (after an int4 id)
    under a RowDescription naming ``column`` (PostgreSQL's ``?column?`` when unnamed) of
    type ``oid``, and the entities the masker counted."""
    fields = (
        m.FieldDescription("id", 0, 1, 23, 4, -1, 0),
        m.FieldDescription("?column?" if column is None else column, 0, 2, oid, -1, -1, 0),
    )
    plan = ColumnPlan.from_row_description(m.RowDescription(fields).encode()[5:])
    masker = RowMasker(MaskingPolicy())
    body = masker.mask_row(m.DataRow((b"7", value.encode())).encode()[5:], plan)
    counts = Counter(masker.take_counts())
    del counts[NULLED]
    if body is None:
        return value, counts
    row = cast(m.DataRow, decode_backend(m.DATA_ROW, body))
    assert row.values[0] == b"7"
    out = row.values[1]
    return (None if out is None else out.decode()), counts


def run_cli(lines: list[str]) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "jitgate", "mask"],
        input="".join(line + "\n" for line in lines), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_cli_masks_as_the_gateway_does_for_every_value_column_and_type() -> None:
    cases = list(itertools.product(VALUES, COLUMNS, TYPES))
    lines = []
    for value, column, type_name in cases:
        item: dict[str, str] = {"value": value}
        if column is not None:
            item["column"] = column
        if type_name is not None:
            item["type"] = type_name
        lines.append(json.dumps(item))
    answers = run_cli(lines)
    assert len(answers) == len(cases)
    outcomes: Counter[str] = Counter()
    for (value, column, type_name), answer in zip(cases, answers, strict=True):
        expected, counts = gateway(value, column, type_oid(type_name or "text"))
        case = (value, column, type_name)
        assert answer["value"] == expected, case
        assert Counter(cast(list[str], answer["entities"])) == counts, case
        assert mask_value(value, column, type_name).value == expected, case
        outcomes["null" if expected is None else "kept" if expected == value else "masked"] += 1
    # The matrix exercises every outcome, so equality above is not vacuous.
    assert len(outcomes) == 3 and min(outcomes.values()) >= 20, outcomes


@pytest.mark.parametrize(
    ("item", "value", "entities"),
    [
        # json stays JSON, walked by key: the ssn key cues, the number becomes a masked string
        (
            {"type": "jsonb", "value": '{"ssn": "123456789", "id": "123456789"}'},
            '{"ssn": "[US_SSN]", "id": "123456789"}',
            ["US_SSN"],
        ),
        ({"type": "json", "value": "[4242424242424242]"}, '["************4242"]', ["CREDIT_CARD"]),
        # as text, a document is prose: the number is masked in place, no longer JSON
        ({"type": "text", "value": "[4242424242424242]"}, "[************4242]", ["CREDIT_CARD"]),
        # a number column cannot hold a mask: NULL
        ({"type": "int8", "value": "4242424242424242"}, None, ["CREDIT_CARD"]),
        ({"column": "ssn", "type": "int4", "value": "123456789"}, None, ["US_SSN"]),
        ({"column": "id", "type": "int4", "value": "123456789"}, "123456789", []),
        # values holding values are read as the gateway reads them in text format
        ({"type": "text[]", "value": "{a@b.co,x}"}, "{[EMAIL],x}", ["EMAIL"]),
        ({"type": "record", "value": "(7,a@b.co)"}, "(7,[EMAIL])", ["EMAIL"]),
        ({"type": "citext", "value": "a@b.co"}, "[EMAIL]", ["EMAIL"]),
        ({"type": "int8[]", "value": "{1,4242424242424242}"}, None, ["CREDIT_CARD"]),
        # bytea: its content, masked and written back in the same form
        ({"type": "bytea", "value": "\\x6140622e636f"}, "\\x5b454d41494c5d", ["EMAIL"]),
        ({"type": "bytea", "value": "a@b.co\\000"}, "[EMAIL]\\000", ["EMAIL"]),
        ({"type": "bytea", "value": "\\x4142"}, "\\x4142", []),
        # types that never carry text are never read
        ({"type": "uuid", "value": "123e4567-e89b-12d3-a456-426614174000"}, None, None),
        # the column name is context, as a RowDescription's is
        ({"column": "ssn", "value": "123456789"}, "[US_SSN]", ["US_SSN"]),
        ({"column": "order_id", "value": "123456789"}, "123456789", []),
    ],
)
def test_cli_type_and_column_matter(
    item: dict[str, str], value: str | None, entities: list[str] | None
) -> None:
    (answer,) = run_cli([json.dumps(item)])
    if entities is None:  # unchanged
        assert answer == {"value": item["value"], "entities": []}
    else:
        assert answer == {"value": value, "entities": entities}


def test_cli_names_the_line_of_a_bad_item_and_an_unknown_type() -> None:
    lines = [
        json.dumps({"value": "a@b.co"}),
        "",
        "not json",
        json.dumps({"value": 42}),
        json.dumps({"value": "a@b.co", "type": "citext2"}),
        json.dumps({"value": "a@b.co", "column": 3}),
        json.dumps({"value": "x", "type": ["text"]}),
        json.dumps(["value"]),
        json.dumps({"value": "a@b.co", "type": "varchar(20)"}),
    ]
    assert run_cli(lines) == [
        {"value": "[EMAIL]", "entities": ["EMAIL"]},
        {"error": "line 3: expected an object with a string value"},
        {"error": "line 4: expected an object with a string value"},
        {"error": "line 5: unknown type 'citext2'"},
        {"error": "line 6: expected an object with a string value"},
        {"error": "line 7: expected an object with a string value"},
        {"error": "line 8: expected an object with a string value"},
        {"value": "[EMAIL]", "entities": ["EMAIL"]},
    ]


SPELLINGS = (
    "int8", "INT8", "bigint", "int", "integer", "smallint", "int4[]", "_int8", "int8[][]",
    "text", "text[]", "varchar", "varchar(20)", "character varying(3)", "char", "char(5)",
    '"char"', "_char", "character", "bpchar", "name", "json", "jsonb", "jsonb[]", "bytea",
    "uuid", "date", "timestamp", "timestamp with time zone", "time(3) with time zone",
    "timestamptz", "inet", "cidr", "numeric", "numeric(10,2)", "decimal", "real", "float",
    "double precision", "boolean", "bit varying", "xml", "interval", "money", "unknown",
    "tsvector", "int8range", "pg_lsn", "xid8", "macaddr8", "oid", "regclass",
)  # fmt: skip


def test_type_names_resolve_as_postgresql_resolves_them(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        for name in SPELLINGS:
            row = conn.execute("SELECT %s::regtype::oid", (name,)).fetchone()
            assert row is not None and type_oid(name) == row[0], name


@pytest.mark.parametrize("name", ["citext2", "int9", "text[", "", "json b"])
def test_unknown_type_names_are_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"unknown type {name!r}")):
        type_oid(name)
