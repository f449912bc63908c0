"""Everything the governing proxy says to agents and approvers, in one place."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from approvals.model import RequestView
from identity import Principal


def tool_denied(who: Principal, server: str, tool: str) -> str:
    return f"Unknown tool: {tool} (jitgate's policy gives {who} no such tool on {server})"


def not_listed(server: str, tool: str) -> str:
    return f"Unknown tool: {tool} ({server} lists no such tool)"


def held_tool(server: str, tool: str) -> str:
    return (
        f"held: the tool {tool} on {server} changed its name, description or input schema"
        " since it was approved. Nothing was called. It stays held until an approver"
        " approves the new definition; do not try to work around it."
    )


def arguments_denied(tool: str, reasons: Sequence[str]) -> str:
    return f"denied by policy: this call of {tool} was refused ({'; '.join(reasons)}). Nothing ran."


def pending(view: RequestView, tool: str, posted_to: Sequence[str], approval_ttl: float) -> str:
    where = "; ".join(posted_to) or "the approvers' inbox"
    why = "; ".join(view.reasons) or "policy: review"
    return (
        f"pending_approval: this call of {tool} on {view.resource} needs a human approval"
        f" ({why}). Request #{view.id} was posted to {where}; it expires at"
        f" {view.expires_at.isoformat()}. Nothing has run. Tell the user it awaits an"
        " approver. Once it is approved, make exactly the same call again (same tool, same"
        f" arguments) within {approval_ttl:g} s and it runs once; any other call is a new"
        " request."
    )


def running(request_id: int) -> str:
    return (
        f"request #{request_id}: the approved call is being made by another identical call"
        " right now; it runs once. Do not call it again."
    )


def refused_server_request(server: str, method: str) -> str:
    return f"refused by jitgate's policy: {server} may not send {method} to the agent"


def no_stream(server: str, method: str) -> str:
    return (
        f"{server} sent {method}, which policy allows, but the agent's client takes no event"
        " stream to be asked on (it must accept text/event-stream)"
    )


def no_answer(server: str, method: str) -> str:
    return f"the agent did not answer {server}'s {method} before the call ended"


def card_text(server: str, tool: str, arguments: dict[str, Any]) -> str:
    """The call as an approval card shows it (masked by the caller)."""
    shown = json.dumps(arguments, indent=2, sort_keys=True, ensure_ascii=False)
    return f"tools/call {tool} on {server}\narguments: {shown}"


def outcome_text(answer: dict[str, Any]) -> str:
    """A forwarded call's result as its request's outcome shows it: the text blocks."""
    result = answer.get("result")
    if not isinstance(result, dict):
        error = answer.get("error")
        return str(error.get("message", "")) if isinstance(error, dict) else ""
    blocks = result.get("content")
    texts = [
        str(b.get("text", ""))
        for b in blocks or ()
        if isinstance(b, dict) and b.get("type") == "text"
    ]
    return "\n".join(texts)
