"""The five tools of jitgate's MCP server, each a thin call into the same core as psql,
the REST API and chat.

``run_sql`` is :meth:`approvals.service.Approvals.ask`, as ``POST /api/requests`` uses it:
classified, policed, run once and recorded (a session of its own) or opened as an access
request naming the agent, with its result masked at the edge like the API's.
``request_status`` and ``cancel_request`` follow the REST API's rules of who may see a
request; only its requester may cancel it. ``describe`` reads ``information_schema`` with
the resource's reader credential and never returns a row of data.

Every call is recorded before it runs (:meth:`mcp_gateway.store.McpStore.call_started`)
and completed with its outcome.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from approvals.display import shown, shown_outcome
from approvals.model import FINAL_STATES, Outcome, RequestView
from approvals.policy import action_for
from identity import Principal
from jitgate.api import may_see, outcome_json, request_json
from jitgate.config import STATEMENT_CLASSES, Resource
from jitgate.errors import DecisionRefused, RpcError, StoreUnavailable, UsageError
from jitgate.gateway import Gateway
from mcp_gateway import texts
from mcp_gateway.catalog import describe_resource
from mcp_gateway.jsonrpc import INVALID_PARAMS
from mcp_gateway.results import ToolResult, refusal
from mcp_gateway.store import McpSession, McpStore

Handler = Callable[[Principal, dict[str, Any]], Awaitable[ToolResult]]


class Toolbox:
    def __init__(self, gateway: Gateway, store: McpStore) -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.store = store
        self._handlers: dict[str, Handler] = {
            "list_resources": self.list_resources,
            "describe": self.describe,
            "run_sql": self.run_sql,
            "request_status": self.request_status,
            "cancel_request": self.cancel_request,
        }

    async def call(self, session: McpSession, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run tool ``name``, recorded. Raises :class:`RpcError` for an unknown tool and
        :class:`StoreUnavailable` when the call cannot be recorded (it does not run then)."""
        call_id = await self.store.call_started(session, name, arguments)
        handler = self._handlers.get(name)
        if handler is None:
            await self.store.call_ended(call_id, "unknown_tool", f"no tool {name!r}")
            raise RpcError(INVALID_PARAMS, f"Unknown tool: {name}")
        try:
            result = await handler(session.principal, arguments)
        except DecisionRefused as exc:
            result = refusal(
                "denied" if exc.code == "denied" else "refused", str(exc), code=exc.code,
                statement_class=exc.statement_class, reasons=list(exc.reasons),
            )  # fmt: skip
        except UsageError as exc:
            result = refusal("invalid_arguments", str(exc))
        except StoreUnavailable:
            result = refusal("unavailable", texts.STORE_DOWN)
        with contextlib.suppress(StoreUnavailable):
            await self.store.call_ended(
                call_id, result.outcome, result.text[:2000],
                request_id=result.request_id, session_id=result.session_id,
            )  # fmt: skip
        return result

    async def list_resources(self, who: Principal, _arguments: dict[str, Any]) -> ToolResult:
        groups = self.gateway.directory.groups_of(who)
        entries = [
            {
                "name": name,
                "type": resource.type,
                "actions": {c: action_for(resource, groups, c, who) for c in STATEMENT_CLASSES},
            }
            for name, resource in sorted(self.config.resources.items())
            if groups & resource.access.keys() and who.may_use(name)
        ]
        return ToolResult(texts.resources(entries), {"resources": entries})

    async def describe(self, who: Principal, arguments: dict[str, Any]) -> ToolResult:
        resource = self._readable(who, _text(arguments, "resource"))
        table = _text(arguments, "table", required=False)
        return await describe_resource(resource, table)

    async def run_sql(self, who: Principal, arguments: dict[str, Any]) -> ToolResult:
        resource, sql = _text(arguments, "resource"), _text(arguments, "sql")
        reason = _text(arguments, "reason", required=False)
        asked = await self.gateway.approvals.ask(
            resource_name=resource, identity=who.email, sql=sql, source="mcp",
            reason=reason or None, principal=who,
        )  # fmt: skip
        if asked.request is not None:
            return self._pending(who, asked.request)
        assert asked.outcome is not None
        return executed(shown_outcome(self.config, resource, asked.outcome))

    def _pending(self, who: Principal, view: RequestView) -> ToolResult:
        posted_to = self.gateway.approvals.where(view)
        structured = {
            "status": "pending_approval",
            "request_id": view.id,
            "resource": view.resource,
            "statement_class": view.statement_class,
            "reasons": list(view.reasons),
            "posted_to": posted_to,
            "url": view.url,
            "expires_at": view.expires_at.isoformat(),
            "next": texts.NEXT_STEP,
        }
        text = texts.pending(view, posted_to, who)
        return ToolResult(text, structured, outcome="pending_approval", request_id=view.id)

    async def request_status(self, who: Principal, arguments: dict[str, Any]) -> ToolResult:
        view = await self._visible(who, _request_id(arguments))
        if view is None:
            return refusal("not_found", texts.NO_SUCH_REQUEST)
        text = texts.status(shown(self.config, view))
        return ToolResult(text, request_json(self.config, view), request_id=view.id)

    async def cancel_request(self, who: Principal, arguments: dict[str, Any]) -> ToolResult:
        request_id = _request_id(arguments)
        view = await self._visible(who, request_id)
        if view is None:
            return refusal("not_found", texts.NO_SUCH_REQUEST)
        if view.requester != who.email:
            return refusal("not_requester", texts.not_yours(request_id))
        if view.state not in FINAL_STATES:
            cancelled = await self.gateway.approvals.cancel(request_id, f"cancelled by {who}")
            if cancelled is not None:
                return ToolResult(
                    texts.cancelled(cancelled), request_json(self.config, cancelled),
                    outcome="cancelled", request_id=request_id,
                )  # fmt: skip
            view = await self.gateway.approvals.store.view(request_id) or view
        return refusal("not_cancellable", texts.not_cancellable(view), state=str(view.state))

    async def _visible(self, who: Principal, request_id: int) -> RequestView | None:
        view = await self.gateway.approvals.store.view(request_id)
        if view is None or not may_see(self.gateway.directory, who.email, view):
            return None
        return view

    def _readable(self, who: Principal, name: str) -> Resource:
        """``name``'s resource when ``who`` may read it (its schema is a read too)."""
        resource = self.config.resources.get(name)
        if resource is None:
            raise DecisionRefused("unknown_resource", f"there is no resource {name!r}")
        if action_for(resource, self.gateway.directory.groups_of(who), "read", who) == "deny":
            raise DecisionRefused("no_access", f"{who} may not read {name}")
        return resource


def executed(outcome: Outcome) -> ToolResult:
    structured = {"status": "executed" if outcome.ok else "failed", **outcome_json(outcome)}
    return ToolResult(
        texts.outcome(outcome), structured, not outcome.ok,
        "executed" if outcome.ok else "failed", session_id=outcome.session_id,
    )  # fmt: skip


def _text(arguments: dict[str, Any], name: str, *, required: bool = True) -> str:
    """The string argument ``name``: text PostgreSQL can take (no NUL, valid Unicode)."""
    value = arguments.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise UsageError(f"{name} must be a non-empty string")
    if "\0" in value:
        raise UsageError(f"{name} holds a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(f"{name} is not valid Unicode text") from exc
    return value


def _request_id(arguments: dict[str, Any]) -> int:
    value = arguments.get("id")
    if isinstance(value, str) and value.strip().lstrip("#").isdigit():
        value = int(value.strip().lstrip("#"))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise UsageError("id must be a request number (a positive integer)")
    return value
