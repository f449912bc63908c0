"""Errors, notices and notifications are paths out too: a value the target quotes in an
ERROR (``'alice@example.com'::int``), a NOTICE a function raises, or a NOTIFY payload
leaves the gateway masked, on the first run of a statement and on the native relay's."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from proxy import messages as m
from tests.harness import GatewayThread, gateway_config
from tests.test_faults import RawClient

ALICE = "alice@example.com"
EMAIL, CARD = "carol.smith@example.org", "4111111111111111"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_masknotice_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE people (email text, card text)")
        conn.execute("INSERT INTO people VALUES (%s, %s)", (EMAIL, CARD))
        conn.execute(
            "CREATE FUNCTION shout() RETURNS int LANGUAGE plpgsql AS $$BEGIN"
            " RAISE NOTICE 'found %', (SELECT email FROM people)"
            "   USING DETAIL = 'card ' || (SELECT card FROM people), HINT = 'no hint';"
            " RETURN 1; END$$"
        )
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(
        gateway_config(
            make_database("jg_masknotice_store"),
            target_dsn,
            engineers={"read": "allow", "opaque": "allow"},
        )
    )
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def alice(gw: GatewayThread) -> str:
    return gw.dsn(ALICE, gw.token(ALICE))


def test_an_error_quoting_a_value_is_masked_every_time(alice: str) -> None:
    with psycopg.connect(alice, autocommit=True) as conn:
        for _ in range(6):  # past the first runs, the native relay answers known statements
            with pytest.raises(psycopg.errors.InvalidTextRepresentation) as error:
                conn.execute("SELECT email::int FROM people")
            text = str(error.value)
            assert EMAIL not in text and "invalid input syntax for type integer" in text
        # A cast of card numbers glued to e-mails transforms a sensitive column: it is
        # held (tests/test_masking_transforms.py) and nothing of the values comes back.
        with pytest.raises(psycopg.errors.QueryCanceled) as error:
            conn.execute("SELECT cast(string_agg(card || email, '') AS int) FROM people")
        assert CARD not in str(error.value) and EMAIL not in str(error.value)


def test_a_notice_is_masked_in_every_field(alice: str) -> None:
    seen: list[tuple[str | None, str | None, str | None]] = []

    def note(d: psycopg.errors.Diagnostic) -> None:  # fields live only during the call
        seen.append((d.message_primary, d.message_detail, d.message_hint))

    with psycopg.connect(alice, autocommit=True) as conn:
        conn.add_notice_handler(note)
        for _ in range(4):
            conn.execute("SELECT shout()")
    assert len(seen) == 4
    for primary, detail, hint in seen:
        assert primary == "found [EMAIL]" and detail is not None and detail.startswith("card ")
        assert CARD not in detail and hint == "no hint"


def test_a_notification_payload_is_masked(alice: str, target_dsn: str) -> None:
    with psycopg.connect(alice, autocommit=True) as conn:
        conn.execute("LISTEN news")
        with psycopg.connect(target_dsn, autocommit=True) as sender:
            sender.execute(f"NOTIFY news, 'new customer {EMAIL}'")
        received = next(conn.notifies(timeout=5, stop_after=1))
    assert received.channel == "news" and received.payload.startswith("new customer ")
    assert EMAIL not in received.payload


@pytest.mark.parametrize("formats", [(), (1,)])
def test_rows_of_an_undescribed_execute_never_take_an_earlier_description(
    gw: GatewayThread, formats: tuple[int, ...]
) -> None:
    """Parse/Bind/Describe/Execute of ``SELECT 1``, then Parse/Bind/Execute of the e-mails
    with no Describe: the second result's columns are not the first's."""
    client = RawClient(gw.port)
    try:
        client.login(ALICE, gw.token(ALICE), "stale")
        client.send(
            m.Parse("", "SELECT 1", ()).encode()
            + m.Bind("", "", (), (), ()).encode()
            + m.Describe("P", "").encode()
            + m.Execute("", 0).encode()
            + m.Parse("", "SELECT email, card FROM people", ()).encode()
            + m.Bind("", "", (), (), formats).encode()
            + m.Execute("", 0).encode()
            + m.Sync().encode()
        )
        answer = client.until(m.ReadyForQuery)
    finally:
        client.close()
    rows = [r.values for r in answer if isinstance(r, m.DataRow)]
    assert len(rows) == 2, answer
    assert EMAIL.encode() not in repr(rows).encode() and CARD.encode() not in repr(rows).encode()
