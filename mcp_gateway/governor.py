"""The governing proxy's chain for one governed server's tools.

``tools/list``: the server's list without the tools policy denies the caller and without
those held by pinning (:mod:`mcp_gateway.pins`).

``tools/call``, in order, each step able to answer the agent itself:

1. policy on the tool (:func:`~mcp_gateway.tool_policy.tool_action`): denied → the
   JSON-RPC error an unknown tool gets, as the tool is not listed either;
2. pinning: a tool changed since it was approved → a tool error, nothing called;
3. argument guardrails (patterns, the SQL classifier): denied → a tool error with the
   reasons;
4. review (from either): the call is bound to an access request
   (:mod:`mcp_gateway.bound_calls`); the first call answers ``pending_approval`` at once,
   the identical retry after approval is forwarded once;
5. forward (:mod:`mcp_gateway.downstream`: the gateway's own HTTP client, or the process
   it runs for a stdio server), relaying to the agent, masked, what the server sends
   meanwhile (notifications; the requests :mod:`mcp_gateway.server_requests` lets
   through), then mask the answer (:mod:`mcp_gateway.masked_results`).

Every call is recorded before step 1 and completed with the decision and outcome; a
server that fails, hangs or answers garbage is a JSON-RPC error, recorded as such and
never as run (an approved request it was running is settled as failed).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from approvals.model import Alert, Outcome, State
from guard import Classifier
from jitgate.errors import DecisionRefused, McpServerError, StoreUnavailable
from jitgate.gateway import Gateway
from masking import MaskingPolicy
from mcp_gateway import jsonrpc, proxy_texts
from mcp_gateway.bound_calls import BoundCalls, ToolCall
from mcp_gateway.downstream import Downstream, NotificationHandler
from mcp_gateway.envelope import own_params
from mcp_gateway.jsonrpc import INVALID_PARAMS, Request
from mcp_gateway.masked_results import masked_answer, masked_text
from mcp_gateway.pins import ToolPins
from mcp_gateway.proxy_store import ProxySession, ProxyStore
from mcp_gateway.server_requests import ServerRequests
from mcp_gateway.settings import McpServer
from mcp_gateway.stream import AgentStream
from mcp_gateway.tool_policy import argument_action, strictest, tool_action

# JSON-RPC's server-error range: the governed server failed, nothing of it is relayed.
SERVER_FAILED = -32003


@dataclass(slots=True)
class Decided:
    """A call's answer (a JSON-RPC message, as bytes or as an object) and its record."""

    answer: bytes | dict[str, Any]
    decision: str
    outcome: str
    detail: str = ""
    request_id: int | None = None
    masked: Counter[str] = field(default_factory=Counter)


class Governor:
    def __init__(self, gateway: Gateway, store: ProxyStore, links: dict[str, Downstream]) -> None:
        self.gateway = gateway
        self.store = store
        self.links = links
        self.pins = ToolPins(gateway.pool, gateway.approvals.emit)
        self.bound = BoundCalls(gateway.approvals)
        self.requests = ServerRequests(gateway, store)
        self._classifiers: dict[str, Classifier] = {}

    def masking(self, server: McpServer) -> MaskingPolicy | None:
        if server.masking == "off":
            return None
        return self.gateway.config.masking_policies.get(server.masking, MaskingPolicy())

    async def forward(
        self,
        session: ProxySession,
        body: bytes,
        request_id: jsonrpc.RequestId | None,
        stream: AgentStream | None = None,
    ) -> bytes | None:
        """``body`` sent to the session's server as it is; its answer, or None. What the
        server sends meanwhile reaches the agent on ``stream``, masked: its notifications,
        and the requests policy lets it make (:mod:`mcp_gateway.server_requests`)."""
        server = self.gateway.config.mcp_servers[session.resource]
        masking = self.masking(server)
        answer = await self.links[server.name].send(
            body, request_id, caller=session.principal, session_id=session.downstream_session,
            protocol_version=session.protocol_version,
            on_request=self.requests.handler(session, stream, masking),
            on_notification=_relayed(stream, masking) if stream is not None else None,
        )  # fmt: skip
        return answer.body

    async def list_tools(self, session: ProxySession, message: Request, body: bytes) -> bytes:
        server = self.gateway.config.mcp_servers[session.resource]
        answer = await self.forward(session, body, message.id)
        assert answer is not None
        reply = json.loads(answer)
        result = reply.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return answer if "error" in reply else _bad_list(message.id, server.name)
        groups = self.gateway.directory.groups_of(session.principal)
        tools = [
            t for t in result["tools"]
            if isinstance(t, dict) and isinstance(t.get("name"), str)
            and tool_action(server, groups, t["name"], session.principal) != "deny"
        ]  # fmt: skip
        complete = "cursor" not in message.params and not result.get("nextCursor")
        result["tools"] = await self.pins.admit(server.name, tools, complete=complete)
        masked, _ = masked_answer(json.dumps(reply).encode(), self.masking(server))
        return masked

    async def call_tool(
        self, session: ProxySession, message: Request, body: bytes, stream: AgentStream | None
    ) -> bytes:
        name, arguments = message.params.get("name"), message.params.get("arguments")
        if not isinstance(name, str) or not name:
            return _encoded(jsonrpc.error(message.id, INVALID_PARAMS, "tools/call needs a name"))
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            return _encoded(jsonrpc.error(message.id, INVALID_PARAMS, "arguments are an object"))
        call_id = await self.store.call_started(session, name, arguments)
        server = self.gateway.config.mcp_servers[session.resource]
        call = ToolCall(server, session.principal, name, arguments)
        try:
            decided = await self._decide(session, call, message, body, stream)
        except McpServerError as exc:
            decided = Decided(jsonrpc.error(message.id, SERVER_FAILED, str(exc)), "allow",
                              "server_failed", str(exc))  # fmt: skip
        except DecisionRefused as exc:
            decided = Decided(_tool_error(message.id, str(exc)), "review", "refused", str(exc))
        except RecursionError:
            decided = Decided(_tool_error(message.id, "the arguments nest too deeply"), "deny",
                              "denied", "arguments nest too deeply")  # fmt: skip
        # Completed off the answer's path: the call was recorded before it was forwarded.
        self.gateway.approvals.spawn(self._ended(call_id, decided))
        answer = decided.answer
        return answer if isinstance(answer, bytes) else _encoded(answer)

    async def run_approved(
        self, session: ProxySession, request_id: int, meta: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Make the approved call of request ``request_id`` once, for the task it is (the
        agent does not call again): claimed APPROVED → EXECUTING by compare-and-set,
        recorded, forwarded with ``meta`` as its ``_meta``, settled. The masked JSON-RPC
        answer, or None when it was not claimed (another poll did; an approval older than
        ``approval_ttl`` is cancelled)."""
        server = self.gateway.config.mcp_servers[session.resource]
        row = await self.bound.get(request_id)
        if row is None or row.state != State.APPROVED:
            return None
        claimed = await self.bound.claim(row, server)
        if claimed is None:
            again = await self.bound.get(request_id)
            if again is not None and again.state == State.APPROVED:
                await self.bound.lapse(again, server)
            return None
        made = json.loads(row.sql)
        call = ToolCall(server, session.principal, made["tool"], made["arguments"])
        params = {"name": call.tool, "arguments": call.arguments, "_meta": meta}
        message = Request(f"jitgate-request-{request_id}", "tools/call", params)
        body = _encoded({"jsonrpc": "2.0", "id": message.id, "method": message.method,
                         "params": params})  # fmt: skip
        call_id = await self.store.call_started(session, call.tool, call.arguments)
        try:
            decided = await self._forward(session, call, message, body, None, "approved",
                                          request_id)  # fmt: skip
        except McpServerError as exc:
            decided = Decided(jsonrpc.error(message.id, SERVER_FAILED, str(exc)), "approved",
                              "server_failed", str(exc), request_id)  # fmt: skip
        self.gateway.approvals.spawn(self._ended(call_id, decided))
        answer = decided.answer
        return json.loads(answer) if isinstance(answer, bytes) else answer

    async def _ended(self, call_id: int, decided: Decided) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self.store.call_ended(
                call_id, decided.decision, decided.outcome, decided.detail, decided.request_id
            )

    async def _decide(
        self,
        session: ProxySession,
        call: ToolCall,
        message: Request,
        body: bytes,
        stream: AgentStream | None,
    ) -> Decided:
        server, who, tool, rid = call.server, call.principal, call.tool, message.id
        groups = self.gateway.directory.groups_of(who)
        action = tool_action(server, groups, tool, who)
        if action == "deny":
            self._alert("denied", f"{who} was denied the tool {tool!r} on {server.name}", call)
            detail = proxy_texts.tool_denied(who, server.name, tool)
            return Decided(jsonrpc.error(rid, INVALID_PARAMS, detail), "deny", "denied", detail)
        definition = self.pins.listed(server.name, tool)
        if definition is None:
            await self._learn_tools(session)
            definition = self.pins.listed(server.name, tool)
        if definition is None:
            detail = proxy_texts.not_listed(server.name, tool)
            return Decided(jsonrpc.error(rid, INVALID_PARAMS, detail), "deny", "unknown", detail)
        if await self.pins.is_held(server.name, definition):
            detail = proxy_texts.held_tool(server.name, tool)
            return Decided(_tool_error(rid, detail), "held", "held", detail)
        judged = argument_action(server, self._classifier(server), tool, call.arguments)
        if judged.action == "deny":
            detail = proxy_texts.arguments_denied(tool, judged.reasons)
            self._alert("guardrail", f"{who}: {detail}", call)
            return Decided(_tool_error(rid, detail), "deny", "denied", detail)
        if strictest((action, judged.action)) == "allow":
            return await self._forward(session, call, message, body, stream, "allow")
        return await self._reviewed(session, call, message, body, stream, judged.reasons)

    async def _reviewed(
        self,
        session: ProxySession,
        call: ToolCall,
        message: Request,
        body: bytes,
        stream: AgentStream | None,
        reasons: tuple[str, ...],
    ) -> Decided:
        row = await self.bound.find(call)
        if row is not None and row.state == State.APPROVED:
            claimed = await self.bound.claim(row, call.server)
            if claimed is not None:
                return await self._forward(
                    session, call, message, body, stream, "approved", claimed.id
                )
            again = await self.bound.get(row.id)
            if again is not None and again.state == State.APPROVED:
                await self.bound.lapse(row, call.server)
                row = None
            else:
                row = again
        if row is not None and row.state in (State.EXECUTING, State.EXECUTED, State.FAILED):
            detail = proxy_texts.running(row.id)
            return Decided(_tool_error(message.id, detail), "review", "running", detail, row.id)
        if row is None or row.state != State.PENDING:
            display = masked_text(
                proxy_texts.card_text(call.server.name, call.tool, call.arguments),
                self.masking(call.server),
            )
            reasons = reasons or (f"policy: the tool {call.tool} is reviewed",)
            view = await self.bound.open(call, reasons, display)
        else:
            view = await self.bound.view(row)
        posted_to = self.gateway.approvals.where(view)
        detail = proxy_texts.pending(view, call.tool, posted_to, call.server.approval_ttl)
        meta = {
            "status": "pending_approval", "request_id": view.id, "url": view.url,
            "posted_to": posted_to, "expires_at": view.expires_at.isoformat(),
        }  # fmt: skip
        return Decided(_tool_error(message.id, detail, meta), "review", "pending_approval",
                       detail, view.id)  # fmt: skip

    async def _forward(
        self,
        session: ProxySession,
        call: ToolCall,
        message: Request,
        body: bytes,
        stream: AgentStream | None,
        decision: str,
        request_id: int | None = None,
    ) -> Decided:
        started = time.monotonic()
        try:
            answer = await self.forward(session, body, message.id, stream)
        except McpServerError as exc:
            if request_id is not None:
                await self._finish(request_id, started, None, f"{exc}; whether it took effect"
                                   " is unknown")  # fmt: skip
            raise
        assert answer is not None
        masked, counts = masked_answer(answer, self.masking(call.server))
        reply = json.loads(masked)
        failed = "error" in reply or bool(reply.get("result", {}).get("isError"))
        text = proxy_texts.outcome_text(reply)
        if request_id is not None:
            await self._finish(request_id, started, text if not failed else None,
                               text if failed else None, counts)  # fmt: skip
        return Decided(masked, decision, "error" if failed else "forwarded", text[:500],
                       request_id, counts)  # fmt: skip

    async def _finish(
        self,
        request_id: int,
        started: float,
        text: str | None,
        error: str | None,
        masked: Counter[str] | None = None,
    ) -> None:
        row = await self.bound.get(request_id)
        if row is None:
            return
        outcome = Outcome(
            command_tag="tools/call", rows=None,
            duration_ms=(time.monotonic() - started) * 1000, error=error,
            columns=("result",) if text is not None else (),
            preview=((text[:1000],),) if text is not None else (),
            masked=dict(masked or {}),
        )  # fmt: skip
        await self.bound.finish(row, outcome)

    async def _learn_tools(self, session: ProxySession) -> None:
        """Ask the server for its tools, as this process has not heard them yet."""
        listing = {"jsonrpc": "2.0", "id": "jitgate-tools", "method": "tools/list",
                   "params": own_params(session.protocol_version)}  # fmt: skip
        answer = await self.forward(session, _encoded(listing), "jitgate-tools")
        result = json.loads(answer or b"{}").get("result", {})
        if isinstance(result.get("tools"), list):
            tools = [t for t in result["tools"] if isinstance(t, dict)]
            await self.pins.admit(session.resource, tools, complete=not result.get("nextCursor"))

    def _classifier(self, server: McpServer) -> Classifier:
        return self._classifiers.setdefault(server.name, Classifier())

    def _alert(self, kind: str, summary: str, call: ToolCall) -> None:
        assert kind in ("denied", "guardrail")
        self.gateway.approvals.emit(
            Alert("denied" if kind == "denied" else "guardrail", summary,
                  call.principal.email, call.server.name)
        )  # fmt: skip


def _relayed(stream: AgentStream, masking: MaskingPolicy | None) -> NotificationHandler:
    async def relay(notification: bytes) -> None:
        masked, _ = masked_answer(notification, masking)
        await stream.send(masked)

    return relay


def _tool_error(
    request_id: jsonrpc.RequestId, text: str, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if meta is not None:
        result["_meta"] = {"jitgate": meta}
    return jsonrpc.result(request_id, result)


def _bad_list(request_id: jsonrpc.RequestId, server: str) -> bytes:
    message = f"{server} answered tools/list without a list of tools"
    return _encoded(jsonrpc.error(request_id, SERVER_FAILED, message))


def _encoded(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode()
