"""The detector table: for each entity, a loose regex that finds candidates, a validator that
keeps the well-formed ones, and a *trigger* that every match implies.

A trigger is an RE2 pattern over the UTF-8 bytes of a value: when the detector reports a span,
the trigger matches somewhere in the value's bytes. Triggers are what the in-flight masker
searches for, all at once, before any Python runs; they must never be narrower than their
detector (``tests/test_masking_stream.py`` checks this over generated rows). They match no
NUL byte, except the one that may end a card number's right context, and the length of every
message under 16 MiB starts with one: a match never runs past the first length byte of the
next wire message, so it cannot hide that message's own matches.

Detectors with a ``cue`` report a match only when the cue is found in the column name, the
JSON key or (unless ``keyword`` is off) the :data:`CUE_WINDOW` characters before it; their
trigger is the cue's words as the bytes of a keyword or a JSON key show them. (A column name
is not in the bytes: a plan with a cued column sends every row to the masker.)

Triggers are kept short and free of ``\b``: RE2 runs them all as one DFA, and long counted
repetitions or word boundaries multiply its states until its cache thrashes (3× slower).
Where two detectors claim overlapping text, the one earlier in :data:`DETECTORS` wins (a
password inside a connection URI is not also read as an e-mail address).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass

from masking import entities as e
from masking import validators as v

CUE_WINDOW = 24


@dataclass(frozen=True, slots=True)
class Detector:
    """``pattern`` finds candidates; ``group`` is the sensitive part of a match; ``valid``
    confirms it, or ``extent`` gives the length of the valid value at the start of the match
    (0 for none) where the regex may take in trailing text. With ``back`` the regex starts at
    a literal (``@``, ``://``), which Python's regex engine finds fast, and the value extends
    backwards over the characters of ``back`` (at least one): the local part of an address,
    the scheme of a URI. A ``cue`` is required context; ``keyword`` says whether words in the
    text itself may give it."""

    entity: str
    pattern: re.Pattern[str]
    trigger: str
    valid: Callable[[str], bool] = v.always
    group: int = 0
    extent: Callable[[str], int] | None = None
    cue: re.Pattern[str] | None = None
    keyword: bool = False
    back: str = ""


def _plain(entity: str, pattern: str, trigger: str, **kwargs: object) -> Detector:
    return Detector(entity, re.compile(pattern, re.ASCII), trigger, **kwargs)  # type: ignore[arg-type]


def _cued(
    entity: str,
    pattern: str,
    cue: str,
    trigger: str,
    valid: Callable[[str], bool] = v.always,
    *,
    keyword: bool = True,
) -> Detector:
    return Detector(
        entity,
        re.compile(pattern, re.ASCII),
        trigger,
        valid,
        cue=re.compile(cue, re.ASCII | re.IGNORECASE),
        keyword=keyword,
    )


# An isolated run of digits: no word character or decimal point glued to either end, no "+"
# before (a phone number), and no further digit group after a single separator
# ("4111 1111 1111 1111 2222" is not a card). The first digit comes before the lookbehinds
# so that Python's regex engine skips ahead to digits instead of trying every position.
_DIGIT_RUN_START = r"\d(?<![\w.+]\d)(?<!\d[ -]\d)"


def _opening(head: str, not_before: str) -> str:
    """``head`` (fixed width) not preceded by a ``not_before`` character. The lookbehind comes
    after ``head`` so that Python's regex engine searches for ``head`` itself, several times
    faster than trying a leading lookbehind at every position."""
    return f"{head}(?<!{not_before}{head})"


_NOT_DIGIT_RUN_AFTER = r"(?![\w]|[ -]\d|\.\d)"
_TOKEN_AFTER = r"(?![\w-])"
_ALONE_BEFORE = r"(?<![\w.-])"
_ALONE_AFTER = r"(?![\w-]|\.\d)"

_LOCAL_PART = string.ascii_letters + string.digits + "._%+-"
# The prefilter reads UTF-8 bytes: the dashes U+2010–U+2015 are E2 80 90–95.
_SSN_SEPARATOR = r"(?:[- ./]|\xe2\x80[\x90-\x95])"
_SSN_SEPARATED = f"[0-9]{{3}}{_SSN_SEPARATOR}[0-9]{{2}}{_SSN_SEPARATOR}[0-9]{{4}}"
_SCHEME = string.ascii_letters + string.digits + "+.-"
# "://" (or ":\/\/" in JSON) then no blank, slash or NUL up to an "@".
_AUTHORITY = r":\\?/\\?/[^\x00\t\n\x0b\x0c\r /]*@"
# The end of a digit run as the bytes of a row show it: a byte that is not a digit, a
# lowercase letter (UUIDs, hex) or a separator; a separator and no digit; or the end of the
# value, where the next length (NUL or 0xFF) or message type follows ('s' is lowercase).
_RUN_END = r"(?:[^0-9a-z_ -]|[ -][^0-9]|[ -]$|[a-z]\x00|$)"
_SSN_WORDS = "(?i:ssn|social[ _.-]?sec|soc[ _.-]?sec|tax[ _.-]?payer[ _.-]?id)"
# A JSON key holding a phone word: the word, the rest of the key, its closing quote.
_PHONE_KEY = r'(?i:phone|mobile|cell|fax|tel|msisdn)(?:[^"\\\x00]|\\[^\x00])*"'
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"

DETECTORS: tuple[Detector, ...] = (
    Detector(
        e.PRIVATE_KEY,
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            r".*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
            re.DOTALL | re.ASCII,
        ),
        "-----BEGIN",
    ),
    # Greedy up to the last "@" before the host: passwords may hold an unescaped "@".
    _plain(e.URI_PASSWORD, r"://[^\s:/@]+:([^\s/]+)@[^\s/@]", _AUTHORITY, group=1, back=_SCHEME),
    _plain(
        e.JWT,
        _opening("eyJ", r"[\w-]") + r"[\w-]+\.[\w-]+\.[\w-]+" + _TOKEN_AFTER,
        "eyJ",
        valid=v.valid_jwt,
    ),
    _plain(
        e.AWS_ACCESS_KEY,
        _opening("A[KS]IA", "[A-Za-z0-9]") + r"[A-Z0-9]{16}(?![A-Za-z0-9])",
        "A[KS]IA[A-Z0-9]{4}",
        valid=v.not_placeholder,
    ),
    _plain(
        e.GITHUB_TOKEN,
        rf"(?:{_opening('gh[pousr]_', '[A-Za-z0-9]')}[A-Za-z0-9]{{36}}"
        rf"|{_opening('github_pat_', '[A-Za-z0-9]')}[A-Za-z0-9]{{22}}_[A-Za-z0-9]{{59}})"
        r"(?![A-Za-z0-9])",
        "gh[pousr]_|github_pat_",
        valid=v.not_placeholder,
    ),
    _plain(
        e.GITLAB_TOKEN,
        _opening("glpat-", r"[\w-]") + r"[\w-]{20}" + _TOKEN_AFTER,
        "glpat-",
        valid=v.random_looking,
    ),
    _plain(
        e.SLACK_TOKEN,
        _opening("xox[abprs]-", "[A-Za-z0-9]") + r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+(?![A-Za-z0-9])",
        "xox[abprs]-",
        valid=v.valid_slack,
    ),
    _plain(
        e.STRIPE_KEY,
        _opening("[sr]k_live_", "[A-Za-z0-9]") + r"[A-Za-z0-9]{24,}(?![A-Za-z0-9])",
        "[sr]k_live_",
        valid=v.random_looking,
    ),
    _plain(
        e.OPENAI_KEY,
        _opening("sk-", r"[\w-]") + r"[\w-]{20,}" + _TOKEN_AFTER,
        "sk-[0-9A-Za-z_-]{20}",
        valid=v.random_looking,
    ),
    _plain(
        e.GOOGLE_API_KEY,
        _opening("AIza", r"[\w-]") + r"[\w-]{35}" + _TOKEN_AFTER,
        "AIza",
        valid=v.not_placeholder,
    ),
    _plain(
        e.EMAIL,
        r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b",
        "[A-Za-z0-9._%+-]@[A-Za-z0-9-]",
        valid=v.valid_email,
        back=_LOCAL_PART,
    ),
    _plain(
        e.IBAN,
        _opening("[A-Z]", "[A-Za-z0-9]") + r"[A-Z]\d\d"
        r"(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)"
        r"(?![A-Za-z0-9])",
        "[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11}| [A-Z0-9]{4} [A-Z0-9]{4})",
        extent=v.iban_extent,
    ),
    _plain(
        e.CREDIT_CARD,
        _DIGIT_RUN_START + r"(?:[ -]?\d){12,18}" + _NOT_DIGIT_RUN_AFTER,
        "[0-9](?:[ -]?[0-9]){12,18}" + _RUN_END,
        valid=v.valid_card,
    ),
    _plain(
        e.US_SSN,
        # 123-45-6789, and with spaces, dots, slashes or any dash, the same one twice
        _opening(r"\d", r"[\w./-]") + r"\d\d([- ./\u2010-\u2015])\d{2}\1\d{4}(?![\w-]|[./ ]\d)",
        _SSN_SEPARATED,
        valid=v.valid_ssn,
    ),
    _cued(
        e.US_SSN,
        # Not part of a decimal; a full stop may end the sentence.
        _opening(r"\d", r"[\w.-]") + r"\d{8}(?![\w-]|\.\d)",
        e.SSN_CUE,
        _SSN_WORDS,
        v.valid_ssn,
    ),
    _plain(
        e.PHONE,
        # "+1 415-555-2671", "+1 (415) 555-2671", "+44 (0)20 7946 0958"
        _opening(r"\+", r"[\w+]")
        + r"\d(?:[ -]?\d){0,2}(?:[ -]?\(\d{1,4}\))?(?:[ -]?\d){4,14}"
        + _NOT_DIGIT_RUN_AFTER,
        r"\+[1-9](?:[ -]?[0-9]){7}|\+[1-9](?:[ -]?[0-9]){0,2}[ -]?\(",
        valid=v.valid_phone,
    ),
    _cued(
        e.PHONE,
        r"(?<![\w+.-])(?:\(\d{1,5}\) ?|\d{1,5}[ .-]?)(?:\d{2,5}[ .-]?){0,3}\d{2,5}"
        r"(?![\w]|[ .-]?\d)",
        e.PHONE_CUE,
        _PHONE_KEY,
        v.valid_national_phone,
        keyword=False,  # "phone 4155552671" in prose is as often an order or ticket number
    ),
    _plain(
        e.IP_ADDRESS,
        r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)",
        r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]",
        valid=v.valid_ipv4,
    ),
    _plain(
        e.IP_ADDRESS,
        r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?![\w:])",
        "::|[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){5}:[0-9A-Fa-f]",
        valid=v.valid_ipv6,
    ),
    _plain(
        e.UK_NINO,
        r"(?<![A-Za-z0-9])[A-Z]{2} ?\d\d ?\d\d ?\d\d ?[A-D](?![A-Za-z0-9])",
        "[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]",
        valid=v.valid_nino,
    ),
    _cued(
        e.NHS_NUMBER,
        _ALONE_BEFORE + r"\d{3}[ -]?\d{3}[ -]?\d{4}" + _ALONE_AFTER,
        e.NHS_CUE,
        "(?i:nhs)",
        v.valid_nhs,
    ),
    _cued(
        e.US_BANK_ACCOUNT,
        _ALONE_BEFORE + r"\d{8,17}" + _ALONE_AFTER,
        e.BANK_CUE,
        "(?i:bank|acct|account[ _.-]?(?:no|num)|routing)",
    ),
    _cued(
        e.US_PASSPORT,
        _ALONE_BEFORE + r"[A-Z]?\d{8,9}" + _ALONE_AFTER,
        e.PASSPORT_CUE,
        "(?i:passport)",
    ),
    _cued(
        e.US_DRIVER_LICENSE,
        _ALONE_BEFORE + r"[A-Z]{0,2}\d{5,13}" + _ALONE_AFTER,
        e.LICENSE_CUE,
        "(?i:driver|licen[cs]e)",
    ),
    _cued(
        e.DATE_OF_BIRTH,
        r"(?<![\w/.-])(?i:\d{4}-\d\d?-\d\d?|\d\d?([/.-])\d\d?\1(?:\d{4}|\d\d)"
        rf"|\d\d? {_MONTH},? \d{{4}}|{_MONTH} \d\d?,? \d{{4}})(?![\w/-]|\.\d)",
        e.BIRTH_CUE,
        "(?i:birth|dob|born)",
        v.valid_date,
    ),
)
