"""Bare card numbers of 12 or 13 digits against barcodes and epoch times: what each way of
reading them would mask, measured for ``make eval-masking``.

A compact 12- or 13-digit number with no name, key or word beside it is a Visa of 13
digits or a short Maestro only by its issuer prefix and its Luhn digit. An EAN-13 or UPC-A
barcode has a GS1 check digit instead, which one Luhn-valid number in ten also passes; a
millisecond epoch of 1987–88 starts as Maestro's 56–58 do. Three readings are measured:

* ``GS1-valid is a barcode`` (what :func:`masking.cards.valid_card` does): a number that
  passes the GS1 check is left alone unless something says card;
* ``Luhn and issuer only``: every Luhn-valid number of an issuer's prefix and length;
* ``no bare 12-digit 56-58``: as the first, without Maestro's 56–58 at 12 digits.

Positives are Faker's Maestro and 13-digit Visa numbers (checked by
:mod:`masking.faker_checks`) and the project generator's short cards; negatives are
Faker's EAN-13 and UPC-A, EAN-13 with the GS1 prefixes of Germany (400–440, check digit
computed here) and Japan (Faker's ``ja_JP``), twelve-digit millisecond epochs (1973–2001)
and the project's tracking numbers of 12 digits.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from masking import cards, negatives, samples
from masking import faker_checks as check

if TYPE_CHECKING:
    from faker import Faker

Reading = Callable[[str], bool]
READINGS: dict[str, Reading] = {
    "GS1-valid is a barcode (chosen)": cards.valid_card,
    "Luhn and issuer only": cards.valid_compact_card,
    "no bare 12-digit 56-58": lambda d: (
        cards.valid_card(d) and not (len(d) == 12 and d[:2] in ("56", "57", "58"))
    ),
}


def _gs1(body: str) -> str:
    """``body`` with its GS1 check digit (weights 3 and 1 from the right)."""
    total = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(body)))
    return body + str(-total % 10)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _faker_short_cards(faker: Faker, rng: random.Random, n: int) -> list[str]:
    found: list[str] = []
    while len(found) < n:
        number = faker.credit_card_number(card_type=rng.choice(("maestro", "visa13")))
        if check.card_ok(number) and len(number) < 14:
            found.append(number)
    return found


def _drawn(make: Callable[[], str], n: int) -> list[str]:
    """``n`` values of ``make`` that are 12 or 13 digits and nothing else."""
    found: list[str] = []
    while len(found) < n:
        value = make()
        if value.isdigit() and len(value) < 14:
            found.append(value)
    return found


def print_short_cards(seed: int, n: int) -> None:
    """The share of each set each reading masks, ``n`` values a set. Raises
    :class:`ImportError` without Faker installed."""
    from faker import Faker

    rng = random.Random(f"{seed}:short cards")
    faker, japan = Faker(), Faker("ja_JP")
    faker.seed_instance(seed)
    japan.seed_instance(seed)
    project = _drawn(lambda: samples.card_number(rng), n)
    sets = {
        "Faker short cards": _faker_short_cards(faker, rng, n),
        "project short cards": project,
        "EAN-13 (Faker)": [faker.ean13() for _ in range(n)],
        "EAN-13 Germany": [_gs1(str(rng.randint(400, 440)) + _digits(rng, 9)) for _ in range(n)],
        "EAN-13 Japan": [japan.localized_ean13() for _ in range(n)],
        "UPC-A (Faker)": [faker.upc_a() for _ in range(n)],
        "12-digit ms epoch": [str(rng.randrange(10**11, 10**12)) for _ in range(n)],
        "tracking (project)": _drawn(lambda: negatives.NEGATIVES["tracking"](rng), n),
    }
    print(f"\nBare 12-13-digit numbers: share masked by each reading ({n} a set; no context)")
    print(f"  {'':<32}" + "".join(f"{name[:19]:>20}" for name in sets))
    for label, reading in READINGS.items():
        shares = [sum(map(reading, values)) / len(values) for values in sets.values()]
        print(f"  {label:<32}" + "".join(f"{share:>20.3%}" for share in shares))
