"""The sample ``shop`` database: customers with fake but well-formed PII.

Every value is drawn from one seeded generator, so a given ``customers`` count always
yields the same rows. Cards pass Luhn, IBANs pass mod 97, SSNs follow the SSA rules, and
phone numbers sit in ranges reserved for fiction (NANP 555-01xx, Ofcom 07700 900xxx).
E-mail domains are the reserved ``example.*`` ones. API tokens have the shape of GitHub
and AWS keys but are random, so none is a live credential.

For ``n`` customers the tables hold ``n`` customers, ``3n`` orders, ``n`` carts and ``n // 4``
api keys (one for every fourth customer).
"""

from __future__ import annotations

import itertools
import string
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from random import Random
from typing import Any

import asyncpg

SEED = 20240917
ORDERS_PER_CUSTOMER = 3

_FIRST = (
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sofia", "Mateo", "Aisha", "Wei",
    "Priya", "Lucas", "Chloe", "Kenji", "Fatima", "Diego", "Hannah", "Omar", "Ingrid", "Tomás",
)  # fmt: skip
_LAST = (
    "Smith", "Garcia", "Müller", "Nguyen", "Okafor", "Rossi", "Kowalski", "Tanaka", "Silva",
    "Haddad", "Patel", "Johansson", "O'Brien", "Dubois", "Kim", "Novak", "Cohen", "Murphy",
)  # fmt: skip
_DOMAINS = ("example.com", "example.org", "example.net")
_US_AREA_CODES = ("212", "312", "415", "617", "646", "206", "512")
_SKUS = ("MUG-BLU", "MUG-RED", "TEE-S", "TEE-M", "TEE-L", "CAP-01", "BAG-TOTE", "PIN-SET")
_STATUSES = ("pending", "paid", "shipped", "delivered", "refunded", "cancelled")
_EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
_TWO_YEARS = 2 * 365 * 86400
_SSN_AREAS = [area for area in range(1, 900) if area != 666]
_ALNUM = string.ascii_letters + string.digits
_UPPER_ALNUM = string.ascii_uppercase + string.digits

_SCHEMA = """\
DROP TABLE IF EXISTS carts, api_keys, orders, customers;
CREATE TABLE customers (
    id serial PRIMARY KEY,
    full_name text NOT NULL,
    email text NOT NULL,
    phone text NOT NULL,
    card_number text NOT NULL,
    ssn text NOT NULL,
    iban text NOT NULL,
    notes text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers,
    sku text NOT NULL,
    amount numeric(10,2) NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE api_keys (
    id serial PRIMARY KEY,
    customer_id int NOT NULL,
    token text NOT NULL
);
CREATE TABLE carts (
    id serial PRIMARY KEY,
    customer_id int NOT NULL,
    item_count int NOT NULL
);
"""

_CUSTOMER_COLUMNS = (
    "full_name", "email", "phone", "card_number", "ssn", "iban", "notes", "created_at",
)  # fmt: skip
_ORDER_COLUMNS = ("customer_id", "sku", "amount", "status", "created_at")


def shop_schema_sql() -> str:
    """DDL that drops and recreates the shop tables."""
    return _SCHEMA


async def load_shop(conn: asyncpg.Connection[Any], customers: int = 1000) -> None:
    """Recreate the shop tables in ``conn``'s database and fill them, in one transaction."""
    rng = Random(SEED)
    joined = [_EPOCH + timedelta(seconds=rng.randrange(_TWO_YEARS)) for _ in range(customers)]
    people = [(*_customer(rng, cid), at) for cid, at in enumerate(joined, start=1)]
    orders = [
        _order(rng, cid, at)
        for cid, at in enumerate(joined, start=1)
        for _ in range(ORDERS_PER_CUSTOMER)
    ]
    keys = [(cid, _token(rng)) for cid in range(4, customers + 1, 4)]
    carts = [(cid, rng.randint(0, 12)) for cid in range(1, customers + 1)]
    async with conn.transaction():
        # The tables are new, so their serial ids start at 1 and match the rows' order.
        await conn.execute(_SCHEMA)
        await conn.copy_records_to_table("customers", records=people, columns=_CUSTOMER_COLUMNS)
        await conn.copy_records_to_table("orders", records=orders, columns=_ORDER_COLUMNS)
        await conn.copy_records_to_table("api_keys", records=keys, columns=("customer_id", "token"))
        await conn.copy_records_to_table(
            "carts", records=carts, columns=("customer_id", "item_count")
        )


def _customer(rng: Random, cid: int) -> tuple[object, ...]:
    """A customer row without its ``created_at``."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    mailbox = _ascii(f"{first}.{last}{cid}".lower())
    card = _card(rng)
    return (
        f"{first} {last}", f"{mailbox}@{rng.choice(_DOMAINS)}", _phone(rng), card, _ssn(rng),
        _iban(rng), _note(rng, mailbox, card),
    )  # fmt: skip


def _ascii(text: str) -> str:
    """``text`` without accents or apostrophes, fit for the local part of an address."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c != "'")


def _order(rng: Random, cid: int, after: datetime) -> tuple[object, ...]:
    amount = Decimal(rng.randrange(500, 50_000)) / 100
    placed = after + timedelta(seconds=rng.randrange(90 * 86400))
    return (cid, rng.choice(_SKUS), amount, rng.choice(_STATUSES), placed)


def _phone(rng: Random) -> str:
    if rng.random() < 0.8:
        return f"+1{rng.choice(_US_AREA_CODES)}55501{rng.randrange(100):02d}"
    return f"+447700900{rng.randrange(1000):03d}"


def _card(rng: Random) -> str:
    kind = rng.random()
    if kind < 0.5:
        prefix, length = "4", 16
    elif kind < 0.65:
        prefix, length = str(rng.randint(2221, 2720)), 16
    elif kind < 0.85:
        prefix, length = str(rng.randint(51, 55)), 16
    else:
        prefix, length = rng.choice(("34", "37")), 15
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + _luhn_digit(body)


def _luhn_digit(body: str) -> str:
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        # Counted from the right, these digits sit at odd positions once the check digit follows.
        if position % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return str(-total % 10)


def _ssn(rng: Random) -> str:
    area = rng.choice(_SSN_AREAS)
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _iban(rng: Random) -> str:
    if rng.random() < 0.5:
        country, bban = "DE", "".join(rng.choice(string.digits) for _ in range(18))
    else:
        bank = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
        country, bban = "GB", bank + "".join(rng.choice(string.digits) for _ in range(14))
    check = 98 - _iban_number(bban + country + "00") % 97
    return f"{country}{check:02d}{bban}"


def _iban_number(text: str) -> int:
    return int("".join(str(int(char, 36)) for char in text))


def _note(rng: Random, mailbox: str, card: str) -> str:
    cuts = (0, 4, 10, 15) if len(card) == 15 else (0, 4, 8, 12, 16)
    grouped = " ".join(card[a:b] for a, b in itertools.pairwise(cuts))
    templates = (
        "prefers email contact",
        "VIP customer, ships to office",
        "asked to update the card on file",
        "left a five-star review",
        f"also reachable at {mailbox}@{rng.choice(_DOMAINS)}",
        f"card {grouped} declined, retry next week",
        f"paid by phone with {card}",
    )
    return rng.choice(templates)


def _token(rng: Random) -> str:
    if rng.random() < 0.5:
        return "ghp_" + "".join(rng.choice(_ALNUM) for _ in range(36))
    return "AKIA" + "".join(rng.choice(_UPPER_ALNUM) for _ in range(16))
