"""Transforms of sensitive columns inside the target's views and SQL functions.

Through the live gateway with psql, as a user whose reads run at once: a view column whose
definition transforms a sensitive column of its base table (``reverse(ssn)``), directly or
through views over views, is held when read, with a reason naming the column and the view,
which the approver sees; so is a call of a SQL-language function whose body transforms
one. A view that keeps the value (``SELECT ssn FROM customers``) is a plain read whose
values are masked, and its columns not transformed are read at once. A view over a column
that masking learns about later (``md5(contact)``) is held from then on."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable, Iterator

import psycopg
import pytest

from guard.view_transforms import DefinedCode, transforming_code
from tests.harness import GatewayThread, ask_api, gateway_config

ALICE, BOB = "alice@example.com", "bob@example.com"
EMAIL, SSN = "jane.roe@example.org", "123-45-6789"
TARGET_SQL = """
CREATE TABLE customers (id int, name text, ssn text, contact text);
INSERT INTO customers VALUES (1, 'Jane', '123-45-6789', 'jane.roe@example.org');
CREATE VIEW v AS SELECT id, reverse(ssn) AS r FROM customers;
CREATE VIEW v2 AS SELECT id, ssn FROM customers;
CREATE VIEW w AS SELECT v.r AS rr, v.id FROM v;
CREATE VIEW v3 AS SELECT c.id, c.ssn AS x FROM customers c;
CREATE VIEW w3 AS SELECT id, replace(x, '-', '') AS y FROM v3;
CREATE VIEW vc AS SELECT id, md5(contact) AS h FROM customers;
CREATE FUNCTION leak() RETURNS SETOF text LANGUAGE sql AS $$ SELECT reverse(ssn) FROM customers $$;
CREATE FUNCTION names() RETURNS SETOF text LANGUAGE sql AS $$ SELECT upper(name) FROM customers $$;
CREATE FUNCTION leak_atomic() RETURNS SETOF text LANGUAGE sql
BEGIN ATOMIC SELECT translate(ssn, '0123456789', 'abcdefghij') FROM customers; END;
"""
HELD = {
    "SELECT r FROM v": "reverse() over masked column customers.ssn in view v",
    "SELECT * FROM v": "reverse() over masked column customers.ssn in view v",
    "SELECT upper(rr) FROM w": "reverse() over masked column customers.ssn in view v, in view w",
    "SELECT y FROM w3": "replace() over masked column v3.x in view w3",
    "SELECT leak()": "reverse() over masked column customers.ssn in function leak()",
    "SELECT * FROM leak_atomic() AS t": (
        "translate() over masked column customers.ssn in function leak_atomic()"
    ),
}


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str]) -> Iterator[tuple[GatewayThread, str]]:
    store, target = make_database("jg_view_tf_store"), make_database("jg_view_tf_target")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(TARGET_SQL.encode())
    resource = {
        "type": "postgres",
        "url": target,
        "access": {
            "engineers": {"read": "allow", "write": "review", "privilege": "deny"},
            "dba": {c: "allow" for c in ("read", "write", "ddl", "destructive")},
        },
        "approvers": ["dba"],
        "functions": {"allow": ["leak", "names", "leak_atomic"]},
    }
    config = gateway_config(
        store, target, postgres={"listen": "127.0.0.1:0", "hold_timeout": "300ms"},
        resources={"prod": resource},
    )  # fmt: skip
    gateway = GatewayThread(config)
    yield gateway, store
    gateway.stop()


def _psql(pg_bin: Callable[[str], str], dsn: str, sql: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [pg_bin("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", dsn, "-c", sql],
        capture_output=True,
        timeout=30,
        check=False,
    )


def _requests(gateway: GatewayThread, request_ids: list[int]) -> list[dict[str, object]]:
    """The requests as the approver (bob) is shown them by the REST API."""
    token, shown = gateway.token(BOB), []
    for request_id in request_ids:
        request = urllib.request.Request(
            f"http://127.0.0.1:{gateway.http_port}/api/requests/{request_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            shown.append(json.loads(response.read()))
    return shown


def test_reading_a_transformed_view_column_is_held_with_its_reason(
    gw: tuple[GatewayThread, str], pg_bin: Callable[[str], str]
) -> None:
    gateway, store = gw
    dsn = gateway.dsn(ALICE, gateway.token(ALICE))
    for sql in HELD:
        done = _psql(pg_bin, dsn, sql)
        assert done.returncode != 0, (sql, done.stdout)
        assert b"pending" in done.stderr, (sql, done.stderr)
        assert SSN.encode() not in done.stdout + done.stderr
        assert SSN[::-1].encode() not in done.stdout + done.stderr
    with psycopg.connect(store) as conn:
        rows = conn.execute("SELECT id, sql FROM requests WHERE state = 'pending' ORDER BY id")
        held = {sql: request_id for request_id, sql in rows.fetchall()}
    assert set(held) == set(HELD), held
    for sql, shown in zip(HELD, _requests(gateway, [held[sql] for sql in HELD]), strict=True):
        assert HELD[sql] in json.dumps(shown), (sql, shown)
    # asked for from the REST API (as chat, the CLI and agents ask): held the same way
    status, body = ask_api(gateway, gateway.token(ALICE), "SELECT rr FROM w")
    assert status == 202 and "in view v, in view w" in json.dumps(body), body


def test_views_and_functions_that_keep_the_value_are_masked_reads(
    gw: tuple[GatewayThread, str], pg_bin: Callable[[str], str]
) -> None:
    gateway, _ = gw
    dsn = gateway.dsn(ALICE, gateway.token(ALICE))
    for sql in ("SELECT ssn FROM v2", "SELECT x FROM v3", "SELECT * FROM v2"):
        done = _psql(pg_bin, dsn, sql)
        assert done.returncode == 0, (sql, done.stderr)
        assert SSN.encode() not in done.stdout and b"US_SSN" in done.stdout, (sql, done.stdout)
    for sql, out in (("SELECT id FROM v", b"1\n"), ("SELECT count(r) FROM v", b"1\n"),
                     ("SELECT names()", b"JANE\n"), ("SELECT id FROM w", b"1\n")):  # fmt: skip
        done = _psql(pg_bin, dsn, sql)
        assert (done.returncode, done.stdout) == (0, out), (sql, done.stderr)


def test_a_view_over_a_column_learned_later_is_held_from_then_on(
    gw: tuple[GatewayThread, str], pg_bin: Callable[[str], str]
) -> None:
    gateway, _ = gw
    dsn = gateway.dsn(ALICE, gateway.token(ALICE))
    assert _psql(pg_bin, dsn, "SELECT count(h) FROM vc").returncode == 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT h FROM vc").fetchone() is not None  # contact not known yet
        row = conn.execute("SELECT contact FROM customers").fetchone()
        assert row is not None and EMAIL not in row[0]
        with pytest.raises(psycopg.errors.QueryCanceled, match="pending"):
            conn.execute("SELECT h FROM vc")
    done = _psql(pg_bin, dsn, "SELECT h FROM vc")
    assert done.returncode != 0 and b"pending" in done.stderr


def test_what_a_definition_transforms() -> None:
    views = (
        ("public", "v", "SELECT customers.id, reverse(customers.ssn) AS r FROM customers;"),
        ("public", "w", "SELECT v.r AS rr, v.id FROM v;"),
        ("public", "k", "SELECT c.ssn AS kept FROM customers c;"),
        ("s", "t", "SELECT lpad(k.kept, 11) AS padded, count(*) AS n FROM public.k GROUP BY 1;"),
        ("public", "u", "SELECT customers.id FROM customers WHERE reverse(customers.ssn) > '';"),
    )
    views += (("public", "calls", "SELECT f() AS h, 1 AS one;"),)
    functions = (
        ("public", "f", "SELECT md5(ssn) FROM customers"),
        ("public", "f2", "SELECT upper(x) FROM f() AS x"),
        ("public", "g", "SELECT 1 + $1"),
        ("public", "bad", "SELECT FROM WHERE"),
    )
    code = transforming_code(DefinedCode(views, functions), lambda name: name == "ssn")
    assert code.columns["v"] == {"r": "reverse() over masked column customers.ssn in view v"}
    assert code.columns["w"] == {
        "rr": "reverse() over masked column customers.ssn in view v, in view w"
    }
    assert (
        code.columns["t"]
        == code.columns["s.t"]
        == {"padded": "lpad() over masked column k.kept in view t"}
    )
    assert code.kept["k"] == frozenset({"kept"})
    assert "u" not in code.columns and "bad" not in code.functions
    reason = "md5() over masked column customers.ssn in function f()"
    in_f2 = f"{reason}, in function f2()"
    assert code.functions == {"f": reason, "public.f": reason, "f2": in_f2, "public.f2": in_f2}
    assert code.columns["calls"] == {"h": f"{reason}, in view calls"}
