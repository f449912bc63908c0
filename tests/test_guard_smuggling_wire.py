"""Attacks that got a statement past the guardrails by a side door: a domain whose CHECK
runs a function, reached without a cast (column definition lists, XMLTABLE, PREPARE's
types, a Parse's parameter types), and a setting spelled with escapes that the lexing pin
did not see. A user who may only read (and change settings); the witness is the target."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from guard import Classifier
from proxy import messages as m
from tests.harness import GatewayThread, gateway_config, scalar
from tests.test_faults import RawClient

ALICE = "alice@example.com"
DOMAIN_READS = [
    'SELECT * FROM jsonb_to_record(\'{"a": "x"}\') AS r(a wiping)',
    'SELECT * FROM ROWS FROM (jsonb_to_record(\'{"a": "x"}\') AS (a public.wiping))',
    'SELECT * FROM json_to_recordset(\'[{"a": "x"}]\') AS r(a wiping)',
    "SELECT * FROM XMLTABLE('/r' PASSING xmlparse(document '<r><a>x</a></r>')"
    " COLUMNS a wiping PATH 'a')",
    "PREPARE wipe_p(wiping) AS SELECT $1",
]


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_smuggle_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int)")
        conn.execute(
            "CREATE FUNCTION wipe(text) RETURNS bool LANGUAGE sql"
            " AS 'DELETE FROM orders RETURNING true'"
        )
        conn.execute("CREATE DOMAIN wiping AS text CHECK (wipe(VALUE) IS NOT NULL OR true)")
        conn.execute("CREATE VIEW order_audit AS SELECT wipe('x') AS done")
        conn.execute("CREATE VIEW audit_summary AS SELECT count(*) FROM order_audit")
        conn.execute("CREATE VIEW order_ids AS SELECT id FROM orders")
    return dsn


@pytest.fixture
def orders(target_dsn: str) -> Callable[[], int]:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE orders")
        conn.execute("INSERT INTO orders SELECT generate_series(1, 5)")

    return lambda: int(scalar(target_dsn, "SELECT count(*) FROM orders"))


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(
        gateway_config(
            make_database("jg_smuggle_store"),
            target_dsn,
            engineers={"read": "allow", "privilege": "allow", "destructive": "review"},
            postgres={"listen": "127.0.0.1:0", "hold_timeout": "300ms"},
        )
    )
    yield gateway
    gateway.stop()


@pytest.mark.parametrize("sql", DOMAIN_READS)
def test_a_domain_reached_without_a_cast_is_never_a_read(
    gw: GatewayThread, orders: Callable[[], int], sql: str
) -> None:
    assert Classifier().classify(sql)[0].statement_class == "opaque"
    denied = pytest.raises(psycopg.errors.InsufficientPrivilege, match="wiping")
    with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True) as conn, denied:
        conn.execute(sql.encode())
    assert orders() == 5


def test_a_parse_declaring_a_domain_parameter_is_never_a_read(
    gw: GatewayThread, target_dsn: str, orders: Callable[[], int]
) -> None:
    oid = int(scalar(target_dsn, "SELECT 'wiping'::regtype::oid"))
    client = RawClient(gw.port)
    try:
        client.login(ALICE, gw.token(ALICE), "smuggle")
        sql = "SELECT $1::text IS NOT NULL"
        client.send(
            m.Parse("", sql, (oid,)).encode()
            + m.Bind("", "", (), (b"x",), ()).encode()
            + m.Execute("", 0).encode()
            + m.Sync().encode()
        )
        answer = client.until(m.ReadyForQuery)
    finally:
        client.close()
    errors = [a for a in answer if isinstance(a, m.ErrorResponse)]
    assert (
        errors
        and errors[0].code == "42501"
        and str(oid) in errors[0].message + str(errors[0].detail)
    ), answer
    assert orders() == 5


@pytest.mark.parametrize(
    "setting",
    [
        b"SET U&\"client\\005Fencoding\" TO 'SJIS'",
        b"SELECT set_config(E'client\\137encoding', 'SJIS', false)",
        b"SELECT U&\"\\0073et_config\"('client_encoding', 'SJIS', false)",
    ],
)
def test_an_escaped_setting_name_does_not_slip_past_the_pin(
    gw: GatewayThread, orders: Callable[[], int], setting: bytes
) -> None:
    smuggled = b"SELECT E'\xc3\x81\\'; DELETE FROM orders; --'"  # 81 5C: one SJIS character
    client = RawClient(gw.port)
    try:
        client.login(ALICE, gw.token(ALICE), "smuggle")
        client.send(m.Query(setting.decode()).encode() + m.Query(smuggled.decode()).encode())
        first = client.until(m.ReadyForQuery)
        client.until(m.ReadyForQuery)
    finally:
        client.close()
    refused = [a for a in first if isinstance(a, m.ErrorResponse)]
    assert refused and refused[0].code == "0A000", first
    assert orders() == 5


@pytest.mark.parametrize(
    "sql",
    ["SELECT * FROM order_audit", "SELECT * FROM public.audit_summary",
     "SELECT o.id FROM orders o JOIN order_audit a ON true"],
)  # fmt: skip
def test_a_view_whose_definition_writes_is_not_a_read(
    gw: GatewayThread, orders: Callable[[], int], sql: str
) -> None:
    """Without a reader credential the catalog is what tells: reading the view runs it."""
    denied = pytest.raises(psycopg.errors.InsufficientPrivilege, match="reads view public")
    with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True) as conn, denied:
        conn.execute(sql.encode())
    assert orders() == 5
    with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True) as conn:
        assert len(conn.execute("SELECT * FROM order_ids").fetchall()) == 5  # a plain view
