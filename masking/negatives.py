"""Seeded hard negatives: values that look like sensitive ones but are not, by class.

Digit runs of card length that fail Luhn, Luhn-valid IDs whose prefix is no issuer's (by
:data:`~masking.specs.CARD_ISSUERS`), UUIDs, epoch times, ISO timestamps, versions, git SHAs,
hex digests, money and prices, SKUs, ISBNs with their check digits, parcel tracking numbers,
placeholders where a key would go, and order IDs. Masking any of them is a false positive.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from masking.specs import HEX, card_number, draw, issuer_of, luhn_check_digit

UPPER_ALNUM = string.ascii_uppercase + string.digits


def _card_like(rng: random.Random, number: str) -> str:
    return rng.choice((number, " ".join(number[i : i + 4] for i in range(0, len(number), 4))))


def _luhn_failing(rng: random.Random) -> str:
    """13–19 digits failing Luhn: an issuer's number with a wrong check digit, or any run."""
    if rng.random() < 0.5:
        number = card_number(rng)
        return _card_like(rng, number[:-1] + str((int(number[-1]) + rng.randint(1, 9)) % 10))
    body = draw(rng, string.digits, rng.randint(12, 18))
    return _card_like(rng, body + str((int(luhn_check_digit(body)) + rng.randint(1, 9)) % 10))


# Leading digits that start no range of CARD_ISSUERS (airlines, petroleum, healthcare,
# national use; unassigned two-digit ranges).
_NO_ISSUER = ("0", "1", "7", "80", "82", "83", "84", "85", "86", "87", "88", "89", "9",
              "20", "21", "28", "29", "31", "32", "33")  # fmt: skip


def no_issuer_id(rng: random.Random) -> str:
    """A Luhn-valid 13–19 digit ID whose prefix is no card issuer's."""
    while True:
        body = rng.choice(_NO_ISSUER)
        body += draw(rng, string.digits, rng.randint(13, 19) - len(body) - 1)
        number = body + luhn_check_digit(body)
        if issuer_of(number) is None:
            return number if rng.random() < 0.8 else _card_like(rng, number)


def _timestamp(rng: random.Random) -> str:
    date = f"{rng.randint(1970, 2035)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    clock = f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
    return date + rng.choice(
        ("", f"T{clock}Z", f"T{clock}.{rng.randrange(1000):03d}Z", f" {clock}.123456+00",
         f"T{clock}+02:00", f"T{clock}-0500", f" {clock}")
    )  # fmt: skip


def _money(rng: random.Random) -> str:
    whole, cents = rng.randrange(10**7), rng.randrange(100)
    return rng.choice(
        (f"${whole:,}.{cents:02d}", f"{whole}.{cents:02d} EUR", f"-${whole % 1000}.{cents:02d}",
         f"€{whole:,},{cents:02d}".replace(",", "."), f"USD {whole:,}", f"£{whole % 100}.50",
         f"¥{whole:,}", f"CHF {whole:,}.{cents:02d}".replace(",", "'"), f"{whole:,} JPY")
    )  # fmt: skip


def _isbn(rng: random.Random) -> str:
    if rng.random() < 0.5:
        body = rng.choice(("978", "979")) + draw(rng, string.digits, 9)
        check = -sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10
        number = body + str(check)
        return rng.choice((number, f"{number[:3]}-{number[3]}-{number[4:7]}-{number[7:12]}-"
                           f"{number[12]}", f"ISBN {number}"))  # fmt: skip
    body = draw(rng, string.digits, 9)
    check = -sum(int(d) * (10 - i) for i, d in enumerate(body)) % 11
    number = body + ("X" if check == 10 else str(check))
    return rng.choice((number, f"{number[0]}-{number[1:4]}-{number[4:9]}-{number[9]}"))


def _s10(rng: random.Random) -> str:
    """A UPU S10 item number (registered mail, EMS): two letters, eight digits, a mod-11 check
    digit and the country."""
    serial = draw(rng, string.digits, 8)
    check = 11 - sum(int(d) * w for d, w in zip(serial, (8, 6, 4, 2, 3, 5, 9, 7), strict=True)) % 11
    digit = {10: 0, 11: 5}.get(check, check)
    return f"{rng.choice(('RR', 'EE', 'CP', 'LX'))}{serial}{digit}{rng.choice(('DE', 'GB', 'US'))}"


def _tracking(rng: random.Random) -> str:
    usps = rng.choice(("9400", "9205", "9261", "9361")) + draw(rng, string.digits, 18)
    return rng.choice(
        (f"1Z{draw(rng, UPPER_ALNUM, 6)}{draw(rng, string.digits, 10)}", usps,
         " ".join(usps[i : i + 4] for i in range(0, 22, 4)), draw(rng, string.digits, 12),
         draw(rng, string.digits, 10), _s10(rng))
    )  # fmt: skip


_PLACEHOLDERS = (
    "YOUR_API_KEY", "<YOUR_API_KEY>", "your-api-key-here", "sk_test_xxx", "<token>",
    "AKIAXXXXXXXXXXXXXXXX", "AKIAIOSFODNN7EXAMPLE", "${API_KEY}", "{{ api_key }}", "%API_TOKEN%",
    "ghp_" + "x" * 36, "ghp_" + "X" * 36, "AIzaSy" + "X" * 33, "glpat-" + "x" * 20,
    "sk_live_" + "x" * 24, "sk-" + "x" * 48, "sk-...", "xoxb-not-a-real-token-this-will-not-work",
    "xoxb-your-token-here", "eyJhbGciOi...", "changeme", "********", "REDACTED", "<secret>",
    "sk-YOUR_OPENAI_API_KEY_HERE", "sk-proj-YOUR_API_KEY_HERE", "AKIA" + "0" * 16,
)  # fmt: skip

NEGATIVES: dict[str, Callable[[random.Random], str]] = {
    "luhn-failing": _luhn_failing,
    "non-card luhn id": no_issuer_id,
    "uuid": lambda r: "-".join(draw(r, HEX, n) for n in (8, 4, 4, 4, 12)),
    "epoch s": lambda r: str(r.randrange(10**9, 2 * 10**9)) + r.choice(("", ".5", ".123456")),
    "epoch ms": lambda r: str(r.randrange(10**12, 2 * 10**12)),
    "iso timestamp": _timestamp,
    "version": lambda r: (
        r.choice(("v", ""))
        + ".".join(str(r.randrange(30)) for _ in range(3))
        + r.choice(("", "-rc.2", "-beta.1+build.5", f".{r.randrange(20000)}"))
    ),
    "git sha": lambda r: draw(r, HEX, 40),
    "hex digest": lambda r: (
        r.choice(("", "", "sha256:", "md5:"))
        + draw(r, r.choice((HEX, HEX.upper())), r.choice((32, 64)))
    ),
    "money": _money,
    "price": lambda r: r.choice(
        (
            f"{r.randrange(10**5)}.{r.randrange(100):02d}",
            f"{r.randrange(1, 10**4)}.99",
            f"{r.randrange(10**6):,}.00",
            f"{r.randrange(10**4)},{r.randrange(100):02d}",
            str(r.randrange(1, 10**6)),
        )
    ),
    "sku": lambda r: r.choice(
        (
            f"SKU-{draw(r, UPPER_ALNUM, 4)}-{draw(r, string.digits, 4)}",
            f"{draw(r, string.ascii_uppercase, 3)}-{r.randrange(10**5):05d}-{r.choice('SML')}",
            f"WID-{r.randrange(10**6):06d}",
            f"{draw(r, string.ascii_uppercase, 2)}{r.randrange(10**7)}",
        )
    ),
    "isbn": _isbn,
    "tracking": _tracking,
    "placeholder": lambda r: r.choice(_PLACEHOLDERS),
    "order id": lambda r: r.choice(
        (
            f"ORD-{r.randint(2000, 2030)}-{r.randrange(10**6):06d}",
            f"SO-{r.randrange(10**6)}",
            f"#{r.randrange(10**5, 10**7)}",
            f"PO {r.randint(2000, 2030)}/{r.randrange(10**4)}",
            f"INV-{r.randrange(10**6):06d}-{r.choice(string.ascii_uppercase)}",
        )
    ),
}

NATURAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "luhn-failing": ("reference", "barcode"), "non-card luhn id": ("customer_id", "member_no"),
    "uuid": ("id", "request_id"), "epoch s": ("created", "ts"), "epoch ms": ("updated_ms",),
    "iso timestamp": ("created_at", "updated_at"), "version": ("version", "app_version"),
    "git sha": ("commit", "sha"), "hex digest": ("checksum", "sha256"),
    "money": ("total", "amount"), "price": ("price", "unit_price"), "sku": ("sku", "item"),
    "isbn": ("isbn",), "tracking": ("tracking_no", "shipment"),
    "placeholder": ("api_key", "token"), "order id": ("order_id", "invoice"),
}  # fmt: skip
"""The names a column or key holding each class would have."""
