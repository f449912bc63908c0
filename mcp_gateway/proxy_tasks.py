"""Held calls through the governing proxy as tasks of MCP's tasks extension (protocol
2026-07-28), for agents that declare it.

The task is the access request the held call opened (:mod:`mcp_gateway.bound_calls`),
and reads as a ``run_sql`` task does (:mod:`mcp_gateway.tasks`), with one difference: no
gateway makes a governed call by itself, so the ``tasks/get`` that finds the request
approved makes it — claimed by compare-and-set, so of two polls at once one makes the
call and the other reads it running — and answers ``completed`` with the masked result
(``failed`` with the JSON-RPC error when the server failed). Later polls read the result
from the request's outcome: the text of the answer (at most 1,000 characters), as cards
show it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from approvals.model import RequestView, State
from identity import Principal
from jitgate.gateway import Gateway
from mcp_gateway import bound_calls
from mcp_gateway.proxy_store import ProxySession
from mcp_gateway.results import refusal
from mcp_gateway.tasks import RequestTasks

if TYPE_CHECKING:
    from mcp_gateway.governor import Governor


class ProxyTasks(RequestTasks):
    source = bound_calls.SOURCE

    def __init__(self, gateway: Gateway, governor: Governor, resource: str) -> None:
        super().__init__(gateway, resource)
        self.governor = governor

    async def poll(
        self, session: ProxySession, params: dict[str, Any], meta: dict[str, Any]
    ) -> dict[str, Any]:
        """``tasks/get``: the call is made here once it is approved, with ``meta`` (the
        poll's envelope) as its ``_meta``."""
        who: Principal = session.principal
        view = await self._mine(who, params.get("taskId"))
        if view.state == State.APPROVED:
            answer = await self.governor.run_approved(session, view.id, meta)
            view = await self._mine(who, params.get("taskId"))
            if answer is not None:
                return {"resultType": "complete", **self._made(view, answer)}
        return {"resultType": "complete", **self.task(view)}

    def result(self, view: RequestView) -> dict[str, Any]:
        outcome = view.outcome
        if outcome is None:
            return super().result(view)
        if not outcome.ok:
            return refusal("error", outcome.error or "the call failed").as_json()
        text = outcome.preview[0][0] if outcome.preview and outcome.preview[0] else ""
        return {"content": [{"type": "text", "text": text or ""}], "isError": False}

    def _made(self, view: RequestView, answer: dict[str, Any]) -> dict[str, Any]:
        task = self.task(view)
        task.pop("result", None)
        if isinstance(answer.get("result"), dict):
            result = {**answer["result"], "resultType": "complete"}
            return {**task, "status": "completed", "result": result}
        return {**task, "status": "failed", "error": answer.get("error")}
