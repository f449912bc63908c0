"""``jitgate request`` and ``jitgate requests`` end to end: the real CLI in a subprocess,
talking to a real gateway over HTTP, while an approver decides through the REST API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import psycopg
import pytest

from tests.harness import GatewayThread, gateway_config

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_cli_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, email text)")
        conn.execute("INSERT INTO customers VALUES (1, 'ann@example.org'), (2, 'ben@example.org')")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g")
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(gateway_config(make_database("jg_cli_store"), target_dsn))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def env(gw: GatewayThread) -> dict[str, str]:
    return {
        **os.environ,
        "JITGATE_URL": f"http://127.0.0.1:{gw.http_port}",
        "JITGATE_TOKEN": gw.token(ALICE),
    }


@pytest.fixture
async def bob(gw: GatewayThread) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {gw.token(BOB)}"}
    async with aiohttp.ClientSession(f"http://127.0.0.1:{gw.http_port}", headers=headers) as s:
        yield s


async def jitgate(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jitgate",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def decide_when_pending(bob: aiohttp.ClientSession, body: dict[str, Any]) -> int:
    """Wait until a request of alice's awaits bob, then decide it; return its id."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async with bob.get("/api/requests?pending=1") as response:
            pending = (await response.json())["requests"]
        if pending:
            request_id = int(pending[0]["id"])
            async with bob.post(f"/api/requests/{request_id}/decisions", json=body) as response:
                assert response.status == 200, await response.text()
                decided = await response.json()
            assert decided["decisions"][-1]["via"] == "api"
            return request_id
        await asyncio.sleep(0.1)
    raise AssertionError("no request came to bob")


def item_exists(target_dsn: str, item: int) -> bool:
    with psycopg.connect(target_dsn) as conn:
        return conn.execute("SELECT 1 FROM items WHERE id = %s", (item,)).fetchone() is not None


async def test_an_allowed_read_prints_the_masked_table(env: dict[str, str]) -> None:
    sql = "SELECT id, email FROM customers ORDER BY id"
    code, out, err = await jitgate(env, "request", "prod", sql)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["id", "|", "email"]
    assert lines[2].split() == ["1", "|", "[EMAIL]"] and lines[3].split() == ["2", "|", "[EMAIL]"]
    assert "masked: 2 EMAIL" in out and "example.org" not in out

    code, out, err = await jitgate(env, "request", "prod", sql, "--output", "json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["action"] == "allow"
    assert answer["outcome"]["preview"] == [["1", "[EMAIL]"], ["2", "[EMAIL]"]]


async def test_wait_shows_the_result_once_bob_approves(
    env: dict[str, str], bob: aiohttp.ClientSession, target_dsn: str
) -> None:
    cli = asyncio.ensure_future(
        jitgate(
            env,
            "request",
            "prod",
            "DELETE FROM items WHERE id = 3",
            "--reason",
            "cleanup",
            "--wait",
        )
    )
    request_id = await decide_when_pending(bob, {"verdict": "approve"})
    code, out, err = await cli
    assert code == 0, err
    first, *rest = out.splitlines()
    assert first.startswith(f"request #{request_id} needs approval (write on prod")
    assert "posted to the web inbox" in first
    assert rest[-1].startswith("DELETE 1 in ")
    assert "⠋" not in err  # no spinner when stderr is not a terminal
    assert not item_exists(target_dsn, 3)


async def test_wait_reports_a_rejection_and_exits_1(
    env: dict[str, str], bob: aiohttp.ClientSession, target_dsn: str
) -> None:
    cli = asyncio.ensure_future(
        jitgate(
            env, "request", "prod", "DELETE FROM items WHERE id = 4", "--wait", "--output", "json"
        )
    )
    request_id = await decide_when_pending(bob, {"verdict": "reject", "reason": "not today"})
    code, out, err = await cli
    assert code == 1
    final = json.loads(out)
    assert final["id"] == request_id and final["state"] == "rejected"
    assert err == f"jitgate: request #{request_id} rejected by {BOB}: not today\n"
    assert item_exists(target_dsn, 4)


async def test_without_wait_the_request_stays_open_and_is_listed(env: dict[str, str]) -> None:
    code, out, err = await jitgate(
        env, "request", "prod", "UPDATE items SET name = 'y' WHERE id = 5", "--output", "json"
    )
    assert code == 0, err
    opened = json.loads(out)
    assert opened["action"] == "review" and opened["request"]["state"] == "pending"
    assert opened["posted_to"] and opened["request"]["reason"] is None

    code, out, err = await jitgate(env, "requests", "--output", "json")
    assert code == 0, err
    assert opened["request"]["id"] in [r["id"] for r in json.loads(out)["requests"]]
    code, out, err = await jitgate(env, "requests")
    assert code == 0 and f"#{opened['request']['id']}" in out and "pending" in out


async def test_refusals_failures_and_usage_errors(env: dict[str, str]) -> None:
    code, _, err = await jitgate(env, "request", "prod", "GRANT ALL ON items TO PUBLIC")
    assert code == 1 and err.startswith("jitgate: denied by policy (privilege")
    code, out, err = await jitgate(env, "request", "prod", "SELECT * FROM missing")
    assert code == 1 and out == ""
    assert err.startswith('jitgate: failed: relation "missing" does not exist (42P01)')
    bad = {**env, "JITGATE_TOKEN": "jg_nope"}
    code, _, err = await jitgate(bad, "request", "prod", "SELECT 1")
    assert code == 1 and "refused the token" in err
    unset = {k: v for k, v in env.items() if k != "JITGATE_URL"}
    code, _, err = await jitgate(unset, "request", "prod", "SELECT 1")
    assert code == 2 and "JITGATE_URL" in err
    code, _, err = await jitgate(env, "request", "prod")
    assert code == 2
    nowhere = {**env, "JITGATE_URL": "http://127.0.0.1:9"}
    code, _, err = await jitgate(nowhere, "requests")
    assert code == 1 and "cannot reach the gateway" in err
