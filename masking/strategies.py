"""How a detected value is replaced: ``redact``, ``partial`` or ``hash``.

Each strategy is a pure function of the entity name and the matched text (and, for ``hash``,
a key), so the same input always gives the same output.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from masking import entities as e

Strategy = Literal["redact", "partial", "hash"]

KEEP_LAST = 4
HASH_HEX_CHARS = 8
_SEPARATED = frozenset(
    {
        e.CREDIT_CARD, e.IBAN, e.PHONE, e.US_SSN, e.UK_NINO, e.NHS_NUMBER, e.US_BANK_ACCOUNT,
        e.US_PASSPORT, e.US_DRIVER_LICENSE,
    }
)  # fmt: skip
_CASELESS = frozenset({e.EMAIL, e.IP_ADDRESS})


def redact(entity: str, value: str) -> str:
    """``[EMAIL]``, ``[CREDIT_CARD]``, …: the entity name and nothing of the value."""
    return f"[{entity}]"


def partial(entity: str, value: str) -> str:
    """Every letter and digit but the last four becomes ``*``; separators stay where they
    were (``4242 4242 4242 4242`` → ``**** **** **** 4242``). Values with fewer than eight
    letters and digits are masked whole, since four characters would be half of them."""
    alnum = sum(ch.isalnum() for ch in value)
    keep = KEEP_LAST if alnum >= 2 * KEEP_LAST else 0
    out: list[str] = []
    seen = 0
    for ch in value:
        if ch.isalnum():
            seen += 1
            out.append(ch if seen > alnum - keep else "*")
        else:
            out.append(ch)
    return "".join(out)


def _canonical(entity: str, value: str) -> str:
    # The same card, IBAN or e-mail written two ways hashes alike, so joins on it still work.
    if entity in _SEPARATED:
        return "".join(ch for ch in value if ch.isalnum()).upper()
    if entity in _CASELESS:
        return value.lower()
    return value


def hash_token(entity: str, value: str, key: bytes) -> str:
    """``[EMAIL:3f9a1c2b]``: the first hex digits of HMAC-SHA256 under ``key`` of the
    canonical value; stable for a key, unrelated across keys."""
    message = f"{entity}\x00{_canonical(entity, value)}".encode()
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()
    return f"[{entity}:{digest[:HASH_HEX_CHARS]}]"


def apply(strategy: Strategy, entity: str, value: str, key: bytes | None) -> str:
    """The replacement for ``value`` under ``strategy``; ``hash`` needs ``key``."""
    if strategy == "redact":
        return redact(entity, value)
    if strategy == "partial":
        return partial(entity, value)
    if key is None:
        raise ValueError("the hash strategy needs a hash key")
    return hash_token(entity, value, key)
