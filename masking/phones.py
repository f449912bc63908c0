"""Validators of telephone numbers: international ones by the ITU's country calling codes, and
national ones (which need a column name or JSON key to tell them from other numbers) by
their digit count.

An international number is written after ``+``, ``00`` or ``011`` (the exit codes of most of
the world and of North America); its digits must start with an assigned calling code and,
for the countries whose numbers have a fixed length, be exactly that long. A signed amount
(``+12500000``) is too short for country 1, whose numbers have ten digits after the code.
"""

from __future__ import annotations

# ITU-T E.164 country calling codes in service (Complement to Recommendation E.164).
_ONE_DIGIT = frozenset({"1", "7"})
_TWO_DIGITS = frozenset(
    str(n)
    for n in (
        20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53,
        54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94,
        95, 98,
    )
)  # fmt: skip
_THREE_DIGITS = frozenset(
    str(n)
    for n in (
        211, 212, 213, 216, 218, *range(220, 259), *range(260, 270), 290, 291, 297, 298, 299,
        *range(350, 360), *range(370, 383), 383, 385, 386, 387, 389, 420, 421, 423,
        *range(500, 510), *range(590, 600), 670, *range(672, 684), *range(685, 693), 800,
        808, 850, 852, 853, 855, 856, 870, 878, 880, 881, 882, 883, 886, 888,
        *range(960, 969), *range(970, 978), 979, 992, 993, 994, 995, 996, 998,
    )
)  # fmt: skip
# Digits after the calling code where a country's numbering plan fixes them (the national
# significant number, without the trunk prefix 0).
_NATIONAL_LENGTHS: dict[str, tuple[int, int]] = {
    "1": (10, 10), "7": (10, 10), "33": (9, 9), "34": (9, 9), "31": (9, 9), "32": (8, 9),
    "44": (9, 10), "61": (9, 9), "81": (9, 10), "86": (10, 11), "91": (10, 10),
    "55": (10, 11), "52": (10, 10), "48": (9, 9), "46": (7, 9), "41": (9, 9), "351": (9, 9),
}  # fmt: skip
_ANY_LENGTH = (6, 13)
_EXIT_CODES = ("011", "00")
_SHORTEST_COMPACT = 10
# Deleted by bytes.translate to leave the digits.
_NOT_DIGITS = bytes(b for b in range(256) if b not in b"0123456789")


def calling_code(digits: str) -> str | None:
    """The country calling code ``digits`` (an international number) starts with."""
    if digits[:1] in _ONE_DIGIT:
        return digits[:1]
    if digits[:2] in _TWO_DIGITS:
        return digits[:2]
    return digits[:3] if digits[:3] in _THREE_DIGITS else None


def valid_international(digits: str) -> bool:
    """``digits`` (after the ``+`` or exit code, the trunk ``(0)`` left out) are an assigned
    calling code and a national number of a length that country uses."""
    if not 8 <= len(digits) <= 15:
        return False
    code = calling_code(digits)
    if code is None:
        return False
    low, high = _NATIONAL_LENGTHS.get(code, _ANY_LENGTH)
    return low <= len(digits) - len(code) <= high


def valid_phone(candidate: str) -> bool:
    """``+`` and a valid international number; single spaces, dots or dashes may separate
    the digits, one group may stand in parentheses (``+1 (415) 555-2671``), and a trunk
    prefix in parentheses (``+44 (0)20 7946 0958``) is not part of the number. A signed
    amount is not one: written compact, a number has at least ten digits (``+632052027``
    is a sum), and one dot is a decimal point (``+5381256.41``)."""
    compact = candidate[1:]
    if compact.isdigit():
        return len(compact) >= _SHORTEST_COMPACT and valid_international(compact)
    if candidate.count(".") == 1:
        return False
    digits = candidate.replace("(0)", "", 1).encode().translate(None, _NOT_DIGITS).decode()
    return valid_international(digits)


def valid_dialled(candidate: str) -> bool:
    """An exit code (``00``, ``011``) then a valid international number, as dialled from a
    fixed line: ``0049 30 1234567``, ``011 44 20 7946 0958``. Written without any separator
    it is left alone: zero-padded ids and UPC barcodes start with ``00`` too."""
    if candidate.isdigit() or candidate.count(".") == 1:
        return False
    digits = candidate.replace("(0)", "", 1).encode().translate(None, _NOT_DIGITS).decode()
    for exit_code in _EXIT_CODES:
        if digits.startswith(exit_code) and valid_international(digits[len(exit_code) :]):
            return True
    return False


def valid_national_phone(candidate: str) -> bool:
    """7 to 13 digits (a national number with its trunk prefix), balanced parentheses, and
    with dots at least nine digits in three groups or more (``13.78.967`` is a version,
    ``57.382828`` a fraction of a second)."""
    digits = sum(ch.isdigit() for ch in candidate)
    if not 7 <= digits <= 13 or candidate.count("(") != candidate.count(")"):
        return False
    return "." not in candidate or (digits >= 9 and candidate.count(".") >= 2)
