"""Seeded generators of labelled values for evaluating and benchmarking the detectors.

Every positive is built from its specification (:mod:`masking.specs` for cards, SSNs and
IBANs; E.164; each vendor's published token format), never by asking the detectors; the hard
negatives, things that look alike but are not sensitive, are in :mod:`masking.negatives`.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable, Mapping

from masking import cards, id_samples, specs
from masking import entities as e
from masking.negatives import NEGATIVES
from masking.specs import card_number, draw, luhn_check_digit, ssn

__all__ = [
    "NEGATIVES", "OPT_IN", "POSITIVES", "SECRETS", "card", "card_number",
    "email", "grouped", "iban", "luhn_check_digit", "phone", "sensitive_span",
    "ssn",
]  # fmt: skip

ALNUM = string.ascii_letters + string.digits
BASE32 = string.ascii_uppercase + "234567"

_BRANDS = frozenset(b for b, *_ in specs.CARD_ISSUERS)


def grouped(value: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(value[i : i + size] for i in range(0, len(value), size))


def _card_layout(rng: random.Random, number: str) -> str:
    """``number`` compact, in fours (spaces or dashes), or 4-6-5 / 4-6-4 as Amex and Diners
    print theirs."""
    if len(number) in (14, 15) and rng.random() < 0.5:
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    if len(number) == 13 and cards.gs1_ok(number):
        # Also an EAN-13 barcode: compact, a card only where a name says so, which this
        # corpus does not always give (the Faker corpus measures that case).
        return rng.choice((grouped(number), grouped(number, sep="-")))
    return rng.choice((number, grouped(number), grouped(number, sep="-")))


def card(rng: random.Random) -> str:
    return _card_layout(rng, card_number(rng, _BRANDS))


def email(rng: random.Random) -> str:
    local = draw(rng, string.ascii_lowercase, rng.randint(1, 8))
    local += rng.choice(("", ".", "_", "-", "+")) + draw(rng, ALNUM, rng.randint(1, 6))
    domain = ".".join(draw(rng, string.ascii_lowercase, rng.randint(2, 9)) for _ in range(2))
    address = f"{local}@{domain}.{rng.choice(('com', 'org', 'io', 'co.uk', 'de', 'travel'))}"
    return address.upper() if rng.random() < 0.1 else address


def iban(rng: random.Random) -> str:
    """An IBAN of any registry country, compact (electronic form) or in fours (print form)."""
    value = specs.iban(rng)
    return rng.choice((value, grouped(value)))


def typed_iban(rng: random.Random) -> str:
    """An IBAN as people type them too: in fours by dashes, in lower case, or in fours with
    the country code in lower case; otherwise as :func:`iban`."""
    value = specs.iban(rng)
    form = rng.random()
    if form < 0.2:
        value = value.lower()
    elif form < 0.3:
        return grouped(value[:2].lower() + value[2:], sep=rng.choice(" -"))
    return rng.choice((value, grouped(value), grouped(value, sep="-")))


# ITU national numbering plans: the digits after each calling code.
_NATIONAL_LENGTHS = {1: (10, 10), 33: (9, 9), 44: (10, 10), 49: (10, 11), 61: (9, 9),
                     81: (9, 10), 86: (11, 11), 353: (9, 9), 852: (8, 8), 971: (8, 9)}  # fmt: skip


def phone(rng: random.Random) -> str:
    code = rng.choice(sorted(_NATIONAL_LENGTHS))
    country = str(code)
    size = rng.randint(*_NATIONAL_LENGTHS[code])
    national = str(rng.randint(2, 9)) + draw(rng, string.digits, size - 1)
    style = rng.randrange(5)
    if style == 0:
        return f"+{country}{national}"
    if style == 3:
        return f"+{country} ({national[:3]}) {national[3:6]}-{national[6:]}"
    if style == 4:
        return f"00{country} {grouped(national, 3)}"
    sep = " " if style == 1 else rng.choice("-.")
    return f"+{country}{sep}{grouped(national, 3, sep)}"


def jwt(rng: random.Random) -> str:
    def part(obj: Mapping[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    header = {"alg": rng.choice(("HS256", "RS256", "ES256")), "typ": "JWT"}
    claims = {"sub": draw(rng, string.digits, 8), "iat": rng.randint(1_500_000_000, 1_800_000_000)}
    return f"{part(header)}.{part(claims)}.{draw(rng, ALNUM + '-_', 43)}"


def private_key(rng: random.Random) -> str:
    kind = rng.choice(("RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", ""))
    lines = "\n".join(draw(rng, ALNUM + "+/", 64) for _ in range(rng.randint(1, 4)))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{lines}\n-----END {kind}PRIVATE KEY-----"


def uri_password(rng: random.Random) -> str:
    scheme = rng.choice(("postgres", "postgresql", "mysql", "redis", "amqp", "mongodb+srv"))
    password = draw(rng, ALNUM + "!$%*-_", rng.randint(6, 20))
    host = rng.choice(("db.internal", "10.0.0.5", "cache", "mq.example.com"))
    return f"{scheme}://{draw(rng, string.ascii_lowercase, 5)}:{password}@{host}:5432/app"


def _openai_key(rng: random.Random) -> str:
    # "T3BlbkFJ" is "OpenAI" in base64, in the middle of every key OpenAI has issued.
    if rng.random() < 0.5:
        return f"sk-{draw(rng, ALNUM, 20)}T3BlbkFJ{draw(rng, ALNUM, 20)}"
    body = ALNUM + "-_"
    project = rng.choice(("proj", "svcacct", "admin"))
    return f"sk-{project}-{draw(rng, body, 74)}T3BlbkFJ{draw(rng, body, 74)}"


SECRETS: dict[str, Callable[[random.Random], str]] = {
    # Access key IDs are base32 after their four-letter kind.
    e.AWS_ACCESS_KEY: lambda r: r.choice(("AKIA", "ASIA")) + draw(r, BASE32, 16),
    e.GITHUB_TOKEN: lambda r: r.choice(
        (
            "gh" + r.choice("pousr") + "_" + draw(r, ALNUM, 36),
            "github_pat_" + draw(r, ALNUM, 22) + "_" + draw(r, ALNUM, 59),
        )
    ),
    e.GITLAB_TOKEN: lambda r: "glpat-" + draw(r, ALNUM + "-_", 20),
    e.SLACK_TOKEN: lambda r: (
        f"xox{r.choice('bp')}-{draw(r, string.digits, 12)}-"
        f"{draw(r, string.digits, 13)}-{draw(r, ALNUM, 24)}"
    ),
    e.STRIPE_KEY: lambda r: r.choice("sr") + "k_live_" + draw(r, ALNUM, r.choice((24, 34, 99))),
    e.OPENAI_KEY: _openai_key,
    e.GOOGLE_API_KEY: lambda r: "AIza" + draw(r, ALNUM + "-_", 35),
    e.JWT: jwt,
    e.PRIVATE_KEY: private_key,
    e.URI_PASSWORD: uri_password,
    **id_samples.SECRETS,
}

POSITIVES: dict[str, Callable[[random.Random], str]] = {
    e.CREDIT_CARD: card,
    e.US_SSN: ssn,
    e.EMAIL: email,
    e.IBAN: typed_iban,
    e.PHONE: phone,
    **id_samples.IDS,
    **SECRETS,
}


def sensitive_span(entity: str, value: str) -> tuple[int, int]:
    """Where in a positive the part lies that must not survive masking: all of it, except
    that a connection URI keeps its scheme, user and host (only the password is secret)."""
    if entity == e.URI_PASSWORD:
        start = value.index(":", value.index("://") + 3) + 1
        return start, value.rindex("@")
    return id_samples.secret_span(entity, value) or (0, len(value))


def _ipv4(rng: random.Random) -> str:
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def _ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randrange(1, 1 << 16):x}" for _ in range(8)]
    if rng.random() < 0.5:
        return ":".join(groups)
    return ":".join(groups[:3]) + "::" + ":".join(groups[6:])


def _nino(rng: random.Random) -> str:
    first, second = rng.choice("ABCEGHJKLMNPRSTWXYZ"), rng.choice("ABCEGHJKLMNPRSTWXY")
    digits = draw(rng, string.digits, 6)
    if first + second in ("GB", "NK", "KN", "NT", "TN", "BG"):
        first = "A"
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{first}{second}{digits}{suffix}"


def _nhs(rng: random.Random) -> str:
    while True:
        digits = draw(rng, string.digits, 9)
        check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check != 10:
            number = digits + str(check % 11)
            return rng.choice((number, f"{number[:3]} {number[3:6]} {number[6:]}"))


def _birth_date(rng: random.Random) -> str:
    year, month, day = rng.randint(1930, 2010), rng.randint(1, 12), rng.randint(1, 28)
    month_name = ("January", "Feb", "March", "Apr", "May", "June", "Jul", "Aug", "Sept.",
                  "October", "Nov", "December")[month - 1]  # fmt: skip
    return rng.choice(
        (f"{year}-{month:02d}-{day:02d}", f"{day:02d}/{month:02d}/{year}",
         f"{month}.{day}.{year}", f"{day} {month_name} {year}", f"{month_name} {day}, {year}")
    )  # fmt: skip


# Opt-in entities, with the words that give the cued ones their context.
OPT_IN: dict[str, tuple[Callable[[random.Random], str], str]] = {
    e.IP_ADDRESS: (lambda r: r.choice((_ipv4, _ipv6))(r), "client {}"),
    e.UK_NINO: (_nino, "NI {}"),
    e.NHS_NUMBER: (_nhs, "NHS no. {}"),
    e.US_BANK_ACCOUNT: (lambda r: draw(r, string.digits, r.randint(8, 17)), "bank acct {}"),
    e.US_PASSPORT: (
        lambda r: r.choice(("", r.choice(string.ascii_uppercase))) + draw(r, string.digits, 8),
        "passport {}",
    ),
    e.US_DRIVER_LICENSE: (
        lambda r: r.choice(string.ascii_uppercase) + draw(r, string.digits, 7),
        "driver's license: {}",
    ),
    e.DATE_OF_BIRTH: (_birth_date, "DOB {}"),
    **id_samples.OPT_IN_IDS,
}
