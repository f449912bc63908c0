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

from approvals.model import RequestView, State
from bot.mrkdwn import (
    SECTION_LIMIT,
    Block,
    code,
    context,
    date,
    fence,
    header,
    link,
    message,
    preview,
    section,
)
from notify.cards import (
    STATE_LABELS,
    Button,
    Code,
    RequestCard,
    Rich,
    Text,
    card_of,
    impact,
    progress,
)

__all__ = [
    "APPROVE_ACTION", "DECISION_BLOCK", "REJECT_ACTION", "SQL_LIMIT", "STATE_LABELS",
    "approval_card", "card_for", "decided_card", "reminder", "reminder_line", "requester_dm",
    "requester_line", "result_reply", "status_line",
]  # fmt: skip

DECISION_BLOCK = "decision"
APPROVE_ACTION = "approve"
REJECT_ACTION = "reject"
SQL_LIMIT = 2500


def _rich(value: Rich) -> str:
    return "".join(
        part.text
        if isinstance(part, Text)
        else code(part.value, part.limit)
        if isinstance(part, Code)
        else date(part.at)
        for part in value
    )


def _names(identities: Iterable[str]) -> str:
    return ", ".join(code(identity, 100) for identity in identities) or "jitgate"


def _approvers(request: RequestView) -> str:
    return _names(d.approver for d in request.decisions if d.verdict == "approve")


def _who(request: RequestView) -> str:
    return _rich(card_of(request).facts[0].value)


def _facts(card: RequestCard) -> list[str]:
    return [f"*{fact.label}*\n{_rich(fact.value)}" for fact in card.facts]


def _statement(card: RequestCard) -> list[Block]:
    request = card.request
    body, cut = fence(card.sql, SQL_LIMIT)
    blocks = [section(body)]
    if cut or card.sql_input_cut:
        note = f"Statement shortened to fit ({len(request.sql):,} characters in full)."
        blocks.append(context(f"{note} {link(request.url, 'Read it in full')}"))
    return blocks


def _bullets(items: Sequence[str], limit: int = 10) -> str:
    lines = [f"• {code(item)}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"• and {len(items) - limit} more")
    return "\n".join(lines) or "• none given"


def _details(card: RequestCard) -> list[Block]:
    request = card.request
    given = code(card.reason, 1000) if card.reason else "_none given_"
    groups = ", ".join(code(group, 60) for group in request.approver_groups[:10]) or "none"
    return [
        section(f"*Why it was held*\n{_bullets(card.held_because)}"),
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


def _element(button: Button, request: RequestView) -> Block:
    action = APPROVE_ACTION if button.verb == "approve" else REJECT_ACTION
    element = _button(button.label, action, button.style, request.id)
    if button.confirm:
        shown_impact = impact(request).replace("\n", ", ")
        element["confirm"] = {
            "title": {"type": "plain_text", "text": "Approve a destructive statement?"},
            "text": {
                "type": "mrkdwn",
                "text": f"Request #{request.id} on {code(request.resource, 60)} is destructive "
                f"(impact: {shown_impact}). It runs once, when enough approvals are in.",
            },
            "confirm": {"type": "plain_text", "text": "Approve"},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
    return element


def approval_card(request: RequestView) -> Block:
    """The card approvers act on: who, what, where, why held, impact, progress, expiry, and
    the Approve/Reject buttons (Approve asks to confirm when the class is destructive)."""
    card = card_of(request, pending=True)
    actions = {
        "type": "actions",
        "block_id": DECISION_BLOCK,
        "elements": [_element(button, request) for button in card.buttons],
    }
    blocks = [
        header(card.title),
        section("", _facts(card)),
        *_statement(card),
        *_details(card),
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
            State.PENDING: f":hourglass_flowing_sand: Waiting for approval: {progress(request)}",
            State.APPROVED: f":white_check_mark: *Approved* by {approvers}; runs shortly",
            State.EXECUTING: f":arrow_forward: *Approved* by {approvers}; executing",
            State.EXECUTED: f":white_check_mark: *Executed*, approved by {approvers}: "
            + _outcome(request),
            State.FAILED: f":warning: *Failed*, approved by {approvers}: " + _outcome(request),
            State.EXPIRED: f":hourglass: *Expired* {date(request.expires_at)} with "
            f"{progress(request)} approvals",
            State.CANCELLED: ":heavy_multiplication_x: *Cancelled*",
        }[request.state]
    if request.state_reason:
        line += f"\n{code(request.state_reason, 500)}"
    return line


def decided_card(request: RequestView) -> Block:
    """The card as it reads once no one may act on it any more: no buttons, the state, and
    who decided (approvers, or the rejecter and their reason) with any outcome summary."""
    card = card_of(request, pending=False)
    blocks = [
        header(card.title),
        section(status_line(request)),
        section("", _facts(card)),
        *_statement(card),
        *_details(card),
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


def requester_line(request: RequestView) -> str:
    """Where the requester's request stands, in one mrkdwn line."""
    text = f"Your request #{request.id} on {code(request.resource, 100)}"
    rejection = request.rejection
    if request.state is State.REJECTED and rejection:
        reason = code(rejection.reason, 1000) if rejection.reason else "_no reason given_"
        text += f" was *rejected* by {_names([rejection.approver])}: {reason}"
    elif request.state in (State.EXECUTED, State.FAILED):
        text += f" {STATE_LABELS[request.state]}: {_outcome(request)}"
    elif request.state is State.EXPIRED:
        text += f" *expired* with {progress(request)} approvals; send it again if still needed."
    else:
        text += f" is {STATE_LABELS[request.state]} ({progress(request)} approvals)."
    return text


def requester_dm(request: RequestView) -> Block:
    """A short direct message telling the requester where their request stands."""
    text = requester_line(request)
    fallback = f"Your request #{request.id} is {STATE_LABELS[request.state]}"
    return message(fallback, [section(text), context(link(request.url, "Open in jitgate"))])


def reminder_line(request: RequestView) -> str:
    """The nudge to approvers about a request still waiting, in one mrkdwn line."""
    return (
        f":bell: Request #{request.id} from {_who(request)} on {code(request.resource, 100)} is "
        f"still waiting for approval ({progress(request)}); it expires {date(request.expires_at)}."
    )


def reminder(request: RequestView) -> Block:
    """A nudge to approvers about a request still waiting."""
    text = reminder_line(request)
    return message(
        _fallback(request, "is still waiting for approval"),
        [section(text), context(link(request.url, "Open in jitgate"))],
    )
