"""Lexing drift inside a pipeline. A function on ``functions.allow`` (or an ``opaque``
statement policy allows) turns ``standard_conforming_strings`` off at run time; the
client has pipelined, behind it, text that is one string literal with standard strings and
a DELETE without them. The gateway must not forward that text before the target has
answered the statement (and so reported the change): the witness is the table's rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import psycopg
import pytest

from proxy import messages as m
from tests.harness import GatewayThread, gateway_config, scalar
from tests.test_faults import RawClient

ALICE = "alice@example.com"
ATTACK = "select 'x\\''; delete from items; -- '"
# One string literal with standard strings; a call of lo_create without them.
LARGE_OBJECT_ATTACK = "select 'x\\'', lo_create(4242) -- '"
RELAX = (
    "CREATE FUNCTION {name}() RETURNS text LANGUAGE sql"
    " AS $$SELECT set_config('standard_conforming_strings', 'off', false)$$"
)


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_relex_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
        conn.execute(RELAX.format(name="relax").encode())
        conn.execute(RELAX.format(name="relax_too").encode())
        conn.execute("CREATE FUNCTION harmless() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("CREATE FUNCTION keep(int) RETURNS boolean LANGUAGE sql AS 'SELECT true'")
        conn.execute("CREATE VIEW relaxing AS SELECT relax_too() AS r")
    return dsn


@pytest.fixture
def items(target_dsn: str) -> Iterator[Callable[[], int]]:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE items")
        conn.execute("INSERT INTO items SELECT generate_series(1, 10)")
    yield lambda: int(scalar(target_dsn, "SELECT count(*) FROM items"))


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    # alice may read (and run opaque statements), never write; the functions are allowed
    config = gateway_config(
        make_database("jg_relex_store"),
        target_dsn,
        engineers={"read": "allow", "opaque": "allow"},
    )
    allowed = ("relax", "relax_too", "harmless")
    prod = dataclasses.replace(config.resources["prod"], allowed_functions=allowed)
    gateway = GatewayThread(
        dataclasses.replace(config, resources={**config.resources, "prod": prod})
    )
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def token(gw: GatewayThread) -> str:
    return gw.token(ALICE)


@pytest.mark.parametrize(
    "first",
    [
        "SELECT relax()",
        "SELECT * FROM relaxing",
        "SELECT relax() FROM items LIMIT 1",
        'SELECT U&"rel\\0061x"()',
        "DO $$BEGIN PERFORM set_config('standard_conforming_strings', 'off', false); END$$",
    ],
)
def test_text_pipelined_behind_a_change_never_reaches_the_target(
    gw: GatewayThread, token: str, items: Callable[[], int], first: str
) -> None:
    client = RawClient(gw.port)
    try:
        client.login(ALICE, token, "pipeline")
        client.send(m.Query(first).encode() + m.Query(ATTACK).encode())
        ended = client.until_eof()
    finally:
        client.close()
    fatal = [x for x in ended if isinstance(x, m.ErrorResponse)]
    assert [f.code for f in fatal] == ["0A000"], ended
    assert "the target changed standard_conforming_strings" in fatal[0].message
    assert items() == 10


@pytest.mark.parametrize(
    "prepare", ["PREPARE relaxed AS SELECT relax()", "PREPARE relaxed AS TABLE relaxing"]
)
def test_an_execute_of_a_prepared_change_holds_the_pipeline_too(
    gw: GatewayThread, token: str, items: Callable[[], int], prepare: str
) -> None:
    client = RawClient(gw.port)
    try:
        client.login(ALICE, token, "pipeline")
        client.send(m.Query(prepare).encode())
        client.until(m.ReadyForQuery)
        client.send(m.Query("EXECUTE relaxed").encode() + m.Query(ATTACK).encode())
        ended = client.until_eof()
    finally:
        client.close()
    assert [e.code for e in ended if isinstance(e, m.ErrorResponse)] == ["0A000"]
    assert items() == 10


def test_psycopg_pipeline_cannot_parse_behind_a_change(
    gw: GatewayThread, token: str, target_dsn: str, items: Callable[[], int]
) -> None:
    """In the extended protocol the target reports the change only at the Sync, and reads
    a Parse sent before it with the changed setting: such a Parse is refused."""
    made = "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = 4242"
    refused = pytest.raises(psycopg.errors.FeatureNotSupported, match="before its Sync")
    with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn, refused, conn.pipeline():
        conn.execute("SELECT relax()")
        conn.execute(LARGE_OBJECT_ATTACK.encode())
    assert scalar(target_dsn, made) == 0
    assert items() == 10


def test_an_allowed_function_that_changes_nothing_lets_the_pipeline_go_on(
    gw: GatewayThread, token: str, items: Callable[[], int]
) -> None:
    client = RawClient(gw.port)
    try:
        client.login(ALICE, token, "pipeline")
        client.send(
            m.Query("SELECT harmless()").encode()
            + m.Query("SELECT count(*) FROM items").encode()
            + m.Query("SELECT harmless(), 2").encode()
        )
        answers = [client.until(m.ReadyForQuery) for _ in range(3)]
        rows = [[r.values for r in a if isinstance(r, m.DataRow)] for a in answers]
        assert rows == [[(b"1",)], [(b"10",)], [(b"1", b"2")]]
        # the extended protocol: the Sync is the barrier; what follows it is relayed after
        client.send(
            m.Parse("", "SELECT harmless()", ()).encode()
            + m.Bind("", "", (), (), ()).encode()
            + m.Execute("", 0).encode()
            + m.Sync().encode()
            + m.Query("SELECT 3").encode()
        )
        first, second = client.until(m.ReadyForQuery), client.until(m.ReadyForQuery)
        assert [r.values for r in first if isinstance(r, m.DataRow)] == [(b"1",)]
        assert [r.values for r in second if isinstance(r, m.DataRow)] == [(b"3",)]
        # a Parse between such an Execute and its Sync is refused; the Sync answers
        client.send(
            m.Parse("", "SELECT harmless()", ()).encode()
            + m.Bind("", "", (), (), ()).encode()
            + m.Execute("", 0).encode()
            + m.Parse("", "SELECT 4", ()).encode()
            + m.Sync().encode()
        )
        refused = client.until(m.ReadyForQuery)
        errors = [e for e in refused if isinstance(e, m.ErrorResponse)]
        assert [e.code for e in errors] == ["0A000"] and "before its Sync" in errors[0].message
    finally:
        client.close()
    assert items() == 10


def test_a_copy_from_stdin_behind_the_barrier_gets_its_data(
    gw: GatewayThread, token: str, items: Callable[[], int]
) -> None:
    """An opaque COPY FROM STDIN (its WHERE calls a function of the target's) waits for
    the client's rows: the barrier lets them through and closes again at CopyDone, or, in
    the extended protocol, at the Sync after it."""
    copy = "COPY items FROM STDIN WHERE keep(id)"
    client = RawClient(gw.port)
    try:
        client.login(ALICE, token, "copy")
        client.send(m.Query(copy).encode())
        client.until(m.CopyInResponse)
        client.send(
            m.CopyData(b"11\n").encode()
            + m.CopyDone().encode()
            + m.Query("SELECT count(*) FROM items").encode()
        )
        done = client.until(m.ReadyForQuery)
        assert [x.tag for x in done if isinstance(x, m.CommandComplete)] == ["COPY 1"]
        counted = client.until(m.ReadyForQuery)
        assert [r.values for r in counted if isinstance(r, m.DataRow)] == [(b"11",)]
        extended = (
            m.Parse("", copy, ()).encode()
            + m.Bind("", "", (), (), ()).encode()
            + m.Execute("", 0).encode()
            + m.Sync().encode()
        )
        for row, then, count in (
            (b"12\n", b"", b"12"),
            (b"13\n", m.Parse("", "SELECT 5", ()).encode(), b"12"),
        ):
            client.send(extended)
            client.until(m.CopyInResponse)
            client.send(
                m.CopyData(row).encode()
                + m.CopyDone().encode()
                + then
                + m.Sync().encode()
                + m.Query("SELECT count(*) FROM items").encode()
            )
            done = client.until(m.ReadyForQuery)
            assert [x.tag for x in done if isinstance(x, m.CommandComplete)] == ["COPY 1"]
            errors = [e.code for e in done if isinstance(e, m.ErrorResponse)]
            # a Parse before the Sync is refused, and the batch rolled back as by any error
            assert errors == (["0A000"] if then else [])
            counted = client.until(m.ReadyForQuery)
            assert [r.values for r in counted if isinstance(r, m.DataRow)] == [(count,)]
    finally:
        client.close()
