"""Held ``run_sql`` calls as tasks of MCP's tasks extension (``io.modelcontextprotocol/tasks``,
protocol 2026-07-28).

A client that declares the extension on its ``tools/call`` gets, for a statement policy
holds, a task (``resultType: "task"``) instead of the ``pending_approval`` tool result.
The task *is* the access request: ``tasks/get`` reads the request's state from the store
(so any gateway process answers it, and a restart loses nothing) and the approvals core
runs the approved statement once by itself, as for every held ``run_sql``:

=====================  ===========  ==================================================
request state          task status  what ``tasks/get`` adds
=====================  ===========  ==================================================
pending                working      where the card was posted and the approval page
approved, executing    working
executed, failed       completed    ``result``: the masked rows, or the database's
                                    error as a tool error (``isError``)
rejected, expired      completed    ``result``: a tool error naming who and why
cancelled              cancelled
=====================  ===========  ==================================================

``failed`` is the extension's word for a JSON-RPC error, which a held statement never
ends in. ``tasks/cancel`` cancels the request (its requester only, as
``cancel_request``); ``tasks/update`` is acknowledged and ignored, as no task of
jitgate's ever asks for input. A task is visible only to the person and agent whose call
opened it; to anyone else it does not exist. The result of a task is read from the
store, so there is no ``tasks/result`` in this version of the extension: ``tasks/get``
carries it.
"""

from __future__ import annotations

from typing import Any

from approvals.display import shown
from approvals.model import FINAL_STATES, RequestView, State
from identity import Principal
from jitgate.errors import RpcError
from jitgate.gateway import Gateway
from mcp_gateway import texts
from mcp_gateway.jsonrpc import INVALID_PARAMS
from mcp_gateway.results import refusal
from mcp_gateway.tools import executed

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
POLL_INTERVAL_MS = 2000
_PREFIX = "request-"


def task_id(request_id: int) -> str:
    return f"{_PREFIX}{request_id}"


class RequestTasks:
    """The tasks of the requests ``source`` opens (``run_sql``'s; the governing proxy's
    are :class:`mcp_gateway.proxy_tasks.ProxyTasks`), on ``resource`` if given."""

    source = "mcp"

    def __init__(self, gateway: Gateway, resource: str | None = None) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.resource = resource

    async def created(self, who: Principal, request_id: int) -> dict[str, Any]:
        """The ``CreateTaskResult`` for the request a held call opened."""
        view = await self._mine(who, task_id(request_id))
        return {"resultType": "task", **self.task(view)}

    async def get(self, who: Principal, params: dict[str, Any]) -> dict[str, Any]:
        view = await self._mine(who, params.get("taskId"))
        return {"resultType": "complete", **self.task(view)}

    async def cancel(self, who: Principal, params: dict[str, Any]) -> dict[str, Any]:
        """Cancels the request unless it ran or is running (the extension lets a server
        finish what it started; ``tasks/get`` then tells which happened)."""
        view = await self._mine(who, params.get("taskId"))
        if view.state not in FINAL_STATES:
            await self.gateway.approvals.cancel(view.id, f"task cancelled by {who}")
        return {"resultType": "complete"}

    async def update(self, who: Principal, params: dict[str, Any]) -> dict[str, Any]:
        await self._mine(who, params.get("taskId"))
        return {"resultType": "complete"}

    async def _mine(self, who: Principal, value: object) -> RequestView:
        request_id = _request_id(value)
        view = None
        if request_id is not None:
            view = await self.gateway.approvals.store.view(request_id)
        if (
            view is None
            or view.source != self.source
            or self.resource not in (None, view.resource)
            or view.requester != who.email
            or view.agent != who.actor
        ):
            raise RpcError(INVALID_PARAMS, "Failed to retrieve task: Task not found")
        return view

    def task(self, view: RequestView) -> dict[str, Any]:
        """The task as ``tasks/get`` shows it, from its request's state."""
        view = shown(self.config, view)
        task: dict[str, Any] = {
            "taskId": task_id(view.id),
            "createdAt": view.created_at.isoformat(),
            "lastUpdatedAt": max(
                (d.decided_at for d in view.decisions), default=view.created_at
            ).isoformat(),
            "ttlMs": None,
            "pollIntervalMs": POLL_INTERVAL_MS,
        }
        if view.state == State.PENDING:
            where = self.gateway.approvals.where(view)
            return {**task, "status": "working", "statusMessage": texts.task_waiting(view, where)}
        if view.state in (State.APPROVED, State.EXECUTING):
            return {**task, "status": "working", "statusMessage": texts.task_running(view)}
        if view.state == State.CANCELLED:
            return {**task, "status": "cancelled", "statusMessage": texts.status(view)}
        return {**task, "status": "completed", "statusMessage": texts.status(view),
                "result": {**self.result(view), "resultType": "complete"}}  # fmt: skip

    def result(self, view: RequestView) -> dict[str, Any]:
        """The ``CallToolResult`` of a request that ended (masked already)."""
        if view.outcome is None:
            return refusal(str(view.state), texts.status(view)).as_json()
        return executed(view.outcome).as_json()


def _request_id(value: object) -> int | None:
    if not isinstance(value, str) or not value.startswith(_PREFIX):
        return None
    digits = value.removeprefix(_PREFIX)
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)
