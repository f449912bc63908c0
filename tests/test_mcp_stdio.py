"""Governed MCP servers the gateway runs itself over stdio (a ``type: mcp`` resource with
``command``): the official SDK's client talks to a live gateway, which runs the SDK's
tickets server (:mod:`tests.mcp_stdio_server`) as a process of its own. The process's
own tools (its pid, its environment, its execution counts), the store's requests and
call records and the operating system's process table are the witnesses."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from mcp.shared.exceptions import MCPError

from jitgate.config import Config, parse_config
from jitgate.errors import ConfigError
from tests.harness import GatewayThread, serve_process
from tests.mcp_servers import CARD, EMAIL
from tests.slack_gateway import wait_until
from tests.test_approvals import decide, final_view
from tests.test_mcp_proxy import (
    ALICE,
    BOB,
    _auth,
    _initialize,
    connected,
    everything,
    last_call,
    request_id_of,
    text,
    url,
)

REPO = str(Path(__file__).resolve().parent.parent)
SECRET = "JITGATE_TEST_GATEWAY_SECRET"


def stdio_config(store_dsn: str, **extra: Any) -> Config:
    tickets = {
        "type": "mcp",
        "command": [sys.executable, "-m", "tests.mcp_stdio_server"],
        "cwd": REPO,
        "env": {"TICKETS_GREETING": "${GREETING}"},
        "timeout": "10s",
        "max_response_size": 65536,
        "access": {
            "engineers": {"delete_project": "deny", "close_*": "review", "*": "allow"},
            "dba": {"*": "allow"},
        },
        "approvers": ["dba"],
        **extra,
    }
    raw = {
        "database_url": store_dsn,
        "http": {"listen": "127.0.0.1:0"},
        "postgres": {"listen": "127.0.0.1:0"},
        "audit": {"flush_interval": "20ms"},
        "groups": {"engineers": [ALICE], "dba": [BOB]},
        "resources": {
            "tickets": tickets,
            "missing": {"type": "mcp", "command": ["/nonexistent/mcp-server"], "timeout": "1s",
                        "access": {"engineers": {"*": "allow"}}},
        },
    }  # fmt: skip
    return parse_config(raw, {"GREETING": "hello from the environment"})


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str]) -> Iterator[GatewayThread]:
    os.environ[SECRET] = "must-not-reach-the-server"
    gateway = GatewayThread(stdio_config(make_database("jg_mcp_stdio_store")))
    yield gateway
    gateway.stop()
    del os.environ[SECRET]


@pytest.fixture(scope="module")
def tokens(gw: GatewayThread) -> dict[str, str]:
    return {user: gw.token(user) for user in (ALICE, BOB)}


async def process_of(gw: GatewayThread, token: str) -> dict[str, Any]:
    async with connected(gw, token) as client:
        result = await client.call_tool("process", {})
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


async def running(gw: GatewayThread, token: str, tool: str) -> None:
    """Once the process has started running ``tool`` (it counts each execution)."""
    async with connected(gw, token) as client:
        deadline = time.monotonic() + 10
        while True:
            counts = (await client.call_tool("counts", {})).structured_content or {}
            if counts.get(tool):
                return
            assert time.monotonic() < deadline, f"{tool} did not start"
            await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rpartition(")")[2].split()[0] != "Z"


async def test_list_and_call_a_stdio_server_with_a_denied_tool_invisible(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    async with connected(gw, tokens[ALICE]) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "lookup_customer", "close_ticket", "process", "counts"} <= names
        assert "delete_project" not in names
        result = await client.call_tool("echo", {"text": "hello over stdio"})
        assert not result.is_error and text(result) == "hello over stdio"
        with pytest.raises(MCPError, match="Unknown tool: delete_project"):
            await client.call_tool("delete_project", {"name": "billing"})
        counts = (await client.call_tool("counts", {})).structured_content
    assert counts is not None and counts.get("echo", 0) >= 1 and "delete_project" not in counts
    record = last_call(gw, "echo")
    assert (record["principal"], record["resource"], record["outcome"]) == (
        ALICE, "tickets", "forwarded",
    )  # fmt: skip
    assert last_call(gw, "delete_project")["outcome"] == "denied"


async def test_a_stdio_servers_result_is_masked(gw: GatewayThread, tokens: dict[str, str]) -> None:
    async with connected(gw, tokens[ALICE]) as client:
        await client.list_tools()
        result = await client.call_tool("lookup_customer", {"id": 1})
    assert not result.is_error
    shown = everything(result)
    assert EMAIL not in shown and CARD not in shown
    structured = result.structured_content
    assert structured is not None and structured["name"] == "Dana"
    assert structured["card"].endswith("1111") and structured["email"] != EMAIL


async def test_one_process_runs_with_its_own_environment_for_every_caller(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    for_alice, for_bob = await asyncio.gather(
        process_of(gw, tokens[ALICE]), process_of(gw, tokens[BOB])
    )
    assert for_alice["pid"] == for_bob["pid"] != os.getpid()
    assert for_alice["greeting"] == "hello from the environment"
    assert SECRET not in for_alice["variables"] and "PATH" in for_alice["variables"]


async def test_a_request_from_the_shared_process_is_refused_without_asking_a_caller(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    async with connected(gw, tokens[ALICE]) as client:
        result = await client.call_tool("summarise", {"text": "a long text"})
    assert text(result).startswith("sampling refused:")
    assert "runs this server for every caller" in text(result)


async def test_concurrent_callers_each_get_their_own_answer(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    async def echo(token: str, words: str) -> str:
        async with connected(gw, token) as client:
            return text(await client.call_tool("echo", {"text": words}))

    said = [f"call {n}" for n in range(12)]
    heard = await asyncio.gather(
        *(echo(tokens[ALICE if n % 2 else BOB], words) for n, words in enumerate(said))
    )
    assert heard == said


async def test_the_process_killed_mid_call_is_a_clean_error_and_the_next_call_works(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    pid = (await process_of(gw, tokens[ALICE]))["pid"]
    async with connected(gw, tokens[ALICE]) as client:
        call = asyncio.ensure_future(client.call_tool("slow", {"seconds": 30}))
        await running(gw, tokens[BOB], "slow")
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(MCPError) as raised:
            await call
        assert time.monotonic() - started < 5
        assert raised.value.error.code == -32003
        assert "tickets was killed by SIGKILL while answering" in raised.value.error.message
        # The same session goes on with the process started again.
        again = await client.call_tool("echo", {"text": "back"})
        assert not again.is_error and text(again) == "back"
    assert last_call(gw, "slow")["outcome"] == "server_failed"
    assert (await process_of(gw, tokens[ALICE]))["pid"] != pid
    assert not alive(pid)


async def test_an_answer_longer_than_max_response_size_is_a_clean_error(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    async with connected(gw, tokens[ALICE]) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("echo", {"text": "x" * 40000})  # twice in the answer
        assert raised.value.error.code == -32003
        assert "tickets sent a message of more than 65536 bytes" in raised.value.error.message
        # The rest of that line is never read as a message: the process was started again.
        again = await client.call_tool("echo", {"text": "short"})
        assert not again.is_error and text(again) == "short"


async def test_an_approved_call_whose_process_dies_is_settled_as_failed(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    pid = (await process_of(gw, tokens[ALICE]))["pid"]
    arguments = {"id": 4, "seconds": 30}
    async with connected(gw, tokens[ALICE]) as client:
        request_id = request_id_of(await client.call_tool("close_slowly", arguments))
        decide(gw, request_id, BOB)
        retry = asyncio.ensure_future(client.call_tool("close_slowly", arguments))
        await running(gw, tokens[BOB], "close_slowly")
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(MCPError, match="killed by SIGKILL"):
            await retry
    view = final_view(gw, request_id)
    assert view.state == "failed" and "whether it took effect is unknown" in view.outcome.error


async def test_a_server_that_cannot_start_is_a_clean_error(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    async with aiohttp.ClientSession() as http:
        answer = await http.post(
            url(gw, "missing"), json=_initialize(), headers=_auth(tokens[ALICE])
        )
        assert answer.status == 200 and "Mcp-Session-Id" not in answer.headers
        error = (await answer.json())["error"]
    assert error["code"] == -32003
    assert error["message"].startswith("missing is not running: cannot start missing: [Errno 2]")


def test_the_process_is_stopped_with_the_gateway(make_database: Callable[[str], str]) -> None:
    gateway = GatewayThread(stdio_config(make_database("jg_mcp_stdio_stop")))
    try:
        pid = asyncio.run(process_of(gateway, gateway.token(ALICE)))["pid"]
        assert alive(pid)
    finally:
        gateway.stop()
    assert not alive(pid)


def test_jitgate_serve_stops_its_stdio_server_on_sigterm(
    make_database: Callable[[str], str], tmp_path: Path
) -> None:
    raw = {
        "database_url": make_database("jg_mcp_stdio_serve"),
        "http": {"listen": "127.0.0.1:0"},
        "postgres": {"listen": "127.0.0.1:0"},
        "audit": {"spool": str(tmp_path / "spool")},
        "groups": {"engineers": [ALICE]},
        "resources": {"tickets": {
            "type": "mcp", "cwd": REPO, "env": {"TICKETS_HELPER": "1"},
            "command": [sys.executable, "-m", "tests.mcp_stdio_server"],
            "access": {"engineers": {"*": "allow"}},
        }},
    }  # fmt: skip
    config = tmp_path / "jitgate.yaml"
    config.write_text(yaml.safe_dump(raw))
    serve, _ = serve_process(config)
    try:
        child = wait_until(lambda: children_of(serve.pid), what="the stdio server")[0]
        helper = wait_until(lambda: children_of(child), what="the server's helper")[0]
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
    # Neither the server nor the helper it left behind outlives the gateway.
    assert not alive(child)
    assert not alive(helper)


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"url": "http://127.0.0.1:1/mcp"}, "resources.tickets.command: and url exclude"),
        ({"command": "python -m server"}, "resources.tickets.command: must be a list"),
        ({"command": []}, "resources.tickets.command: must be a list"),
        ({"headers": {"X-Key": "k"}}, "resources.tickets.headers: applies to a server reached"),
        ({"env": {"A=B": "c"}}, "resources.tickets.env.A=B: is not an environment variable"),
        ({"env": {"KEY": "${UNSET_VARIABLE}"}}, "resources.tickets.env.KEY: environment variable"),
        ({"server_requests": {"sampling": "allow"}}, "server_requests.sampling: cannot be allowed"),
    ],
)
def test_a_bad_stdio_resource_fails_at_start_naming_the_key(
    change: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        stdio_config("postgresql://u@127.0.0.1/jg", **change)
    assert key in str(raised.value) and "\n" not in str(raised.value)
    url_only = {"type": "mcp", "url": "http://127.0.0.1:1/mcp", "cwd": "/tmp",
                "access": {"dba": {"*": "allow"}}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"resources\.t\.cwd: applies to a server run by"):
        parse_config({"database_url": "postgresql://u@127.0.0.1/jg", "groups": {"dba": [BOB]},
                      "resources": {"t": url_only}}, {})  # fmt: skip
