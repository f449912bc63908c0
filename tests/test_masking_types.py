"""Masking through values that hold other values or hide their text: arrays, composites,
ranges, domains, enums, extension types and bytea, read by asyncpg and by psycopg in text and
binary format. What the driver hands back never holds a raw value; what the gateway cannot
read arrives as NULL; clean values arrive as stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from tests.harness import GatewayThread, gateway_config

ALICE = "alice@example.com"
SSN = "123-45-6789"
CARD = "4111 1111 1111 1111"
SECRETS = (ALICE, SSN, CARD, CARD.replace(" ", ""))

# Column: the SQL expression that reads it (each holds the secrets above somewhere).
SENSITIVE = {
    "emails": "emails",
    "ssns": "ssns",
    "grid": "grid",
    "ci": "ci",
    "ci_list": "ci_list",
    "kind": "kind",
    "kinds": "kinds",
    "person": "person",
    "people": "people",
    "anonymous_row": "row(id, ci::text, kind::text)",
    "dom": "dom",
    "doms": "doms",
    "span": "span",
    "raw_text": "raw_text",
    "raw_json": "raw_json",
    "nm": "nm",
    "doc": "doc",
    "words": "words",
    "docs": "docs",
    "cards": "cards",
    "tree": "tree",
    "blobs": "blobs",
    "box": "box",
    "anonymous_bytes": "row(id, raw_text)",
}
CREATE = f"""
CREATE EXTENSION citext;
CREATE EXTENSION ltree;
CREATE EXTENSION hstore;
CREATE TYPE contact_kind AS ENUM ('{ALICE}', 'none');
CREATE TYPE contact AS (label text, email text, n int4, ssn_digits varchar);
CREATE DOMAIN email_text AS text;
CREATE TYPE textrange AS RANGE (subtype = text);
CREATE TYPE sealed AS (label text, payload bytea);
CREATE TABLE vault (
    id int4, emails text[], ssns varchar[], grid text[], ci citext, ci_list citext[],
    kind contact_kind, kinds contact_kind[], person contact, people contact[],
    dom email_text, doms email_text[], span textrange, raw_text bytea, raw_json bytea,
    nm name, doc xml, words tsvector, docs jsonb[], cards int8[], tree ltree,
    pairs hstore, blob bytea, counts int4[], labels text[], clean contact,
    blobs bytea[], box sealed
);
INSERT INTO vault VALUES (
    1, ARRAY['x', '{ALICE}'], ARRAY['ssn {SSN}', NULL], ARRAY[['a', NULL], ['{CARD}', 'b']],
    'Mail {ALICE}', ARRAY['{ALICE}'::citext], '{ALICE}', ARRAY['none', '{ALICE}']::contact_kind[],
    ROW('home', '{ALICE}', 7, '{SSN}'), ARRAY[ROW('w', '{ALICE}', 1, NULL)::contact],
    '{ALICE}', ARRAY['{ALICE}'::email_text], textrange('{ALICE}', 'zzz'),
    convert_to('card {CARD} for {ALICE}', 'UTF8'),
    convert_to('{{"ssn": "{SSN}", "mail": "{ALICE}"}}', 'UTF8'),
    '{ALICE}', '<a>{ALICE}</a>', to_tsvector('simple', 'write to {ALICE} now'),
    ARRAY['{{"mail": "{ALICE}"}}'::jsonb], ARRAY[42, {CARD.replace(" ", "")}],
    '4111111111111111.visa', 'mail=>{ALICE}', '\\x00ff10', ARRAY[1, 2, NULL],
    ARRAY['hello', NULL, 'world'], ROW('a', 'b', 3, NULL),
    ARRAY[NULL, convert_to('{ALICE}', 'UTF8')], ROW('x', convert_to('ssn {SSN}', 'UTF8'))
);
"""


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_masktypes_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        available = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions")}
        assert {"citext", "ltree", "hstore"} <= available, "contrib extensions are installed"
        conn.execute(CREATE.encode())
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    # A reader's policy: asyncpg wraps its introspection of a database's own types in
    # set_config('jit', …), a read like SET jit.
    config = gateway_config(make_database("jg_masktypes_store"), target_dsn)
    gateway = GatewayThread(config)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def alice(gw: GatewayThread) -> str:
    return gw.dsn(ALICE, gw.token(ALICE))


def flat(value: Any) -> str:
    """Everything a driver handed back, as one text (bytes as Latin-1: every byte counts)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    if isinstance(value, dict):
        return " ".join(f"{flat(k)} {flat(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " ".join(flat(v) for v in value)
    if hasattr(value, "lower") and hasattr(value, "upper") and not isinstance(value, str):
        return f"{flat(value.lower)} {flat(value.upper)}"  # asyncpg's Range
    return str(value)


def leaks(value: Any) -> list[str]:
    """The secrets in what a driver handed back, as they are or in hex (a bytea part of a
    text literal the driver did not decode)."""
    text = flat(value)
    return [s for s in SECRETS if s in text or s.encode().hex() in text.lower()]


def psycopg_values(dsn: str, binary: bool) -> dict[str, Any]:
    exprs = ", ".join(f"{expr} AS {name}" for name, expr in SENSITIVE.items())
    with psycopg.connect(dsn) as conn, conn.cursor(binary=binary) as cur:
        cur.execute(f"SELECT {exprs} FROM vault".encode())
        row = cur.fetchone()
        assert row is not None and cur.description is not None
        return {d.name: v for d, v in zip(cur.description, row, strict=True)}


def asyncpg_value(dsn: str, expr: str) -> Any:
    async def fetch() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(f"SELECT {expr} FROM vault")
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_the_secrets_are_there_without_the_gateway(target_dsn: str) -> None:
    values = psycopg_values(target_dsn, binary=True)
    assert all(leaks(v) for v in values.values()), [k for k, v in values.items() if not leaks(v)]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "text"])
def test_psycopg_receives_no_raw_value_of_any_type(alice: str, binary: bool) -> None:
    values = psycopg_values(alice, binary)
    assert {k: leaks(v) for k, v in values.items() if leaks(v)} == {}


@pytest.mark.parametrize("column", sorted(SENSITIVE))
def test_asyncpg_receives_no_raw_value(alice: str, column: str) -> None:
    value = asyncpg_value(alice, SENSITIVE[column])
    assert leaks(value) == [], value


def test_a_domain_is_described_by_its_base_type(alice: str) -> None:
    with psycopg.connect(alice) as conn, conn.cursor(binary=True) as cur:
        cur.execute(b"SELECT dom, doms FROM vault")
        assert cur.description is not None
        assert cur.description[0].type_code == 25  # text: the domain's OID is never sent
        dom, doms = cur.fetchone()  # type: ignore[misc]
    # An array of a domain is the database's own type, its elements the domain's OID.
    assert dom == "[EMAIL]" and b"[EMAIL]" in doms and leaks(doms) == []


def test_binary_arrays_and_composites_keep_their_shape(alice: str) -> None:
    with psycopg.connect(alice) as conn, conn.cursor(binary=True) as cur:
        cur.execute(b"SELECT emails, ssns, grid, docs, cards, counts, labels FROM vault")
        row = cur.fetchone()
    assert row is not None
    emails, ssns, grid, docs, cards, counts, labels = row
    assert emails == ["x", "[EMAIL]"]
    assert ssns == ["ssn [US_SSN]", None]
    assert grid == [["a", None], ["**** **** **** 1111", "b"]]
    assert docs == [{"mail": "[EMAIL]"}]
    assert cards == [42, None]  # a card in an int8 cannot hold a mask: NULL, never the digits
    assert counts == [1, 2, None] and labels == ["hello", None, "world"]


def test_bytea_holding_text_is_masked_in_its_own_format(alice: str) -> None:
    for binary in (True, False):
        with psycopg.connect(alice) as conn, conn.cursor(binary=binary) as cur:
            cur.execute(b"SELECT raw_text, raw_json, blob FROM vault")
            row = cur.fetchone()
        assert row is not None
        raw_text, raw_json, blob = row
        assert bytes(raw_text) == b"card **** **** **** 1111 for [EMAIL]"
        assert json.loads(bytes(raw_json)) == {"ssn": "[US_SSN]", "mail": "[EMAIL]"}
        assert bytes(blob) == b"\x00\xff\x10"  # not text: as stored


def test_a_value_the_gateway_cannot_read_is_null(alice: str) -> None:
    """hstore's binary form is an extension's own layout: sent as NULL, never as stored."""
    with psycopg.connect(alice) as conn, conn.cursor(binary=True) as cur:
        cur.execute(b"SELECT pairs, clean FROM vault")
        row = cur.fetchone()
    assert row is not None
    assert row[0] is None
    assert b"a" in bytes(row[1]) and b"b" in bytes(row[1])  # a clean composite as stored
    with psycopg.connect(alice) as conn:
        (pairs,) = conn.execute(b"SELECT pairs FROM vault").fetchone()  # type: ignore[misc]
    assert pairs == '"mail"=>"[EMAIL]"'  # in text it is read
