"""``jitgate login`` end to end: the real CLI in a subprocess signs a new person in with the
fake IdP's device flow (the test approves the code as the person at a browser would),
psql connects with the stored token without an admin issuing anything, and an agent the
person starts acts as them — reads, has a write held "via agent" on the request and its
Slack card — until the delegation is revoked, which ends its open session within seconds
and its API calls at once."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest

from approvals.model import State
from tests.fakeidp import FakeIdp
from tests.fakeslack import FakeSlack
from tests.harness import GatewayThread, scalar
from tests.login_gateway import cli_env, jitgate, line_matching, login_gateway, start
from tests.oidc_gateway import RecordedAlerts
from tests.slack_gateway import card_of, text_of

DAVE = "dave@example.com"


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[FakeIdp]:
    provider = FakeIdp()
    await provider.start()
    yield provider
    await provider.stop()


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_login_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 9) g")
    return dsn


@pytest.fixture(scope="module")
def signed_gw(
    make_database: Callable[[str], str], target_dsn: str, idp: FakeIdp, slack: FakeSlack
) -> Iterator[tuple[GatewayThread, RecordedAlerts]]:
    gateway, alerts = login_gateway(make_database, target_dsn, idp, slack, "jg_login_store")
    yield gateway, alerts
    gateway.stop()


@pytest.fixture(scope="module")
def gw(signed_gw: tuple[GatewayThread, RecordedAlerts]) -> GatewayThread:
    return signed_gw[0]


@pytest.fixture(scope="module")
async def dave(
    gw: GatewayThread, idp: FakeIdp, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Dave, whom no configuration names, runs ``jitgate login`` on his machine; the IdP
    asks him to slow down once before he approves. His CLI environment."""
    env = cli_env(tmp_path_factory.mktemp("dave"))
    url = f"http://127.0.0.1:{gw.http_port}"
    login = await start(env, "login", "--url", url)
    code = (await line_matching(login, r"enter the code (\S+)")).group(1)
    idp.slow_downs = 1
    idp.device_polls.clear()
    idp.approve_device(code, DAVE, ["jitgate-eng"])
    stdout, stderr = await asyncio.wait_for(login.communicate(), 60)
    assert login.returncode == 0, stderr.decode()
    assert f"signed in as {DAVE}" in stdout.decode()
    return env


def psql(pg_bin: Callable[[str], str], env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [pg_bin("psql"), "-X", "-w", "-At", *args], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def run_psql(pg_bin: Callable[[str], str], env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = psql(pg_bin, env, *args)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


async def exported(env: dict[str, str], resource: str = "prod") -> dict[str, str]:
    """libpq's environment as ``jitgate connect R --env`` prints it."""
    code, out, err = await jitgate(env, "connect", resource, "--env")
    assert code == 0, err
    values = {}
    for line in out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = value.strip("'")
    return values


async def test_login_stores_a_private_token_that_psql_uses(
    dave: dict[str, str], idp: FakeIdp, pg_bin: Callable[[str], str]
) -> None:
    stored = Path(dave["XDG_CONFIG_HOME"]) / "jitgate" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    saved = json.loads(stored.read_text())
    assert saved["email"] == DAVE and saved["token"].startswith("jg_")
    polls = idp.device_polls
    assert len(polls) >= 2 and polls[-1] - polls[-2] >= 5.5  # slow_down: 5 s more
    code, out, err = await jitgate(dave, "whoami")
    assert code == 0, err
    assert out.splitlines()[:2] == [DAVE, "groups: engineers"]

    libpq = await exported(dave)
    assert libpq["PGUSER"] == DAVE and libpq["PGPASSWORD"] == saved["token"]
    code, out, err = run_psql(pg_bin, {**dave, **libpq}, "-c", "SELECT count(*) FROM items")
    assert (code, out.strip()) == (0, "9"), err

    code, uri, err = await jitgate(dave, "connect", "prod", "--pgpass")
    assert code == 0 and "written to" in err, err
    pgpass = Path(dave["HOME"]) / ".pgpass"
    assert stat.S_IMODE(pgpass.stat().st_mode) == 0o600
    code, out, err = run_psql(
        pg_bin, dave, uri.strip(), "-c", "SELECT name FROM items WHERE id = 9"
    )
    assert (code, out.strip()) == (0, "item 9"), err


async def test_an_agent_acts_as_its_human_until_the_delegation_is_revoked(
    dave: dict[str, str],
    gw: GatewayThread,
    slack: FakeSlack,
    pg_bin: Callable[[str], str],
    target_dsn: str,
) -> None:
    code, out, err = await jitgate(
        dave, "agent", "grant", "claude-code", "--resource", "prod", "--class", "read,write",
        "--ttl", "1h",
    )  # fmt: skip
    assert code == 0, err
    agent_token = out.strip()
    assert out.count("\n") == 1 and agent_token.startswith("jg_")
    libpq = await exported(dave)
    as_agent = {**dave, **libpq, "PGPASSWORD": agent_token}
    code, out, err = run_psql(pg_bin, as_agent, "-c", "SELECT name FROM items WHERE id = 2")
    assert (code, out.strip()) == (0, "item 2"), err

    # Dave's own write runs at once; his agent's is capped at review (access.agents).
    code, out, err = run_psql(
        pg_bin, {**dave, **libpq}, "-c", "UPDATE items SET name = 'd' WHERE id = 1"
    )
    assert (code, out.strip()) == (0, "UPDATE 1"), err
    idle = psycopg.connect(f"host={libpq['PGHOST']} port={libpq['PGPORT']} dbname=prod",
                           user=DAVE, password=agent_token, autocommit=True)  # fmt: skip
    held = psql(pg_bin, as_agent, "-c", "UPDATE items SET name = 'agent' WHERE id = 2")
    try:
        request_id = await _pending_request(gw)
        view = gw.call(gw.gateway.approvals.store.view(request_id))
        assert view is not None and (view.requester, view.agent) == (DAVE, "claude-code")
        async with _api(gw, dave) as http, http.get(f"/api/requests/{request_id}") as shown:
            assert (await shown.json())["agent"] == "claude-code"
        card = slack.message(*card_of(gw, request_id))
        assert "via agent" in text_of(card) and "claude-code" in text_of(card)
        sessions = gw.call(gw.gateway.pool.fetch(
            "SELECT DISTINCT agent FROM sessions WHERE identity = $1", DAVE))  # fmt: skip
        assert {r["agent"] for r in sessions} == {None, "claude-code"}
        assert idle.execute("SELECT 1").fetchone() == (1,)

        code, out, err = await jitgate(dave, "agent", "revoke", "claude-code")
        assert code == 0 and "revoked" in out, err
        revoked_at = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="revoked"):
            while time.monotonic() - revoked_at < 10:
                idle.execute("SELECT 1")
                await asyncio.sleep(0.2)
        assert time.monotonic() - revoked_at < 5
        held.communicate(timeout=15)
        view = gw.call(gw.gateway.approvals.store.view(request_id))
        assert view is not None and view.state == State.CANCELLED
        async with _api(gw, dave, agent_token) as http, http.get("/api/whoami") as refused:
            assert refused.status == 401
    finally:
        held.kill()
        idle.close()
    assert scalar(target_dsn, "SELECT name FROM items WHERE id = 2") == "item 2"


async def test_a_delegation_only_narrows(
    dave: dict[str, str], gw: GatewayThread, pg_bin: Callable[[str], str]
) -> None:
    code, reader, err = await jitgate(dave, "agent", "grant", "reader", "--class", "read")
    assert code == 0, err
    as_reader = {**dave, **(await exported(dave)), "PGPASSWORD": reader.strip()}
    code, out, err = run_psql(pg_bin, as_reader, "-c", "UPDATE items SET name = 'r' WHERE id = 3")
    assert code != 0 and "denied" in err, err
    code, out, err = await jitgate(dave, "agent", "grant", "wide", "--resource", "payroll")
    assert code == 1 and "no resource 'payroll'" in err, err
    code, out, err = await jitgate(dave, "agent", "grant", "bad", "--class", "everything")
    assert code == 1 and "unknown statement class" in err, err
    as_agent = {**dave, "JITGATE_TOKEN": reader.strip()}
    code, out, err = await jitgate(as_agent, "agent", "grant", "sub-agent")
    assert code == 1 and "cannot hand its access on" in err, err
    code, out, err = await jitgate(as_agent, "whoami")
    assert out.splitlines()[0] == f"{DAVE} via agent reader", err
    update = "UPDATE items SET name = 'r' WHERE id = 3"
    code, out, err = await jitgate(as_agent, "request", "prod", update)
    assert code == 1 and "denied" in err, err
    code, out, err = await jitgate(dave, "request", "prod", update)  # dave himself may
    assert code == 0 and "UPDATE 1" in out, err


async def test_login_through_the_browser_when_the_idp_has_no_device_flow(
    gw: GatewayThread, idp: FakeIdp, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = cli_env(tmp_path_factory.mktemp("frank"))
    idp.device_flow = False
    idp.sign_in_as("frank@example.com", ["jitgate-eng"])
    try:
        login = await start(env, "login", "--url", f"http://127.0.0.1:{gw.http_port}",
                            "--no-browser")  # fmt: skip
        url = (await line_matching(login, r"open (http\S+)")).group(1)
        async with aiohttp.ClientSession() as browser, browser.get(url) as landed:
            assert landed.status == 200 and "close this tab" in await landed.text()
        _, stderr = await asyncio.wait_for(login.communicate(), 30)
        assert login.returncode == 0, stderr.decode()
    finally:
        idp.device_flow = True
    code, out, err = await jitgate(env, "whoami")
    assert (code, out.splitlines()[0]) == (0, "frank@example.com"), err


async def test_logout_revokes_the_token_and_the_agents_minted_from_it(
    gw: GatewayThread, idp: FakeIdp, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = cli_env(tmp_path_factory.mktemp("gina"))
    login = await start(env, "login", "--url", f"http://127.0.0.1:{gw.http_port}")
    idp.approve_device((await line_matching(login, r"enter the code (\S+)")).group(1),
                       "gina@example.com", ["jitgate-eng"])  # fmt: skip
    await asyncio.wait_for(login.communicate(), 30)
    token = json.loads((Path(env["XDG_CONFIG_HOME"]) / "jitgate/credentials.json").read_text())
    code, agent, err = await jitgate(env, "agent", "grant", "helper")
    assert code == 0, err
    code, out, err = await jitgate(env, "logout")
    assert (code, out.strip()) == (0, "signed out"), err
    assert not (Path(env["XDG_CONFIG_HOME"]) / "jitgate/credentials.json").exists()
    for revoked in (token["token"], agent.strip()):
        async with _api(gw, env, revoked) as http, http.get("/api/whoami") as refused:
            assert refused.status == 401


async def _pending_request(gw: GatewayThread) -> int:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = gw.call(gw.gateway.approvals.store.list(states=[State.PENDING], limit=10))
        if rows:
            return int(rows[0].id)
        await asyncio.sleep(0.05)
    raise AssertionError("the statement was not held")


def _api(gw: GatewayThread, env: dict[str, str], token: str | None = None) -> aiohttp.ClientSession:
    if token is None:
        stored = Path(env["XDG_CONFIG_HOME"]) / "jitgate/credentials.json"
        token = json.loads(stored.read_text())["token"]
    return aiohttp.ClientSession(
        f"http://127.0.0.1:{gw.http_port}", headers={"Authorization": f"Bearer {token}"}
    )
