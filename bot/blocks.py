"""The Block Kit layouts of one request: the approval card, the card once decided, the
threaded result, the requester's DM and the reminder. Callers import them from
:mod:`bot.messages`, which holds every other word jitgate shows in Slack.

Each function is pure over :class:`approvals.model.RequestView` and returns a message body
ready for ``chat.postMessage`` / ``chat.update`` (``{"text": fallback, "blocks": [...]}``).
Every string a user supplied is shown inert (see :mod:`bot.mrkdwn`) and every block keeps
within Slack's limits. The approval card's actions block is :data:`DECISION_BLOCK`; its
buttons read ``Approve`` (:data:`APPROVE_ACTION`) and ``Reject`` (:data:`REJECT_ACTION`),
each with ``value`` = the request id in decimal and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlparse
from sqlparse.exceptions import SQLParseError

from approvals.model import RequestView, State
from bot.mrkdwn import (
    SECTION_LIMIT,
    Block,
    code,
    context,
    count,
    date,
    fence,
    header,
    link,
    message,
    preview,
    section,
)

DECISION_BLOCK = "decision"
APPROVE_ACTION = "approve"
REJECT_ACTION = "reject"
SQL_LIMIT = 2500

STATE_LABELS = {
    State.PENDING: "waiting for approval",
    State.APPROVED: "approved",
    State.EXECUTING: "executing",
    State.EXECUTED: "executed",
    State.FAILED: "failed",
    State.REJECTED: "rejected",
    State.EXPIRED: "expired",
    State.CANCELLED: "cancelled",
}
# Formatting very long statements would only be cut afterwards; it also bounds sqlparse's work.
_PRETTY_INPUT = 20_000


def _pretty(sql: str) -> tuple[str, bool]:
    """The statement as approvers read it, and whether its input was cut first."""
    try:
        text = str(sqlparse.format(sql[:_PRETTY_INPUT], reindent=True, keyword_case="upper"))
    except SQLParseError:
        text = sql[:_PRETTY_INPUT]
    return text.strip(), len(sql) > _PRETTY_INPUT


def _names(identities: Iterable[str]) -> str:
    return ", ".join(code(identity, 100) for identity in identities) or "jitgate"


def _approvers(request: RequestView) -> str:
    return _names(d.approver for d in request.decisions if d.verdict == "approve")


def _progress(request: RequestView) -> str:
    return f"{request.approvals} of {request.approvals_required}"


def _who(request: RequestView) -> str:
    if request.agent:
        return f"{code(request.requester, 100)} via agent {code(request.agent, 100)}"
    return code(request.requester, 100)


def _impact(request: RequestView) -> str:
    rows = "unknown" if request.estimate is None else f"≈ {count(request.estimate, 'row')}"
    cap = "" if request.max_rows is None else f"\ncapped at {count(request.max_rows, 'row')}"
    return rows + cap


def _facts(request: RequestView) -> list[str]:
    return [
        f"*Requester*\n{_who(request)}",
        f"*Resource*\n{code(request.resource, 100)}",
        f"*Class*\n{code(request.statement_class, 40)}",
        f"*Impact*\n{_impact(request)}",
        f"*Approvals*\n{_progress(request)}",
        f"*Expires*\n{date(request.expires_at)}",
    ]


def _statement(request: RequestView) -> list[Block]:
    pretty, input_cut = _pretty(request.sql)
    body, cut = fence(pretty, SQL_LIMIT)
    blocks = [section(body)]
    if cut or input_cut:
        note = f"Statement shortened to fit ({len(request.sql):,} characters in full)."
        blocks.append(context(f"{note} {link(request.url, 'Read it in full')}"))
    return blocks


def _bullets(items: Sequence[str], limit: int = 10) -> str:
    lines = [f"• {code(item)}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"• and {len(items) - limit} more")
    return "\n".join(lines) or "• none given"


def _details(request: RequestView) -> list[Block]:
    given = code(request.reason, 1000) if request.reason else "_none given_"
    groups = ", ".join(code(group, 60) for group in request.approver_groups[:10]) or "none"
    return [
        section(f"*Why it was held*\n{_bullets(request.reasons)}"),
        section(f"*Requester's reason*\n{given}"),
        context(
            f"Request #{request.id} from {code(request.source, 20)}, opened "
            f"{date(request.created_at)} · approvers: {groups} · "
            f"{link(request.url, 'Open in jitgate')}"
        ),
    ]


def _fallback(request: RequestView, what: str) -> str:
    return (
        f"Request #{request.id} {what}: {code(request.requester, 100)} on "
        f"{code(request.resource, 100)} ({code(request.statement_class, 40)})"
    )


def _button(text: str, action_id: str, style: str, request_id: int) -> Block:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "style": style,
        "value": str(request_id),
    }


def approval_card(request: RequestView) -> Block:
    """The card approvers act on: who, what, where, why held, impact, progress, expiry, and
    the Approve/Reject buttons (Approve asks to confirm when the class is destructive)."""
    approve = _button("Approve", APPROVE_ACTION, "primary", request.id)
    if request.statement_class == "destructive":
        impact = _impact(request).replace("\n", ", ")
        approve["confirm"] = {
            "title": {"type": "plain_text", "text": "Approve a destructive statement?"},
            "text": {
                "type": "mrkdwn",
                "text": f"Request #{request.id} on {code(request.resource, 60)} is destructive "
                f"(impact: {impact}). It runs once, when enough approvals are in.",
            },
            "confirm": {"type": "plain_text", "text": "Approve"},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
    actions = {
        "type": "actions",
        "block_id": DECISION_BLOCK,
        "elements": [approve, _button("Reject", REJECT_ACTION, "danger", request.id)],
    }
    blocks = [
        header(f"Approval needed: request #{request.id}"),
        section("", _facts(request)),
        *_statement(request),
        *_details(request),
        actions,
    ]
    return message(_fallback(request, "needs approval"), blocks)


def _outcome(request: RequestView) -> str:
    """The outcome as a code span: ``DELETE 3 in 12 ms``, or the error and its SQLSTATE."""
    outcome = request.outcome
    if outcome is None:
        return "no outcome recorded"
    if outcome.ok:
        return code(outcome.summary(), 500)
    state = f" (SQLSTATE {code(outcome.sqlstate, 5)})" if outcome.sqlstate else ""
    return code(outcome.error or "", 1500) + state


def status_line(request: RequestView) -> str:
    """Where ``request`` stands and who decided, in one mrkdwn line (two with a state reason)."""
    rejection, approvers = request.rejection, _approvers(request)
    if request.state is State.REJECTED:
        by = f" by {_names([rejection.approver])}" if rejection else ""
        why = code(rejection.reason, 1000) if rejection and rejection.reason else "no reason given"
        line = f":no_entry: *Rejected*{by}: {why}"
    else:
        line = {
            State.PENDING: f":hourglass_flowing_sand: Waiting for approval: {_progress(request)}",
            State.APPROVED: f":white_check_mark: *Approved* by {approvers}; runs shortly",
            State.EXECUTING: f":arrow_forward: *Approved* by {approvers}; executing",
            State.EXECUTED: f":white_check_mark: *Executed*, approved by {approvers}: "
            + _outcome(request),
            State.FAILED: f":warning: *Failed*, approved by {approvers}: " + _outcome(request),
            State.EXPIRED: f":hourglass: *Expired* {date(request.expires_at)} with "
            f"{_progress(request)} approvals",
            State.CANCELLED: ":heavy_multiplication_x: *Cancelled*",
        }[request.state]
    if request.state_reason:
        line += f"\n{code(request.state_reason, 500)}"
    return line


def decided_card(request: RequestView) -> Block:
    """The card as it reads once no one may act on it any more: no buttons, the state, and
    who decided (approvers, or the rejecter and their reason) with any outcome summary."""
    blocks = [
        header(f"Request #{request.id}: {STATE_LABELS[request.state]}"),
        section(status_line(request)),
        section("", _facts(request)),
        *_statement(request),
        *_details(request),
    ]
    return message(_fallback(request, STATE_LABELS[request.state]), blocks)


def card_for(request: RequestView) -> Block:
    """The card to show for ``request`` now: with buttons while pending, decided after."""
    return approval_card(request) if request.state is State.PENDING else decided_card(request)


def result_reply(request: RequestView, session_url: str | None) -> Block:
    """The threaded reply after execution: outcome summary (error and SQLSTATE when it
    failed), the masked preview as a table, and the session link. Needs ``request.outcome``."""
    outcome = request.outcome
    if outcome is None:
        raise ValueError(f"request #{request.id} has no outcome yet")
    icon, verb = (":white_check_mark:", "ran") if outcome.ok else (":warning:", "failed")
    text = f"{icon} Request #{request.id} {verb}: {_outcome(request)}"
    grid, notes = preview(outcome, SECTION_LIMIT)
    if session_url:
        notes.append(link(session_url, "Session replay"))
    blocks = [
        section(text),
        *([section(grid)] if grid else []),
        *([context(*notes)] if notes else []),
    ]
    return message(f"Request #{request.id}: {code(outcome.summary(), 500)}", blocks)


def requester_dm(request: RequestView) -> Block:
    """A short direct message telling the requester where their request stands."""
    text = f"Your request #{request.id} on {code(request.resource, 100)}"
    rejection = request.rejection
    if request.state is State.REJECTED and rejection:
        reason = code(rejection.reason, 1000) if rejection.reason else "_no reason given_"
        text += f" was *rejected* by {_names([rejection.approver])}: {reason}"
    elif request.state in (State.EXECUTED, State.FAILED):
        text += f" {STATE_LABELS[request.state]}: {_outcome(request)}"
    elif request.state is State.EXPIRED:
        text += f" *expired* with {_progress(request)} approvals; send it again if still needed."
    else:
        text += f" is {STATE_LABELS[request.state]} ({_progress(request)} approvals)."
    fallback = f"Your request #{request.id} is {STATE_LABELS[request.state]}"
    return message(fallback, [section(text), context(link(request.url, "Open in jitgate"))])


def reminder(request: RequestView) -> Block:
    """A nudge to approvers about a request still waiting."""
    text = (
        f":bell: Request #{request.id} from {_who(request)} on {code(request.resource, 100)} is "
        f"still waiting for approval ({_progress(request)}); it expires {date(request.expires_at)}."
    )
    return message(
        _fallback(request, "is still waiting for approval"),
        [section(text), context(link(request.url, "Open in jitgate"))],
    )
