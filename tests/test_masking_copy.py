"""COPY … TO STDOUT is a path out like any result: its rows leave masked (text and CSV), and
a binary COPY out, which the gateway cannot read, is refused when the resource masks."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.harness import GatewayThread, gateway_config

ALICE = "alice@example.com"
RAW = ("alice@example.com", "4111111111111111", "4111 1111 1111 1111", "123-45-6789")


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_maskcopy_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE people (id int, email text, card text, ssn text, note text)")
        conn.execute(
            "INSERT INTO people VALUES (1, 'alice@example.com', '4111111111111111',"
            " '123-45-6789', 'pay with 4111 1111 1111 1111, tab\there'),"
            " (2, 'nobody', 'n/a', 'n/a', 'clean, \"quoted\" text')"
        )
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(gateway_config(make_database("jg_maskcopy_store"), target_dsn))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def alice(gw: GatewayThread) -> str:
    return gw.dsn(ALICE, gw.token(ALICE))


@pytest.mark.parametrize(
    "copy",
    [
        "COPY people TO STDOUT",
        "COPY (SELECT * FROM people ORDER BY id) TO STDOUT",
        "COPY people TO STDOUT WITH (FORMAT csv, HEADER)",
        "COPY (SELECT coalesce(ssn, email), upper(email) FROM people) TO STDOUT (FORMAT csv)",
    ],
)
def test_psql_copy_out_rows_are_masked(pg_bin: Callable[[str], str], alice: str, copy: str) -> None:
    result = subprocess.run(
        [pg_bin("psql"), "-X", alice, "-c", copy], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert not [raw for raw in RAW if raw.lower() in result.stdout.lower()], result.stdout
    assert any("nobody" in line or "NOBODY" in line for line in lines)  # clean rows intact
    assert len(lines) >= 2


def test_psycopg_copy_out_keeps_the_format_and_masks(alice: str) -> None:
    sql = "COPY (SELECT * FROM people ORDER BY id) TO STDOUT"
    with psycopg.connect(alice) as conn, conn.cursor() as cursor, cursor.copy(sql) as copy:
        rows = list(copy.rows())
    assert len(rows) == 2 and rows[1] == ("2", "nobody", "n/a", "n/a", 'clean, "quoted" text')
    assert not [raw for raw in RAW if raw in repr(rows)], rows
    assert rows[0][0] == "1" and rows[0][4].endswith("tab\there")  # escapes kept


def test_binary_copy_out_is_refused_and_the_session_goes_on(alice: str) -> None:
    with psycopg.connect(alice, autocommit=True) as conn:
        with (
            pytest.raises(psycopg.errors.FeatureNotSupported, match="binary COPY"),
            conn.cursor() as cursor,
            cursor.copy("COPY people TO STDOUT (FORMAT binary)") as copy,
        ):
            list(copy)
        assert conn.execute("SELECT count(*) FROM people").fetchone() == (2,)


def test_the_audit_trail_counts_what_copy_masked(gw: GatewayThread, alice: str) -> None:
    sql = "COPY (SELECT email FROM people) TO STDOUT"
    with psycopg.connect(alice) as conn, conn.cursor() as cursor, cursor.copy(sql) as copy:
        list(copy)
    gw.flush_audit()
    masked = gw.call(
        gw.gateway.pool.fetchval("SELECT masked::text FROM statement_events WHERE sql = $1", sql)
    )
    assert json.loads(masked) == {"EMAIL": 1}
