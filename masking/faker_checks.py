"""The Faker corpus's own checkers: what makes a Faker value a positive, written apart from
:mod:`masking.validators`, :mod:`masking.cards`, :mod:`masking.phones` and
:mod:`masking.national_ids` (none of which is imported here), so that a gap in those shows up
as a miss and never as a rejected sample.

Cards: the Luhn check and the issuers' published IIN ranges and lengths; IBANs: ISO 13616
mod-97 in integer arithmetic and the registry's length per country; SSNs and ITINs: the
SSA's and the IRS's ranges; phones: a digit count, and for an international number the
calling code and national length of the locale's country; e-mails: one ``@`` and an
IDNA-encodable domain; CPF, CNPJ and Aadhaar: their check digits, computed here.
"""

from __future__ import annotations

import re

# (lowest prefix, highest prefix, lengths): a card starts with a prefix in the range,
# compared on as many leading digits as the bounds have. From each network's published table.
_IIN_RANGES: tuple[tuple[int, int, range], ...] = (
    (4, 4, range(13, 20, 3)), (51, 55, range(16, 17)), (2221, 2720, range(16, 17)),
    (34, 34, range(15, 16)), (37, 37, range(15, 16)), (6011, 6011, range(16, 20)),
    (644, 649, range(16, 20)), (65, 65, range(16, 20)), (3528, 3589, range(16, 20)),
    (1800, 1800, range(15, 16)), (2131, 2131, range(15, 16)), (300, 305, range(14, 20)),
    (36, 36, range(14, 20)), (38, 39, range(16, 20)), (62, 62, range(16, 20)),
    (50, 50, range(12, 20)), (56, 69, range(12, 20)), (2200, 2204, range(16, 20)),
    (9792, 9792, range(16, 17)), (60, 60, range(16, 17)), (81, 82, range(16, 17)),
)  # fmt: skip


def luhn_ok(digits: str) -> bool:
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def issued_range(digits: str) -> bool:
    """Whether ``digits`` has the prefix and length of a range some network issues."""
    for low, high, lengths in _IIN_RANGES:
        if len(digits) in lengths and low <= int(digits[: len(str(low))]) <= high:
            return True
    return False


def card_ok(digits: str) -> bool:
    return luhn_ok(digits) and issued_range(digits)


# IBAN lengths of the SWIFT IBAN registry, for the countries Faker's locales give.
IBAN_LENGTHS = {"GB": 22, "DE": 22, "FR": 27, "ES": 24, "IT": 27, "BR": 29, "NL": 18, "PL": 28,
                "CH": 21, "PT": 25, "SE": 24, "AT": 20, "BE": 16, "IE": 22}  # fmt: skip


def iban_ok(iban: str) -> bool:
    compact = re.sub("[ -]", "", iban).upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", compact):
        return False
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    number = int("".join(str(int(ch, 36)) for ch in moved))
    return number % 97 == 1


def ssn_ok(ssn: str) -> bool:
    match = re.fullmatch(r"(\d{3})-(\d{2})-(\d{4})", ssn)
    if match is None:
        return False
    area, group, serial = (int(g) for g in match.groups())
    return area not in (0, 666) and area < 900 and group != 0 and serial != 0


def itin_ok(itin: str) -> bool:
    match = re.fullmatch(r"9\d\d-(\d{2})-\d{4}", itin)
    return match is not None and int(match.group(1)) in {*range(50, 66), *range(70, 89),
                                                          90, 91, 92, *range(94, 100)}  # fmt: skip


def phone_ok(main_number: str) -> bool:
    return 7 <= sum(ch.isdigit() for ch in main_number) <= 15


# Country calling code and the length of national significant numbers, per Faker locale
# (the ITU's national numbering plans).
CALLING = {
    "en_US": ("1", 10, 10), "en_CA": ("1", 10, 10), "en_GB": ("44", 9, 10),
    "de_DE": ("49", 6, 12), "fr_FR": ("33", 9, 9), "es_ES": ("34", 9, 9),
    "it_IT": ("39", 6, 11), "pt_BR": ("55", 10, 11), "en_IN": ("91", 10, 10),
    "en_AU": ("61", 9, 9), "ja_JP": ("81", 9, 10), "nl_NL": ("31", 9, 9),
    "pl_PL": ("48", 9, 9), "de_CH": ("41", 9, 9), "sv_SE": ("46", 7, 9),
    "pt_PT": ("351", 9, 9),
}  # fmt: skip


def international_ok(locale: str, national_digits: str) -> bool:
    _, low, high = CALLING[locale]
    return low <= len(national_digits) <= high and national_digits[0] != "0"


def email_ok(email: str) -> bool:
    local, at, domain = email.rpartition("@")
    if not at or not 0 < len(local) <= 64 or "@" in local or any(c.isspace() for c in email):
        return False
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels):
        return False
    try:
        domain.encode("idna")
    except UnicodeError:
        return False
    return True


def cpf_ok(cpf: str) -> bool:
    d = [int(c) for c in cpf if c.isdigit()]
    if len(d) != 11:
        return False
    first = sum(x * w for x, w in zip(d[:9], range(10, 1, -1), strict=True)) * 10 % 11 % 10
    second = sum(x * w for x, w in zip(d[:10], range(11, 1, -1), strict=True)) * 10 % 11 % 10
    return (first, second) == (d[9], d[10])


def cnpj_ok(cnpj: str) -> bool:
    d = [int(c) for c in cnpj if c.isdigit()]
    if len(d) != 14:
        return False
    for n in (12, 13):
        weights = [2 + (n - 1 - i) % 8 for i in range(n)]  # 5 4 3 2 9 8 … or 6 5 4 3 2 9 …
        remainder = sum(x * w for x, w in zip(d[:n], weights, strict=True)) % 11
        if d[n] != (0 if remainder < 2 else 11 - remainder):
            return False
    return True


def _verhoeff_multiply(a: int, b: int) -> int:
    """The dihedral group D5 product, from its definition rather than a table."""

    def compose(x: int, y: int) -> int:
        if x < 5 and y < 5:
            return (x + y) % 5
        if x < 5:
            return 5 + (x + y - 5) % 5
        if y < 5:
            return 5 + (x - 5 - y) % 5
        return (x - y) % 5

    return compose(a, b)


_PERMUTATION = (1, 5, 7, 6, 2, 8, 3, 0, 9, 4)


def aadhaar_ok(aadhaar: str) -> bool:
    digits = aadhaar.replace(" ", "")
    if not re.fullmatch(r"[2-9]\d{11}", digits):
        return False
    check = 0
    for i, ch in enumerate(reversed(digits)):
        value = int(ch)
        for _ in range(i % 8):
            value = _PERMUTATION[value]
        check = _verhoeff_multiply(check, value)
    return check == 0
