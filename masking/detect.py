"""Detectors: one loose regex per entity that finds candidates, and a validator that keeps only
the well-formed ones.

:data:`PREFILTER` is a single search that every sensitive value trips; text it does not match
is clean and no detector runs. :func:`find_entities` answers non-overlapping spans in text
order; where two detectors claim overlapping text, the one earlier in :data:`DETECTORS` wins
(a password inside a connection URI is not also read as an e-mail address).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from masking import validators as v

EMAIL = "EMAIL"
CREDIT_CARD = "CREDIT_CARD"
US_SSN = "US_SSN"
IBAN = "IBAN"
PHONE = "PHONE"
PRIVATE_KEY = "PRIVATE_KEY"
AWS_ACCESS_KEY = "AWS_ACCESS_KEY"
GITHUB_TOKEN = "GITHUB_TOKEN"
GITLAB_TOKEN = "GITLAB_TOKEN"
SLACK_TOKEN = "SLACK_TOKEN"
STRIPE_KEY = "STRIPE_KEY"
OPENAI_KEY = "OPENAI_KEY"
GOOGLE_API_KEY = "GOOGLE_API_KEY"
JWT = "JWT"
URI_PASSWORD = "URI_PASSWORD"

PREFILTER = re.compile(
    r"@|\+\d|\d(?:[ -]?\d){8}|[A-Z]{2}\d\d|A(?:KIA|SIA|Iza)|gh[pousr]_|github_pat_|glpat-"
    r"|xox[abprs]-|_live_|sk-|eyJ|-----BEGIN|://"
)

# Column names that make a bare nine-digit number a Social Security number.
SSN_COLUMN = re.compile(r"ssn|social.?sec|soc.?sec|tax.?payer.?id", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Detector:
    """``pattern`` finds candidates; ``group`` is the sensitive part of a match; ``valid``
    confirms it, or ``extent`` gives the length of the valid value at the start of the match
    (0 for none) where the regex may take in trailing text; with ``column`` set, the detector
    runs only for a matching column name."""

    entity: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] = v.always
    group: int = 0
    column: re.Pattern[str] | None = None
    extent: Callable[[str], int] | None = None


@dataclass(frozen=True, slots=True)
class Span:
    """``text[start:end]`` is a value of ``entity``."""

    start: int
    end: int
    entity: str


_NOT_DIGIT_RUN_BEFORE = r"(?<![\w.])(?<!\d[ -])"
_NOT_DIGIT_RUN_AFTER = r"(?![\w]|[ -]\d|\.\d)"
_TOKEN_BEFORE = r"(?<![\w-])"
_TOKEN_AFTER = r"(?![\w-])"

DETECTORS: tuple[Detector, ...] = (
    Detector(
        PRIVATE_KEY,
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            r".*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
            re.DOTALL,
        ),
    ),
    Detector(
        URI_PASSWORD,
        # Greedy up to the last "@" before the host: passwords may hold an unescaped "@".
        re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:([^\s/]+)@[^\s/@]"),
        group=1,
    ),
    Detector(
        JWT,
        re.compile(_TOKEN_BEFORE + r"eyJ[\w-]+\.[\w-]+\.[\w-]+" + _TOKEN_AFTER),
        v.valid_jwt,
    ),
    Detector(
        AWS_ACCESS_KEY, re.compile(r"(?<![A-Za-z0-9])A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
    ),
    Detector(
        GITHUB_TOKEN,
        re.compile(
            r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})"
            r"(?![A-Za-z0-9])"
        ),
    ),
    Detector(
        GITLAB_TOKEN,
        re.compile(_TOKEN_BEFORE + r"glpat-[\w-]{20}" + _TOKEN_AFTER),
        v.random_looking,
    ),
    Detector(
        SLACK_TOKEN,
        re.compile(r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+(?![A-Za-z0-9])"),
        v.valid_slack,
    ),
    Detector(
        STRIPE_KEY,
        re.compile(r"(?<![A-Za-z0-9])[sr]k_live_[A-Za-z0-9]{24,}(?![A-Za-z0-9])"),
        v.random_looking,
    ),
    Detector(
        OPENAI_KEY,
        re.compile(_TOKEN_BEFORE + r"sk-[\w-]{20,}" + _TOKEN_AFTER),
        v.random_looking,
    ),
    Detector(GOOGLE_API_KEY, re.compile(_TOKEN_BEFORE + r"AIza[\w-]{35}" + _TOKEN_AFTER)),
    Detector(
        EMAIL,
        re.compile(
            r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"
        ),
        v.valid_email,
    ),
    Detector(
        IBAN,
        re.compile(
            r"(?<![A-Za-z0-9])[A-Z]{2}\d\d"
            r"(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)"
            r"(?![A-Za-z0-9])"
        ),
        extent=v.iban_extent,
    ),
    Detector(
        CREDIT_CARD,
        re.compile(_NOT_DIGIT_RUN_BEFORE + r"\d(?:[ -]?\d){12,18}" + _NOT_DIGIT_RUN_AFTER),
        v.valid_card,
    ),
    Detector(
        US_SSN,
        re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])"),
        v.valid_ssn,
    ),
    Detector(
        US_SSN,
        re.compile(r"(?<![\w.-])\d{9}(?![\w.-])"),
        v.valid_ssn,
        column=SSN_COLUMN,
    ),
    Detector(
        PHONE,
        re.compile(r"(?<![\w+])\+\d(?:[ -]?\d){7,14}" + _NOT_DIGIT_RUN_AFTER),
        v.valid_phone,
    ),
)

ENTITIES: tuple[str, ...] = tuple(dict.fromkeys(d.entity for d in DETECTORS))


def find_entities(text: str, column: str | None = None) -> list[Span]:
    """Non-overlapping sensitive spans of ``text`` in text order; ``column`` is the name of the
    column the value came from, used as context (a bare nine-digit SSN needs it)."""
    if PREFILTER.search(text) is None:
        return []
    taken: list[Span] = []
    for detector in DETECTORS:
        if detector.column is not None and (
            column is None or detector.column.search(column) is None
        ):
            continue
        for match in detector.pattern.finditer(text):
            start, end = match.span(detector.group)
            if detector.extent is not None:
                end = start + detector.extent(match.group(detector.group))
                if end == start:
                    continue
            elif not detector.valid(match.group(detector.group)):
                continue
            if not any(start < s.end and s.start < end for s in taken):
                taken.append(Span(start, end, detector.entity))
    taken.sort(key=lambda s: s.start)
    return taken
