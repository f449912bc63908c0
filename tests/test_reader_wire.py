"""The database enforces what the gateway decided. A resource with ``write_url`` runs the
sessions of users who may only read on its reader role, made by ``jitgate roles``; the
attacks here are reads the guardrails cannot see through (code behind a view), and the
witness is the target's state. Approved statements from such a session run once on a
writer connection of their own."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import yaml

from jitgate.config import Config, Resource, parse_upstream_url
from jitgate.doctor import check_at_start, check_reader
from jitgate.errors import ConfigError
from jitgate.gateway import Gateway
from jitgate.roles import reader_role_sql, writer_schemas
from proxy import messages as m
from tests.harness import GatewayThread, gateway_config, scalar
from tests.test_approvals import decide, final_view, newest_request, psql
from tests.test_faults import RawClient

ALICE, BOB = "alice@example.com", "bob@example.com"
READER, WRITER = "jg_reader_r", "jg_writer_r"


def as_role(dsn: str, role: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{role}@{host}").geturl()


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str], pg_dsn: str) -> str:
    """A database owned by the writer, with code behind views that writes when read."""
    dsn = make_database("jg_reader_target")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for role in (READER, WRITER):
            conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {WRITER} LOGIN")
        conn.execute(f"ALTER DATABASE jg_reader_target OWNER TO {WRITER}")
    with psycopg.connect(as_role(dsn, WRITER), autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, total int)")
        conn.execute(
            "CREATE FUNCTION wipe_orders() RETURNS int LANGUAGE sql SECURITY DEFINER"
            " AS 'DELETE FROM orders RETURNING 1; SELECT 0'"
        )
        conn.execute(
            "CREATE FUNCTION wipe_row(i items) RETURNS int LANGUAGE sql"
            " AS 'DELETE FROM items WHERE id = i.id RETURNING 1'"
        )
    return dsn


@pytest.fixture
def target(target_dsn: str) -> Callable[[str], object]:
    with psycopg.connect(as_role(target_dsn, WRITER), autocommit=True) as conn:
        conn.execute("TRUNCATE items, orders")
        conn.execute("ALTER SEQUENCE orders_id_seq RESTART")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g")
        conn.execute("INSERT INTO orders (total) SELECT g FROM generate_series(1, 5) g")

    return lambda sql: scalar(target_dsn, sql)


def with_reader(config: Config, reader_dsn: str, writer_dsn: str) -> Config:
    prod = dataclasses.replace(
        config.resources["prod"],
        url=parse_upstream_url(reader_dsn, "url"),
        write_url=parse_upstream_url(writer_dsn, "write_url"),
    )
    return dataclasses.replace(config, resources={**config.resources, "prod": prod})


@pytest.fixture(scope="module")
def config(make_database: Callable[[str], str], target_dsn: str) -> Config:
    base = gateway_config(
        make_database("jg_reader_store"),
        target_dsn,
        postgres={"listen": "127.0.0.1:0", "hold_timeout": "20s"},
    )
    config = with_reader(base, as_role(target_dsn, READER), as_role(target_dsn, WRITER))
    prod = config.resources["prod"]
    schemas = asyncio.run(writer_schemas(prod))
    sql = reader_role_sql(READER, WRITER, "jg_reader_target", schemas)
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute(sql.encode())
    return config


@pytest.fixture(scope="module")
def gw(config: Config) -> Iterator[GatewayThread]:
    gateway = GatewayThread(config)
    yield gateway
    gateway.stop()


def test_the_reader_made_by_jitgate_roles_passes_the_check(config: Config) -> None:
    check = asyncio.run(check_reader(config.resources["prod"]))
    assert (check.status, check.problems, check.warnings) == ("ok", (), ())


LARGE_OBJECTS = "SELECT count(*) FROM pg_largeobject_metadata"


def test_a_reader_cannot_create_large_objects_though_its_transactions_are_read_only(
    config: Config, target: Callable[[str], object], target_dsn: str
) -> None:
    """PostgreSQL lets a read-only transaction create a large object; after ``jitgate
    roles`` only the writer may."""
    said = reader_role_sql(READER, WRITER, "shop", ["public"])
    assert f"this changes who may create large objects in shop to\n-- {WRITER}" in said
    before = target(LARGE_OBJECTS)
    with psycopg.connect(as_role(target_dsn, READER), autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        for attack in (
            "SELECT lo_create(0)",
            "SELECT lo_creat(-1)",
            "SELECT lo_from_bytea(0, 'x')",
            "SELECT lo_import('/etc/hostname')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(attack.encode())
    assert target(LARGE_OBJECTS) == before
    with psycopg.connect(as_role(target_dsn, WRITER), autocommit=True) as conn:
        made = conn.execute("SELECT lo_create(0)").fetchone()
        assert made is not None
        conn.execute("SELECT lo_unlink(%s)", made)


def test_large_object_calls_from_a_reader_session_never_reach_the_target(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    before = target(LARGE_OBJECTS)
    denied = pytest.raises(psycopg.errors.InsufficientPrivilege, match="denied by jitgate")
    with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True) as conn, denied:
        conn.execute("SELECT lo_import('/etc/hostname')")
    client = RawClient(gw.port)
    try:  # a write for alice's policy: held for review, nothing run
        client.login(ALICE, gw.token(ALICE), "large objects")
        client.send(m.Query("SELECT lo_create(0)").encode())
        notice = client.until(m.NoticeResponse)[-1]
        assert "approval required" in notice.message  # type: ignore[attr-defined]
    finally:
        client.close()
    gw.call(gw.gateway.approvals.cancel(newest_request(gw), "test over"))
    assert target(LARGE_OBJECTS) == before


def test_the_check_warns_of_a_reader_that_can_create_large_objects(
    config: Config, target_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A warning, at start too, not a refusal: the gateway starts."""
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("GRANT EXECUTE ON FUNCTION lo_create(oid) TO PUBLIC")
        try:
            check = asyncio.run(check_reader(config.resources["prod"]))
            with caplog.at_level(logging.WARNING, logger="jitgate.doctor"):
                asyncio.run(check_at_start(config))
        finally:
            conn.execute("REVOKE EXECUTE ON FUNCTION lo_create(oid) FROM PUBLIC")
    logged = [r.getMessage() for r in caplog.records if r.name == "jitgate.doctor"]
    assert [line for line in logged if line.startswith("prod:")] == list(check.warnings)
    assert (check.status, check.problems, check.large_objects) == ("ok", (), ("lo_create(oid)",))
    assert check.warnings == (
        "prod: warning: the reader credential can create large objects (lo_create(oid)), even"
        " in a read-only transaction (jitgate roles --resource prod revokes them from PUBLIC)",
    )


def test_a_reader_that_can_write_stops_the_gateway(config: Config, target_dsn: str) -> None:
    writable = with_reader(config, as_role(target_dsn, WRITER), as_role(target_dsn, WRITER))

    async def start() -> None:
        gateway = await Gateway.open(writable)
        try:
            await gateway.start()
        finally:
            await gateway.stop(0)

    with pytest.raises(ConfigError, match=r"resources\.prod\.url: .*can write: .*owns items"):
        asyncio.run(start())


def test_doctor_names_what_the_reader_could_do(
    config: Config, target_dsn: str, tmp_path: Path
) -> None:
    prod = config.resources["prod"]
    raw = {
        "database_url": "postgresql://unused@127.0.0.1:1/x",
        "groups": {"dba": [BOB]},
        "resources": {
            "ok": {"type": "postgres", "url": as_role(target_dsn, READER),
                   "write_url": as_role(target_dsn, WRITER), "access": {"dba": {"read": "allow"}}},
            "bad": {"type": "postgres", "url": as_role(target_dsn, WRITER),
                    "write_url": as_role(target_dsn, WRITER), "access": {"dba": {"read": "allow"}}},
            "single": {"type": "postgres", "url": as_role(target_dsn, WRITER),
                       "access": {"dba": {"read": "allow"}}},
        },
    }  # fmt: skip
    path = tmp_path / "jitgate.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = subprocess.run(
        [sys.executable, "-m", "jitgate", "doctor", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ok: the reader credential cannot write"
    assert lines[1].startswith("bad: the reader credential can write: ")
    assert "has INSERT on items" in lines[1] and "owns orders" in lines[1]
    assert lines[2].startswith(
        "bad: warning: the reader credential can create large objects (lo_create(oid),"
        " lo_creat(integer), lo_from_bytea(oid, bytea)), even in a read-only transaction"
    )
    assert lines[3].startswith("single: no write_url, so every session runs with url's")
    assert prod.url.user == READER


def test_sessions_run_on_the_credential_their_policy_needs(gw: GatewayThread) -> None:
    with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE))) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (READER,)
    with psycopg.connect(gw.dsn(BOB, gw.token(BOB))) as conn:  # may write without review
        assert conn.execute("SELECT current_user").fetchone() == (WRITER,)


@pytest.mark.parametrize(
    ("view", "attack", "witness"),
    [
        ("SELECT wipe_orders() AS n", "SELECT * FROM {v}", "SELECT count(*) FROM orders"),
        ("SELECT wipe_orders() AS n", "SELECT n FROM (SELECT * FROM {v}) s",
         "SELECT count(*) FROM orders"),
        ("SELECT nextval('orders_id_seq') AS id", "SELECT * FROM {v}",
         "SELECT last_value FROM orders_id_seq"),
        ("SELECT lo_create(0) AS id", "SELECT * FROM {v}", LARGE_OBJECTS),
        ("SELECT lo_from_bytea(0, 'x') AS id", "SELECT * FROM {v}", LARGE_OBJECTS),
    ],
)  # fmt: skip
def test_writes_hidden_behind_views_fail_in_the_database(
    gw: GatewayThread,
    target: Callable[[str], object],
    target_dsn: str,
    view: str,
    attack: str,
    witness: str,
) -> None:
    """A view made after the gateway last read the catalog is a table to the guardrails:
    the reader's privileges are what stop it."""
    name = f"fresh_view_{abs(hash((view, attack))) % 10**6}"
    with psycopg.connect(as_role(target_dsn, WRITER), autocommit=True) as conn:
        conn.execute(f"CREATE OR REPLACE VIEW {name} AS {view}".encode())
    before = target(witness)
    with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True) as conn:
        refused = (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege)
        with pytest.raises(refused) as error:
            conn.execute(attack.format(v=name).encode())
        assert "jitgate" not in str(error.value)  # the database's refusal, not the gateway's
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (10,)  # goes on
    assert target(witness) == before


def test_reads_asked_for_outside_psql_run_on_the_reader_too(
    gw: GatewayThread, target: Callable[[str], object], target_dsn: str
) -> None:
    """The REST API, chat and agents (:meth:`Approvals.ask`) run an allowed statement
    with the credential a psql session of the same person would have."""

    def ask(who: str, sql: str) -> Any:
        asked = gw.call(
            gw.gateway.approvals.ask(resource_name="prod", identity=who, sql=sql, source="api")
        )
        assert asked.outcome is not None
        return asked.outcome

    assert ask(ALICE, "SELECT current_user").preview == ((READER,),)
    assert ask(BOB, "SELECT current_user").preview == ((WRITER,),)
    with psycopg.connect(as_role(target_dsn, WRITER), autocommit=True) as conn:
        conn.execute("CREATE OR REPLACE VIEW asked_view AS SELECT wipe_orders() AS n")
    refused = ask(ALICE, "SELECT * FROM asked_view")
    assert refused.sqlstate in ("25006", "42501"), refused
    assert target("SELECT count(*) FROM orders") == 5


def test_an_approved_write_from_a_reader_session_runs_once_on_a_writer(
    pg_bin: Callable[[str], str], gw: GatewayThread, target: Callable[[str], object]
) -> None:
    alice = gw.dsn(ALICE, gw.token(ALICE))
    client = psql(pg_bin, alice, "DELETE FROM items WHERE id <= 3 RETURNING id",
                  "SELECT current_user, count(*) FROM items")  # fmt: skip
    request_id = newest_request(gw)
    assert target("SELECT count(*) FROM items") == 10
    decide(gw, request_id, BOB)
    out, err = client.communicate(timeout=30)
    assert "DELETE 3" in out, err
    assert re.search(rf"{READER}\s+\|\s+7", out), out  # the session goes on, on its reader
    assert target("SELECT count(*) FROM items") == 7
    done = final_view(gw, request_id)
    assert (done.outcome.command_tag, done.outcome.rows) == ("DELETE 3", 3)


def test_a_held_statement_inside_a_reader_transaction_is_refused_before_any_request(
    pg_bin: Callable[[str], str], gw: GatewayThread, target: Callable[[str], object]
) -> None:
    before = gw.call(gw.gateway.approvals.store.list(limit=1000))
    inside = "BEGIN; SELECT 1; COMMIT; BEGIN; DELETE FROM items WHERE id = 4; COMMIT"
    held = subprocess.run(
        [pg_bin("psql"), "-X", gw.dsn(ALICE, gw.token(ALICE))],
        input=inside.replace("; ", ";\n") + ";\n",
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert "inside a transaction block" in held.stderr and "ROLLBACK" in held.stdout
    refused = pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="transaction block")
    with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE))) as conn, refused:
        conn.execute("DELETE FROM items WHERE id = %s", (4,))  # psycopg opened a BEGIN
    assert target("SELECT count(*) FROM items") == 10
    assert len(gw.call(gw.gateway.approvals.store.list(limit=1000))) == len(before)


def test_attribute_notation_is_judged_with_the_targets_own_functions(
    gw: GatewayThread, target: Callable[[str], object], config: Config, tmp_path: Path
) -> None:
    """``i.wipe_row`` is ``wipe_row(i)``: a column to the parser, a call to the target."""
    attack = "SELECT i.wipe_row FROM items i"
    denied = pytest.raises(psycopg.errors.InsufficientPrivilege, match="wipe_row")
    with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True) as conn, denied:
        conn.execute(attack)
    assert target("SELECT count(*) FROM items") == 10
    prod = config.resources["prod"]
    path = tmp_path / "jitgate.yaml"
    path.write_text(yaml.safe_dump({
        "database_url": "postgresql://unused@127.0.0.1:1/x",
        "groups": {"engineers": [ALICE]},
        "resources": {"prod": {
            "type": "postgres", "url": as_role(target_dsn_of(prod), READER),
            "write_url": as_role(target_dsn_of(prod), WRITER),
            "access": {"engineers": {"read": "allow"}},
        }},
    }))  # fmt: skip
    guard = subprocess.run(
        [sys.executable, "-m", "jitgate", "guard", "--config", str(path),
         "--resource", "prod", "--user", ALICE],
        input=attack, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert guard.returncode == 0, guard.stderr
    answer = yaml.safe_load(guard.stdout)
    assert answer["action"] == "deny" and answer["statements"][0]["class"] == "opaque"


def target_dsn_of(resource: Resource) -> str:
    url = resource.writer
    return f"postgresql://{url.user}@{url.host}:{url.port}/{url.database}"


def test_a_held_string_that_controls_its_transaction_is_refused_on_a_reader(
    pg_bin: Callable[[str], str], gw: GatewayThread, target: Callable[[str], object]
) -> None:
    """On its own writer connection ``…; BEGIN`` would be rolled back when that connection
    closes, after the client was told it ran."""
    before = len(gw.call(gw.gateway.approvals.store.list(limit=1000)))
    held = subprocess.run(
        [pg_bin("psql"), "-X", gw.dsn(ALICE, gw.token(ALICE)), "-c",
         "DELETE FROM items WHERE id = 5; BEGIN"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert "it controls a transaction" in held.stderr, held.stderr
    assert target("SELECT count(*) FROM items") == 10
    assert len(gw.call(gw.gateway.approvals.store.list(limit=1000))) == before


def test_a_begin_sent_without_sync_keeps_a_held_statement_off_the_writer(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    before = len(gw.call(gw.gateway.approvals.store.list(limit=1000)))
    client = RawClient(gw.port)
    try:
        client.login(ALICE, gw.token(ALICE), "unsynced")
        client.send(
            m.Parse("", "BEGIN", ()).encode()
            + m.Bind("", "", (), (), ()).encode()
            + m.Execute("", 0).encode()
            + m.Flush().encode()
        )
        client.until(m.CommandComplete)
        client.send(m.Query("DELETE FROM items WHERE id = 5").encode())
        answer = client.until(m.ErrorResponse)
        assert answer[-1].code == "25006" and "transaction block" in answer[-1].message  # type: ignore[attr-defined]
    finally:
        client.close()
    assert target("SELECT count(*) FROM items") == 10
    assert len(gw.call(gw.gateway.approvals.store.list(limit=1000))) == before


def test_an_approved_bound_write_from_a_reader_session_runs_on_a_writer(
    gw: GatewayThread, target: Callable[[str], object]
) -> None:
    """psycopg binds its values (the extended protocol): the held Execute is bound again,
    as the client bound it, on a writer connection opened for it; the client gets the
    answer to its own Execute and goes on, on the reader."""
    with psycopg.connect(gw.dsn(ALICE, gw.token(ALICE)), autocommit=True) as conn:
        result: dict[str, object] = {}

        def run() -> None:
            try:
                cur = conn.execute("UPDATE items SET name = %s WHERE id = %s", ("bound", 6))
                result["rows"] = cur.rowcount
            except psycopg.Error as exc:
                result["error"] = exc

        worker = threading.Thread(target=run)
        worker.start()
        request_id = newest_request(gw)
        assert target("SELECT name FROM items WHERE id = 6") != "bound"
        decide(gw, request_id, BOB)
        worker.join(timeout=30)
        assert result == {"rows": 1}, result
        assert conn.execute("SELECT current_user").fetchone() == (READER,)
    assert target("SELECT name FROM items WHERE id = 6") == "bound"
    done = final_view(gw, request_id)
    assert (done.outcome.command_tag, done.outcome.rows) == ("UPDATE 1", 1)


def test_roles_apply_takes_large_objects_from_the_reader_and_doctor_sees_it(
    make_database: Callable[[str], str], pg_dsn: str, tmp_path: Path
) -> None:
    """Before ``jitgate roles --apply`` the reader (a plain login role) may create large
    objects: doctor warns and names the resource. After it, only the writer may."""
    reader, writer = "jg_reader_lo", "jg_writer_lo"
    dsn = make_database("jg_roles_apply")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for role in (reader, writer):
            conn.execute(f"DROP ROLE IF EXISTS {role}")
            conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"ALTER DATABASE jg_roles_apply OWNER TO {writer}")
    path = tmp_path / "jitgate.yaml"
    path.write_text(yaml.safe_dump({
        "database_url": "postgresql://unused@127.0.0.1:1/x",
        "groups": {"engineers": [ALICE]},
        "resources": {"shop": {
            "type": "postgres", "url": as_role(dsn, reader), "write_url": as_role(dsn, writer),
            "access": {"engineers": {"read": "allow"}},
        }},
    }))  # fmt: skip

    def jitgate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jitgate", *args, "--config", str(path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    before = jitgate("doctor")
    assert "shop: warning: the reader credential can create large objects (lo_create(oid)," in (
        before.stdout
    ), before.stdout
    applied = jitgate("roles", "--resource", "shop", "--apply", dsn)
    assert applied.returncode == 0, applied.stderr
    assert "this changes who may create large objects in jg_roles_apply to" in applied.stdout
    after = jitgate("doctor")
    assert (after.returncode, after.stdout) == (0, "shop: the reader credential cannot write\n")
    denied = pytest.raises(psycopg.errors.InsufficientPrivilege)
    with psycopg.connect(as_role(dsn, reader), autocommit=True) as conn, denied:
        conn.execute("SELECT lo_create(0)")
    with psycopg.connect(as_role(dsn, writer), autocommit=True) as conn:
        assert conn.execute("SELECT lo_unlink(lo_create(0))").fetchone() == (1,)
    assert scalar(dsn, LARGE_OBJECTS) == 0
