"""The gateway reads SQL text as the target does. Each test is an attack that made a
DELETE look like one string literal to the guardrails (client-only encodings whose
characters end in a backslash; backslashes that escape quotes), sent by a user whose
policy refuses writes. The witness is the target's table, not the class."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import psycopg
import pytest

from proxy import messages as m
from tests.harness import GatewayThread, gateway_config, scalar
from tests.test_faults import RawClient

ALICE = "alice@example.com"
# Byte 0x83 0x5c is one SJIS character ending in a backslash; the gateway, reading UTF-8,
# sees an escaped quote and one string up to the last quote.
SJIS_ATTACK = b"select E'\x83\\'; delete from items; -- '"
# With standard_conforming_strings off, \' escapes the quote the gateway reads as a ''.
BACKSLASH_ATTACK = "select 'x\\''; delete from items; -- '"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    return make_database("jg_lexing_target")


@pytest.fixture
def items(target_dsn: str) -> Iterator[Callable[[], int]]:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
        conn.execute("INSERT INTO items SELECT generate_series(1, 10)")

    yield lambda: int(scalar(target_dsn, "SELECT count(*) FROM items"))


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    # alice may read, change settings and run functions — but never write.
    gateway = GatewayThread(
        gateway_config(
            make_database("jg_lexing_store"),
            target_dsn,
            engineers={"read": "allow", "privilege": "allow", "opaque": "allow"},
        )
    )
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def token(gw: GatewayThread) -> str:
    return gw.token(ALICE)


def test_psql_with_a_client_only_encoding_is_refused_at_startup(
    pg_bin: Callable[[str], str], gw: GatewayThread, token: str, items: Callable[[], int]
) -> None:
    env = {**os.environ, "PGCLIENTENCODING": "SJIS", "PGPASSWORD": token}
    # -c sends the text as one Query, as a driver does (psql's own lexer would split it).
    result = subprocess.run(
        [pg_bin("psql").encode(), b"-X", gw.dsn(ALICE, token).encode(), b"-c", SJIS_ATTACK],
        capture_output=True,
        env=env,
        timeout=30,
    )
    assert result.returncode != 0
    assert b'client_encoding "SJIS" is not supported' in result.stderr
    assert items() == 10


@pytest.mark.parametrize("encoding", ["SJIS", "BIG5", "GBK", "GB18030", "JOHAB", "LATIN1"])
def test_any_encoding_but_utf8_is_refused_at_startup(
    gw: GatewayThread, token: str, encoding: str
) -> None:
    with pytest.raises(psycopg.OperationalError, match="is not supported through jitgate"):
        psycopg.connect(gw.dsn(ALICE, token, client_encoding=encoding))


def test_utf8_in_any_spelling_is_served(gw: GatewayThread, token: str) -> None:
    for spelling in ("UTF8", "utf-8", "unicode"):
        with psycopg.connect(gw.dsn(ALICE, token, client_encoding=spelling)) as conn:
            assert conn.execute("SHOW client_encoding").fetchone() == ("UTF8",)


@pytest.mark.parametrize(
    "statement",
    [
        "SET client_encoding = 'SJIS'",
        "SET NAMES 'BIG5'",
        "SET SESSION client_encoding TO gbk",
        "SELECT set_config('client_encoding', 'JOHAB', false)",
        "SET standard_conforming_strings = off",
        "SET standard_conforming_strings TO 0",
        "SELECT set_config('standard_conforming_strings', 'off', false)",
        "SET backslash_quote = on",
    ],
)
def test_changing_how_text_is_read_is_refused_whatever_the_policy(
    gw: GatewayThread, token: str, items: Callable[[], int], statement: str
) -> None:
    """Pipelined: the attack is on its way before any answer to the SET comes back."""
    with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
        refused = pytest.raises(psycopg.errors.FeatureNotSupported, match="not supported through")
        with refused, conn.pipeline():
            conn.execute(statement.encode())
            conn.execute(SJIS_ATTACK)
            conn.execute(BACKSLASH_ATTACK.encode())
        assert conn.execute("SHOW client_encoding").fetchone() == ("UTF8",)
        assert conn.execute("SHOW standard_conforming_strings").fetchone() == ("on",)
    assert items() == 10


def test_set_local_inside_a_transaction_is_refused(
    gw: GatewayThread, token: str, items: Callable[[], int]
) -> None:
    with psycopg.connect(gw.dsn(ALICE, token)) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("SET LOCAL standard_conforming_strings = off")
        conn.rollback()
        conn.execute("SET LOCAL client_encoding TO DEFAULT")  # back to the pinned UTF8
        conn.execute("RESET standard_conforming_strings")
        assert conn.execute("SHOW standard_conforming_strings").fetchone() == ("on",)
    assert items() == 10


def test_a_startup_parameter_cannot_turn_standard_strings_off(
    gw: GatewayThread, token: str, items: Callable[[], int]
) -> None:
    client = RawClient(gw.port)
    try:
        client.send(
            m.StartupMessage(
                (
                    ("user", ALICE),
                    ("database", "prod"),
                    ("standard_conforming_strings", "off"),
                    ("backslash_quote", "on"),
                )
            ).encode()
        )
        client.until(m.AuthenticationCleartextPassword)
        client.send(m.cleartext_password(token).encode())
        greeting = client.until(m.ReadyForQuery)
        reported = {p.name: p.value for p in greeting if isinstance(p, m.ParameterStatus)}
        assert reported["standard_conforming_strings"] == "on"
        assert reported["client_encoding"] == "UTF8"
        client.send(m.Query(BACKSLASH_ATTACK).encode())
        answer = client.until(m.ReadyForQuery)
        rows = [a.values for a in answer if isinstance(a, m.DataRow)]
        assert rows == [(b"x\\'; delete from items; -- ",)], answer
    finally:
        client.close()
    assert items() == 10


def test_a_database_default_does_not_reach_a_gateway_session(
    gw: GatewayThread, token: str, target_dsn: str, items: Callable[[], int]
) -> None:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("ALTER DATABASE jg_lexing_target SET standard_conforming_strings = off")
    try:
        with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
            assert conn.execute("SHOW standard_conforming_strings").fetchone() == ("on",)
            literal = conn.execute(BACKSLASH_ATTACK.encode()).fetchone()
            assert literal == ("x\\'; delete from items; -- ",)
    finally:
        with psycopg.connect(target_dsn, autocommit=True) as conn:
            conn.execute("ALTER DATABASE jg_lexing_target RESET standard_conforming_strings")
    assert items() == 10


def test_a_function_that_changes_how_text_is_read_ends_the_session(
    gw: GatewayThread, token: str, target_dsn: str, items: Callable[[], int]
) -> None:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION relex() RETURNS void LANGUAGE plpgsql AS"
            " $$BEGIN PERFORM set_config('standard_conforming_strings', 'off', false); END$$"
        )
    with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="changed standard_conf"):
            conn.execute("SELECT relex()")
        assert conn.closed
        with pytest.raises(psycopg.OperationalError):
            conn.execute(BACKSLASH_ATTACK.encode())
    assert items() == 10
