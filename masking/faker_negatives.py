"""The hard negatives of the Faker corpus: values that look like sensitive ones and are not.

Faker's order ids, UUIDs, ISBNs, EAN-13 and EAN-8 barcodes, dates, epoch times, versions,
hashes, prices, signed amounts, file names (``logo@2x.png``), hostnames and URLs, card expiry
dates and security codes, user agents, 16-digit numbers that fail Luhn and licence keys
opening as an IBAN does (``ab12-cd3e-…``); each class with the
names a column or key holding it would have, some of them the misleading ones of real schemas
(a version in ``phone_os_version``, a timestamp in ``phone_verified_at``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from masking.faker_checks import luhn_ok
from masking.faker_values import TEN_YEARS_ON, TODAY

if TYPE_CHECKING:
    from faker import Faker


def _sixteen_digits_failing_luhn(faker: Faker, rng: random.Random) -> str:
    while True:
        digits = faker.numerify("%###############")
        if not luhn_ok(digits):
            return digits


def _version(faker: Faker, rng: random.Random) -> str:
    return ".".join(str(rng.randint(0, n)) for n in (30, 99, 999)[: rng.randint(2, 3)])


def _signed_amount(faker: Faker, rng: random.Random) -> str:
    whole = rng.randrange(10**4, 10**9)
    cents = f"{rng.randrange(100):02d}"
    return rng.choice((f"+{whole}", f"-{whole}", f"+{whole:,}.00", f"-{whole}.{cents}",
                       f"+{whole // 100}.{cents}"))  # fmt: skip


def _file_name(faker: Faker, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return faker.file_name()
    return f"{faker.word()}@{rng.choice('23')}x.{rng.choice(('png', 'jpg', 'webp'))}"


def _code_in_fours(faker: Faker, rng: random.Random) -> str:
    """A licence key or voucher code: two letters and two digits, as an IBAN opens, then
    groups of four letters and digits; mostly in lower case."""
    sep = rng.choice(("-", " ", ""))
    groups = (
        faker.bothify(rng.choice(("####", "????", "?#?#", "##??")))
        for _ in range(rng.randint(2, 7))
    )
    code = sep.join((faker.bothify("??##"), *groups))
    return code.lower() if rng.random() < 0.7 else code


# class: (make, natural column names)
NEGATIVES: dict[str, tuple[Callable[[Faker, random.Random], str], tuple[str, ...]]] = {
    "order id": (lambda f, r: f.bothify(r.choice(("ORD-########", "#########", "??-######-##"))),
                 ("order_id", "order_number")),
    "uuid": (lambda f, r: f.uuid4(), ("id", "uuid", "request_id")),
    "isbn": (lambda f, r: r.choice((f.isbn13, f.isbn10))(), ("isbn",)),
    "ean": (lambda f, r: r.choice((f.ean13, f.ean8))(), ("ean", "barcode", "gtin")),
    "date": (lambda f, r: r.choice((lambda: f.date(end_datetime=TODAY),
                                     lambda: f.iso8601(end_datetime=TODAY),
                                     f.date_time(end_datetime=TODAY).isoformat,
                                     lambda: f.time(end_datetime=TODAY)))(),
             ("created_at", "updated_at", "phone_verified_at")),
    "epoch": (lambda f, r: str(int(f.unix_time(end_datetime=TODAY)) * r.choice((1, 1000))),
              ("ts", "epoch")),
    "version": (_version, ("version", "app_version", "phone_os_version")),
    "hash": (lambda f, r: r.choice((f.md5, f.sha1, f.sha256))(), ("checksum", "sha")),
    "price": (lambda f, r: r.choice((f.pricetag, lambda: str(f.pydecimal(4, 2, True))))(),
              ("price", "amount")),
    "signed amount": (_signed_amount, ("delta", "balance_change", "amount")),
    "file name": (_file_name, ("file", "asset", "image")),
    "hostname": (lambda f, r: r.choice((f.hostname, f.domain_name, f.url))(), ("host", "url")),
    "card expiry/cvv": (lambda f, r: r.choice((lambda: f.credit_card_expire(TODAY, TEN_YEARS_ON),
                                               f.credit_card_security_code))(), ("exp", "cvv")),
    "user agent": (lambda f, r: f.user_agent(), ("user_agent",)),
    "16 digits, not Luhn": (_sixteen_digits_failing_luhn, ("account_ref", "batch")),
    "code in fours": (_code_in_fours, ("licence_key", "voucher_code", "serial")),
}  # fmt: skip
