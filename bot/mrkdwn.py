"""Slack mrkdwn and Block Kit primitives shared by :mod:`bot.blocks` and :mod:`bot.messages`:
escaping, code spans, limits, dates, links and result tables.

The one rule that keeps chat safe: a string that came from a user (SQL, reasons, identities,
resource names, error text, cell values) is shown only through :func:`code` or
:func:`fence`. Both

- escape ``&``, ``<`` and ``>`` as Slack asks, so ``<!channel>``, ``<@U123>`` and
  ``<http://x|y>`` arrive as text and never as a mention or a link;
- replace every backtick with ``ˋ`` (U+02CB, a lookalike), because a backtick would end the
  code span and let the rest be read as mrkdwn; backticks are not PostgreSQL syntax, so
  the shown SQL still reads the same;
- keep ``*bold*``, ``_x_`` and ``~x~`` inert, as Slack applies no formatting inside code;
- show control and invisible format characters (bidi overrides, zero-width spaces) as
  ``[U+202E]``, so an approver cannot be shown text that differs from what runs.

Lengths are measured after escaping, so a block never exceeds Slack's limits.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any
from urllib.parse import quote

from approvals.model import Outcome

Block = dict[str, Any]

SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
HEADER_LIMIT = 150
MAX_BLOCKS = 50
LOOKALIKE_BACKTICK = "\u02cb"
ELLIPSIS = "…"

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_CELL_WIDTH = 32
_LINE_WIDTH = 100


def escape(text: str) -> str:
    """``text`` with ``&``, ``<`` and ``>`` escaped for any Slack mrkdwn or fallback text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def visible(text: str) -> str:
    """``text`` with CRLF as LF and every other control or format character spelled out."""
    return "".join(
        char
        if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cf")
        else f"[U+{ord(char):04X}]"
        for char in text.replace("\r\n", "\n")
    )


def clip(text: str, limit: int) -> tuple[str, bool]:
    """The longest prefix of ``text`` whose escaped form fits ``limit``, and whether it was cut.
    A cut prefix ends in an ellipsis that counts towards ``limit``."""
    sizes = [len(_ESCAPES.get(char, char)) for char in text]
    if sum(sizes) <= limit:
        return text, False
    # Running totals only grow, so the prefixes that fit are exactly those counted here.
    fits = sum(1 for total in accumulate(sizes) if total <= limit - len(ELLIPSIS))
    return text[:fits] + ELLIPSIS, True


def code(value: str, limit: int = 200) -> str:
    """``value`` as one inline code span on one line, escaped and clipped to ``limit``."""
    clipped, _ = clip(" ".join(visible(value).split()) or " ", limit)
    return f"`{escape(clipped).replace('`', LOOKALIKE_BACKTICK)}`"


def fence(text: str, limit: int) -> tuple[str, bool]:
    """``text`` as a fenced code block of at most ``limit`` characters, and whether it was cut."""
    # Eight characters go to the fences and their newlines.
    clipped, cut = clip(visible(text), limit - 8)
    return f"```\n{escape(clipped).replace('`', LOOKALIKE_BACKTICK)}\n```", cut


def link(url: str, label: str) -> str:
    """A mrkdwn link; ``label`` is ours, and ``url`` is quoted so it cannot end the link."""
    return f"<{quote(url, safe=':/?#[]@!$&()*+,;=%~')}|{escape(label.replace('|', ' '))}>"


def date(moment: datetime) -> str:
    """A Slack date token that each reader sees in their own time zone (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def count(number: int, noun: str) -> str:
    """``1,204 rows``, ``1 row``."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def section(text: str, fields: Sequence[str] = ()) -> Block:
    """A mrkdwn section; ``text`` (may be empty when there are fields) must already fit
    :data:`SECTION_LIMIT`. At most ten ``fields`` are kept, each cut to :data:`FIELD_LIMIT`."""
    block: Block = {"type": "section"}
    if text:
        block["text"] = {"type": "mrkdwn", "text": text}
    if fields:
        block["fields"] = [{"type": "mrkdwn", "text": field[:FIELD_LIMIT]} for field in fields[:10]]
    return block


def context(*texts: str) -> Block:
    """A context line of mrkdwn elements (Slack allows ten)."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in texts[:10]]}


def header(text: str) -> Block:
    """A plain-text header; only our own wording and numbers go here."""
    clipped, _ = clip(text, HEADER_LIMIT)
    return {"type": "header", "text": {"type": "plain_text", "text": clipped}}


def message(fallback: str, blocks: Sequence[Block]) -> Block:
    """A message body for chat.postMessage/chat.update. ``fallback`` is the notification text;
    Slack parses it as mrkdwn too, so user strings go into it through :func:`code` as well."""
    return {"text": fallback[:SECTION_LIMIT], "blocks": list(blocks[:MAX_BLOCKS])}


def table(
    columns: Sequence[str], rows: Sequence[Sequence[str | None]], limit: int
) -> tuple[str, int]:
    """Rows as an aligned monospace table in a code block of at most ``limit`` characters,
    and how many rows fit. NULL is shown as ``NULL``; cells are cut at 32 characters and
    lines at 100, so the table does not wrap in a chat column."""

    def cell(value: str | None) -> str:
        text = "NULL" if value is None else " ".join(visible(value).split())
        text = text.replace("`", LOOKALIKE_BACKTICK)
        return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 1] + ELLIPSIS

    head = [cell(name) for name in columns]
    body = [[cell(value) for value in row] for row in rows]
    widths = [
        max([len(head[i]), *(len(row[i]) for row in body if i < len(row))])
        for i in range(len(head))
    ]

    def line(cells: Sequence[str], pad: str = " ", join: str = " | ") -> str:
        text = join.join(
            value.ljust(width, pad) for value, width in zip(cells, widths, strict=False)
        )
        text = text.rstrip()
        return text if len(text) <= _LINE_WIDTH else text[: _LINE_WIDTH - 1] + ELLIPSIS

    lines = [line(head), line(["-" * w for w in widths], "-", "-+-")]
    used = sum(len(escape(text)) + 1 for text in lines) + 8
    shown = 0
    for row in body:
        text = line(row)
        used += len(escape(text)) + 1
        if used > limit:
            break
        lines.append(text)
        shown += 1
    return "```\n" + escape("\n".join(lines)) + "\n```", shown


def preview(outcome: Outcome, limit: int) -> tuple[str | None, list[str]]:
    """An outcome's masked rows as a :func:`table` of at most ``limit`` characters (None when
    no rows came back), and the notes for under it: rows left out, values masked."""
    notes: list[str] = []
    grid = None
    if outcome.columns:
        grid, shown = table(outcome.columns, outcome.preview, limit)
        total = outcome.rows if outcome.rows is not None else len(outcome.preview)
        if shown < max(total, len(outcome.preview)) or outcome.preview_truncated:
            notes.append(f"Showing {shown:,} of {count(total, 'row')}.")
    if outcome.masked:
        masked = ", ".join(f"{code(kind, 40)} ×{n}" for kind, n in sorted(outcome.masked.items()))
        notes.append(f"Masked: {masked}")
    return grid, notes
