"""Code a read runs without naming it, on a resource without a reader (``url`` only, an
application role that may write): a row-level security policy and a domain's CHECK that
call a function writing to an audit table. The gateway reads them from the target's
catalog; the witness is the audit table, which no read by alice may change."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import asyncpg
import psycopg
import pytest

from tests.harness import GatewayThread, gateway_config, scalar
from tests.test_reader_wire import as_role

ALICE = "alice@example.com"
APP = "jg_code_app"
WRITES_AUDIT = (
    "CREATE FUNCTION {name}(x anyelement) RETURNS boolean LANGUAGE plpgsql AS"
    " $$BEGIN INSERT INTO audit_log VALUES ('{name}'); RETURN true; END$$"
)


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str], pg_dsn: str) -> str:
    dsn = make_database("jg_code_target")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {APP}")
        conn.execute(f"CREATE ROLE {APP} LOGIN")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in (
            "CREATE TABLE audit_log (what text)",
            WRITES_AUDIT.format(name="audit_read"),
            WRITES_AUDIT.format(name="audit_check"),
            "CREATE TABLE accounts (id int PRIMARY KEY, owner text)",
            "INSERT INTO accounts VALUES (1, 'a'), (2, 'b')",
            "ALTER TABLE accounts ENABLE ROW LEVEL SECURITY",
            "CREATE POLICY audited ON accounts USING (audit_read(id))",
            "CREATE VIEW account_view AS SELECT id FROM accounts",
            "CREATE TABLE plain (id int PRIMARY KEY, owner text)",
            "INSERT INTO plain VALUES (1, 'a')",
            "ALTER TABLE plain ENABLE ROW LEVEL SECURITY",
            "CREATE POLICY own_rows ON plain USING (owner = current_user OR id > 0)",
            "CREATE DOMAIN checked_text AS text CHECK (audit_check(VALUE))",
            "CREATE TABLE notes (id int PRIMARY KEY, body checked_text)",
            "INSERT INTO notes VALUES (1, 'first')",
            "CREATE DOMAIN short_text AS text CHECK (length(VALUE) < 100)",
            "CREATE TABLE memos (id int PRIMARY KEY, body short_text)",
            "INSERT INTO memos VALUES (1, 'memo')",
            "CREATE TYPE mood AS ENUM ('ok', 'sad')",
            "CREATE FUNCTION mood_json(m mood) RETURNS json LANGUAGE plpgsql AS"
            " $$BEGIN INSERT INTO audit_log VALUES ('mood_json'); RETURN to_json(m::text); END$$",
            "CREATE CAST (mood AS json) WITH FUNCTION mood_json(mood)",
            "CREATE TABLE people (id int PRIMARY KEY, m mood)",
            "INSERT INTO people VALUES (1, 'ok')",
            "CREATE EXTENSION citext",
            "CREATE TABLE handles (id int PRIMARY KEY, h citext)",
            "INSERT INTO handles VALUES (1, 'Ann')",
            f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {APP}",
        ):
            conn.execute(statement.encode())
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    config = gateway_config(make_database("jg_code_store"), as_role(target_dsn, APP))
    gateway = GatewayThread(config)
    yield gateway
    gateway.stop()


@pytest.fixture
def audit(target_dsn: str) -> Callable[[], int]:
    return lambda: int(scalar(target_dsn, "SELECT count(*) FROM audit_log"))


@pytest.fixture(scope="module")
def token(gw: GatewayThread) -> str:
    return gw.token(ALICE)


def test_the_attacks_work_on_the_target_itself(target_dsn: str, audit: Callable[[], int]) -> None:
    """Without the gateway, each read below writes to the audit table."""
    before = audit()
    with psycopg.connect(as_role(target_dsn, APP), autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM accounts")
        conn.execute("""SELECT jsonb_populate_record(n, '{"body": "x"}') FROM notes n""")
        conn.execute("SELECT ARRAY(SELECT body FROM notes) || '{x}'")
        conn.execute("SELECT json_build_object('m', m) FROM people")
    assert audit() == before + 5  # two rows through the policy, two CHECKs, one cast


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("SELECT * FROM accounts", "row-level security policy audited calls audit_read()"),
        ("SELECT count(*) FROM public.accounts WHERE id > 0", "policy audited"),
        ("SELECT * FROM account_view", "reads view public.account_view: reads table"),
        ("SELECT id FROM plain WHERE EXISTS (SELECT 1 FROM accounts)", "policy audited"),
        ("""SELECT jsonb_populate_record(n, '{"body": "x"}') FROM notes n""",
         "may convert a value to domain public.checked_text, whose CHECK calls audit_check()"),
        ("""SELECT (json_populate_recordset(n, '[{"body": "y"}]')).* FROM notes n""",
         "calls json_populate_recordset"),
        ("""SELECT pg_catalog.jsonb_populate_recordset(n, '[{"body": "z"}]') FROM notes n""",
         "domain public.checked_text"),
        ("SELECT ARRAY(SELECT body FROM notes) || '{x}'",
         "reads public.notes, whose column body is of (or built on) domain public.checked_text,"
         " whose CHECK calls audit_check()"),
        ("SELECT array_append(ARRAY(SELECT body FROM notes), 'y')", "column body"),
        ("SELECT body FROM notes", "column body"),
        ("SELECT json_build_object('m', m) FROM people",
         "reads public.people, whose column m is of (or built on) type public.mood, whose"
         " cast from mood to json calls public.mood_json()"),
        ("SELECT to_json(p) FROM people p", "cast from mood to json"),
    ],
)  # fmt: skip
def test_a_read_that_runs_the_targets_code_is_denied(
    gw: GatewayThread, token: str, audit: Callable[[], int], attack: str, reason: str
) -> None:
    before = audit()
    denied = pytest.raises(psycopg.errors.InsufficientPrivilege, match="denied by jitgate")
    with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
        with denied as error:
            conn.execute(attack.encode())
        assert reason in str(error.value.diag.message_detail)
        assert conn.execute("SELECT count(*) FROM plain").fetchone() == (1,)  # goes on
    assert audit() == before


def test_psql_and_asyncpg_are_denied_too(
    pg_bin: Callable[[str], str], gw: GatewayThread, token: str, audit: Callable[[], int]
) -> None:
    before = audit()
    result = subprocess.run(
        [pg_bin("psql"), "-X", gw.dsn(ALICE, token), "-c", "TABLE accounts"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert "denied by jitgate" in result.stderr and "policy audited" in result.stderr

    async def attack() -> None:
        conn = await asyncpg.connect(gw.dsn(ALICE, token))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(
                    "SELECT jsonb_populate_record(n, $1::jsonb) FROM notes n", '{"body": "w"}'
                )
        finally:
            await conn.close()

    gw.call(attack())
    assert audit() == before


def test_policies_domains_and_extension_operators_that_are_reads_stay_reads(
    gw: GatewayThread, token: str, audit: Callable[[], int]
) -> None:
    before = audit()
    with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
        assert conn.execute("SELECT id FROM plain").fetchall() == [(1,)]
        assert conn.execute("SELECT to_jsonb(m) FROM memos m").fetchone() is not None
        assert conn.execute("SELECT body FROM memos WHERE body <> ''").fetchone() == ("memo",)
        query = "SELECT ARRAY(SELECT body FROM memos) || '{x}'"
        assert conn.execute(query.encode()).fetchone() == ("{memo,x}",)
        # citext's operators and casts are compiled code declared immutable: reads
        query = "SELECT id, h::text FROM handles WHERE h = 'ANN' AND h BETWEEN 'a' AND 'b'"
        assert conn.execute(query.encode()).fetchall() == [(1, "Ann")]
    assert audit() == before


def test_a_policy_made_later_is_found_at_the_next_catalog_read(
    gw: GatewayThread, token: str, target_dsn: str, audit: Callable[[], int]
) -> None:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("CREATE POLICY audited_too ON plain USING (audit_read(id))")
    try:
        gw.call(gw.gateway.approvals.classifiers.load(gw.gateway.target_rows))
        before = audit()
        denied = pytest.raises(psycopg.errors.InsufficientPrivilege, match="policy audited_too")
        with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn, denied:
            conn.execute("SELECT id FROM plain")
        assert audit() == before
    finally:
        with psycopg.connect(target_dsn, autocommit=True) as conn:
            conn.execute("DROP POLICY audited_too ON plain")
        gw.call(gw.gateway.approvals.classifiers.load(gw.gateway.target_rows))
