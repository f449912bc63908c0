"""The web inbox's HTML, as pure functions of neutral views: no I/O, no JavaScript.

Every value that came from a user, a statement or a result passes through :func:`esc`
(``html.escape`` with quotes) before it is placed in markup, so SQL such as
``<script>…`` shows as text. Callers pass SQL and previews already masked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from approvals.model import Outcome, RequestView

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center}
header a{color:#fff}header form{margin-left:auto}main{max-width:70em;margin:1em auto;padding:0 1em}
table{border-collapse:collapse;background:#fff;margin:.5em 0 1em}
td,th{border:1px solid #d5d9e0;padding:.3em .6em;text-align:left;vertical-align:top}
pre{background:#fff;border:1px solid #d5d9e0;padding:.6em;white-space:pre-wrap}
.message{background:#fdecea;border:1px solid #e0a9a3;padding:.6em}.note{color:#555}
form.decide{display:inline-block;background:#fff;border:1px solid #d5d9e0;padding:.6em;
margin:0 1em 1em 0}
.demo{background:#ffd24d;color:#1d2430;font-weight:600;padding:.5em 1.2em;margin:0}
"""
DEMO_BANNER = (
    '<p class="demo" role="status">Demo mode is on: anyone who can open this page can act as'
    " any configured user, without a password. Never use it in production.</p>"
)


def esc(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def page(title: str, body: str, user: str | None = None, *, demo: bool = False) -> str:
    who = ""
    if user is not None:
        action = "switch user" if demo else "log out"
        who = (
            f'<span>{esc(user)}</span><form method="post" action="/logout">'
            f'<button type="submit">{action}</button></form>'
        )
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)} — jitgate"
        f"</title><style>{_STYLE}</style></head><body>{DEMO_BANNER if demo else ''}"
        "<header><strong>jitgate</strong>"
        f'<a href="/inbox">inbox</a>{who}</header><main><h1>{esc(title)}</h1>{body}</main>'
        "</body></html>"
    )


def message(text: str | None) -> str:
    return f'<p class="message" role="alert">{esc(text)}</p>' if text else ""


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """``rows`` hold markup: escape their values before passing them. No headers, no head."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def request_link(request_id: int) -> str:
    return f'<a href="/requests/{request_id}">#{request_id}</a>'


def request_rows(views: Sequence[RequestView]) -> str:
    if not views:
        return '<p class="note">None.</p>'
    return table(
        ("request", "state", "resource", "requester", "class", "approvals", "SQL", "created"),
        (
            (
                request_link(v.id), esc(v.state), esc(v.resource), esc(v.requester),
                esc(v.statement_class), f"{v.approvals} of {v.approvals_required}",
                f"<code>{esc(_short(v.sql))}</code>", esc(when(v.created_at)),
            )
            for v in views
        ),
    )  # fmt: skip


def inbox(awaiting: Sequence[RequestView], mine: Sequence[RequestView]) -> str:
    return (
        "<h2>Awaiting your decision</h2>" + request_rows(awaiting)
        + "<h2>Your requests</h2>" + request_rows(mine)
    )  # fmt: skip


def outcome_html(outcome: Outcome) -> str:
    parts = [f"<p><strong>{esc(outcome.summary())}</strong></p>"]
    if outcome.columns:
        cells = ((esc(c) for c in row) for row in outcome.preview)
        parts.append(table(outcome.columns, (list(r) for r in cells)))
        if outcome.preview_truncated:
            parts.append(f'<p class="note">First {len(outcome.preview)} rows shown.</p>')
    if outcome.masked:
        masked = ", ".join(f"{n} {entity}" for entity, n in sorted(outcome.masked.items()))
        parts.append(f'<p class="note">Masked: {esc(masked)}</p>')
    return "".join(parts)


def request_detail(view: RequestView, sessions: Sequence[str], note: str | None) -> str:
    """The request's facts, its decisions and outcome (``view`` as :func:`jitgate.api.shown`
    makes it); ``sessions`` are ids of sessions to link to."""
    cap = "no cap" if view.max_rows is None else f"up to {view.max_rows} rows"
    agent = f" via agent {esc(view.agent)}" if view.agent else ""
    facts = [
        ("State", esc(view.state) + (f" — {esc(view.state_reason)}" if view.state_reason else "")),
        ("Resource", esc(view.resource)),
        ("Requested by", esc(view.requester) + agent),
        ("Their reason", esc(view.reason or "none given")),
        ("Class", esc(view.statement_class)),
        ("Why it was held", "<br>".join(esc(r) for r in view.reasons) or "policy: review"),
        ("Estimated rows", esc("unknown" if view.estimate is None else view.estimate)),
        ("Row cap", esc(cap)),
        ("Approvals", f"{view.approvals} of {view.approvals_required}"
                      f" (approvers: {esc(', '.join(view.approver_groups))})"),
        ("Created", esc(when(view.created_at))),
        ("Expires", esc(when(view.expires_at))),
        ("Sessions", " ".join(f'<a href="/sessions/{quote(s)}">{esc(s)}</a>' for s in sessions)
                     or "none yet"),
    ]  # fmt: skip
    decisions = table(
        ("approver", "verdict", "via", "reason", "at"),
        (
            (esc(d.approver), esc(d.verdict), esc(d.via), esc(d.reason), esc(when(d.decided_at)))
            for d in view.decisions
        ),
    )
    return (
        f"<pre><code>{esc(view.sql)}</code></pre>"
        + table((), ((f"<strong>{k}</strong>", v) for k, v in facts))
        + ("<h2>Decisions</h2>" + decisions if view.decisions else "")
        + ("<h2>Outcome</h2>" + outcome_html(view.outcome) if view.outcome else "")
        + (f'<p class="note">{esc(note)}</p>' if note else "")
    )


def decision_forms(view: RequestView) -> str:
    action = f"/requests/{view.id}/decide"
    return (
        f'<h2>Your decision</h2><form class="decide" method="post" action="{action}">'
        '<input type="hidden" name="verdict" value="approve">'
        '<label>Up to <input type="number" name="max_rows" min="1" size="8"> rows'
        " (optional)</label><br><label>Reason (optional) <input name=reason></label><br>"
        '<button type="submit">Approve</button></form>'
        f'<form class="decide" method="post" action="{action}">'
        '<input type="hidden" name="verdict" value="reject">'
        "<label>Reason <input name=reason required></label><br>"
        '<button type="submit">Reject</button></form>'
    )


def session_timeline(session: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> str:
    """A session's facts and its statements in order; ``events[i]["sql"]`` is masked."""
    ended = when(session["ended_at"]) or "still open"
    agent = session.get("agent")
    facts = (
        f"<p>{esc(session['identity'])}"
        + (f" via agent {esc(agent)}" if agent else "")
        + f" on {esc(session['resource'])}"
        f" from {esc(session['client_addr'] or 'the gateway')}"
        f" ({esc(session['application_name'] or 'no application name')}),"
        f" {esc(when(session['started_at']))} — {esc(ended)}"
        + (f" ({esc(session['end_reason'])})" if session["end_reason"] else "")
        + "</p>"
    )
    rows = (
        (
            esc(when(e["started_at"])), esc(e["statement_class"]), esc(e["decision"]),
            esc(e["outcome"]) + (f" ({esc(e['sqlstate'])})" if e["sqlstate"] else ""),
            esc(e["command_tag"] or ""), esc(e["rows"]),
            request_link(e["request_id"]) if e["request_id"] else "",
            f"<code>{esc(e['sql'])}</code>",
        )
        for e in events
    )  # fmt: skip
    headers = ("time", "class", "decision", "outcome", "command", "rows", "request", "SQL")
    return facts + (table(headers, rows) if events else '<p class="note">No statements.</p>')


def login_form(demo: bool, users: Sequence[str], next_path: str) -> str:
    hidden = f'<input type="hidden" name="next" value="{esc(next_path)}">'
    if demo:
        buttons = "".join(
            f'<button type="submit" name="user" value="{esc(u)}">{esc(u)}</button> ' for u in users
        )
        return (
            '<p class="note">Demo mode: pick who you are (no password; never use this in'
            f' production).</p><form method="post" action="/login">{hidden}{buttons}</form>'
        )
    return (
        '<form method="post" action="/login">'
        f'{hidden}<label>Access token <input type="password" name="token" size="50"'
        ' autocomplete="off" required></label> <button type="submit">Log in</button></form>'
        '<p class="note">Get one with <code>jitgate token issue --user YOU</code>.</p>'
    )


def _short(sql: str, width: int = 80) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= width else text[: width - 1] + "…"
