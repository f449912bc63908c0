"""One value of a result masked by its column's rule: :class:`ValueMasker`.

A :class:`ValueRule` says how a column's values are read under one policy (its
:class:`~masking.plan.Kind`, the detectors its name cues, a whole-column entity); the masker
reads a value by it and answers with new bytes, NULL or ``None`` for unchanged, counting each
entity it masked. Values of binary layouts are read part by part (:mod:`masking.layouts`),
each part by the rule of its own type; one whose bytes do not hold is sent as NULL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from masking.detect import NO_CUES, Scanner
from masking.entities import BIRTH_CUE, DATE_OF_BIRTH, IP_ADDRESS, NULLED
from masking.jsonwalk import mask_json, whole_number
from masking.layouts import (
    NULL,
    Masked,
    Nulled,
    Undecodable,
    bytea_content,
    bytea_text,
    is_text,
    mask_array,
    mask_multirange,
    mask_range,
    mask_record,
    mask_tsvector,
    mask_undeclared,
)
from masking.plan import (
    INT4,
    MULTIRANGE_SUBTYPES,
    PART_WIDTHS,
    RANGE_SUBTYPES,
    Column,
    Kind,
    binary_number,
)
from masking.policy import MaskingPolicy

_JSONB_VERSION = b"\x01"
_BIRTH = re.compile(BIRTH_CUE, re.IGNORECASE | re.ASCII)
# Rules for the parts of binary arrays, composites and ranges, by column name and part type:
# a session meets few; past this many (a hostile stream of names) they are forgotten.
_PART_RULES = 1024
# A bytea part of an array or record literal in text format: quoted, its backslash doubled.
_HEX_PART = re.compile(rb"\\\\x((?:[0-9a-fA-F]{2})+)")


@dataclass(frozen=True, slots=True)
class ValueRule:
    """How masking treats one column under one policy. ``always``: the row prefilter cannot
    see what this column may need (context from its name, binary numbers, whole-column
    entities, layouts read part by part), so it is read in every row."""

    name: str | None
    kind: Kind
    binary: bool
    type_oid: int | None
    cues: frozenset[int]
    entity: str | None
    always: bool


class ValueMasker:
    """Masks single values by one policy and counts what it masked. Not shared between
    sessions or threads."""

    def __init__(self, policy: MaskingPolicy, scanner: Scanner) -> None:
        self._policy = policy
        self._scanner = scanner
        self._first = scanner.first_match
        self._triggered = scanner.triggered
        self.counts: dict[str, int] = {}
        """Entity name → values masked (``NULLED``: values replaced by NULL). A plain dict,
        not a Counter: its item reads and writes are the interpreter's fast path."""
        self._part_rules: dict[tuple[str | None, int], ValueRule] = {}
        self._undeclared = self.rule(Column(None, 0, True))
        self._depth = 0  # of layouts inside the value being read

    def rule(self, column: Column) -> ValueRule:
        """How ``column``'s values are read under this masker's policy."""
        kind = column.kind
        entities = self._policy.entities
        # An int4 holds nine digits: read as a number where the column's name cues an
        # entity that can be one (``ssn``); an int4 nothing names is never read.
        readable = kind is not Kind.SKIP or column.type_oid == INT4
        cues = self._scanner.cued_by(column.name) if readable else NO_CUES
        if kind is Kind.SKIP and cues:
            kind = Kind.NUMBER
        entity = None
        if kind is Kind.INET:
            entity = IP_ADDRESS if IP_ADDRESS in entities else None
        elif kind is Kind.DATE:
            dob = DATE_OF_BIRTH in entities and _BIRTH.search(column.name or "") is not None
            entity = DATE_OF_BIRTH if dob else None
        if kind in (Kind.INET, Kind.DATE) and entity is None:
            kind = Kind.SKIP
        always = bool(cues) or entity is not None or column.opaque
        return ValueRule(column.name, kind, column.binary, column.type_oid, cues, entity, always)

    def mask(self, rule: ValueRule, value: bytes) -> Masked:
        kind = rule.kind
        if kind is Kind.SNIFF:
            return None if self._first(value) < 0 else self._mask_document(value, rule.cues)
        if kind is Kind.TEXT:
            return self.mask_text(value, rule.cues)
        if kind is Kind.JSON:
            return self._mask_json(value, rule.cues)
        if kind is Kind.JSONB_BINARY:
            if value[:1] != _JSONB_VERSION:
                # A jsonb version this code cannot parse: drop it rather than let it through.
                return self.null(()) if self._first(value) >= 0 else None
            body = self._mask_json(value[1:], rule.cues)
            return None if body is None else _JSONB_VERSION + body
        if kind is Kind.NUMBER:
            return self._mask_number(rule, value)
        if kind is Kind.BYTEA:
            return self._mask_bytea(rule, value)
        if kind is Kind.HEX_TEXT:
            return self._mask_hex_text(value, rule.cues)
        if kind is Kind.NUMBERS:
            return None if self.mask_text(value, rule.cues) is None else self.null(())
        if kind in (Kind.INET, Kind.DATE):
            assert rule.entity is not None  # INET and DATE rules carry their entity
            return self.null([rule.entity])
        if kind is Kind.UNDECLARED and is_text(value):
            return self.mask_text(value, rule.cues)  # an enum, citext…: the common case
        return self._mask_layout(rule, value)

    def _mask_document(self, value: bytes, cues: frozenset[int]) -> bytes | None:
        """Text, or JSON when it parses as such."""
        return self._mask_json(value, cues) if _is_json(value) else self.mask_text(value, cues)

    def _mask_bytea(self, rule: ValueRule, value: bytes) -> Masked:
        if rule.binary:
            return self._mask_document(value, rule.cues)
        try:
            content = bytea_content(value)
        except Undecodable:
            return self.null(())
        if not rule.cues and self._first(content) < 0:
            return None
        masked = self._mask_document(content, rule.cues)
        return None if masked is None else bytea_text(masked, value)

    def _mask_hex_text(self, value: bytes, cues: frozenset[int]) -> Masked:
        """A text literal whose bytea parts are in hex: each part's content masked as a
        bytea's is (and written back in hex), then the literal as text."""

        def part(match: re.Match[bytes]) -> bytes:
            content = bytes.fromhex(match[1].decode("ascii"))
            if not cues and self._first(content) < 0:
                return match[0]
            masked = self._mask_document(content, cues)
            return match[0] if masked is None else b"\\\\x" + masked.hex().encode("ascii")

        parts = _HEX_PART.sub(part, value) if b"\\x" in value else value
        whole = self.mask_text(parts, cues)
        if whole is not None:
            return whole
        return None if parts == value else parts

    def _mask_layout(self, rule: ValueRule, value: bytes) -> Masked:
        """A binary value read part by part, each part by its type; NULL (counted) when its
        bytes do not have the layout of its type."""

        def part(type_oid: int, data: bytes) -> Masked:
            key = (rule.name, type_oid)
            part_rule = self._part_rules.get(key)
            if part_rule is None:
                if len(self._part_rules) >= _PART_RULES:
                    self._part_rules.clear()
                part_rule = self.rule(Column(rule.name, type_oid, True))
                self._part_rules[key] = part_rule
            if part_rule.kind is not Kind.SKIP:
                return self.mask(part_rule, data)
            if len(data) in PART_WIDTHS.get(type_oid, ()):
                return None
            # A part whose length does not fit its type's (a broken or hostile target).
            return self.mask(self._undeclared, data)

        kind, oid = rule.kind, rule.type_oid
        self._depth += 1
        try:
            if kind is Kind.ARRAY:
                masked = mask_array(value, part)
            elif kind is Kind.RECORD:
                masked = mask_record(value, part)
            elif kind is Kind.RANGE:
                masked = mask_range(value, RANGE_SUBTYPES[oid or 0], part)
            elif kind is Kind.MULTIRANGE:
                masked = mask_multirange(value, MULTIRANGE_SUBTYPES[oid or 0], part)
            elif kind is Kind.TSVECTOR:
                masked = mask_tsvector(value, part)
            else:
                masked = mask_undeclared(value, part)
        except (Undecodable, RecursionError):
            # Parts nested past the interpreter's depth can only come from a hostile target.
            return self.null(())
        finally:
            self._depth -= 1
        # Parts are read where the layout puts them; bytes that are not what they claim (a
        # broken target) could join what no part held. What leaves must hold nothing whole.
        if self._depth == 0 and masked is not NULL:
            out = value if masked is None else masked
            hits = self._triggered(out)
            if hits and self._scanner.find(out.decode("utf-8", "surrogateescape"), NO_CUES, hits):
                return self.null(())
        return masked

    def mask_text(self, value: bytes | memoryview, cues: frozenset[int]) -> bytes | None:
        hits = self._triggered(value)
        if not hits and not cues:
            return None
        text = str(value, "utf-8", "surrogateescape")
        spans = self._scanner.find(text, cues, hits)
        if not spans:
            return None
        counts = self.counts
        for _, _, entity in spans:  # _tally() inline: this runs for every masked value
            counts[entity] = counts.get(entity, 0) + 1
        return self._policy.mask(text, spans).encode("utf-8", "surrogateescape")

    def _mask_json(self, value: bytes, cues: frozenset[int]) -> bytes | None:
        if not cues and self._first(value) < 0:
            return None
        found: list[str] = []
        text = value.decode("utf-8", "surrogateescape")
        try:
            masked = mask_json(text, self._scanner, self._policy, cues, found)
        except ValueError:
            # Not JSON after all (a broken or hostile upstream): mask it as plain text.
            return self.mask_text(value, cues)
        if masked is None:
            return None
        self.tally(found)
        return masked.encode("utf-8", "surrogateescape")

    def _mask_number(self, rule: ValueRule, value: bytes) -> Nulled | None:
        if rule.binary:
            assert rule.type_oid is not None  # NUMBER rules come from described columns
            digits = binary_number(rule.type_oid, value)
        else:
            digits = value.decode("ascii") if value.isdigit() else None
        if digits is None:
            return None
        span = whole_number(self._scanner, digits, rule.cues)
        return None if span is None else self.null([span.entity])

    def null(self, entities: Iterable[str]) -> Nulled:
        self.tally([*entities, NULLED])
        return NULL

    def tally(self, entities: Iterable[str]) -> None:
        counts = self.counts
        for entity in entities:
            counts[entity] = counts.get(entity, 0) + 1


def _is_json(value: bytes) -> bool:
    if value[:1] not in (b"{", b"["):
        return False
    try:
        json.loads(value)
    except (ValueError, RecursionError):
        return False
    return True
