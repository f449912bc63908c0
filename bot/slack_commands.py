"""``/jit`` text as typed. Slack escapes ``&``, ``<`` and ``>`` in command text; exactly
those three are undone before anything reads it (the command itself is
:class:`notify.commands.ChatCommand`)."""

from __future__ import annotations

import re

_SLACK_ESCAPE = re.compile(r"&(amp|lt|gt);")
_UNESCAPED = {"amp": "&", "lt": "<", "gt": ">"}


def unescape(text: str) -> str:
    """Slash-command text as typed: Slack's ``&amp;``, ``&lt;`` and ``&gt;`` undone in one
    pass, so ``&amp;lt;`` stays the ``&lt;`` that was typed."""
    return _SLACK_ESCAPE.sub(lambda match: _UNESCAPED[match.group(1)], text)
