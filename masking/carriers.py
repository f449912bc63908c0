"""The four ways the evaluation presents a value to the masker, and the column names around it.

- ``bare``: the value alone in a cell of a text or varchar column (an all-digit value also
  in int8 or numeric, text or binary format);
- ``sentence``: the value embedded in prose, markup or quotes;
- ``json``: the value (a string, or a number when it is all digits) under a key inside a
  JSON document in a json or jsonb column (text or binary format), so that the key is its
  context;
- ``kv``: the value in a line of ``key=value`` pairs, under its own key.

``bare`` and ``json`` go the way the relay drives the in-flight masker: a DataRow built with
:mod:`proxy.messages`, :meth:`RowMasker.candidates` over its bytes (or
:meth:`RowMasker.every_row` for the plan), :meth:`RowMasker.mask_row`, and the new row decoded
again; ``sentence`` and ``kv`` go through :func:`masking.mask_text` with the column name.

The *context* name is the column name for ``bare`` and ``sentence`` and the key for ``json``
and ``kv`` (whose columns get neutral names): informative, neutral or misleading for a
positive (``card_number``, ``note``, ``order_id`` holding a card), natural or neutral for a
hard negative.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import cast

from masking import entities as e
from masking import mask_text
from masking.entities import NULLED
from masking.policy import MaskingPolicy
from masking.stream import ColumnPlan, RowMasker
from proxy import messages as m
from proxy.codec import decode_backend

CARRIERS = ("bare", "sentence", "json", "kv")
IN_FLIGHT = frozenset({"bare", "json"})

NEUTRAL = ("value", "note", "data", "text", "comment", "details")
MISLEADING = ("order_id", "created_at", "sku", "version", "invoice_no", "tracking_no", "status")
INFORMATIVE: dict[str, tuple[str, ...]] = {
    e.CREDIT_CARD: ("card_number", "cc", "pan"), e.US_SSN: ("ssn", "social_security_number"),
    e.EMAIL: ("email", "contact_email"), e.IBAN: ("iban", "bank_account"),
    e.PHONE: ("phone", "mobile", "tel"), e.AWS_ACCESS_KEY: ("aws_access_key_id",),
    e.GITHUB_TOKEN: ("github_token",), e.GITLAB_TOKEN: ("gitlab_token",),
    e.SLACK_TOKEN: ("slack_bot_token",), e.STRIPE_KEY: ("stripe_secret_key",),
    e.OPENAI_KEY: ("openai_api_key",), e.GOOGLE_API_KEY: ("google_api_key",),
    e.JWT: ("id_token", "jwt"), e.PRIVATE_KEY: ("private_key", "ssh_key"),
    e.URI_PASSWORD: ("database_url", "dsn"), e.US_ITIN: ("itin",), e.BR_CPF: ("cpf",),
    e.BR_CNPJ: ("cnpj",), e.IT_FISCAL_CODE: ("codice_fiscale",), e.US_MBI: ("mbi",),
    e.AWS_SECRET_KEY: ("aws_config",), e.AZURE_STORAGE_KEY: ("connection_string",),
    e.SLACK_WEBHOOK: ("webhook_url",), e.SENDGRID_KEY: ("sendgrid_api_key",),
    e.NPM_TOKEN: ("npm_token",), e.PYPI_TOKEN: ("pypi_token",), e.PASSWORD: ("dsn", "env"),
}  # fmt: skip
_JSON_COLUMNS = ("payload", "attributes", "metadata")
_KV_COLUMNS = ("params", "log_line", "message")
SENTENCES = (
    "Customer said: {}, please check (ticket 42).", "contact {} asap", "({})", "ref: {}.",
    "<td>{}</td>", '"{}"', "Zoë → {} ✓", "{}\nsecond line", "note: {}; ok", "value={}&next=1",
    "[{}]", "see {}!", "«{}»", "\t{}\t", "'{}',", "Moved from the old system on Friday: {}",
)  # fmt: skip
_KV_FILLER = (("id", "42"), ("status", "shipped"), ("qty", "3"), ("region", "eu-west-1"))
_KV_SEPARATORS = ("; ", "&", " ", ", ")
_TEXT, _VARCHAR, _INT4, _INT8, _NUMERIC, _JSON, _JSONB = 25, 1043, 23, 20, 1700, 114, 3802


@dataclass(frozen=True, slots=True)
class Outcome:
    """One value through one carrier: ``text`` is what the masker read (a cell, a JSON
    document, a line) with the value's sensitive part at ``text[secret[0]:secret[1]]``;
    ``output`` is what came out (``None`` when the cell became SQL NULL) and ``entities``
    what the masker reported."""

    text: str
    secret: tuple[int, int]
    output: str | None
    entities: frozenset[str]

    @property
    def touched(self) -> bool:
        return self.output != self.text

    def visible(self) -> list[int]:
        """Offsets into the sensitive part of its letters and digits still in place in the
        output: read inwards from either end, where the output agrees with the text (a
        masked span breaks the agreement; what lies outside it is unchanged)."""
        if self.output is None:
            return []
        text, output = self.text, self.output
        start, end = self.secret
        head = _shared_prefix(text, output)
        tail = _shared_prefix(text[::-1], output[::-1])
        tail = min(tail, min(len(text), len(output)) - head)  # not what the head took
        shown = [*range(start, min(head, end)), *range(max(len(text) - tail, start), end)]
        return [i - start for i in shown if text[i].isalnum()]


class Carriers:
    """The carriers bound to one policy (one in-flight masker, as a session has)."""

    def __init__(self, policy: MaskingPolicy) -> None:
        self._policy = policy
        self._masker = RowMasker(policy)
        self._plans: dict[tuple[str, int, int], ColumnPlan] = {}

    def run(
        self, carrier: str, rng: random.Random, value: str, secret: tuple[int, int], name: str
    ) -> Outcome:
        """``value``, whose sensitive part is ``value[secret[0]:secret[1]]``, through
        ``carrier`` with context name ``name``."""
        if carrier == "bare":
            return self._bare(rng, value, secret, name)
        if carrier == "json":
            return self._json(rng, value, secret, name)
        if carrier == "sentence":
            before, after = rng.choice(SENTENCES).split("{}")
            column = name
        else:
            pairs = [f"{k}={v}" for k, v in rng.sample(_KV_FILLER, rng.randint(1, 3))]
            pairs.insert(rng.randrange(len(pairs) + 1), f"{name}={value}")
            sep = rng.choice(_KV_SEPARATORS)
            line = sep.join(pairs)
            at = line.index(f"{name}={value}") + len(name) + 1
            before, after = line[:at], line[at + len(value) :]
            column = rng.choice(_KV_COLUMNS)
        text = before + value + after
        result = mask_text(text, column=column, policy=self._policy)
        span = (len(before) + secret[0], len(before) + secret[1])
        return Outcome(text, span, result.value, frozenset(result.entities))

    def _bare(self, rng: random.Random, value: str, secret: tuple[int, int], name: str) -> Outcome:
        oid, binary = rng.choice((_TEXT, _VARCHAR)), False
        if value.isdigit() and value[0] != "0" and rng.random() < 0.5:
            oid = rng.choice((_INT8, _NUMERIC)) if int(value) < 2**63 else _NUMERIC
            binary = oid == _INT8 and rng.random() < 0.5
        cell = int(value).to_bytes(8, "big") if binary else value.encode()
        out = self._in_flight(name, oid, binary, cell)
        output = value if out == cell else None if out is None else out.decode()
        return Outcome(value, secret, output, self._reported())

    def _json(self, rng: random.Random, value: str, secret: tuple[int, int], key: str) -> Outcome:
        number = value.isdigit() and value[0] != "0" and rng.random() < 0.5
        encoded = value if number else json.dumps(value, ensure_ascii=False)
        shapes = (
            '{"id": 42, "%s": @, "status": "shipped"}',
            '{"customer": {"name": "Zoë", "%s": @}, "tags": ["a", "b"]}',
            '{"events": [{"type": "update", "at": 1700000000, "%s": @}]}',
        )
        before, after = (rng.choice(shapes) % key).split("@")
        doc = before + encoded + after
        if number:
            span = (len(before), len(before) + len(value))
        else:  # JSON escapes character by character, so the parts encode separately
            inner = [json.dumps(part, ensure_ascii=False)[1:-1] for part in _split(value, secret)]
            start = len(before) + 1 + len(inner[0])
            span = (start, start + len(inner[1]))
        oid = rng.choice((_JSON, _JSONB))
        binary = oid == _JSONB and rng.random() < 0.5
        version = b"\x01" if binary else b""
        out = self._in_flight(rng.choice(_JSON_COLUMNS), oid, binary, version + doc.encode())
        output = None if out is None else out[len(version) :].decode()
        return Outcome(doc, span, output, self._reported())

    def _in_flight(self, name: str, oid: int, binary: bool, cell: bytes) -> bytes | None:
        """``cell`` in column ``name`` next to an int4 id, through the relay's calls; the cell
        that comes out (``None`` for NULL)."""
        plan = self._plan(name, oid, binary)
        wire = m.DataRow((b"42", cell)).encode()
        masker = self._masker
        if not (masker.candidates(wire) or masker.every_row(plan)):
            return cell
        body = masker.mask_row(wire[5:], plan)
        if body is None:
            return cell
        row = cast(m.DataRow, decode_backend(m.DATA_ROW, body))
        return row.values[1]

    def _plan(self, name: str, oid: int, binary: bool) -> ColumnPlan:
        key = (name, oid, int(binary))
        plan = self._plans.get(key)
        if plan is None:
            fields = (
                m.FieldDescription("id", 0, 1, _INT4, 4, -1, 0),
                m.FieldDescription(name, 0, 2, oid, -1, -1, int(binary)),
            )
            plan = ColumnPlan.from_row_description(m.RowDescription(fields).encode()[5:])
            self._plans[key] = plan
        return plan

    def _reported(self) -> frozenset[str]:
        return frozenset(self._masker.take_counts()) - {NULLED}


def _split(value: str, secret: tuple[int, int]) -> tuple[str, str, str]:
    return value[: secret[0]], value[secret[0] : secret[1]], value[secret[1] :]


def _shared_prefix(a: str, b: str) -> int:
    """How many leading characters ``a`` and ``b`` have in common (by halving, so that the
    comparisons run in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low
