"""Every layout jitgate shows in Microsoft Teams, as pure functions: the approval card as an
Adaptive Card (from the card model, :mod:`notify.cards`), the threaded result, the
requester's message, the reminder, alerts, and the text replies, whose words are those of
:mod:`bot.messages` carried over by :func:`teams_text`.

Inert by construction: every string a user or a database supplied goes into a
``TextRun`` of a ``RichTextBlock``, which Teams never reads as markdown, so ``**x**``,
``[link](url)`` and ``<at>`` stay text; control and invisible format characters are spelled
out (``[U+202E]``) as in Slack; and ``{{`` gets a word joiner between its braces, so the
``{{DATE(...)}}`` text functions never run on it. Cards are sent as JSON and never expanded
by the Adaptive Card templating language, so ``${...}`` is text too.

The buttons are ``Action.Execute`` (Universal Actions, card version 1.5) with verbs
``approve`` and ``reject`` and data ``{"request_id": N}``; the card refreshes per user
(verb ``refresh``) so who may decide sees the buttons and everyone else the status.
Reject asks for a reason in the card itself (:func:`reason_card`).
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from approvals.model import Alert, Outcome, RequestView, State
from bot.messages import (
    ALERT_TITLES,
    REASON_MAX_LENGTH,
    reminder_line,
    requester_line,
    status_line,
)
from bot.mrkdwn import table, visible
from notify.cards import Code, RequestCard, Rich, Text, When, card_of, count

Card = dict[str, Any]
SQL_LIMIT = 6000
PREVIEW_LIMIT = 6000
REASON_INPUT = "reason"
_WORD_JOINER = "\u2060"
_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
# Universal Actions (Action.Execute, refresh) need 1.5; Teams ignores them on older cards.
_VERSION = "1.5"
REFRESH_LIMIT = 60
_EMOJI = {
    ":white_check_mark:": "✅", ":warning:": "⚠️", ":no_entry:": "⛔", ":hourglass:": "⌛",
    ":hourglass_flowing_sand:": "⏳", ":arrow_forward:": "▶️", ":bell:": "🔔",
    ":heavy_multiplication_x:": "✖️", ":rotating_light:": "🚨",
}  # fmt: skip


def inert(text: str, limit: int = 2000) -> str:
    """A user's string as it may appear in a TextRun."""
    shown = visible(text).replace("{{", "{" + _WORD_JOINER + "{")
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def run(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextRun", "text": text, **style}


def rich(*runs: dict[str, Any], **style: Any) -> dict[str, Any]:
    return {"type": "RichTextBlock", "inlines": list(runs), **style}


def _runs(value: Rich) -> list[dict[str, Any]]:
    runs = []
    for part in value:
        if isinstance(part, Text):
            runs.append(run(part.text))
        elif isinstance(part, Code):
            runs.append(run(inert(" ".join(part.value.split()), part.limit), fontType="Monospace"))
        else:
            assert isinstance(part, When)
            runs.append(run(part.at.strftime("%Y-%m-%d %H:%M UTC")))
    return runs


def _adaptive(body: list[dict[str, Any]], actions: Sequence[dict[str, Any]] = (),
              refresh: dict[str, Any] | None = None) -> Card:  # fmt: skip
    card: Card = {"type": "AdaptiveCard", "$schema": _SCHEMA, "version": _VERSION, "body": body}
    if actions:
        card["actions"] = list(actions)
    if refresh is not None:
        card["refresh"] = refresh
    return card


def message(card: Card, summary: str) -> dict[str, Any]:
    """An activity carrying one Adaptive Card; ``summary`` is the notification text."""
    return {
        "type": "message",
        "summary": summary,
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }


def _data(request_id: int) -> dict[str, Any]:
    return {"request_id": request_id}


def request_card(request: RequestView, *, buttons: bool | None = None,
                 refresh_for: Sequence[str] = ()) -> Card:  # fmt: skip
    """The approval card for ``request`` as it is now. ``buttons``: whether to show Approve
    and Reject (default: while pending, to everyone who has not refreshed it yet);
    ``refresh_for``: the MRIs of the Teams users whose client asks for their own view of
    the card at once (:class:`bot.teams.TeamsAdapter` answers it). Without any, the refresh
    names nobody, so Teams refreshes everyone's view in chats and channels of up to 60
    people, and anyone may refresh it from the card's menu."""
    card: RequestCard = card_of(request)
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": card.title, "weight": "Bolder", "size": "Medium",
         "wrap": True},
    ]  # fmt: skip
    if request.state is not State.PENDING or buttons is False:
        body.append(rich(run(teams_plain(status_line(request)))))
    for fact in card.facts:
        body.append(rich(run(f"{fact.label}: ", weight="Bolder"), *_runs(fact.value)))
    body.append(rich(run(inert(card.sql, SQL_LIMIT), fontType="Monospace")))
    if card.sql_input_cut or len(card.sql) > SQL_LIMIT:
        body.append(rich(run(f"Statement shortened to fit ({len(request.sql):,} characters"
                             " in full).", isSubtle=True)))  # fmt: skip
    held = card.held_because[:10] or ("none given",)
    body.append(rich(run("Why it was held: ", weight="Bolder"),
                     *(run(("" if i == 0 else "; ") + inert(r, 300), fontType="Monospace")
                       for i, r in enumerate(held))))  # fmt: skip
    body.append(rich(run("Requester's reason: ", weight="Bolder"),
                     run(inert(card.reason, 1000)) if card.reason
                     else run("none given", italic=True)))  # fmt: skip
    groups = ", ".join(request.approver_groups[:10]) or "none"
    body.append(rich(run(f"Request #{request.id} from {inert(request.source, 20)} · approvers: "
                         f"{inert(groups, 300)}", isSubtle=True)))  # fmt: skip
    actions: list[dict[str, Any]] = []
    show = bool(card.buttons) if buttons is None else buttons and bool(card.buttons)
    if show:
        for button in card.buttons:
            style = "positive" if button.style == "primary" else "destructive"
            actions.append({"type": "Action.Execute", "title": button.label, "verb": button.verb,
                            "data": _data(request.id), "style": style})  # fmt: skip
    actions.append({"type": "Action.OpenUrl", "title": "Open in jitgate", "url": request.url})
    refresh: dict[str, Any] | None = None
    if request.state is State.PENDING:
        refresh = {"action": {"type": "Action.Execute", "verb": "refresh",
                              "data": _data(request.id)}}  # fmt: skip
        if refresh_for:
            refresh["userIds"] = list(refresh_for)[:REFRESH_LIMIT]
    return _adaptive(body, actions, refresh)


def reason_card(request: RequestView) -> Card:
    """The card a rejecter sees after Reject: the request, a required reason, and Reject."""
    card = request_card(request, buttons=False)
    card["body"] = [
        *card["body"],
        {"type": "Input.Text", "id": REASON_INPUT, "label": "Reason (the requester sees it)",
         "isMultiline": True, "isRequired": True, "maxLength": REASON_MAX_LENGTH,
         "errorMessage": "A reason is required"},
    ]  # fmt: skip
    card["actions"] = [
        {"type": "Action.Execute", "title": "Reject", "verb": "reject",
         "data": _data(request.id), "style": "destructive"},
        {"type": "Action.Execute", "title": "Cancel", "verb": "refresh", "data": _data(request.id)},
    ]  # fmt: skip
    return card


def _table(outcome: Outcome) -> tuple[str | None, list[str]]:
    notes: list[str] = []
    if not outcome.columns:
        grid = None
    else:
        fenced, shown = table(outcome.columns, outcome.preview, PREVIEW_LIMIT)
        grid = html.unescape(fenced.removeprefix("```\n").removesuffix("\n```"))
        total = outcome.rows if outcome.rows is not None else len(outcome.preview)
        if shown < max(total, len(outcome.preview)) or outcome.preview_truncated:
            notes.append(f"Showing {shown:,} of {count(total, 'row')}.")
    if outcome.masked:
        kinds = ", ".join(f"{kind} ×{n}" for kind, n in sorted(outcome.masked.items()))
        notes.append(f"Masked: {kinds}")
    return grid, notes


def result_message(request: RequestView, session_url: str | None) -> dict[str, Any]:
    """The reply in the card's thread after execution: the outcome, the masked preview and
    the session link."""
    outcome = request.outcome
    if outcome is None:
        raise ValueError(f"request #{request.id} has no outcome yet")
    icon, verb = ("✅", "ran") if outcome.ok else ("⚠️", "failed")
    summary = outcome.summary() if outcome.ok else (outcome.error or "")
    state = f" (SQLSTATE {outcome.sqlstate})" if not outcome.ok and outcome.sqlstate else ""
    body: list[dict[str, Any]] = [
        rich(run(f"{icon} Request #{request.id} {verb}: ", weight="Bolder"),
             run(inert(summary, 1500), fontType="Monospace"), run(inert(state, 40))),
    ]  # fmt: skip
    grid, notes = _table(outcome)
    if grid:
        body.append(rich(run(inert(grid, PREVIEW_LIMIT + 100), fontType="Monospace")))
    for note in notes:
        body.append(rich(run(inert(note, 500), isSubtle=True)))
    actions = [{"type": "Action.OpenUrl", "title": "Session replay", "url": session_url}]
    if session_url:
        body.append(rich(run(f"Session replay: {session_url}", isSubtle=True)))
    summary_line = f"Request #{request.id}: {inert(outcome.summary(), 200)}"
    return message(_adaptive(body, actions if session_url else []), summary_line)


def requester_message(request: RequestView) -> dict[str, Any]:
    return text_message(f"{requester_line(request)}\n{request.url}")


def reminder_message(request: RequestView) -> dict[str, Any]:
    return text_message(reminder_line(request))


def alert_message(alert: Alert) -> dict[str, Any]:
    title = ALERT_TITLES[alert.kind]
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": f"🚨 {title}", "weight": "Bolder", "wrap": True},
        rich(run(inert(alert.summary, 1000), fontType="Monospace")),
    ]
    when = None if alert.at is None else alert.at.strftime("%Y-%m-%d %H:%M:%S UTC")
    fields = [("Who", alert.identity), ("Resource", alert.resource),
              ("Request", None if alert.request_id is None else f"#{alert.request_id}"),
              ("Session", None if alert.session_id is None else str(alert.session_id)),
              ("When", when)]  # fmt: skip
    for label, value in fields:
        if value:
            body.append(rich(run(f"{label}: ", weight="Bolder"), run(inert(value, 200))))
    return message(_adaptive(body), f"Security alert: {title}")


def alert_digest(alerts: Sequence[Alert]) -> dict[str, Any]:
    kinds = Counter(alert.kind for alert in alerts).most_common()
    totals = ", ".join(f"{ALERT_TITLES[kind]} ×{n}" for kind, n in kinds)
    head = f"🚨 {count(len(alerts), 'security alert')}: {totals or 'none'}"
    body: list[dict[str, Any]] = [{"type": "TextBlock", "text": head, "weight": "Bolder",
                                   "wrap": True}]  # fmt: skip
    for alert in alerts[:30]:
        who = " ".join(v for v in (alert.identity, alert.resource) if v)
        body.append(
            rich(run(f"{ALERT_TITLES[alert.kind]} "), run(inert(f"{who} {alert.summary}", 200)))
        )
    if len(alerts) > 30:
        body.append(rich(run(f"and {len(alerts) - 30} more; see the SIEM for all.")))
    return message(_adaptive(body), head)


# -- text replies ---------------------------------------------------------------------------

_SPAN = re.compile(r"```\n?.*?\n?```|`[^`]*`", re.DOTALL)
_LINK = re.compile(r"<([^|<>]+)\|([^<>]*)>")
_DATE = re.compile(r"<!date\^[0-9]+\^[^|<>]*\|([^<>]*)>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)>")
_BOLD = re.compile(r"\*([^*\n]+)\*")
_EMOJI_CODE = re.compile(r":[a-z_]+:")


def teams_text(mrkdwn: str) -> str:
    """A reply written in :mod:`bot.messages`' mrkdwn as Teams markdown. Our own words are
    converted (``*bold*``, ``<url|label>``, dates, emoji; Teams commands have no ``/jit``);
    code spans, which hold every user string, stay code spans, their escapes undone (Teams
    shows code as typed)."""
    out: list[str] = []
    last = 0
    for match in _SPAN.finditer(mrkdwn):
        out.append(_ours(mrkdwn[last : match.start()]))
        out.append(html.unescape(match.group(0)).replace("{{", "{" + _WORD_JOINER + "{"))
        last = match.end()
    out.append(_ours(mrkdwn[last:]))
    return "".join(out).replace("`/jit ", "`").replace("\n", "\n\n")


def teams_plain(mrkdwn: str) -> str:
    """The same reply as plain text, for a TextRun: code spans lose their backticks."""
    text = teams_text(mrkdwn).replace("\n\n", "\n").replace("**", "")
    return _SPAN.sub(lambda m: m.group(0).strip("`"), text)


def _ours(text: str) -> str:
    text = _DATE.sub(lambda m: m.group(1), text)
    text = _LINK.sub(lambda m: f"[{m.group(2)}]({m.group(1)})", text)
    text = _CHANNEL.sub(lambda m: m.group(1), text)
    text = _BOLD.sub(lambda m: f"**{m.group(1)}**", text)
    text = _EMOJI_CODE.sub(lambda m: _EMOJI.get(m.group(0), ""), text)
    return html.unescape(text)


def text_message(mrkdwn: str) -> dict[str, Any]:
    """A plain message activity with ``mrkdwn`` (words of :mod:`bot.messages`) as Teams
    markdown."""
    return {"type": "message", "textFormat": "markdown", "text": teams_text(mrkdwn)}
