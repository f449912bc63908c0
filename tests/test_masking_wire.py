"""Masking in flight: whatever client and format, sensitive values leave the gateway masked,
clean values byte for byte as the target sent them, and the audit trail counts what was
masked (never the values)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from tests.harness import GatewayThread, gateway_config

ALICE = "alice@example.com"
CARD = "4111111111111111"
JSON_DOC = {"contact": {"email": "x@y.org", "phone": "+14155552671"}, "n": 1, "ok": True}


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_maskwire_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE people (id int8 PRIMARY KEY, email text, card int8, card_text text,"
            " ssn text, doc jsonb, note text, created timestamptz, ref uuid, tax_ssn int4,"
            " qty int4)"
        )
        conn.execute(
            "INSERT INTO people VALUES (1, 'alice@example.com', %s, %s, '123-45-6789', %s,"
            " 'call +14155552671 or mail bob@corp.io', '2024-01-02 03:04:05+00',"
            " '6ba7b810-9dad-11d1-80b4-00c04fd430c8', 123456789, 123456789),"
            " (2, 'nobody', 42, 'order 1234567890123', 'n/a', '{}', 'clean text',"
            " '2024-01-02 03:04:05+00', '6ba7b811-9dad-11d1-80b4-00c04fd430c8', 7, 7)",
            (int(CARD), CARD, json.dumps(JSON_DOC)),
        )
        conn.execute(
            "CREATE TABLE bulk AS SELECT g AS id, 'row ' || g AS label,"
            " CASE WHEN g % 10 = 0 THEN 'user' || g || '@example.com' ELSE 'nothing' END AS contact"
            " FROM generate_series(1, 20000) g"
        )
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    config = gateway_config(make_database("jg_maskwire_store"), target_dsn)
    gateway = GatewayThread(config)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def alice(gw: GatewayThread) -> str:
    return gw.dsn(ALICE, gw.token(ALICE))


def test_psql_text_rows_are_masked_by_column_type_and_name(
    pg_bin: Callable[[str], str], alice: str
) -> None:
    out = subprocess.run(
        [pg_bin("psql"), "-X", "-At", "-F", "|", alice, "-c",
         "SELECT id, email, card, card_text, ssn, note, created, ref FROM people ORDER BY id"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert out[0] == (
        "1|[EMAIL]||************1111|[US_SSN]|call [PHONE] or mail [EMAIL]"
        "|2024-01-02 03:04:05+00|6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    )
    # Clean values pass untouched: an order number, a timestamp, a UUID.
    assert out[1] == (
        "2|nobody|42|order 1234567890123|n/a|clean text"
        "|2024-01-02 03:04:05+00|6ba7b811-9dad-11d1-80b4-00c04fd430c8"
    )


def test_an_ssn_in_an_int4_column_is_masked_in_text_and_binary_results(
    pg_bin: Callable[[str], str], alice: str
) -> None:
    """An int4 named like an SSN is read (NULL: a number cannot hold a mask); an int4 with
    the same digits and no such name passes."""
    sql = "SELECT id, tax_ssn, qty FROM people ORDER BY id"
    out = subprocess.run(
        [pg_bin("psql"), "-X", "-At", "-F", "|", alice, "-c", sql],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert out == ["1||123456789", "2|7|7"]

    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(alice)  # binary results
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    assert [tuple(r) for r in asyncio.run(fetch())] == [(1, None, 123456789), (2, 7, 7)]


def test_json_is_masked_structurally_and_stays_json(alice: str) -> None:
    with psycopg.connect(alice) as conn:
        (doc,) = conn.execute("SELECT doc FROM people WHERE id = 1").fetchone()  # type: ignore[misc]
        (text,) = conn.execute("SELECT doc::text FROM people WHERE id = 1").fetchone()  # type: ignore[misc]
    assert doc == {"contact": {"email": "[EMAIL]", "phone": "[PHONE]"}, "n": 1, "ok": True}
    assert json.loads(text) == doc


def test_binary_results_of_drivers_are_masked(alice: str) -> None:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(alice)  # binary results, prepared statements
        try:
            return await conn.fetch("SELECT * FROM people WHERE id = $1", 1)
        finally:
            await conn.close()

    (row,) = asyncio.run(fetch())
    assert row["email"] == "[EMAIL]" and row["ssn"] == "[US_SSN]"
    assert row["card"] is None  # a card in int8 cannot hold a mask: NULL, never the digits
    assert json.loads(row["doc"])["contact"]["email"] == "[EMAIL]"
    with psycopg.connect(alice) as conn:
        binary = conn.execute("SELECT email, card FROM people WHERE id = 1", binary=True)
        assert binary.fetchone() == ("[EMAIL]", None)


def test_large_results_mask_exactly_the_rows_that_need_it(alice: str) -> None:
    with psycopg.connect(alice) as conn:
        rows = conn.execute("SELECT id, label, contact FROM bulk ORDER BY id").fetchall()
    assert len(rows) == 20000
    masked = [r for r in rows if r[2] == "[EMAIL]"]
    assert len(masked) == 2000
    assert all(r[2] == "nothing" for r in rows if r[0] % 10)
    assert rows[41] == (42, "row 42", "nothing")


def test_the_audit_trail_counts_masked_entities_not_values(gw: GatewayThread, alice: str) -> None:
    with psycopg.connect(alice, autocommit=True) as conn:
        conn.execute("SELECT email, card_text, note FROM people /* audit-count */")
    gw.flush_audit()
    row: Any = gw.call(
        gw.gateway.pool.fetchrow(
            "SELECT masked::text FROM statement_events WHERE sql LIKE '%audit-count%'"
        )
    )
    assert json.loads(row["masked"]) == {"EMAIL": 2, "CREDIT_CARD": 1, "PHONE": 1}
    everything = gw.call(
        gw.gateway.pool.fetchval("SELECT string_agg(events::text, '') FROM statement_batches")
    )
    assert "alice@example.com" not in everything and CARD not in everything


def test_masking_off_passes_values_through(
    make_database: Callable[[str], str], target_dsn: str
) -> None:
    config = gateway_config(make_database("jg_maskwire_store_off"), target_dsn)
    resources = dict(config.resources)
    resources["prod"] = dataclasses.replace(resources["prod"], masking="off")
    gateway = GatewayThread(dataclasses.replace(config, resources=resources))
    try:
        with psycopg.connect(gateway.dsn(ALICE, gateway.token(ALICE))) as conn:
            row = conn.execute("SELECT email, card FROM people WHERE id = 1").fetchone()
        assert row == ("alice@example.com", int(CARD))
    finally:
        gateway.stop()


def test_sql_texts_in_the_audit_trail_are_masked(gw: GatewayThread, alice: str) -> None:
    """Whichever path ran the statement: the Python relay the first time, the native
    engine (and its pump) once the text is known."""
    with psycopg.connect(alice, autocommit=True) as conn:
        for _ in range(6):
            conn.execute("SELECT 'carol@corp.io' AS who, 'sk_live_4eC39HqLyjWDarjtT1zdp7dc' AS key")
    gw.flush_audit()
    texts = gw.call(
        gw.gateway.pool.fetch("SELECT sql FROM statement_events WHERE sql LIKE '%AS who%'")
    )
    assert [r["sql"] for r in texts] == ["SELECT '[EMAIL]' AS who, '[STRIPE_KEY]' AS key"] * 6
    stored = gw.call(
        gw.gateway.pool.fetchval(
            "SELECT string_agg(array_to_string(texts, ''), '') FROM statement_batches"
        )
    )
    assert "carol@corp.io" not in stored and "sk_live_" not in stored
