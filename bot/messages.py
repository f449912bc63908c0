"""Every word jitgate shows in Slack, as pure functions of the views in :mod:`approvals.model`.

This is the one import for chat adapters. The request cards (approval card, decided card,
threaded result, requester DM, reminder) are built in :mod:`bot.blocks` and re-exported
here; the reject-reason modal, the security-channel alerts and the replies to ``/jit`` and
to refused clicks live below. Functions returning ``dict`` return a message body ready for
``chat.postMessage`` (``{"text": fallback, "blocks": [...]}``); functions returning ``str``
return mrkdwn for ``chat.postEphemeral`` or a slash-command response. User-supplied strings
are always shown inert (see :mod:`bot.mrkdwn`); nothing here does I/O.

The reject modal (:func:`reject_modal`) submits with ``callback_id`` :data:`REJECT_CALLBACK`,
``private_metadata`` = the request id, and the reason at
``view.state.values[REJECT_REASON_BLOCK][REJECT_REASON_ACTION].value``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from approvals.model import Alert, Outcome, RequestView, State
from bot.blocks import (
    APPROVE_ACTION,
    DECISION_BLOCK,
    REJECT_ACTION,
    SQL_LIMIT,
    STATE_LABELS,
    approval_card,
    card_for,
    decided_card,
    reminder,
    reminder_line,
    requester_dm,
    requester_line,
    result_reply,
    status_line,
)
from bot.mrkdwn import (
    SECTION_LIMIT,
    Block,
    code,
    context,
    count,
    date,
    escape,
    link,
    message,
    preview,
    section,
    table,
    visible,
)

__all__ = [
    "ALERT_TITLES", "APPROVE_ACTION", "DECISION_BLOCK", "REASON_MAX_LENGTH", "REJECT_ACTION",
    "REJECT_CALLBACK", "REJECT_REASON_ACTION", "REJECT_REASON_BLOCK", "SQL_LIMIT",
    "STATE_LABELS", "USAGE", "alert_digest", "alert_message", "already_approved",
    "already_decided", "approval_card", "bad_usage", "card_for", "decided_card",
    "duplicate_delivery", "help_text",
    "not_an_approver", "pending_text", "read_result", "reject_modal", "reminder", "reminder_line",
    "request_expired", "requester_dm", "requester_line", "result_file", "result_reply",
    "self_approval_refused",
    "statement_denied", "statement_held", "status_line", "status_text", "try_again_later",
    "unknown_request", "unknown_resource", "unknown_user",
]  # fmt: skip

ALERT_TITLES = {
    "denied": "Statement denied",
    "guardrail": "Guardrail hit",
    "rejected": "Request rejected",
    "expired": "Request expired",
    "self_approval": "Self-approval attempt",
    "signature_failure": "Bad Slack signature",
    "secrets_masked": "Secrets masked",
    "password_failures": "Failed password attempts",
    "sign_in_refused": "Forged or replayed web sign-in",
}
# The reject-reason modal: what the view_submission handler reads back.
REJECT_CALLBACK = "reject_reason"
REJECT_REASON_BLOCK = "reject_reason"
REJECT_REASON_ACTION = "reason"
REASON_MAX_LENGTH = 500
USAGE = "`/jit run RESOURCE SQL [-- reason]` · `/jit status ID` · `/jit pending` · `/jit help`"

_LIST_LIMIT = 20
# A bare Slack channel id is shown as a channel link; anything else is shown as text.
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")


def reject_modal(request_id: int) -> Block:
    """The ``views.open`` modal that asks a rejecter for their reason (required)."""
    return {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "private_metadata": str(request_id),
        "title": {"type": "plain_text", "text": "Reject request"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"Reject request #{request_id}? The requester will see your reason."),
            {
                "type": "input",
                "block_id": REJECT_REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REJECT_REASON_ACTION,
                    "multiline": True,
                    "max_length": REASON_MAX_LENGTH,
                },
            },
        ],
    }


def help_text() -> str:
    """The reply to ``/jit help``."""
    return "\n".join(
        (
            "*jitgate* runs single statements on databases, with approval when policy asks.",
            "• `/jit run RESOURCE SQL [-- reason]`: run one statement. Reads answer at once,"
            " masked; anything risky is held and an approval card is posted.",
            "• `/jit status ID`: where request ID stands.",
            "• `/jit pending`: requests waiting for approval.",
            "• `/jit help`: this text.",
        )
    )


def bad_usage(problem: str) -> str:
    """``/jit`` could not be parsed; ``problem`` says why in jitgate's words (escaped, not
    shown as code, so it must not quote the user's text)."""
    return f"`/jit` did not understand that: {escape(problem)}.\nUsage: {USAGE}"


def unknown_user(email: str | None = None, chat: str = "Slack") -> str:
    """The ``chat`` user maps to no jitgate identity (no email, or one in no group)."""
    who = f"Your {chat} email {code(email, 100)} is" if email else f"Your {chat} account is"
    return (
        f"{who} not known to jitgate. Ask a jitgate admin to add your {chat} email address "
        "to a group in the gateway's configuration (or your identity provider's groups)."
    )


def self_approval_refused(request_id: int) -> str:
    return f"You cannot approve request #{request_id}: it is your own. Another approver must."


def not_an_approver(request_id: int, groups: Sequence[str]) -> str:
    """``groups``: the approver groups of the request's resource."""
    names = ", ".join(code(group, 60) for group in groups[:10]) or "no group"
    return f"You are not an approver for request #{request_id}. Approvers belong to: {names}."


def already_decided(request_id: int, state: State) -> str:
    return f"Request #{request_id} is already {STATE_LABELS[state]}; nothing changed."


def already_approved(request: RequestView) -> str:
    """The clicker's approval was counted before; an approver counts once."""
    return f"You have already approved request #{request.id} ({status_line(request)})."


def request_expired(request_id: int) -> str:
    return f"Request #{request_id} has expired. The requester can send it again."


def unknown_request(request_id: int) -> str:
    return f"There is no request #{request_id}."


def unknown_resource(resource: str) -> str:
    return f"There is no resource {code(resource, 100)} you may use. Usage: {USAGE}"


def request_refused(why: str) -> str:
    """The request cannot be opened now (a limit), in the core's own words."""
    return f":warning: Not opened: {escape(why)}"


def statement_denied(resource: str, statement_class: str, reasons: Sequence[str]) -> str:
    """Policy denies the statement outright (no approval can allow it)."""
    why = "".join(f"\n• {code(reason)}" for reason in reasons[:10])
    return (
        f":no_entry: Denied: policy does not allow {code(statement_class, 40)} statements on "
        f"{code(resource, 100)} for your groups.{why}"
    )


def statement_held(request_id: int, where: str | None) -> str:
    """``where`` is a Notifier's answer ("#db-approvals" or a channel id), None if unknown."""
    if where is None:
        place = "for approval"
    elif _CHANNEL_ID.fullmatch(where):
        place = f"to <#{where}>"
    else:
        place = f"to {escape(where)}"
    return f":hourglass_flowing_sand: Statement held: request #{request_id} posted {place}."


def status_text(request: RequestView) -> str:
    """The reply to ``/jit status ID``."""
    sql = code(" ".join(request.sql.split()), 300)
    return (
        f"*Request #{request.id}* on {code(request.resource, 100)} from "
        f"{code(request.requester, 100)}, {code(request.statement_class, 40)}: {sql}\n"
        f"{status_line(request)}\n{link(request.url, 'Open in jitgate')}"
    )


def pending_text(requests: Sequence[RequestView]) -> str:
    """The reply to ``/jit pending``: one line per request, at most twenty."""
    if not requests:
        return "No requests are waiting for approval."
    lines = [
        f"• #{r.id} {code(r.resource, 60)} {code(r.statement_class, 20)} from "
        f"{code(r.requester, 60)}: {r.approvals} of {r.approvals_required}, expires "
        f"{date(r.expires_at)}"
        for r in requests[:_LIST_LIMIT]
    ]
    if len(requests) > _LIST_LIMIT:
        lines.append(f"• and {len(requests) - _LIST_LIMIT} more")
    return f"*{count(len(requests), 'request')} waiting for approval*\n" + "\n".join(lines)


def read_result(resource: str, outcome: Outcome) -> str:
    """A statement that ran at once (a read): its summary and the masked rows as a table."""
    icon = ":white_check_mark:" if outcome.ok else ":warning:"
    grid, notes = preview(outcome, SECTION_LIMIT - 300)
    parts = [f"{icon} {code(outcome.summary(), 1000)} on {code(resource, 100)}", grid, *notes]
    return "\n".join(part for part in parts if part)


def result_file(request: RequestView) -> tuple[str, str] | None:
    """The masked preview of a finished request as a tab-separated file, ``(filename,
    content)``, for the card's thread when :func:`result_reply` cannot show every previewed
    row (wide or heavily escaped values); None when the reply shows them all."""
    outcome = request.outcome
    if outcome is None or not outcome.columns or not outcome.preview:
        return None
    _, shown = table(outcome.columns, outcome.preview, SECTION_LIMIT)
    if shown >= len(outcome.preview):
        return None

    def cell(value: str | None) -> str:
        return "NULL" if value is None else " ".join(visible(value).split())

    lines = ["\t".join(cell(column) for column in outcome.columns)]
    lines += ["\t".join(cell(value) for value in row) for row in outcome.preview]
    return f"request-{request.id}-result.tsv", "\n".join(lines) + "\n"


def duplicate_delivery() -> str:
    return "Already on it: this command reached jitgate before, and only the first one counts."


def not_private_in_teams() -> str:
    """A message to the bot in a Teams channel or group chat whose answer could not be sent
    to the person alone (the app cannot start a chat with them)."""
    return (
        "jitgate answers only in a personal chat, and cannot start one with you. Open a chat"
        " with the jitgate app (or add it for yourself) and ask there."
    )


def try_again_later() -> str:
    """Slack or jitgate's store did not answer while handling a click or ``/jit``."""
    return (
        ":warning: jitgate could not finish that just now. Check with `/jit status` or "
        "`/jit pending` before trying again; if it keeps failing, tell the jitgate admins "
        "(the gateway log says why)."
    )


def _alert_fields(alert: Alert) -> list[str]:
    fields = []
    if alert.identity:
        fields.append(f"*Who*\n{code(alert.identity, 100)}")
    if alert.resource:
        fields.append(f"*Resource*\n{code(alert.resource, 100)}")
    if alert.request_id is not None:
        fields.append(f"*Request*\n#{alert.request_id}")
    if alert.session_id is not None:
        fields.append(f"*Session*\n{code(str(alert.session_id))}")
    if alert.at is not None:
        fields.append(f"*When*\n{date(alert.at)}")
    return fields


def alert_message(alert: Alert) -> Block:
    """One security event for the alerts channel."""
    title = ALERT_TITLES[alert.kind]
    text = f":rotating_light: *{title}*\n{code(alert.summary, 1000)}"
    fallback = f"Security alert: {title}: {code(alert.summary, 300)}"
    return message(fallback, [section(text, _alert_fields(alert))])


def alert_digest(alerts: Sequence[Alert]) -> Block:
    """A burst of security events as one message: counts by kind, then one line per event
    while they fit in a section, then how many were left out."""
    kinds = Counter(alert.kind for alert in alerts).most_common()
    totals = ", ".join(f"{ALERT_TITLES[kind]} ×{n}" for kind, n in kinds)
    head = f":rotating_light: *{count(len(alerts), 'security alert')}*: {totals or 'none'}"
    lines: list[str] = []
    used = 0
    for alert in alerts:
        parts = [date(alert.at) if alert.at else "", f"*{ALERT_TITLES[alert.kind]}*"]
        parts += [code(v, 60) for v in (alert.identity, alert.resource) if v]
        parts.append(code(alert.summary, 120))
        line = "• " + " ".join(part for part in parts if part)
        used += len(line) + 1
        if used > SECTION_LIMIT:
            break
        lines.append(line)
    blocks = [section(head)]
    if lines:
        blocks.append(section("\n".join(lines)))
    if len(lines) < len(alerts):
        blocks.append(context(f"and {len(alerts) - len(lines)} more; see the SIEM for all."))
    return message(f"{count(len(alerts), 'security alert')}: {totals}", blocks)
