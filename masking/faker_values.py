"""The values of the Faker corpus: positives drawn from Faker's providers and laid out the ways
people write them, and the hard negatives.

Each positive generator returns a :class:`Positive` or ``None`` when :mod:`masking.faker_checks`
refuses what Faker gave (counted as rejected, never as a positive). Formats are tags: a card's
issuer and layout (compact, spaced, dashed, dotted, double-spaced, with an expiry date, as
magnetic-stripe track 1 or 2, glued to a word), a phone's locale and form (Faker's own, or
its number rewritten with ``+``, ``00`` or ``011`` and spaces, dots or dashes), an IBAN's
country, separator (none, spaces, dashes) and case (capitals, lower, mixed), an e-mail's
kind (plain, plus-addressed, internationalised domain or local part, punycode,
percent-encoded).
"""

from __future__ import annotations

import datetime
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from masking import entities as e
from masking import faker_checks as check

if TYPE_CHECKING:
    from faker import Faker

LOCALES = tuple(check.CALLING)
Fakers = dict[str, "Faker"]
# Faker's issuers ("visa" and "jcb" are aliases of visa16 and jcb16).
ISSUERS = ("maestro", "mastercard", "visa16", "visa13", "visa19", "amex", "discover", "diners",
           "jcb15", "jcb16")  # fmt: skip
_GLUED = ("PAN", "cc", "CARD", "card", "Visa")
# Faker draws dates relative to today unless told otherwise; a fixed day keeps the corpus the
# same from one day to the next.
TODAY = datetime.datetime(2026, 1, 1)
TEN_YEARS_ON = TODAY.replace(year=TODAY.year + 10)


@dataclass(frozen=True, slots=True)
class Positive:
    """A value of ``entity`` as placed; ``tags`` are its formats (issuer, locale, layout);
    ``cued`` says it can only be told apart under an informative name."""

    entity: str
    value: str
    tags: tuple[str, ...]
    secret: str  # the part that must not stay visible (a phone without its extension)
    cued: bool = False


def _faker(fakers: Fakers, rng: random.Random) -> Faker:
    return fakers[rng.choice(LOCALES)]


def _grouped(digits: str, sizes: tuple[int, ...], sep: str) -> str:
    parts, pos = [], 0
    for size in sizes:
        parts.append(digits[pos : pos + size])
        pos += size
    if pos < len(digits):
        parts.append(digits[pos:])
    return sep.join(p for p in parts if p)


def _issuers(faker: Faker) -> tuple[str, ...]:
    """The issuers of ``faker``'s card provider, without the aliases of the default one."""
    (provider,) = (p for p in faker.providers if hasattr(p, "credit_card_types"))
    types = tuple(provider.credit_card_types)
    return ISSUERS if set(ISSUERS) <= set(types) else types


_CARD_SEPARATORS = {"compact": "", "spaced": " ", "dashed": "-", "dotted": ".", "double": "  "}


def card(fakers: Fakers, rng: random.Random) -> Positive | None:
    locale = rng.choice(LOCALES)
    faker = fakers[locale]
    issuers = _issuers(faker)
    issuer = rng.choice(issuers)
    number = faker.credit_card_number(card_type=issuer)
    if issuers != ISSUERS:
        issuer = f"{issuer} ({locale})"
    if not check.card_ok(number):
        return None
    layout = rng.choice((*_CARD_SEPARATORS, "expiry", "track 1", "track 2", "glued"))
    sizes = {15: (4, 6, 5), 14: (4, 6, 4)}.get(len(number), (4, 4, 4, 4, 4))
    printed = _grouped(number, sizes, _CARD_SEPARATORS.get(layout, rng.choice(("", " "))))
    expiry = faker.credit_card_expire(start=TODAY, end=TEN_YEARS_ON, date_format="%y%m")
    value = {
        "expiry": f"{printed} {expiry[2:]}/{expiry[:2]}",
        "track 1": f"%B{number}^{faker.last_name().upper()}/{faker.first_name().upper()}"
        f"^{expiry}101{rng.randrange(10**9):09d}?",
        "track 2": f";{number}={expiry}101{rng.randrange(10**9):09d}?",
        "glued": rng.choice(_GLUED) + number,
    }.get(layout, printed)
    secret = number if layout.startswith(("track", "glued")) else printed
    return Positive(e.CREDIT_CARD, value, (issuer, layout), secret)


def ssn(fakers: Fakers, rng: random.Random) -> Positive | None:
    number = fakers["en_US"].ssn()
    if not check.ssn_ok(number):
        return None
    layout = rng.choice(("dashed", "spaced", "dotted", "digits"))
    value = {"spaced": " ", "dotted": ".", "digits": ""}.get(layout, "-").join(number.split("-"))
    return Positive(e.US_SSN, value, (layout,), value, cued=layout == "digits")


def itin(fakers: Fakers, rng: random.Random) -> Positive | None:
    number = fakers["en_US"].itin()
    if not check.itin_ok(number):
        return None
    layout = rng.choice(("dashed", "spaced", "digits"))
    value = {"spaced": " ", "digits": ""}.get(layout, "-").join(number.split("-"))
    return Positive(e.US_ITIN, value, (layout,), value, cued=layout == "digits")


_IBAN_SEPARATORS = {"compact": "", "spaced": " ", "dashed": "-"}


_CASES = (str.upper, str.lower, str.title)


def iban(fakers: Fakers, rng: random.Random) -> Positive | None:
    """Faker's IBAN compact or in fours by spaces or dashes, in capitals, in lower case, or
    mixed as forms get them typed: in fours, the country code in lower case and each further
    group in capitals, lower case or with a capital first (``gb82 West 1234 …``). Checked by
    :mod:`masking.faker_checks`."""
    number = _faker(fakers, rng).iban()
    layout, case = rng.choice(tuple(_IBAN_SEPARATORS)), rng.choice(("upper", "lower", "mixed"))
    groups = re.findall(".{1,4}", number)
    if case == "mixed":
        layout = layout if layout != "compact" else rng.choice(("spaced", "dashed"))
        head = groups[0][:2].lower() + groups[0][2:]
        value = _IBAN_SEPARATORS[layout].join([head, *(rng.choice(_CASES)(g) for g in groups[1:])])
    else:
        cased = str.upper if case == "upper" else str.lower
        value = _IBAN_SEPARATORS[layout].join(cased(group) for group in groups)
    if not check.iban_ok(value):
        return None
    return Positive(e.IBAN, value, (f"IBAN {number[:2]}", layout, case), value)


_EXTENSION = re.compile(r"\s*(?:x|ext\.?\s*)\d+$")


def phone(fakers: Fakers, rng: random.Random) -> Positive | None:
    """Faker's number as it comes (national forms need a cue), or rewritten as an
    international one."""
    locale = rng.choice(LOCALES)
    value = fakers[locale].phone_number()
    main = _EXTENSION.sub("", value)
    if not check.phone_ok(main):
        return None
    international = value.startswith("+")
    if international or rng.random() < 0.5:
        form = "Faker, international" if international else "Faker, national"
        tags = (locale, form, "with extension" if main != value else "no extension")
        return Positive(e.PHONE, value, tags, main, cued=not international)
    return _international(locale, main, rng)


def _international(locale: str, national: str, rng: random.Random) -> Positive | None:
    digits = "".join(ch for ch in national if ch.isdigit())
    code = check.CALLING[locale][0]
    if code == "1":
        digits = digits.removeprefix("001").removeprefix("1")
    elif code != "39":  # Italy dials its 0 from abroad too
        digits = digits.removeprefix("0")
    if not check.international_ok(locale, digits):
        return None
    exit_code = rng.choice(("+", "+", "00", "011"))
    sep = rng.choice((" ", "-", ".", ""))
    groups = _grouped(digits, (3, 3, 4) if code == "1" else (2, 3, 2, 2), sep)
    value = f"{exit_code}{code}{sep or ''}{groups}" if exit_code == "+" else (
        f"{exit_code} {code} {groups}")  # fmt: skip
    tags = (locale, f"{exit_code}, separator {sep!r}")
    return Positive(e.PHONE, value, tags, value)


_IDN_TLDS = {"de_DE": "de", "fr_FR": "fr", "es_ES": "es", "ja_JP": "jp", "pl_PL": "pl"}


def email(fakers: Fakers, rng: random.Random) -> Positive | None:
    faker = _faker(fakers, rng)
    layout = rng.choice(("faker", "free", "plus", "idn domain", "unicode local", "punycode",
                         "percent-encoded"))  # fmt: skip
    if layout == "faker":
        value = faker.email()
    elif layout == "free":
        value = faker.free_email()
    elif layout == "plus":
        value = f"{faker.user_name()}+{faker.word().lower()}@{faker.free_email_domain()}"
    elif layout == "percent-encoded":
        value = quote(faker.email(), safe="")
    else:
        locale = rng.choice(tuple(_IDN_TLDS))
        native = fakers[locale]
        city = re.sub(r"[^\w-]", "", native.city().lower().replace(" ", "-"))
        if layout == "unicode local":
            value = f"{native.first_name().lower()}.{faker.user_name()}@{faker.free_email_domain()}"
        else:
            value = f"{faker.user_name()}@{city}.{_IDN_TLDS[locale]}"
        if layout == "punycode":
            local, _, domain = value.partition("@")
            try:
                value = f"{local}@{domain.encode('idna').decode()}"
            except UnicodeError:
                return None
        if value.isascii() and layout != "punycode":
            layout = "plain"
    plain = value.replace("%40", "@")
    if not check.email_ok(plain):
        return None
    return Positive(e.EMAIL, value, (layout, "ASCII" if value.isascii() else "non-ASCII"), value)


def _identifier(
    entity: str,
    locale: str,
    method: str,
    ok: Callable[[str], bool] | None,
    layouts: dict[str, bool],
) -> Callable[[Fakers, random.Random], Positive | None]:
    """A positive of ``entity`` from Faker's ``method`` of ``locale``, checked by ``ok``,
    printed as Faker does or without its separators (``layouts``: name → needs a cue)."""

    def make(fakers: Fakers, rng: random.Random) -> Positive | None:
        value = getattr(fakers[locale], method)()
        if ok is not None and not ok(value):
            return None
        layout = rng.choice(tuple(layouts))
        if layout == "compact":
            value = re.sub(r"[ ./-]", "", value)
        return Positive(entity, value, (layout,), value, cued=layouts[layout])

    return make


POSITIVES: dict[str, Callable[[Fakers, random.Random], Positive | None]] = {
    e.CREDIT_CARD: card, e.US_SSN: ssn, e.US_ITIN: itin, e.IBAN: iban, e.PHONE: phone,
    e.EMAIL: email,
    e.BR_CPF: _identifier(e.BR_CPF, "pt_BR", "cpf", check.cpf_ok,
                          {"printed": False, "compact": True}),
    e.BR_CNPJ: _identifier(e.BR_CNPJ, "pt_BR", "cnpj", check.cnpj_ok,
                           {"printed": False, "compact": True}),
    e.IT_FISCAL_CODE: _identifier(e.IT_FISCAL_CODE, "it_IT", "ssn", None, {"printed": False}),
}  # fmt: skip
"""Default entities."""

OPT_IN: dict[str, Callable[[Fakers, random.Random], Positive | None]] = {
    e.IN_AADHAAR: _identifier(e.IN_AADHAAR, "en_IN", "aadhaar_id", check.aadhaar_ok,
                              {"compact": True}),
    e.IN_PAN: _identifier(e.IN_PAN, "en_IN", "pan", None, {"printed": False}),
    e.ES_DNI: _identifier(e.ES_DNI, "es_ES", "nif", None, {"printed": False}),
    e.FR_NIR: _identifier(e.FR_NIR, "fr_FR", "ssn", None, {"compact": True}),
    e.CA_SIN: _identifier(e.CA_SIN, "en_CA", "ssn", None, {"printed": True}),
    e.PERSON_NAME: _identifier(e.PERSON_NAME, "en_US", "name", None, {"printed": True}),
    e.STREET_ADDRESS: _identifier(e.STREET_ADDRESS, "de_DE", "street_address", None,
                                  {"printed": True}),
}  # fmt: skip
"""Opt-in entities, measured enabled; Faker computes their check digits (the corpus checks
Aadhaar's Verhoeff digit, which Faker does not)."""
