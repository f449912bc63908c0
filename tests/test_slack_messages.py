"""Slack wording and layouts: buttons, escaping of everything a user typed, Block Kit limits,
result tables, every state of a card, the ephemeral replies, alerts, and the app manifest."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args
from uuid import UUID

import pytest
import yaml

from approvals.model import Alert, AlertKind, DecisionView, Outcome, RequestView, State
from bot import messages as m

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
URL = "http://127.0.0.1:8080/requests/12"
# The only control sequences our layouts may contain: date tokens and links into jitgate.
OUR_CONTROLS = r"<!date\^\d+\^[^|>]*\|[^>]*>|<http://127\.0\.0\.1:8080/[^|>]*\|[^>]*>"
# A broadcast, a mention, a link, a fence and formatting, as a user could type them.
HOSTILE = "<!channel> <@U1> <http://evil.example|click> ``` *bold* _it_ ~gone~ & EVIL"


def decision(who: str, verdict: str = "approve", reason: str | None = None) -> DecisionView:
    return DecisionView(who, verdict, "slack", reason, NOW)  # type: ignore[arg-type]


def request(**changes: Any) -> RequestView:
    """Request #12: alice's write on prod, approved once of two, pending; ``changes`` apply."""
    base = RequestView(
        id=12, resource="prod", requester="alice@example.com", agent=None, source="psql",
        sql="delete from customers where created_at < '2020-01-01'", statement_class="write",
        reasons=("DELETE touches customers",), reason="cleanup for OPS-1", estimate=1204,
        max_rows=None, state=State.PENDING, state_reason=None, session_id=None,
        approvals_required=2, approver_groups=("dba",), decisions=(decision("bob@example.com"),),
        created_at=NOW, expires_at=NOW + timedelta(hours=1), outcome=None, url=URL,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


COLUMNS = ("id", "email", "note")
PREVIEW = (("1", "a***@example.com", None), ("22", "b***@x.org", "has `tick` & <@U1>"))
ROWS = Outcome("SELECT 3", 3, 4.2, columns=COLUMNS, preview=PREVIEW, masked={"EMAIL": 2})
FAILED = Outcome(None, None, 3.0, sqlstate="23505", error="duplicate key <@U1>")


def texts(node: Any) -> list[str]:
    """Every mrkdwn string in a message, modal or block."""
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == "mrkdwn" else []
        return found + [t for value in node.values() for t in texts(value)]
    if isinstance(node, list):
        return [t for value in node for t in texts(value)]
    return []


def outside_code(text: str) -> str:
    """``text`` without its code blocks and code spans (where Slack applies no formatting)."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```\n.*?\n```", "", text, flags=re.S))


def inert(message: dict[str, Any]) -> None:
    """No user-typed marker escapes a code span; no '<' is left but our own dates and links."""
    for text in [*texts(message), message.get("text", "")]:
        assert "EVIL" not in outside_code(text), text
        controls = re.sub(OUR_CONTROLS, "", text)
        assert "<" not in controls and "<!channel>" not in text and "<@U1>" not in text, text
        assert text.count("```") % 2 == 0, text


def within_limits(message: dict[str, Any]) -> None:
    """Block Kit's limits: 50 blocks, 3000 characters a section (150 a header), ten fields of
    2000 and ten context elements."""
    assert len(message["blocks"]) <= 50
    for block in message["blocks"]:
        text, fields = block.get("text", {}).get("text", ""), block.get("fields", [])
        assert len(text) <= (150 if block["type"] == "header" else 3000)
        assert len(fields) <= 10 and all(len(f["text"]) <= 2000 for f in fields)
        assert len(block.get("elements", [])) <= 10


def actions(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in message["blocks"] if b["type"] == "actions"]


def test_approval_card_buttons_carry_only_the_request_id() -> None:
    (block,) = actions(m.approval_card(request()))
    shown = [(b["text"]["text"], b["action_id"], b["style"], b["value"]) for b in block["elements"]]
    assert shown == [("Approve", "approve", "primary", "12"), ("Reject", "reject", "danger", "12")]
    assert block["block_id"] == m.DECISION_BLOCK and "confirm" not in json.dumps(block)


def test_destructive_statements_ask_to_confirm_the_approval() -> None:
    card = m.approval_card(request(statement_class="destructive", max_rows=1000))
    confirm = actions(card)[0]["elements"][0]["confirm"]
    assert confirm["confirm"]["text"] == "Approve" and confirm["style"] == "danger"
    assert len(confirm["text"]["text"]) <= 300 and "1,204 rows" in confirm["text"]["text"]


def test_card_shows_who_what_impact_progress_and_expiry() -> None:
    card = m.approval_card(request(agent="claude-code", max_rows=1000))
    facts = "\n".join(f["text"] for f in card["blocks"][1]["fields"])
    assert "`alice@example.com` via agent `claude-code`" in facts and "`prod`" in facts
    assert "≈ 1,204 rows\ncapped at 1,000 rows" in facts and "*Approvals*\n1 of 2" in facts
    assert f"<!date^{int((NOW + timedelta(hours=1)).timestamp())}^" in facts
    sql = card["blocks"][2]["text"]["text"]
    assert sql == "```\nDELETE\nFROM customers\nWHERE created_at &lt; '2020-01-01'\n```"
    assert card["text"] == "Request #12 needs approval: `alice@example.com` on `prod` (`write`)"
    unknown = m.approval_card(request(estimate=None))["blocks"][1]["fields"][3]["text"]
    assert unknown == "*Impact*\nunknown"
    why = m.approval_card(request(reasons=tuple(f"r{i}" for i in range(14))))["blocks"][3]
    assert why["text"]["text"].endswith("• `r8`\n• `r9`\n• and 4 more")


def test_everything_a_user_typed_is_inert() -> None:
    typed = ("requester", "agent", "resource", "statement_class", "state_reason")
    hostile = request(
        **dict.fromkeys(typed, HOSTILE),
        sql=f"select 1 -- {HOSTILE}\n",
        reasons=(HOSTILE,) * 12,
        reason=f"line one\n{HOSTILE}",
        approver_groups=(HOSTILE,),
        decisions=(decision(HOSTILE, "reject", HOSTILE),),
    )
    card = m.approval_card(hostile)
    inert(card)
    assert "ˋˋˋ" in card["blocks"][2]["text"]["text"]  # the lookalike, inside the fence
    assert "&lt;!channel&gt;" in card["blocks"][2]["text"]["text"]
    for state in State:
        inert(m.decided_card(dataclasses.replace(hostile, state=state, outcome=FAILED)))
        inert(m.requester_dm(dataclasses.replace(hostile, state=state, outcome=FAILED)))
        inert({"text": m.status_text(dataclasses.replace(hostile, state=state))})
    inert(m.reminder(hostile))
    inert({"text": m.pending_text([hostile])})
    inert(m.result_reply(dataclasses.replace(hostile, outcome=FAILED), None))


def test_invisible_and_bidi_characters_are_spelled_out() -> None:
    card = m.approval_card(request(sql="select 'a\u202eb\u200bc'", reason="ok\u2066"))
    shown = json.dumps(card, ensure_ascii=False)
    assert "[U+202E]" in shown and "[U+200B]" in shown and "[U+2066]" in shown
    assert "\u202e" not in shown and "\u200b" not in shown


@pytest.mark.parametrize("sql", ["select " + "x, " * 4000 + "1", "select '" + "&<>" * 3000 + "'"])
def test_long_statements_are_cut_with_a_link_to_the_whole(sql: str) -> None:
    card = m.approval_card(request(sql=sql))
    within_limits(card)
    body = card["blocks"][2]["text"]["text"]
    assert body.startswith("```\n") and body.endswith("…\n```") and len(body) <= m.SQL_LIMIT
    note = card["blocks"][3]["elements"][0]["text"]
    assert f"{len(sql):,} characters" in note and f"<{URL}|" in note


@pytest.mark.parametrize("state", [s for s in State if s is not State.PENDING])
def test_a_decided_card_has_no_buttons(state: State) -> None:
    card = m.decided_card(request(state=state, outcome=ROWS))
    assert actions(card) == [] and m.STATE_LABELS[state] in card["blocks"][0]["text"]["text"]
    assert m.card_for(request(state=state, outcome=ROWS)) == card
    assert actions(m.card_for(request()))  # while pending, the buttons stay
    within_limits(card)


def test_the_decided_card_names_the_decision() -> None:
    def status(**changes: Any) -> str:
        text: str = m.decided_card(request(**changes))["blocks"][1]["text"]["text"]
        return text

    rejected = status(state=State.REJECTED, decisions=(decision("carol", "reject", "no ticket"),))
    assert "*Rejected* by `carol`: `no ticket`" in rejected
    assert "*Approved* by `bob@example.com`" in status(state=State.APPROVED)
    assert "`SELECT 3 in 4 ms`" in status(state=State.EXECUTED, outcome=ROWS)
    failed = status(state=State.FAILED, outcome=FAILED)
    assert "`duplicate key &lt;@U1&gt;`" in failed and "SQLSTATE `23505`" in failed
    assert "*Expired*" in status(state=State.EXPIRED) and "1 of 2" in status(state=State.EXPIRED)
    cancelled = status(state=State.CANCELLED, state_reason="client went away")
    assert "*Cancelled*" in cancelled and "`client went away`" in cancelled


def code_block(text: str) -> list[str]:
    return text.split("```\n", 1)[1].rsplit("\n```", 1)[0].split("\n")


def test_result_reply_shows_summary_aligned_rows_and_session_link() -> None:
    reply = m.result_reply(request(state=State.EXECUTED, outcome=ROWS), "http://gw/sessions/7")
    assert reply["blocks"][0]["text"]["text"].endswith("ran: `SELECT 3 in 4 ms`")
    lines = code_block(reply["blocks"][1]["text"]["text"])
    assert lines[:3] == [
        "id | email            | note",
        "---+------------------+-------------------",
        "1  | a***@example.com | NULL",
    ]
    assert lines[3] == "22 | b***@x.org       | has ˋtickˋ &amp; &lt;@U1&gt;"
    notes = [e["text"] for e in reply["blocks"][2]["elements"]]
    assert notes[:2] == ["Showing 2 of 3 rows.", "Masked: `EMAIL` ×2"]
    assert notes[2] == "<http://gw/sessions/7|Session replay>"
    within_limits(reply)


def test_result_tables_fit_a_section_and_say_what_they_left_out() -> None:
    columns, rows = tuple(f"column_{i}" for i in range(12)), (("v" * 60,) * 12,) * 200
    wide = Outcome("SELECT 5000", 5000, 9, columns=columns, preview=rows, preview_truncated=True)
    reply = m.result_reply(request(outcome=wide), None)
    within_limits(reply)
    lines = code_block(reply["blocks"][1]["text"]["text"])
    assert all(len(line) <= 100 for line in lines) and lines[2].endswith("…")
    assert reply["blocks"][2]["elements"][0]["text"] == f"Showing {len(lines) - 2} of 5,000 rows."


def test_failed_result_shows_error_and_sqlstate_without_a_table() -> None:
    reply = m.result_reply(request(state=State.FAILED, outcome=FAILED), None)
    assert [b["type"] for b in reply["blocks"]] == ["section"]
    text = reply["blocks"][0]["text"]["text"]
    assert text.endswith("failed: `duplicate key &lt;@U1&gt;` (SQLSTATE `23505`)")
    with pytest.raises(ValueError, match="no outcome"):
        m.result_reply(request(), None)


def test_requester_dm_and_reminder() -> None:
    rejected = request(state=State.REJECTED, decisions=(decision("carol", "reject", "too wide"),))
    dm = m.requester_dm(rejected)["blocks"][0]["text"]["text"]
    assert "*rejected* by `carol`: `too wide`" in dm
    ran = m.requester_dm(request(state=State.EXECUTED, outcome=ROWS))["blocks"][0]["text"]["text"]
    assert "executed: `SELECT 3 in 4 ms`" in ran
    nudge = m.reminder(request())
    assert "still waiting for approval (1 of 2)" in nudge["blocks"][0]["text"]["text"]
    assert URL in nudge["blocks"][1]["elements"][0]["text"]


def test_reject_modal() -> None:
    view = m.reject_modal(12)
    assert view["type"] == "modal" and view["private_metadata"] == "12"
    assert view["callback_id"] == m.REJECT_CALLBACK and len(view["title"]["text"]) <= 24
    (field,) = (b for b in view["blocks"] if b["type"] == "input")
    element = field["element"]
    assert (field["block_id"], element["action_id"]) == ("reject_reason", "reason")
    assert element["type"] == "plain_text_input" and "optional" not in field


def test_ephemeral_replies() -> None:
    assert "your own" in m.self_approval_refused(12)
    assert "`dba`, `sre`" in m.not_an_approver(12, ["dba", "sre"])
    assert "already executed" in m.already_decided(12, State.EXECUTED)
    assert "expired" in m.request_expired(12)
    assert "admin" in m.unknown_user() and "`x@example.com`" in m.unknown_user("x@example.com")
    assert m.USAGE in m.bad_usage("missing SQL")
    assert all(f"`/jit {word}" in m.help_text() for word in ("run", "status", "pending", "help"))
    assert m.statement_held(12, "C0APPROVALS").endswith("request #12 posted to <#C0APPROVALS>.")
    assert "#db-approvals" in m.statement_held(12, "#db-approvals")
    assert "`privilege`" in m.statement_denied("prod", "privilege", ["GRANT"])
    assert "Waiting for approval: 1 of 2" in m.status_text(request())
    assert "already approved request #12 (:hourglass" in m.already_approved(request())
    assert "#7" in m.unknown_request(7) and "`staging`" in m.unknown_resource("staging")


def test_pending_list_is_capped() -> None:
    listing = m.pending_text([request(id=i) for i in range(25)])
    assert listing.startswith("*25 requests") and "#19 " in listing and "#20 " not in listing
    assert listing.endswith("• and 5 more") and m.pending_text([]).startswith("No requests")


def test_read_results_answered_at_once() -> None:
    text = m.read_result("prod", ROWS)
    assert text.startswith(":white_check_mark: `SELECT 3 in 4 ms` on `prod`\n```\nid | email")
    assert "Showing 2 of 3 rows." in text and len(text) <= 3000


def test_alerts() -> None:
    summary = f"approved own request {HOSTILE}"
    alert = Alert("self_approval", summary, "alice@example.com", "prod", 12, UUID(int=7), NOW)
    assert set(m.ALERT_TITLES) == set(get_args(AlertKind))
    message = m.alert_message(alert)
    inert(message)
    fields = "\n".join(f["text"] for f in message["blocks"][0]["fields"])
    assert "Self-approval attempt" in message["text"] and "#12" in fields and "`prod`" in fields
    burst = m.alert_digest([alert] * 200 + [Alert("denied", "DROP TABLE")])
    within_limits(burst)
    inert(burst)
    assert "Self-approval attempt ×200, Statement denied ×1" in burst["blocks"][0]["text"]["text"]
    assert burst["blocks"][-1]["elements"][0]["text"].startswith("and ")


SCOPES = "commands chat:write chat:write.public users:read users:read.email im:write files:write"


def test_manifest_declares_the_app() -> None:
    manifest = yaml.safe_load((Path(__file__).parents[1] / "manifest.yaml").read_text())
    assert manifest["display_information"]["name"] == "jitgate"
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/jit"
    assert command["usage_hint"] == "run RESOURCE SQL [-- reason] | status ID | pending | help"
    assert command["url"] == manifest["settings"]["interactivity"]["request_url"]
    assert command["url"] == "https://gateway.example.com/slack/events"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["oauth_config"]["scopes"]["bot"] == SCOPES.split()
