"""The card model: what an approval card says, as data every chat renders its own way
(Slack's Block Kit in :mod:`bot.blocks`, Teams' Adaptive Cards in :mod:`bot.teams_cards`).

A card has a title, facts (label and value), the statement pretty-printed, why it was
held, the requester's reason and, while it can be decided, the buttons. Values are
:data:`Rich` text: :class:`Text` is jitgate's own wording, :class:`Code` a string a user
or a database supplied (renderers show it inert: never markup, never a mention or an
expression), :class:`When` a moment each reader sees in their own time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlparse
from sqlparse.exceptions import SQLParseError

from approvals.model import RequestView, State, Verdict


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Code:
    value: str
    limit: int = 200


@dataclass(frozen=True, slots=True)
class When:
    at: datetime


Rich = tuple[Text | Code | When, ...]


@dataclass(frozen=True, slots=True)
class Fact:
    label: str
    value: Rich


@dataclass(frozen=True, slots=True)
class Button:
    """``confirm``: ask before acting (approving a destructive statement)."""

    verb: Verdict
    label: str
    style: Literal["primary", "danger"]
    confirm: bool = False


@dataclass(frozen=True, slots=True)
class RequestCard:
    request: RequestView
    title: str
    facts: tuple[Fact, ...]
    sql: str
    sql_input_cut: bool
    held_because: tuple[str, ...]
    reason: str | None
    buttons: tuple[Button, ...]


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
# The class of a governed MCP server's tool call held for review (mcp_gateway.bound_calls):
# its text is the call, not SQL.
TOOL_CALL = "tool_call"


def pretty(sql: str) -> tuple[str, bool]:
    """The statement as approvers read it, and whether its input was cut first."""
    try:
        text = str(sqlparse.format(sql[:_PRETTY_INPUT], reindent=True, keyword_case="upper"))
    except SQLParseError:
        text = sql[:_PRETTY_INPUT]
    return text.strip(), len(sql) > _PRETTY_INPUT


def as_written(text: str) -> tuple[str, bool]:
    """A tool call (not SQL) as approvers read it: as written, cut like a statement."""
    return text[:_PRETTY_INPUT].strip(), len(text) > _PRETTY_INPUT


def count(number: int, noun: str) -> str:
    """``1,204 rows``, ``1 row``."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def who(request: RequestView) -> Rich:
    if request.agent:
        return (Code(request.requester, 100), Text(" via agent "), Code(request.agent, 100))
    return (Code(request.requester, 100),)


def impact(request: RequestView) -> str:
    rows = "unknown" if request.estimate is None else f"≈ {count(request.estimate, 'row')}"
    cap = "" if request.max_rows is None else f"\ncapped at {count(request.max_rows, 'row')}"
    return rows + cap


def progress(request: RequestView) -> str:
    return f"{request.approvals} of {request.approvals_required}"


def card_of(request: RequestView, *, pending: bool | None = None) -> RequestCard:
    """The card for ``request`` now: with buttons while pending, decided after (``pending``
    overrides which of the two)."""
    if pending is None:
        pending = request.state is State.PENDING
    facts = (
        Fact("Requester", who(request)),
        Fact("Resource", (Code(request.resource, 100),)),
        Fact("Class", (Code(request.statement_class, 40),)),
        Fact("Impact", (Text(impact(request)),)),
        Fact("Approvals", (Text(progress(request)),)),
        Fact("Expires", (When(request.expires_at),)),
    )
    buttons = (
        Button("approve", "Approve", "primary", request.statement_class == "destructive"),
        Button("reject", "Reject", "danger"),
    )
    sql, cut = (
        as_written(request.sql) if request.statement_class == TOOL_CALL else pretty(request.sql)
    )
    return RequestCard(
        request=request,
        title=f"Approval needed: request #{request.id}"
        if pending
        else f"Request #{request.id}: {STATE_LABELS[request.state]}",
        facts=facts,
        sql=sql,
        sql_input_cut=cut,
        held_because=request.reasons,
        reason=request.reason,
        buttons=buttons if pending else (),
    )
