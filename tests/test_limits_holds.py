"""A user has at most ``postgres.limits.pending_requests_per_user`` pending requests per
resource, and a resource at most ``pending_requests_per_resource`` from everyone: one more
held statement gets ERROR 53400 naming the limit (the session goes on), the REST API
answers 429, and the store keeps no request beyond the limit."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.harness import GatewayThread, ask_api, gateway_config, scalar

ALICE, BOB = "alice@example.com", "bob@example.com"
LIMIT = 2


@pytest.fixture(scope="module")
def store_dsn(make_database: Callable[[str], str]) -> str:
    return make_database("jg_limits_holds_store")


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], store_dsn: str) -> Iterator[GatewayThread]:
    target = make_database("jg_limits_holds_target")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int)")
    gateway = GatewayThread(
        gateway_config(
            store_dsn,
            target,
            engineers={"read": "allow", "write": "review"},
            postgres={
                "listen": "127.0.0.1:0",
                "hold_timeout": "300ms",
                "limits": {"pending_requests_per_user": LIMIT},
            },
        )
    )
    yield gateway
    gateway.stop()


def pending(store_dsn: str, user: str) -> int:
    return int(
        scalar(
            store_dsn,
            "SELECT count(*) FROM requests WHERE state = 'pending'"
            f" AND requester = '{user}' AND resource = 'prod'",
        )
    )


def test_one_hold_over_the_limit_is_refused_and_the_session_goes_on(
    gw: GatewayThread, store_dsn: str
) -> None:
    token = gw.token(ALICE)
    with psycopg.connect(gw.dsn(ALICE, token), autocommit=True) as conn:
        for i in range(LIMIT):
            # The hold times out; the request stays pending.
            with pytest.raises(psycopg.errors.QueryCanceled, match="stays pending"):
                conn.execute(f"INSERT INTO items VALUES ({i})".encode())
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded) as refused:
            conn.execute(b"INSERT INTO items VALUES (99)")
        assert f"the limit is {LIMIT}" in str(refused.value)
        assert "postgres.limits.pending_requests_per_user" in str(refused.value)
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)
    assert pending(store_dsn, ALICE) == LIMIT

    # The same limit holds for requests from the REST API (and so chat and agents).
    status, body = ask_api(gw, token, "INSERT INTO items VALUES (100)")
    assert (status, body["code"]) == (429, "too_many_requests"), body
    assert pending(store_dsn, ALICE) == LIMIT

    # Others are not held back, and a decided request frees a place.
    status, body = ask_api(gw, gw.token(BOB), "DELETE FROM items WHERE id = 1")
    assert status in (200, 202), body
    first = int(scalar(store_dsn, f"SELECT min(id) FROM requests WHERE requester = '{ALICE}'"))
    gw.call(gw.gateway.approvals.cancel(first, "withdrawn"))
    status, body = ask_api(gw, token, "INSERT INTO items VALUES (101)")
    assert status == 202, body
    assert pending(store_dsn, ALICE) == LIMIT


def test_a_resource_holds_at_most_its_limit_of_pending_requests_from_everyone(
    make_database: Callable[[str], str],
) -> None:
    store, target = make_database("jg_limits_res_store"), make_database("jg_limits_res_target")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int)")
    carol = "carol@example.com"
    gateway = GatewayThread(
        gateway_config(
            store,
            target,
            engineers={"read": "allow", "write": "review"},
            groups={"engineers": [ALICE, carol], "dba": [BOB]},
            postgres={
                "listen": "127.0.0.1:0",
                "limits": {"pending_requests_per_user": 5, "pending_requests_per_resource": 3},
            },
        )
    )
    try:
        alice, carol_token = gateway.token(ALICE), gateway.token(carol)
        for token, n in ((alice, 1), (alice, 2), (carol_token, 3)):
            status, body = ask_api(gateway, token, f"INSERT INTO items VALUES ({n})")
            assert status == 202, body
        status, body = ask_api(gateway, carol_token, "INSERT INTO items VALUES (4)")
        assert (status, body["code"]) == (429, "too_many_requests"), body
        assert "postgres.limits.pending_requests_per_resource" in str(body), body
        assert scalar(store, "SELECT count(*) FROM requests WHERE state = 'pending'") == 3
    finally:
        gateway.stop()
