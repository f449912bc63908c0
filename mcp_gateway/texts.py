"""Everything an agent reads from jitgate's MCP server: the instructions, the tool catalog
and the text of every result, in one place so a test can read them all.

Values in results come already masked (:func:`approvals.display.shown_outcome`); these
functions only lay them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from approvals.execute import PREVIEW_ROWS, PREVIEW_WIDTH
from approvals.model import Outcome, RequestView
from identity import Principal

INSTRUCTIONS = (
    "jitgate is the access gateway to the team's databases. Every statement you run is"
    " classified, checked against policy, masked and recorded, exactly as if it came"
    " from psql. Reads usually run at once; writes and other risky statements are held"
    " for a human approver: run_sql then answers pending_approval with a request id"
    " instead of waiting. Tell the user, and check later with request_status."
)

_RESOURCE = {"type": "string", "description": "The resource (database) name, from list_resources."}
_REQUEST_ID = {"type": "integer", "minimum": 1, "description": "The access request's id."}

TOOLS: tuple[dict[str, Any], ...] = (
    {
        "name": "list_resources",
        "title": "List databases",
        "description": "The databases you may use through jitgate, and for each class of"
        " statement (read, write, ddl, destructive, privilege, opaque) whether it runs at"
        " once (allow), needs approval (review) or is refused (deny).",
        "inputSchema": {"type": "object", "properties": {}, "additionalProperties": False},
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    },
    {
        "name": "describe",
        "title": "Describe a database",
        "description": "The tables and views of a resource; with `table` (optionally"
        " schema-qualified), its columns and their types. Schema only: never any rows.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "resource": _RESOURCE,
                "table": {"type": "string", "description": "A table or view, e.g. customers"},
            },
            "required": ["resource"],
            "additionalProperties": False,
        },
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    },
    {
        "name": "run_sql",
        "title": "Run SQL",
        "description": "Run one SQL string on a resource under the user's policy. A read"
        f" returns its rows at once (sensitive values masked; at most {PREVIEW_ROWS} rows"
        f" of at most {PREVIEW_WIDTH} characters a cell, with the total count). A statement"
        " that needs approval is not run now: the answer is status pending_approval with a"
        " request_id; it runs once when a human approves it, and request_status tells you"
        " when. A statement policy refuses is an error naming the reasons.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "resource": _RESOURCE,
                "sql": {"type": "string", "description": "The SQL to run."},
                "reason": {
                    "type": "string",
                    "description": "Why it is needed; approvers see it on the card.",
                },
            },
            "required": ["resource", "sql"],
            "additionalProperties": False,
        },
        "annotations": {"readOnlyHint": False, "destructiveHint": True, "openWorldHint": False},
    },
    {
        "name": "request_status",
        "title": "Access request status",
        "description": "The state of an access request (pending, approved, executing,"
        " executed, failed, rejected, expired, cancelled), its decisions and, once it ran,"
        " its outcome with a masked preview of any rows.",
        "inputSchema": {
            "type": "object",
            "properties": {"id": _REQUEST_ID},
            "required": ["id"],
            "additionalProperties": False,
        },
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    },
    {
        "name": "cancel_request",
        "title": "Cancel an access request",
        "description": "Withdraw a request you made that has not run yet.",
        "inputSchema": {
            "type": "object",
            "properties": {"id": _REQUEST_ID},
            "required": ["id"],
            "additionalProperties": False,
        },
        "annotations": {"destructiveHint": False, "idempotentHint": True, "openWorldHint": False},
    },
)


def resources(entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return "You have access to no resource through jitgate."
    lines = []
    for entry in entries:
        actions = ", ".join(f"{cls}: {action}" for cls, action in entry["actions"].items())
        lines.append(f"{entry['name']} ({entry['type']}) — {actions}")
    return "\n".join(lines)


def tables(resource: str, rows: Sequence[Mapping[str, Any]], truncated: bool) -> str:
    if not rows:
        return f"{resource} has no table or view its reader may see."
    lines = [f"{r['schema']}.{r['name']} ({r['type']})" for r in rows]
    if truncated:
        lines.append(f"(the first {len(rows)} shown; name a table to describe it)")
    return "\n".join(lines)


def columns(table: str, rows: Sequence[Mapping[str, Any]]) -> str:
    body = [f"  {c['name']} {c['type']}{'' if c['nullable'] else ' not null'}" for c in rows]
    return "\n".join([f"{table}:", *body])


def no_table(resource: str, table: str) -> str:
    return f"{resource} has no table or view {table!r} that its reader may see."


def outcome(result: Outcome) -> str:
    """An executed statement: its tag and time, its rows as a table, what was cut or masked."""
    lines = [result.summary()]
    if result.columns:
        lines.append(" | ".join(result.columns))
        lines += [" | ".join(_cell(c) for c in row) for row in result.preview]
        if result.preview_truncated:
            total = "more" if result.rows is None else f"{result.rows}"
            lines.append(
                f"(the first {len(result.preview)} of {total} rows are shown; add a WHERE"
                " or LIMIT to see others)"
            )
    if result.masked:
        counts = ", ".join(f"{n} {entity}" for entity, n in sorted(result.masked.items()))
        lines.append(f"Masked: {counts}.")
    return "\n".join(lines)


def _cell(value: str | None) -> str:
    return "NULL" if value is None else value.replace("\n", "\\n")


NEXT_STEP = (
    "Nothing has run. Tell the user the statement awaits a human approver; do not run it"
    " again. Check with request_status; once approved it runs once by itself and"
    " request_status shows the outcome. cancel_request withdraws it."
)


def pending(view: RequestView, posted_to: Sequence[str], who: Principal) -> str:
    where = "; ".join(posted_to) or "the approvers' inbox"
    why = "; ".join(view.reasons) or "policy: review"
    return (
        f"pending_approval: request #{view.id} on {view.resource} ({view.statement_class}:"
        f" {why}), asked by {who}. Posted to {where}. It expires at"
        f" {view.expires_at.isoformat()}. {NEXT_STEP}"
    )


def task_waiting(view: RequestView, posted_to: Sequence[str]) -> str:
    where = "; ".join(posted_to) or "the approvers' inbox"
    return (
        f"request #{view.id} awaits a human approver ({view.url}); posted to {where}."
        f" It expires at {view.expires_at.isoformat()}. Once approved it runs once by"
        " itself and this task completes with its result."
    )


def task_running(view: RequestView) -> str:
    return f"request #{view.id} is approved and {view.state}; it runs once."


def status(view: RequestView) -> str:
    lines = [
        f"Request #{view.id} on {view.resource} is {view.state}"
        + (f" ({view.state_reason})" if view.state_reason else "")
        + f"; {view.approvals} of {view.approvals_required} approvals.",
        f"SQL: {view.sql}",
    ]
    lines += [
        f"{d.verdict} by {d.approver}" + (f": {d.reason}" if d.reason else "")
        for d in view.decisions
    ]
    if view.outcome is not None:
        lines.append(outcome(view.outcome))
    return "\n".join(lines)


def cancelled(view: RequestView) -> str:
    return f"Request #{view.id} is cancelled; it will not run."


def not_cancellable(view: RequestView) -> str:
    return f"Request #{view.id} is {view.state} and can no longer be cancelled."


def not_yours(request_id: int) -> str:
    return f"Only its requester may cancel request #{request_id}."


NO_SUCH_REQUEST = "There is no such request, or it is not yours to see."
STORE_DOWN = "jitgate's store is unavailable; nothing was run. Try again later."
