"""How a detected value is replaced: ``redact``, ``partial`` or ``hash``.

Each strategy is a pure function of the entity name and the matched text (and, for ``hash``,
a key), so the same input always gives the same output.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import string
from collections.abc import Callable
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
# partial() replaces letters and digits in C rather than a Python step per character: ASCII
# text (cards, phones, IBANs) by one byte translation, anything else by a regex of exactly the
# characters for which str.isalnum() holds (tests/test_masking_fastpaths.py checks all Unicode).
_ASCII_ALNUM = (string.ascii_letters + string.digits).encode()
_ASCII_STARS = bytes.maketrans(_ASCII_ALNUM, b"*" * len(_ASCII_ALNUM))
_ALNUM = re.compile(r"[^\W_]")


def redact(entity: str, value: str) -> str:
    """``[EMAIL]``, ``[CREDIT_CARD]``, …: the entity name and nothing of the value."""
    return f"[{entity}]"


def partial(entity: str, value: str) -> str:
    """Every letter and digit but the last four becomes ``*``; separators stay where they
    were (``4242 4242 4242 4242`` → ``**** **** **** 4242``). Values with fewer than eight
    letters and digits are masked whole, since four characters would be half of them."""
    if value.isascii():
        raw = value.encode()
        stars = raw.translate(_ASCII_STARS)
        masked, alnum = stars.decode(), stars.count(b"*") - raw.count(b"*")
    else:
        masked, alnum = _ALNUM.subn("*", value)
    if alnum < 2 * KEEP_LAST:
        return masked
    cut = len(value) - KEEP_LAST
    if not value[cut:].isalnum():  # separators among the last characters: count back
        cut, kept = len(value), 0
        while kept < KEEP_LAST:
            cut -= 1
            kept += value[cut].isalnum()
    return masked[:cut] + value[cut:]


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


def replacer(strategy: Strategy, entity: str, key: bytes | None) -> Callable[[str], str]:
    """The function that replaces a value of ``entity`` under ``strategy``; ``hash`` needs
    ``key``. Built once per entity, so that masking a value costs one call."""
    if strategy == "redact":
        token = redact(entity, "")
        return lambda value: token
    if strategy == "partial":
        return functools.partial(partial, entity)
    if key is None:
        raise ValueError("the hash strategy needs a hash key")
    return functools.partial(hash_token, entity, key=key)
