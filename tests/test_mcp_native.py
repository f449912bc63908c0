"""jitgate's MCP server at ``/mcp`` spoken to in protocol 2026-07-28 by the official SDK
client: no handshake, the per-request envelope, and a held ``run_sql`` answered as a task
of the tasks extension when the client declares it. The tasks extension is not in the
SDK; :class:`TasksExtension` is the client's side of it as its specification reads. The
target's rows and the store's requests are the witnesses."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import aiohttp
import httpx2
import psycopg
import pytest
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, Implementation, Request, RequestParams, Result

from tests.harness import GatewayThread, gateway_config
from tests.test_mcp_server import gw_call, gw_fetchrow, gw_fetchval, structured, text

ALICE, BOB = "alice@example.com", "bob@example.com"
AGENT = "claude-code"
EMAIL = "fox.mulder@example.org"
TASKS = "io.modelcontextprotocol/tasks"


class TaskHandle(Result):
    """``CreateTaskResult``: what a ``tools/call`` answers when the server made a task."""

    result_type: Literal["task"] = "task"
    task_id: str
    status: str
    status_message: str | None = None
    poll_interval_ms: int | None = None


class DetailedTask(Result):
    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class TaskParams(RequestParams):
    task_id: str


class GetTask(Request[TaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskParams
    name_param = "taskId"


class CancelTask(Request[TaskParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskParams
    name_param = "taskId"


class TasksExtension(ClientExtension):
    """Follows a task by polling ``tasks/get`` until it ends; records what it saw."""

    identifier = TASKS

    def __init__(self) -> None:
        self.handles: list[TaskHandle] = []
        self.polls: list[DetailedTask] = []
        self.polled = asyncio.Event()

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskHandle, resolve=self.follow)]

    async def follow(self, handle: TaskHandle, ctx: ClaimContext) -> CallToolResult:
        self.handles.append(handle)
        while True:
            task = await ctx.session.send_request(get_task(handle.task_id), DetailedTask)
            self.polls.append(task)
            self.polled.set()
            if task.status == "completed":
                assert task.result is not None
                return CallToolResult.model_validate(task.result)
            if task.status != "working":
                raise RuntimeError(f"task {task.task_id} ended {task.status}")
            await asyncio.sleep(0.05)


def get_task(task_id: str) -> GetTask:
    return GetTask(params=TaskParams(task_id=task_id))


@pytest.fixture(scope="module")
def target_dsn(make_database: Callable[[str], str]) -> str:
    dsn = make_database("jg_mcp_native_target")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, email text, n int)")
        conn.execute("INSERT INTO customers VALUES (1, %s, 0), (2, 'x@example.com', 0)", (EMAIL,))
    return dsn


@pytest.fixture(scope="module")
def gw(make_database: Callable[[str], str], target_dsn: str) -> Iterator[GatewayThread]:
    gateway = GatewayThread(gateway_config(make_database("jg_mcp_native_store"), target_dsn))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def tokens(gw: GatewayThread) -> dict[str, str]:
    return {user: gw.token(user) for user in (ALICE, BOB)}


def url(gw: GatewayThread) -> str:
    return f"http://127.0.0.1:{gw.http_port}/mcp"


@asynccontextmanager
async def connected(
    gw: GatewayThread, token: str, mode: str = "auto", tasks: TasksExtension | None = None
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(url(gw), http_client=http)
        info = Implementation(name=AGENT, version="2.0")
        extensions = [tasks] if tasks is not None else None
        async with Client(transport, client_info=info, mode=mode, extensions=extensions) as c:
            yield c


def n_of(dsn: str, row: int) -> int:
    with psycopg.connect(dsn) as conn:
        found = conn.execute("SELECT n FROM customers WHERE id = %s", (row,)).fetchone()
        assert found is not None
        return int(found[0])


async def approve(gw: GatewayThread, token: str, request_id: int) -> None:
    """An approver's decision through the REST API, as the web inbox and the CLI send it."""
    url = f"http://127.0.0.1:{gw.http_port}/api/requests/{request_id}/decisions"
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(url, json={"verdict": "approve"}) as response,
    ):
        assert response.status == 200, await response.text()


async def wait_for_request(gw: GatewayThread, sql: str) -> int:
    deadline = time.monotonic() + 10
    while True:
        found = await gw_fetchval(gw, "SELECT id FROM requests WHERE sql = $1", sql)
        if found is not None:
            return int(found)
        assert time.monotonic() < deadline, f"no request for {sql}"
        await asyncio.sleep(0.05)


async def test_a_modern_client_negotiates_2026_07_28_and_reads_masked_rows(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    async with connected(gw, tokens[ALICE]) as client:
        assert client.protocol_version == "2026-07-28"
        assert client.session.initialize_result is None
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "run_sql" in names and "request_status" in names
        sql = "SELECT id, email FROM customers ORDER BY id"
        result = await client.call_tool("run_sql", {"resource": "prod", "sql": sql})
    assert not result.is_error, text(result)
    assert structured(result)["status"] == "executed" and structured(result)["rows"] == 2
    assert EMAIL not in json.dumps(result.model_dump(mode="json", by_alias=True))
    call = await gw_fetchrow(gw, "SELECT * FROM mcp_calls WHERE tool = 'run_sql' ORDER BY id DESC")
    assert (call["principal"], call["agent"], call["mcp_session"]) == (ALICE, AGENT, "stateless")
    assert call["outcome"] == "executed"


async def test_a_held_write_is_a_task_that_completes_with_the_result_once_approved(
    gw: GatewayThread, tokens: dict[str, str], target_dsn: str
) -> None:
    sql = "UPDATE customers SET n = n + 1 WHERE id = 1"
    tasks = TasksExtension()
    async with connected(gw, tokens[ALICE], tasks=tasks) as client:
        call = asyncio.create_task(client.call_tool("run_sql", {"resource": "prod", "sql": sql}))
        request_id = await wait_for_request(gw, sql)
        await asyncio.wait_for(tasks.polled.wait(), 10)
        (handle,) = tasks.handles
        assert handle.task_id == f"request-{request_id}" and handle.status == "working"
        assert f"/requests/{request_id}" in (handle.status_message or "")
        assert tasks.polls[-1].status == "working" and not call.done()
        assert n_of(target_dsn, 1) == 0
        await approve(gw, tokens[BOB], request_id)
        result = await asyncio.wait_for(call, 20)
        # The result stays on the task: a later poll reads it again, nothing runs again.
        again = await client.session.send_request(get_task(handle.task_id), DetailedTask)
    assert not result.is_error, text(result)
    facts = structured(result)
    assert facts["status"] == "executed" and facts["command_tag"] == "UPDATE 1"
    assert again.status == "completed" and again.result == result.model_dump(
        mode="json", by_alias=True, exclude_none=True
    ) | {"resultType": "complete"}
    assert n_of(target_dsn, 1) == 1
    row = await gw_fetchrow(gw, "SELECT state, agent, source FROM requests WHERE id = $1",
                            request_id)  # fmt: skip
    assert (row["state"], row["agent"], row["source"]) == ("executed", AGENT, "mcp")


async def test_older_clients_and_clients_without_tasks_get_pending_approval_at_once(
    gw: GatewayThread, tokens: dict[str, str], target_dsn: str
) -> None:
    for mode, row in (("legacy", 2), ("2026-07-28", 2)):
        sql = f"UPDATE customers SET n = n + 10 WHERE id = {row} AND '{mode}' <> ''"
        async with connected(gw, tokens[ALICE], mode=mode) as client:
            started = time.monotonic()
            held = await client.call_tool("run_sql", {"resource": "prod", "sql": sql})
            assert time.monotonic() - started < 2
        assert structured(held)["status"] == "pending_approval", (mode, text(held))
        assert "request_status" in structured(held)["next"]
    assert n_of(target_dsn, 2) == 0


async def test_tasks_cancel_withdraws_the_request_and_others_cannot_see_the_task(
    gw: GatewayThread, tokens: dict[str, str], target_dsn: str
) -> None:
    sql = "UPDATE customers SET n = n + 100 WHERE id = 2"
    async with connected(gw, tokens[ALICE], tasks=TasksExtension()) as alice:
        handle = await alice.session.call_tool(
            "run_sql", {"resource": "prod", "sql": sql}, allow_claimed=True
        )
        assert isinstance(handle, TaskHandle), handle
        async with connected(gw, tokens[BOB], tasks=TasksExtension()) as bob:
            with pytest.raises(MCPError) as not_found:
                await bob.session.send_request(get_task(handle.task_id), DetailedTask)
        assert not_found.value.code == -32602 and "not found" in str(not_found.value)
        await alice.session.send_request(
            CancelTask(params=TaskParams(task_id=handle.task_id)), Result
        )
        task = await alice.session.send_request(get_task(handle.task_id), DetailedTask)
    assert task.status == "cancelled"
    request_id = int(handle.task_id.removeprefix("request-"))
    assert await gw_fetchval(gw, "SELECT state FROM requests WHERE id = $1", request_id) == (
        "cancelled"
    )
    assert n_of(target_dsn, 2) == 0


async def test_a_rejected_request_completes_the_task_with_a_tool_error(
    gw: GatewayThread, tokens: dict[str, str], target_dsn: str
) -> None:
    sql = "UPDATE customers SET n = n + 1000 WHERE id = 2"
    async with connected(gw, tokens[ALICE], tasks=TasksExtension()) as client:
        handle = await client.session.call_tool(
            "run_sql", {"resource": "prod", "sql": sql}, allow_claimed=True
        )
        assert isinstance(handle, TaskHandle)
        request_id = int(handle.task_id.removeprefix("request-"))
        rejected = gw.gateway.approvals.decide(
            request_id, BOB, "reject", via="cli", reason="not today"
        )
        await gw_call(gw, rejected)
        task = await client.session.send_request(get_task(handle.task_id), DetailedTask)
    assert task.status == "completed" and task.result is not None
    assert task.result["isError"] is True
    shown = task.result["content"][0]["text"]
    assert "rejected" in shown and "not today" in shown and BOB in shown
    assert n_of(target_dsn, 2) == 0


async def test_envelope_and_headers_are_checked_with_json_rpc_errors(
    gw: GatewayThread, tokens: dict[str, str]
) -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
    task = {"jsonrpc": "2.0", "id": 2, "method": "tasks/get",
            "params": {"taskId": "request-1", "_meta": meta}}  # fmt: skip
    base = {
        "Authorization": f"Bearer {tokens[ALICE]}",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2026-07-28",
    }
    cases = [
        (listing, {"Mcp-Method": "tools/call"}, 400, -32020),
        ({**listing, "params": {}}, {"Mcp-Method": "tools/list"}, 400, -32602),
        (task, {"Mcp-Method": "tasks/get", "Mcp-Name": "request-1"}, 400, -32021),
        ({**listing, "method": "nope"}, {"Mcp-Method": "nope"}, 404, -32601),
        (listing, {"Mcp-Method": "tools/list"}, 200, None),
    ]
    async with aiohttp.ClientSession() as http:
        for body, extra, status, code in cases:
            async with http.post(url(gw), json=body, headers={**base, **extra}) as response:
                answer = await response.json()
            assert response.status == status, (body, answer)
            assert (answer.get("error") or {}).get("code") == code, answer
    assert answer["result"]["resultType"] == "complete" and answer["result"]["tools"]
