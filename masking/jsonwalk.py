"""Masking inside a JSON document without re-serialising it.

The document is read token by token; only string and integer tokens holding something
sensitive are replaced, so everything else (key order, duplicate keys, number spelling,
whitespace) stays byte for byte. The nearest enclosing object key is the context of a value,
the way a column name is for a cell: ``{"ssn": "123456789"}`` is masked, ``{"id":
"123456789"}`` is not. The result is valid JSON whenever the input was: masked strings are
re-encoded, and a masked number becomes a string (``4242424242424242`` →
``"************4242"``).
"""

from __future__ import annotations

import json
import re

from masking.detect import Scanner, Span
from masking.policy import MaskingPolicy

# Strings (with the colon that makes them a key), brackets, and runs of number characters;
# everything else (commas, colons, literals, blanks) only separates them.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"(?P<key>\s*:)?|[{}\[\]]|[-+.0-9eE]+', re.DOTALL)
# Without context only a card (13 digits and more) can be a whole number; with it, a driver
# licence may have as few as 5.
_SHORTEST_CARD = 13
_SHORTEST_CUED = 5


def mask_json(
    text: str,
    scanner: Scanner,
    policy: MaskingPolicy,
    cues: frozenset[int],
    found: list[str],
) -> str | None:
    """``text`` (a JSON document) with its sensitive strings and numbers masked, or ``None``
    when nothing was; ``cues`` come from the column name and apply outside any object. The
    entity of each masked span is appended to ``found``. A string literal that is not valid
    JSON raises :class:`ValueError`."""
    outer: list[frozenset[int]] = []
    context = cues
    edits: list[tuple[int, int, str]] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        first = token[0]
        if first == '"':
            end = match.start() + len(token) - len(match.group("key") or "")
            literal = text[match.start() : end]
            value = literal[1:-1] if "\\" not in literal else json.loads(literal)
            key = match.group("key")
            # A key is read in the context of its object; the next value in the key's own.
            spans = scanner.find(value, outer[-1] if key and outer else context)
            if spans:
                edits.append((match.start(), end, _json_string(policy.mask(value, spans))))
                found.extend(span.entity for span in spans)
            if key:
                context = scanner.cued_by(value)
        elif first in "{[":
            outer.append(context)
        elif first in "}]":
            context = outer.pop() if outer else cues
        elif token.isdigit():
            span = whole_number(scanner, token, context)
            if span is not None:
                edits.append((match.start(), match.end(), _json_string(policy.mask(token, [span]))))
                found.append(span.entity)
    if not edits:
        return None
    parts: list[str] = []
    pos = 0
    for start, end, replacement in edits:
        parts += (text[pos:start], replacement)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def whole_number(scanner: Scanner, digits: str, cues: frozenset[int]) -> Span | None:
    """The span when all of ``digits`` is one value of a numeric entity (a card, or an SSN
    or phone number where ``cues`` allow it), else ``None``."""
    if len(digits) < (_SHORTEST_CUED if cues else _SHORTEST_CARD):
        return None
    spans = scanner.find(digits, cues)
    if len(spans) == 1 and spans[0].start == 0 and spans[0].end == len(digits):
        return spans[0]
    return None


def _json_string(value: str) -> str:
    encoded = json.dumps(value, ensure_ascii=False)
    try:
        # Lone surrogates other than those standing for undecodable bytes cannot be written
        # as UTF-8; JSON escapes can carry them.
        encoded.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return json.dumps(value)
    return encoded
