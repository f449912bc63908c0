"""The published rules that the evaluation's positives are built from, written out here
independently of the detectors and validators, so that a gap in those shows up as a miss.

Card numbers follow the issuers' prefix (IIN) ranges and lengths (ISO/IEC 7812 and each
network's published table) with the Luhn check digit; SSNs follow the SSA's rules for area,
group and serial; IBANs follow the SWIFT IBAN registry's BBAN structure for each country
(ISO 13616) with ISO 7064 mod 97-10 check digits.
"""

from __future__ import annotations

import random
import re
import string

HEX = "0123456789abcdef"


def draw(rng: random.Random, alphabet: str, n: int) -> str:
    """``n`` characters of ``alphabet``, drawn with replacement."""
    return "".join(rng.choice(alphabet) for _ in range(n))


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body`` + digit pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (1 if i % 2 else 2)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


_ANY_LENGTH = (16, 17, 18, 19)

CARD_ISSUERS: tuple[tuple[str, int, int, tuple[int, ...]], ...] = (
    ("visa", 4, 4, (13, 16, 19)),
    ("mastercard", 51, 55, (16,)),
    ("mastercard", 2221, 2720, (16,)),
    ("amex", 34, 34, (15,)),
    ("amex", 37, 37, (15,)),
    ("discover", 6011, 6011, _ANY_LENGTH),
    ("discover", 644, 649, _ANY_LENGTH),
    ("discover", 65, 65, _ANY_LENGTH),
    ("jcb", 3528, 3589, _ANY_LENGTH),
    ("unionpay", 62, 62, _ANY_LENGTH),
    ("diners", 300, 305, (14, *_ANY_LENGTH)),
    ("diners", 3095, 3095, (14, *_ANY_LENGTH)),
    ("diners", 36, 36, (14, 15, *_ANY_LENGTH)),
    ("diners", 38, 39, _ANY_LENGTH),
    ("maestro", 50, 50, _ANY_LENGTH),
    ("maestro", 56, 69, _ANY_LENGTH),
    ("mir", 2200, 2204, _ANY_LENGTH),
    ("rupay", 60, 60, (16,)),
    ("rupay", 81, 82, (16,)),
    ("rupay", 508, 508, (16,)),
    ("troy", 9792, 9792, (16,)),
    ("jcb", 1800, 1800, (15,)),
    ("jcb", 2131, 2131, (15,)),
    ("unionpay", 8100, 8171, _ANY_LENGTH),
)
"""(brand, lowest prefix, highest prefix, lengths): a number of a brand starts with a prefix
in the range (inclusive, compared on as many leading digits as the bounds have)."""


def issuer_of(digits: str) -> str | None:
    """The brand of :data:`CARD_ISSUERS` whose prefix range and lengths ``digits`` fits."""
    for brand, low, high, lengths in CARD_ISSUERS:
        if len(digits) in lengths and low <= int(digits[: len(str(low))]) <= high:
            return brand
    return None


def card_number(rng: random.Random, brands: frozenset[str] | None = None) -> str:
    """A Luhn-valid number of a random issuer range (of ``brands`` only, when given)."""
    ranges = [r for r in CARD_ISSUERS if brands is None or r[0] in brands]
    _, low, high, lengths = rng.choice(ranges)
    prefix = str(rng.randint(low, high))
    body = prefix + draw(rng, string.digits, rng.choice(lengths) - len(prefix) - 1)
    return body + luhn_check_digit(body)


SSN_AREAS = tuple(a for a in range(1, 900) if a != 666)
"""SSA: area numbers 000, 666 and 900–999 are never issued; groups run 01–99, serials
0001–9999."""


def ssn(rng: random.Random) -> str:
    """An SSN the SSA could have issued, written ``AAA-GG-SSSS``."""
    area, group, serial = rng.choice(SSN_AREAS), rng.randint(1, 99), rng.randint(1, 9999)
    return f"{area:03d}-{group:02d}-{serial:04d}"


# SWIFT IBAN registry: the BBAN of each country as runs of n (digits), a (upper-case letters)
# and c (letters and digits); the IBAN is the country code, two check digits and the BBAN.
IBAN_BBAN: dict[str, str] = {
    "AD": "4n4n12c", "AE": "3n16n", "AL": "8n16c", "AT": "5n11n", "AZ": "4a20c",
    "BA": "3n3n8n2n", "BE": "3n7n2n", "BG": "4a4n2n8c", "BH": "4a14c", "BI": "5n5n11n2n",
    "BR": "8n5n10n1a1c", "BY": "4c4n16c", "CH": "5n12c", "CR": "4n14n", "CY": "3n5n16c",
    "CZ": "4n6n10n", "DE": "8n10n", "DJ": "5n5n11n2n", "DK": "4n9n1n", "DO": "4c20n",
    "EE": "2n2n11n1n", "EG": "4n4n17n", "ES": "4n4n1n1n10n", "FI": "3n11n", "FK": "2a12n",
    "FO": "4n9n1n", "FR": "5n5n11c2n", "GB": "4a6n8n", "GE": "2a16n", "GI": "4a15c",
    "GL": "4n9n1n", "GR": "3n4n16c", "GT": "4c20c", "HR": "7n10n", "HU": "3n4n1n15n1n",
    "IE": "4a6n8n", "IL": "3n3n13n", "IQ": "4a3n12n", "IS": "4n2n6n10n", "IT": "1a5n5n12c",
    "JO": "4a4n18c", "KW": "4a22c", "KZ": "3n13c", "LB": "4n20c", "LC": "4a24c",
    "LI": "5n12c", "LT": "5n11n", "LU": "3n13c", "LV": "4a13c", "LY": "3n3n15n",
    "MC": "5n5n11c2n", "MD": "2c18c", "ME": "3n13n2n", "MK": "3n10c2n", "MN": "4n12n",
    "MR": "5n5n11n2n", "MT": "4a5n18c", "MU": "4a2n2n12n3n3a", "NI": "4a20n", "NL": "4a10n",
    "NO": "4n6n1n", "OM": "3n16c", "PK": "4a16c", "PL": "8n16n", "PS": "4a21c",
    "PT": "4n4n11n2n", "QA": "4a21c", "RO": "4a16c", "RS": "3n13n2n", "RU": "9n5n15c",
    "SA": "2n18c", "SC": "4a2n2n16n3a", "SD": "2n12n", "SE": "3n16n1n", "SI": "5n8n2n",
    "SK": "4n6n10n", "SM": "1a5n5n12c", "SO": "4n3n12n", "ST": "4n4n11n2n", "SV": "4a20n",
    "TL": "3n14n2n", "TN": "2n3n13n2n", "TR": "5n1n16c", "UA": "6n19c", "VA": "3n15n",
    "VG": "4a16n", "XK": "4n10n2n", "YE": "4a4n18c",
}  # fmt: skip
_BBAN_RUN = re.compile(r"(\d+)([nac])")
_BBAN_ALPHABET = {
    "n": string.digits,
    "a": string.ascii_uppercase,
    "c": string.ascii_uppercase + string.digits,
}


def iban_length(country: str) -> int:
    """The length of ``country``'s IBANs, by the registry."""
    return 4 + sum(int(n) for n, _ in _BBAN_RUN.findall(IBAN_BBAN[country]))


def iban_of(country: str, bban: str) -> str:
    """``country``'s IBAN for ``bban``, with its ISO 7064 mod 97-10 check digits."""
    number = int("".join(str(int(ch, 36)) for ch in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def iban(rng: random.Random) -> str:
    """A compact IBAN of a random registry country, its BBAN drawn by that country's format."""
    country = rng.choice(sorted(IBAN_BBAN))
    runs = _BBAN_RUN.findall(IBAN_BBAN[country])
    return iban_of(country, "".join(draw(rng, _BBAN_ALPHABET[k], int(n)) for n, k in runs))
