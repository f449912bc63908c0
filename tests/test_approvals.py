"""Approvals end to end: held statements, decisions, exactly-once execution, expiry, caps.

Real gateways (two of them sharing one store where it matters), a real target whose rows
are the witness, and real clients (psql, psycopg, asyncpg) held on their own connections.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psycopg
import pytest
import yaml

from approvals.model import RequestView, State
from approvals.states import TRANSITIONS, next_state
from bench.gateway import free_port
from jitgate.config import Config
from jitgate.errors import DecisionRefused, IllegalTransition
from tests.harness import GatewayThread, gateway_config

ALICE, BOB, CAROL, EVE = (
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "eve@example.com",
)


def with_resource(config: Config, **changes: Any) -> Config:
    resources = dict(config.resources)
    resources["prod"] = dataclasses.replace(resources["prod"], **changes)
    return dataclasses.replace(config, resources=resources)


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    return make_database("jg_approvals_target")


@pytest.fixture(scope="module")
def store_dsn(make_database: Callable[[str], str]) -> str:
    return make_database("jg_approvals_store")


@pytest.fixture
def target(target_dsn: str) -> Callable[[str], Any]:
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS items, counters")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text, a int, b int)")
        conn.execute(
            "INSERT INTO items SELECT g, 'item ' || g, g % 100, g % 100"
            " FROM generate_series(1, 10000) g"
        )
        conn.execute("ANALYZE items")
        conn.execute("CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)")
        conn.execute("INSERT INTO counters VALUES (1, 0)")

    def scalar(sql: str) -> Any:
        with psycopg.connect(target_dsn) as conn:
            row = conn.execute(sql).fetchone()
            assert row is not None
            return row[0]

    return scalar


def config_for(store_dsn: str, target_dsn: str, **postgres: Any) -> Config:
    config = gateway_config(
        store_dsn,
        target_dsn,
        groups={
            "engineers": [ALICE],
            "dba": [BOB, CAROL],
            "leads": [BOB],
            "outsiders": [EVE],
        },
        postgres={"listen": "127.0.0.1:0", "hold_timeout": "20s", **postgres},
    )
    return with_resource(config, approvers=("dba", "leads"))


@pytest.fixture(scope="module")
def gw(store_dsn: str, target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(config_for(store_dsn, target_dsn))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def alice(gw: GatewayThread) -> str:
    return gw.dsn(ALICE, gw.token(ALICE))


def newest_request(gw: GatewayThread, state: State = State.PENDING, within: float = 15) -> int:
    """The id of the newest request in ``state``, waiting for one to appear."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        rows = gw.call(gw.gateway.approvals.store.list(states=[state], limit=1))
        if rows:
            return rows[0].id
        time.sleep(0.05)
    raise AssertionError(f"no {state} request appeared")


def decide(
    gw: GatewayThread, request_id: int, who: str, verdict: str = "approve", **kw: Any
) -> Any:
    return gw.call(gw.gateway.approvals.decide(request_id, who, verdict, via="cli", **kw))  # type: ignore[arg-type]


def final_view(gw: GatewayThread, request_id: int, within: float = 15) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        view = gw.call(gw.gateway.approvals.store.view(request_id))
        if view is not None and view.final:
            return view
        time.sleep(0.05)
    raise AssertionError(f"request #{request_id} did not finish")


def psql(pg_bin: Callable[[str], str], dsn: str, *statements: str) -> subprocess.Popen[str]:
    args = [pg_bin("psql"), "-X", dsn]
    for statement in statements:
        args += ["-c", statement]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# -- the state machine ------------------------------------------------------------------------


def test_every_transition_and_only_those() -> None:
    events = {event for (_, event) in TRANSITIONS}
    for state in State:
        for event in events:
            if (state, event) in TRANSITIONS:
                assert next_state(state, event) == TRANSITIONS[(state, event)]
            else:
                with pytest.raises(IllegalTransition, match=f"cannot {event} a request that is"):
                    next_state(state, event)
    assert next_state(State.PENDING, "approve") == State.APPROVED
    assert next_state(State.APPROVED, "claim") == State.EXECUTING
    with pytest.raises(IllegalTransition):
        next_state(State.EXECUTED, "claim")  # a finished request never runs again


# -- a client held on its own connection ---------------------------------------------------------


def test_approved_statement_runs_once_on_the_waiting_connection(
    pg_bin: Callable[[str], str], gw: GatewayThread, alice: str, target: Callable[[str], Any]
) -> None:
    client = psql(pg_bin, alice, "DELETE FROM items WHERE id <= 3 RETURNING id, name",
                  "SELECT count(*) AS left_over FROM items")  # fmt: skip
    request_id = newest_request(gw)
    assert target("SELECT count(*) FROM items") == 10000  # nothing ran while held
    view = decide(gw, request_id, BOB)
    assert view.approvals == 1  # approved; the waiting session may already be running it
    assert view.state in (State.APPROVED, State.EXECUTING, State.EXECUTED)
    out, err = client.communicate(timeout=30)
    assert f"approval required: request #{request_id} posted to the web inbox" in err
    assert "DELETE 3" in out and "item 2" in out
    assert "9997" in out  # the session went on
    assert target("SELECT count(*) FROM items") == 9997
    done = final_view(gw, request_id)
    assert done.state == State.EXECUTED
    assert done.outcome.command_tag == "DELETE 3" and done.outcome.rows == 3
    assert done.outcome.columns == ("id", "name")
    assert [r[1] for r in done.outcome.preview] == ["item 1", "item 2", "item 3"]
    gw.flush_audit()
    event = gw.call(
        gw.gateway.pool.fetchrow(
            "SELECT decision, outcome, request_id, rows FROM statement_events"
            " WHERE request_id = $1",
            request_id,
        )
    )
    assert dict(event) == {"decision": "review", "outcome": "ok", "request_id": request_id,
                           "rows": 3}  # fmt: skip


def test_rejected_statement_never_reaches_the_target(
    pg_bin: Callable[[str], str], gw: GatewayThread, alice: str, target: Callable[[str], Any]
) -> None:
    client = psql(pg_bin, alice, "UPDATE items SET name = 'gone' WHERE id = 5",
                  "SELECT name AS still FROM items WHERE id = 5")  # fmt: skip
    request_id = newest_request(gw)
    view = decide(gw, request_id, CAROL, "reject", reason="not during the sale")
    assert view.state == State.REJECTED
    out, err = client.communicate(timeout=30)
    assert f"ERROR:  request #{request_id} was rejected by {CAROL}" in err
    assert "DETAIL:  reason: not during the sale" in err
    assert "item 5" in out  # same session, still usable
    assert target("SELECT name FROM items WHERE id = 5") == "item 5"


def test_decision_rules(
    pg_bin: Callable[[str], str], store_dsn: str, target_dsn: str, target: Callable[[str], Any]
) -> None:
    """Nobody approves their own request (not even an approver), outsiders cannot decide, an
    approver in two approver groups counts once, and one reject ends it."""
    config = config_for(store_dsn, target_dsn)
    config = dataclasses.replace(
        config, groups={**config.groups, "dba": frozenset({BOB, CAROL, ALICE})}
    )
    review_writes = {"read": "allow", "write": "review"}
    gateway = GatewayThread(
        with_resource(
            config,
            approvals_required=2,
            access={"engineers": review_writes, "dba": review_writes},
        )
    )
    try:
        asked = gateway.call(
            gateway.gateway.approvals.ask(
                resource_name="prod", identity=ALICE, sql="DELETE FROM items WHERE id = 7",
                source="cli", reason="cleanup",
            )
        )  # fmt: skip
        assert asked.action == "review"
        request_id = asked.request.id
        for who, code in ((ALICE, "self_approval"), (EVE, "not_approver")):
            with pytest.raises(DecisionRefused) as refused:
                decide(gateway, request_id, who)
            assert refused.value.code == code
        assert decide(gateway, request_id, BOB).approvals == 1  # bob is in dba and leads
        with pytest.raises(DecisionRefused) as again:
            decide(gateway, request_id, BOB)
        assert again.value.code == "already_voted"
        view = gateway.call(gateway.gateway.approvals.store.view(request_id))
        assert view.state == State.PENDING and view.approvals == 1
        rejected = decide(gateway, request_id, CAROL, "reject", reason="no")
        assert rejected.state == State.REJECTED
        with pytest.raises(DecisionRefused) as late:
            decide(gateway, request_id, CAROL)
        assert late.value.code == "already_decided"
        assert target("SELECT count(*) FROM items WHERE id = 7") == 1
        decisions = gateway.call(gateway.gateway.approvals.store.decisions(request_id))
        assert [(d.approver, d.verdict) for d in decisions] == [
            (BOB, "approve"),
            (CAROL, "reject"),
        ]
    finally:
        gateway.stop()


def test_the_blast_radius_cap_rolls_back_an_oversized_delete(
    pg_bin: Callable[[str], str], gw: GatewayThread, alice: str, target: Callable[[str], Any]
) -> None:
    # a and b are perfectly correlated: the planner expects 10000 × 1% × 1% = 1 row, the
    # statement touches 100. The card promised ~1 (cap 10 × 1, floor 10): rolled back.
    client = psql(pg_bin, alice, "DELETE FROM items WHERE a = 42 AND b = 42",
                  "SELECT count(*) AS kept FROM items WHERE a = 42")  # fmt: skip
    request_id = newest_request(gw)
    pending = gw.call(gw.gateway.approvals.store.view(request_id))
    assert pending.estimate is not None and pending.estimate < 10
    assert decide(gw, request_id, BOB).max_rows == 10
    out, err = client.communicate(timeout=30)
    assert f"request #{request_id} touched 100 rows, more than the 10 approved" in err
    assert " 100\n" in out
    assert target("SELECT count(*) FROM items WHERE a = 42") == 100
    failed = final_view(gw, request_id)
    assert failed.state == State.FAILED and failed.outcome.rows == 100

    # The approver may accept an explicit number instead.
    client = psql(pg_bin, alice, "DELETE FROM items WHERE a = 42 AND b = 42")
    request_id = newest_request(gw)
    decide(gw, request_id, BOB, max_rows=100)
    out, _ = client.communicate(timeout=30)
    assert "DELETE 100" in out
    assert target("SELECT count(*) FROM items WHERE a = 42") == 0


def test_the_cap_inside_a_transaction_aborts_it(
    gw: GatewayThread, alice: str, target: Callable[[str], Any]
) -> None:
    errors: list[str] = []

    def client() -> None:
        with psycopg.connect(alice) as conn:
            assert conn.execute("SELECT count(*) FROM items WHERE a = 7").fetchone() == (100,)
            try:
                conn.execute("UPDATE items SET name = 'x' WHERE a = 7 AND b = 7")
            except psycopg.errors.ProgramLimitExceeded as exc:
                errors.append(str(exc))
            with pytest.raises(psycopg.errors.InFailedSqlTransaction):
                conn.execute("SELECT 1")
            conn.rollback()
            assert conn.execute("SELECT 2").fetchone() == (2,)

    thread = threading.Thread(target=client)
    thread.start()
    decide(gw, newest_request(gw), BOB)
    thread.join(30)
    assert len(errors) == 1 and "touched 100 rows, more than the 10 approved" in errors[0]
    assert target("SELECT count(*) FROM items WHERE name = 'x'") == 0


def test_hold_timeout_then_approval_runs_once_without_the_client(
    pg_bin: Callable[[str], str], store_dsn: str, target_dsn: str, target: Callable[[str], Any]
) -> None:
    gateway = GatewayThread(config_for(store_dsn, target_dsn, hold_timeout="500ms"))
    try:
        dsn = gateway.dsn(ALICE, gateway.token(ALICE))
        client = psql(pg_bin, dsn, "UPDATE counters SET n = n + 1 WHERE id = 1", "SELECT 'on'")
        out, err = client.communicate(timeout=30)
        assert "(hold timeout); the request stays pending" in err
        assert "on" in out
        request_id = newest_request(gateway)
        assert target("SELECT n FROM counters") == 0
        decide(gateway, request_id, BOB)
        done = final_view(gateway, request_id)
        assert done.state == State.EXECUTED and done.outcome.command_tag == "UPDATE 1"
        time.sleep(1.5)  # a sweep or two: nothing runs it again
        assert target("SELECT n FROM counters") == 1
    finally:
        gateway.stop()


def test_ctrl_c_stops_waiting_not_the_request(
    gw: GatewayThread, alice: str, target: Callable[[str], Any]
) -> None:
    with psycopg.connect(alice, autocommit=True) as conn:
        # What psql's Ctrl-C sends: a CancelRequest on a new connection, with the key.
        threading.Timer(0.5, conn.cancel_safe).start()
        with pytest.raises(psycopg.errors.QueryCanceled) as stopped:
            conn.execute("UPDATE counters SET n = n + 1 WHERE id = 1")
        assert conn.execute("SELECT 1").fetchone() == (1,)
    message = str(stopped.value)
    assert "the request stays pending" in message and "hold timeout" not in message
    request_id = newest_request(gw)
    assert target("SELECT n FROM counters") == 0
    decide(gw, request_id, BOB)
    assert final_view(gw, request_id).state == State.EXECUTED
    assert target("SELECT n FROM counters") == 1


def test_giving_up_inside_a_transaction_cancels_the_request(
    store_dsn: str, target_dsn: str, target: Callable[[str], Any]
) -> None:
    gateway = GatewayThread(config_for(store_dsn, target_dsn, hold_timeout="500ms"))
    try:
        with psycopg.connect(gateway.dsn(ALICE, gateway.token(ALICE))) as conn:
            conn.execute("SELECT 1")  # psycopg opened a transaction
            with pytest.raises(psycopg.errors.QueryCanceled, match="inside a transaction"):
                conn.execute("UPDATE counters SET n = 9 WHERE id = 1")
            conn.rollback()
            assert conn.execute("SELECT 2").fetchone() == (2,)
        request_id = newest_request(gateway, State.CANCELLED)
        with pytest.raises(DecisionRefused) as refused:
            decide(gateway, request_id, BOB)
        assert refused.value.code == "already_decided"
        assert target("SELECT n FROM counters") == 0
    finally:
        gateway.stop()


def test_extended_protocol_statement_is_held_with_its_values(
    gw: GatewayThread, alice: str, target: Callable[[str], Any]
) -> None:
    async def run() -> str:
        conn = await asyncpg.connect(alice)
        try:
            status = await conn.execute("UPDATE items SET name = $1 WHERE id = $2", "renamed", 9)
            assert await conn.fetchval("SELECT name FROM items WHERE id = $1", 9) == "renamed"
            return status
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(asyncio.run, run())
        request_id = newest_request(gw)
        view = gw.call(gw.gateway.approvals.store.view(request_id))
        assert "$1 = 'renamed', $2 = '9'" in view.sql  # the approver sees the values
        decide(gw, request_id, BOB)
        assert future.result(30) == "UPDATE 1"
    assert target("SELECT name FROM items WHERE id = 9") == "renamed"


def test_values_psycopg_binds_in_binary_without_a_declared_type_are_held_too(
    gw: GatewayThread, alice: str, target: Callable[[str], Any]
) -> None:
    """psycopg sends a small int as binary int2 and names its type in the Parse; a value the
    statement's types do not say reaches the card in hex, never as raw bytes."""

    def run() -> int:
        with psycopg.connect(alice, autocommit=True) as conn:
            cur = conn.execute("UPDATE items SET name = %s WHERE id = %s", ("bound", 8))
            return cur.rowcount

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run)
        request_id = newest_request(gw)
        view = gw.call(gw.gateway.approvals.store.view(request_id))
        assert "'bound'" in view.sql and "'8'" in view.sql, view.sql
        decide(gw, request_id, BOB)
        assert future.result(30) == 1
    assert target("SELECT name FROM items WHERE id = 8") == "bound"


class NotifierLog:
    """A notification surface that keeps what it is told (the web inbox's shape)."""

    name = "log"

    def __init__(self) -> None:
        self.told: list[tuple[str, int, State]] = []

    def where(self, request: RequestView) -> str | None:
        return "the log"

    async def request_opened(self, request: RequestView) -> None:
        self.told.append(("opened", request.id, request.state))

    async def request_changed(self, request: RequestView) -> None:
        self.told.append(("changed", request.id, request.state))

    async def request_finished(self, request: RequestView) -> None:
        self.told.append(("finished", request.id, request.state))

    async def reminder(self, request: RequestView) -> None:
        self.told.append(("reminder", request.id, request.state))


def test_a_reminder_at_half_the_ttl_then_expiry_ends_the_hold(
    pg_bin: Callable[[str], str],
    make_database: Callable[[str], str],
    target_dsn: str,
    target: Callable[[str], Any],
) -> None:
    # A store of its own: any gateway sharing a store may send the reminder and expire the
    # request, and this test listens to one gateway only.
    store = make_database("jg_approvals_reminder_store")
    gateway = GatewayThread(with_resource(config_for(store, target_dsn), request_ttl=3.0))
    log = NotifierLog()
    gateway.gateway.approvals.notifiers.append(log)
    try:
        started = time.monotonic()
        client = psql(pg_bin, gateway.dsn(ALICE, gateway.token(ALICE)),
                      "DELETE FROM items WHERE id = 11", "SELECT 'still here'")  # fmt: skip
        out, err = client.communicate(timeout=30)
        waited = time.monotonic() - started
        request_id = newest_request(gateway, State.EXPIRED)
        assert f"request #{request_id} expired before anyone decided it" in err
        assert "still here" in out and 3.0 <= waited < 10
        deadline = time.monotonic() + 5  # notifiers are told in the background
        while len([t for t in log.told if t[1] == request_id]) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [t for t in log.told if t[1] == request_id] == [
            ("opened", request_id, State.PENDING),
            ("reminder", request_id, State.PENDING),
            ("changed", request_id, State.EXPIRED),
        ]
        with pytest.raises(DecisionRefused) as late:
            decide(gateway, request_id, BOB)
        assert late.value.code == "already_decided"
        assert target("SELECT count(*) FROM items WHERE id = 11") == 1
    finally:
        gateway.stop()


# -- exactly once, restarts, crashes -------------------------------------------------------------


def test_fifty_concurrent_approvals_through_two_gateway_processes_execute_once(
    tmp_path: Path, store_dsn: str, target_dsn: str, target: Callable[[str], Any]
) -> None:
    """One request, fifty approvers clicking at once through the REST APIs of two gateways
    (this one in-process, the other a real ``jitgate serve`` process) sharing one store: a
    non-idempotent increment runs exactly once."""
    approvers = [f"approver{i}@example.com" for i in range(50)]
    config = config_for(store_dsn, target_dsn)
    config = dataclasses.replace(config, groups={**config.groups, "dba": frozenset(approvers)})
    first = GatewayThread(config)
    http_port, pg_port = free_port(), free_port()
    config_file = tmp_path / "second.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "database_url": store_dsn,
                "public_url": f"http://127.0.0.1:{http_port}",
                "http": {"listen": f"127.0.0.1:{http_port}"},
                "postgres": {"listen": f"127.0.0.1:{pg_port}"},
                "groups": {"engineers": [ALICE], "dba": approvers},
                "resources": {
                    "prod": {
                        "url": target_dsn,
                        "access": {"engineers": {"read": "allow", "write": "review"}},
                        "approvers": ["dba"],
                    }
                },
            }
        )
    )
    log = tmp_path / "second.log"
    with log.open("w") as log_file:
        second = subprocess.Popen(
            [sys.executable, "-m", "jitgate", "serve", "--config", str(config_file)],
            stdout=subprocess.DEVNULL, stderr=log_file,
        )  # fmt: skip
    try:
        wait_healthy(http_port, second, log)
        tokens = [first.token(a) for a in approvers]
        asked = first.call(
            first.gateway.approvals.ask(
                resource_name="prod", identity=ALICE, source="cli",
                sql="UPDATE counters SET n = n + 1 WHERE id = 1",
            )
        )  # fmt: skip
        request_id = asked.request.id
        ports = (first.http_port, http_port)

        async def click_all() -> list[tuple[int, dict[str, Any]]]:
            async with aiohttp.ClientSession() as http:

                async def click(i: int) -> tuple[int, dict[str, Any]]:
                    async with http.post(
                        f"http://127.0.0.1:{ports[i % 2]}/api/requests/{request_id}/decisions",
                        json={"verdict": "approve"},
                        headers={"Authorization": f"Bearer {tokens[i]}"},
                    ) as response:
                        return response.status, await response.json()

                return await asyncio.gather(*(click(i) for i in range(50)))

        answers = asyncio.run(click_all())
        statuses = [status for status, _ in answers]
        assert statuses.count(200) == 1, answers
        assert {body["code"] for status, body in answers if status != 200} == {"already_decided"}
        done = final_view(first, request_id)
        assert done.state == State.EXECUTED
        time.sleep(1.5)  # both gateways sweep: neither runs it again
        assert target("SELECT n FROM counters") == 1
    finally:
        second.terminate()
        second.wait(15)
        first.stop()


def wait_healthy(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as ok:
                if ok.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("the second gateway did not become healthy")


def test_a_restart_keeps_pending_requests(
    store_dsn: str, target_dsn: str, target: Callable[[str], Any]
) -> None:
    config = config_for(store_dsn, target_dsn)
    before = GatewayThread(config)
    asked = before.call(
        before.gateway.approvals.ask(
            resource_name="prod", identity=ALICE, source="cli",
            sql="UPDATE counters SET n = n + 10 WHERE id = 1",
        )
    )  # fmt: skip
    before.stop()
    after = GatewayThread(config)
    try:
        view = after.call(after.gateway.approvals.store.view(asked.request.id))
        assert view.state == State.PENDING
        decide(after, asked.request.id, BOB)
        assert final_view(after, asked.request.id).state == State.EXECUTED
        assert target("SELECT n FROM counters") == 10
    finally:
        after.stop()


def test_a_request_left_executing_by_a_dead_gateway_is_failed_not_rerun(
    store_dsn: str, target_dsn: str, target: Callable[[str], Any]
) -> None:
    config = config_for(store_dsn, target_dsn)
    gateway = GatewayThread(config)
    try:
        asked = gateway.call(
            gateway.gateway.approvals.ask(
                resource_name="prod", identity=ALICE, source="cli",
                sql="UPDATE counters SET n = n + 100 WHERE id = 1",
            )
        )  # fmt: skip
        request_id = asked.request.id
        # What a crash mid-execution leaves behind: executing, by a gateway that is gone.
        gateway.call(
            gateway.gateway.pool.execute(
                "UPDATE requests SET state = 'executing', executor = $2 WHERE id = $1",
                request_id,
                uuid.uuid4(),
            )
        )
        gateway.call(gateway.gateway.approvals.reconcile())
        failed = final_view(gateway, request_id)
        assert failed.state == State.FAILED
        assert "whether it committed is unknown" in failed.state_reason
        assert target("SELECT n FROM counters") == 0
    finally:
        gateway.stop()
