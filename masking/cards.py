"""Validators of payment card numbers: the issuers' prefix (IIN) ranges and lengths, the Luhn
check, and the ways cards are printed.

A compact number of 12 or 13 digits is also the length of a UPC-A or EAN-13 barcode, whose
check digit one Luhn-valid number in ten also passes; such a number is taken for a barcode
unless a column name, JSON key or word glued to it or just before it calls it a card
(:func:`valid_compact_card`), or an expiry date follows it (:func:`card_extent`). Bare, it
cannot be told from a barcode.
"""

from __future__ import annotations

from masking.validators import luhn_ok


def card_brand(digits: str) -> str | None:
    """The issuer whose prefix and length rules ``digits`` satisfies, or ``None``: Visa,
    Mastercard, Amex, Discover, JCB (3528–3589 in 16–19 digits, 1800 and 2131 in 15), Diners
    Club (300–305 and 3095 in 14 or 16–19 digits, 36 in 14–19, 38–39 in 16–19), UnionPay (62
    and 81 in 16–19), Mir (2200–2204 in 16–19), RuPay (60, 65, 81, 82, 508 in 16), Troy
    (9792 in 16) and Maestro (50 and 56–69 in 16–19; 56–58 and its IINs 5018, 5020, 5038,
    5893, 6304, 6390, 6759, 6761–6763 in 12–15)."""
    n = len(digits)
    if not 12 <= n <= 19:
        return None
    first = digits[0]
    if first == "4":
        return "visa" if n in (13, 16, 19) else None
    if first == "3":
        if n == 15 and digits[1] in "47":
            return "amex"
        if n >= 16 and 3528 <= int(digits[:4]) <= 3589:
            return "jcb"
        return "diners" if _diners(digits, n) else None
    if first in "56":
        return _five_or_six(digits, n)
    if n == 15:
        return "jcb" if digits[:4] in ("1800", "2131") else None
    if n < 16:
        return None
    if first == "2":
        if n == 16 and 2221 <= int(digits[:4]) <= 2720:
            return "mastercard"
        return "mir" if "2200" <= digits[:4] <= "2204" else None
    if first == "8":
        if n == 16 and digits[1] in "12":
            return "rupay"
        return "unionpay" if "8100" <= digits[:4] <= "8171" else None
    return "troy" if n == 16 and digits.startswith("9792") else None


def _five_or_six(digits: str, n: int) -> str | None:
    head = int(digits[:2])
    if n == 16 and 51 <= head <= 55:
        return "mastercard"
    if n >= 16 and (digits.startswith(("6011", "65")) or "644" <= digits[:3] <= "649"):
        return "discover"
    if n >= 16 and head == 62:
        return "unionpay"
    if n == 16 and (head == 60 or digits.startswith("508")):
        return "rupay"
    if n >= 16:
        return "maestro" if head == 50 or 56 <= head <= 69 else None
    # The shorter Maestro numbers of the IINs that issued them, not every 12-digit id.
    return "maestro" if 56 <= head <= 58 or digits[:4] in _SHORT_MAESTRO else None


_SHORT_MAESTRO = frozenset(
    ("5018", "5020", "5038", "5893", "6304", "6390", "6759", "6761", "6762", "6763")
)


def _diners(digits: str, n: int) -> bool:
    head = digits[:2]
    if head == "36":
        return n >= 14
    if head in ("38", "39"):
        return n >= 16
    return (n == 14 or n >= 16) and (300 <= int(digits[:3]) <= 305 or digits[:4] == "3095")


def card_extent(candidate: str) -> int:
    """The length of the card number that ``candidate`` starts with, or 0. The number may be
    followed by a space and an expiry date (``4359694193182 04/35``), which makes a compact
    number of barcode length a card."""
    if "/" not in candidate:
        return len(candidate) if valid_card(candidate) else 0
    number = candidate[: candidate.rindex(" ")]
    if valid_card(number) or (number.isdigit() and valid_compact_card(number)):
        return len(number)
    return 0


def valid_card(candidate: str) -> bool:
    """Issuer prefix and length, Luhn, one separator (a space, two spaces, a dot or a dash)
    and, when separated, the groups a card is printed in: fours (the last may be shorter),
    4-6-5 (Amex) or 4-6-4 (Diners); ``46946740-6172-5417``, the head of a UUID, is no card.
    Compact, 12 or 13 digits that are also a valid EAN or UPC barcode are taken for the
    barcode."""
    # replace() thrice is several times faster than str.translate() deleting characters
    digits = candidate.replace(" ", "").replace(".", "").replace("-", "")
    if len(digits) == len(candidate):
        if len(digits) < 14 and gs1_ok(digits):
            return False
    elif not _printed_as_card(candidate, digits):
        return False
    return card_brand(digits) is not None and luhn_ok(digits)


def valid_compact_card(candidate: str) -> bool:
    """A card number written without separators, barcode or not (where a name says card)."""
    return card_brand(candidate) is not None and luhn_ok(candidate)


def valid_track(candidate: str) -> bool:
    """Magnetic-stripe track data whose account number is a card's."""
    end = candidate.index("^" if candidate[0] == "%" else "=")
    return valid_compact_card(candidate[1 + (candidate[0] == "%") : end])


def gs1_ok(digits: str) -> bool:
    """The GS1 check digit of an EAN-13 or UPC-A: weights 1 and 3 alternating from the
    right (byte sums in C; each ASCII digit counts 48 over its value)."""
    ones, threes = digits.encode()[-1::-2], digits.encode()[-2::-2]
    return (sum(ones) - 48 * len(ones) + 3 * (sum(threes) - 48 * len(threes))) % 10 == 0


def _printed_as_card(candidate: str, digits: str) -> bool:
    """Separated in fours, the last group maybe shorter, or 4-6-5 / 4-6-4, by one separator;
    ``digits`` is ``candidate`` without its separators (by slices and counts in C: this runs
    for every grouped card)."""
    sep = candidate[4]
    if sep not in " .-":
        return False
    size = len(candidate)
    # The common case first: one separator before every fifth character and nowhere else
    # (the last group then holds one to four characters).
    seps = size // 5
    if size % 5 and candidate[4::5] == sep * seps and len(digits) == size - seps:
        return digits.isdigit()
    if sep == " " and candidate[5] == " ":
        sep = "  "
    groups = candidate.split(sep)
    if not "".join(groups).isdigit():  # a second separator
        return False
    sizes = [len(group) for group in groups]
    fours = sizes[:-1] == [4] * (len(sizes) - 1) and 0 < sizes[-1] <= 4
    return fours or sizes in ([4, 6, 5], [4, 6, 4])
