"""Validators that turn a regex candidate into a finding: checksums, issuer tables, SSA rules.

Each takes the candidate text exactly as matched and answers ``True`` only when the value is
well-formed by its specification, so the detectors' regexes may stay loose and cheap.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from urllib.parse import unquote

# ISO 13616 lengths (country code included) of every country in the SWIFT IBAN registry.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


# The digit sum of twice each digit, for Luhn: 5 → 10 → 1.
_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check over a string of ASCII digits."""
    raw = digits.encode()
    # Every second digit from the right is doubled; the byte sums run in C, and each ASCII
    # digit counts 48 over its value.
    total = sum(raw[-1::-2]) + sum(raw[-2::-2].translate(_DOUBLED)) - 48 * len(raw)
    return total % 10 == 0


def valid_ssn(candidate: str) -> bool:
    """SSA rules: area not 000, 666 or 900–999; group not 00; serial not 0000."""
    digits = "".join(c for c in candidate if c.isdigit())
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = int(digits[:3]), digits[3:5], digits[5:]
    return area not in (0, 666) and area < 900 and group != "00" and serial != "0000"


# ISO 7064 reads each letter as two digits: A = 10 … Z = 35.
_LETTER_VALUES = str.maketrans(
    {ch: str(int(ch, 36)) for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}
)


# The countries whose code is two hex letters, where a lower-case digest or UUID may hold it,
# and how many digits open their BBANs (SWIFT IBAN registry: all of it but Andorra's last
# twelve characters). An IBAN of theirs not all in capitals is read only with those digits,
# so that its trigger can ask for them and pass hex digests by.
HEX_LETTER_BBAN_DIGITS = {"AD": 8, "AE": 19, "BA": 16, "BE": 12, "DE": 18, "EE": 16}


def valid_iban(candidate: str) -> bool:
    """Country length from :data:`IBAN_LENGTHS` and the ISO 7064 mod-97 check, compact or
    grouped by spaces or dashes, in capitals or with the country code in lower case: then
    compact all in lower case (``gb82west…``; a random token mixes cases), and for a
    country of :data:`HEX_LETTER_BBAN_DIGITS` with those digits."""
    compact = candidate.replace(" ", "").replace("-", "")
    country = compact[:2].upper()
    if IBAN_LENGTHS.get(country) != len(compact) or not (compact.isalnum() and compact.isascii()):
        return False
    if compact != compact.upper():
        if not compact[:2].islower() or (len(compact) == len(candidate) and not compact.islower()):
            return False
        digits = HEX_LETTER_BBAN_DIGITS.get(country)
        if digits is not None and not compact[4 : 4 + digits].isdigit():
            return False
    rearranged = compact[4:] + compact[:4]
    return int(rearranged.translate(_LETTER_VALUES)) % 97 == 1


def iban_extent(candidate: str) -> int:
    """Length of the valid IBAN at the start of ``candidate`` (compact, or grouped in fours
    by single spaces or dashes as the IBAN regex takes it in), or 0; a grouped IBAN may be
    followed by a word that the loose regex took in."""
    want = IBAN_LENGTHS.get(candidate[:2].upper())
    if want is None:
        return 0
    # The want-th letter or digit ends there; grouped, a separator precedes every fourth.
    sep = candidate[4:5]
    end = want + (want - 1) // 4 if sep in (" ", "-") else want
    if end > len(candidate) or candidate[end : end + 1] not in ("", sep):
        return 0
    return end if valid_iban(candidate[:end]) else 0


# Endings of file names that no top-level domain has: "logo@2x.png" is an image.
FILE_SUFFIXES = frozenset(
    (
        "png", "jpg", "jpeg", "gif", "webp", "svg", "ico", "bmp", "tif", "tiff", "avif",
        "heic", "css", "js", "map", "json", "txt", "pdf", "xml", "html", "htm", "woff",
        "woff2", "ttf", "otf", "mp3", "mp4", "wav", "csv",
    )
)  # fmt: skip


def valid_email(candidate: str) -> bool:
    """Local part without leading, trailing or doubled dots; a dotted domain with labels,
    not a file name (``icon@2x.png``: a scale label such as ``2x``, or an image, font or
    document suffix no top-level domain has)."""
    local, _, domain = candidate.rpartition("@")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    # The first and last labels, read without splitting the domain: a scale label is
    # digits and an "x"; isdecimal() holds for exactly the characters \d matches.
    lowered = domain.lower()
    first = lowered.partition(".")[0]
    if lowered[lowered.rfind(".") + 1 :] in FILE_SUFFIXES or (
        first[-1:] == "x" and first[:-1].isdecimal()
    ):
        return False
    # No empty label and none starting with "-", read off the domain without splitting it.
    edges_ok = domain[:1] not in ("", ".", "-") and domain[-1] != "."
    return edges_ok and ".." not in domain and ".-" not in domain and "_" not in domain


def valid_encoded_email(candidate: str) -> bool:
    """An address whose ``@`` (and maybe more) is percent-encoded, as in a URL's query."""
    return valid_email(unquote(candidate))


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def valid_jwt(candidate: str) -> bool:
    """Three base64url parts whose first decodes to a JSON object with an ``alg`` member."""
    header = candidate.split(".", 1)[0]
    try:
        decoded = json.loads(_b64url_decode(header))
    except (binascii.Error, ValueError, RecursionError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def valid_der_key(candidate: str) -> bool:
    """Base64 of at least 48 bytes of DER (the regex has checked the head of a private key)."""
    try:
        der = base64.b64decode("".join(candidate.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(der) >= 48


# What stands where a password would: a template variable, a mask, a word saying there is
# none.
_PASSWORD_PLACEHOLDER = re.compile(
    r"\$\{|\$[A-Z_]+\Z|%[A-Z_]+%|\{\{|<[^>]*>\Z|\*+\Z|(?i:x{3,}|null|none|true|false|"
    r"changeme|secret|password|required|optional|redacted|hidden|\.\.\.)\Z"
)


def not_a_password_placeholder(candidate: str) -> bool:
    """A password, not ``${DB_PASSWORD}``, ``<password>``, ``****``, ``changeme`` or
    ``null``."""
    return _PASSWORD_PLACEHOLDER.match(candidate) is None


def not_placeholder(candidate: str) -> bool:
    """Not a placeholder where a key would go: does not end in six of one character
    (``ghp_xxxx…``, ``AKIA0000…``) nor hold six x in a row or ``EXAMPLE``
    (``AKIAIOSFODNN7EXAMPLE``). C-level string checks: this runs on every token found."""
    return (
        len(set(candidate[-6:])) > 1
        and "xxxxxx" not in candidate
        and "XXXXXX" not in candidate
        and "EXAMPLE" not in candidate
    )


# A vendor prefix of lower-case words (``sk-``, ``sk-proj-``, ``sk_live_``, ``glpat-``), and
# words that make a key-shaped string a placeholder, in one case or capitalised.
_VENDOR_PREFIX = re.compile(r"[a-z]+[-_](?:[a-z]+[-_])?")
# Searched in C: a generator over the characters costs a microsecond per token.
_DIGIT = re.compile(r"\d")
_LETTER = re.compile(r"[^\W\d_]")
_PLACEHOLDER_WORDS = re.compile(
    "|".join(
        f"{w.upper()}|[{w[0].upper()}{w[0]}]{w[1:]}"
        for w in ("your", "example", "dummy", "placeholder", "changeme", "redacted")
    )
)


def random_looking(candidate: str) -> bool:
    """Token bodies are random: they mix letters and digits or, without a digit (one random
    20-character body in 30), letters of both cases after the vendor prefix and no
    placeholder word; ``sk-your-api-key-here`` and ``sk-YOUR_KEY_HERE`` are neither."""
    if _DIGIT.search(candidate):
        return _LETTER.search(candidate) is not None and not_placeholder(candidate)
    prefix = _VENDOR_PREFIX.match(candidate)
    body = candidate[prefix.end() :] if prefix else candidate
    both_cases = body.lower() != body and body.upper() != body
    return both_cases and not_placeholder(body) and _PLACEHOLDER_WORDS.search(body) is None


def valid_slack(candidate: str) -> bool:
    """Slack tokens carry numeric workspace/user ids: ``xoxb-123…-456…-abc…``."""
    return len(candidate) >= 24 and random_looking(candidate[5:])


def valid_nhs(candidate: str) -> bool:
    """NHS numbers: ten digits whose last is the mod-11 check of the first nine."""
    digits = [ord(ch) - 48 for ch in candidate if ch.isdigit()]
    if len(digits) != 10:
        return False
    check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=False)) % 11
    return check != 10 and check % 11 == digits[9]


_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def valid_nino(candidate: str) -> bool:
    """HMRC rules: no D, F, I, Q, U, V in the prefix, no O second, none of the unused
    prefixes; spaced either everywhere (``AB 12 34 56 C``) or nowhere."""
    prefix = candidate[:2]
    if prefix in _NINO_BAD_PREFIXES or prefix[1] == "O":
        return False
    if any(ch in "DFIQUV" for ch in prefix):
        return False
    return candidate.count(" ") in (0, 4)


def valid_ipv4(candidate: str) -> bool:
    """Four decimal octets of at most 255, without leading zeros."""
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    return True


def valid_ipv6(candidate: str) -> bool:
    """An IPv6 address with at least one non-zero group (``::`` alone is not an address of
    anyone)."""
    try:
        address = ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return int(address) != 0


def valid_date(candidate: str) -> bool:
    """A calendar date written with digits (``1985-04-12``, ``12/04/1985``, ``4.12.85``) read
    either day-first or month-first, or with a month name."""
    numbers = [int(part) for part in re.findall(r"\d+", candidate)]
    if len(numbers) == 2:  # "12 April 1985", "April 12, 1985"
        return 1 <= numbers[0] <= 31
    if len(numbers) != 3:
        return False
    if numbers[0] > 31:
        _, month, day = numbers
        return 1 <= month <= 12 and 1 <= day <= 31
    first, second, _ = numbers
    return 1 <= min(first, second) <= 12 and max(first, second) <= 31


def has_letter(candidate: str) -> bool:
    """A name or an address has letters (of any script); ``-`` or ``0`` is none."""
    return any(ch.isalpha() for ch in candidate)


def always(candidate: str) -> bool:
    """For patterns that are specific enough on their own."""
    return True
