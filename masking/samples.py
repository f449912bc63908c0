"""Seeded generators of labelled values for evaluating and benchmarking the detectors.

Every positive is built from its specification (issuer ranges and Luhn, SSA rules, ISO 13616
lengths and mod 97, E.164, each vendor's token format), never by asking the detectors; every
hard negative is something that looks alike but is not sensitive (order IDs, epoch times,
UUIDs, versions, hashes, Luhn-invalid numbers, dates, ISBNs, parcel tracking numbers,
prices).
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable, Mapping

from masking import entities as e
from masking.validators import IBAN_LENGTHS

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"

# (prefix range, lengths) per brand; a prefix is drawn from the range, inclusive.
CARD_RANGES: tuple[tuple[str, int, int, tuple[int, ...]], ...] = (
    ("visa", 4, 4, (13, 16, 19)),
    ("mastercard", 51, 55, (16,)),
    ("mastercard", 2221, 2720, (16,)),
    ("amex", 34, 34, (15,)),
    ("amex", 37, 37, (15,)),
    ("discover", 6011, 6011, (16, 19)),
    ("discover", 644, 649, (16, 19)),
    ("discover", 65, 65, (16, 19)),
)


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body`` + digit pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (1 if i % 2 else 2)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def card_number(rng: random.Random) -> str:
    _, low, high, lengths = rng.choice(CARD_RANGES)
    prefix = str(rng.randint(low, high))
    body = prefix + _pick(rng, string.digits, rng.choice(lengths) - len(prefix) - 1)
    return body + luhn_check_digit(body)


def grouped(value: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(value[i : i + size] for i in range(0, len(value), size))


def card(rng: random.Random) -> str:
    number = card_number(rng)
    if len(number) == 15 and rng.random() < 0.5:
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    return rng.choice((number, grouped(number), grouped(number, sep="-")))


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def email(rng: random.Random) -> str:
    local = _pick(rng, string.ascii_lowercase, rng.randint(1, 8))
    local += rng.choice(("", ".", "_", "-", "+")) + _pick(rng, ALNUM, rng.randint(1, 6))
    domain = ".".join(_pick(rng, string.ascii_lowercase, rng.randint(2, 9)) for _ in range(2))
    address = f"{local}@{domain}.{rng.choice(('com', 'org', 'io', 'co.uk', 'de', 'travel'))}"
    return address.upper() if rng.random() < 0.1 else address


def iban_of(country: str, bban: str) -> str:
    number = int("".join(str(int(ch, 36)) for ch in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def iban(rng: random.Random) -> str:
    country, length = rng.choice(sorted(IBAN_LENGTHS.items()))
    bank = _pick(rng, string.ascii_uppercase, 4) if country in ("GB", "NL", "IE") else ""
    value = iban_of(country, bank + _pick(rng, string.digits, length - 4 - len(bank)))
    return rng.choice((value, grouped(value)))


def phone(rng: random.Random) -> str:
    country = str(rng.choice((1, 33, 44, 49, 61, 81, 86, 353, 852, 971)))
    national = str(rng.randint(1, 9)) + _pick(rng, string.digits, rng.randint(7, 14 - len(country)))
    style = rng.randrange(4)
    if style == 0:
        return f"+{country}{national}"
    if style == 3:
        return f"+{country} ({national[:3]}) {national[3:6]}-{national[6:]}"
    sep = " " if style == 1 else "-"
    return f"+{country}{sep}{grouped(national, 3, sep)}"


def jwt(rng: random.Random) -> str:
    def part(obj: Mapping[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    header = {"alg": rng.choice(("HS256", "RS256", "ES256")), "typ": "JWT"}
    claims = {"sub": _pick(rng, string.digits, 8), "iat": rng.randint(1_500_000_000, 1_800_000_000)}
    return f"{part(header)}.{part(claims)}.{_pick(rng, ALNUM + '-_', 43)}"


def private_key(rng: random.Random) -> str:
    kind = rng.choice(("RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", ""))
    lines = "\n".join(_pick(rng, ALNUM + "+/", 64) for _ in range(rng.randint(1, 4)))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{lines}\n-----END {kind}PRIVATE KEY-----"


def uri_password(rng: random.Random) -> str:
    scheme = rng.choice(("postgres", "postgresql", "mysql", "redis", "amqp", "mongodb+srv"))
    password = _pick(rng, ALNUM + "!$%*-_", rng.randint(6, 20))
    host = rng.choice(("db.internal", "10.0.0.5", "cache", "mq.example.com"))
    return f"{scheme}://{_pick(rng, string.ascii_lowercase, 5)}:{password}@{host}:5432/app"


SECRETS: dict[str, Callable[[random.Random], str]] = {
    e.AWS_ACCESS_KEY: lambda r: r.choice(("AKIA", "ASIA")) + _pick(r, UPPER_ALNUM, 16),
    e.GITHUB_TOKEN: lambda r: r.choice(
        (
            "gh" + r.choice("pousr") + "_" + _pick(r, ALNUM, 36),
            "github_pat_" + _pick(r, ALNUM, 22) + "_" + _pick(r, ALNUM, 59),
        )
    ),
    e.GITLAB_TOKEN: lambda r: "glpat-" + _pick(r, ALNUM, 18) + "7x",
    e.SLACK_TOKEN: lambda r: (
        f"xox{r.choice('bp')}-{_pick(r, string.digits, 12)}-"
        f"{_pick(r, string.digits, 13)}-{_pick(r, ALNUM, 24)}"
    ),
    e.STRIPE_KEY: lambda r: r.choice("sr") + "k_live_" + _pick(r, ALNUM, 30) + "9",
    e.OPENAI_KEY: lambda r: r.choice(("sk-", "sk-proj-")) + _pick(r, ALNUM, 46) + "T3",
    e.GOOGLE_API_KEY: lambda r: "AIza" + _pick(r, ALNUM + "-_", 35),
    e.JWT: jwt,
    e.PRIVATE_KEY: private_key,
    e.URI_PASSWORD: uri_password,
}

POSITIVES: dict[str, Callable[[random.Random], str]] = {
    e.CREDIT_CARD: card,
    e.US_SSN: ssn,
    e.EMAIL: email,
    e.IBAN: iban,
    e.PHONE: phone,
    **SECRETS,
}


def sensitive_part(entity: str, value: str) -> str:
    """The part of a positive that must not survive masking (a URI keeps its host)."""
    if entity == e.URI_PASSWORD:
        return value.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]
    return value


def _luhn_invalid(rng: random.Random) -> str:
    number = card_number(rng)
    return number[:-1] + str((int(number[-1]) + rng.randint(1, 9)) % 10)


def _no_issuer(rng: random.Random) -> str:
    body = rng.choice("1789") + _pick(rng, string.digits, rng.randint(12, 17))
    return body + luhn_check_digit(body)


def _uuid(rng: random.Random) -> str:
    return "-".join(_pick(rng, HEX, n) for n in (8, 4, 4, 4, 12))


NEGATIVES: dict[str, Callable[[random.Random], str]] = {
    "order id": lambda r: r.choice(
        (
            f"ORD-{r.randint(2000, 2030)}-{r.randrange(10**6):06d}",
            f"SO-{r.randrange(10**6)}",
            f"#{r.randrange(10**5, 10**7)}",
            f"PO {r.randint(2000, 2030)}/{r.randrange(10**4)}",
            f"INV-{r.randrange(10**6):06d}-{r.choice(string.ascii_uppercase)}",
        )
    ),
    "epoch": lambda r: (
        str(r.randrange(10**9, 2 * 10**9))
        + r.choice(("", f"{r.randrange(1000):03d}", f".{r.randrange(10**6):06d}"))
    ),
    "uuid": _uuid,
    "version": lambda r: (
        r.choice(("v", ""))
        + ".".join(str(r.randrange(30)) for _ in range(3))
        + r.choice(("", "-rc.2", "-beta.1+build.5", f".{r.randrange(20000)}"))
    ),
    "hex hash": lambda r: _pick(r, r.choice((HEX, HEX.upper())), r.choice((7, 32, 40, 64))),
    "luhn-invalid": lambda r: r.choice((_luhn_invalid, _no_issuer))(r),
    "iso date": lambda r: (
        f"{r.randint(1970, 2035)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        + r.choice(("", "T10:30:00Z", f" {r.randrange(24):02d}:{r.randrange(60):02d}:00.123+00"))
    ),
    "isbn": lambda r: (
        f"978-{r.randrange(10)}-{r.randrange(10, 99)}-{r.randrange(10**5, 10**6)}-{r.randrange(10)}"
    ),
    "tracking": lambda r: f"1Z{_pick(r, UPPER_ALNUM, 6)}{_pick(r, string.digits, 10)}",
    "price": lambda r: r.choice(
        (
            f"${r.randrange(10**7):,}.{r.randrange(100):02d}",
            f"EUR {r.randrange(10**6):,}",
            f"{r.randrange(10**6)}.{r.randrange(100):02d}",
            f"€ {r.randrange(999)},{r.randrange(99)}",
        )
    ),
}


def _ipv4(rng: random.Random) -> str:
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def _ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randrange(1, 1 << 16):x}" for _ in range(8)]
    if rng.random() < 0.5:
        return ":".join(groups)
    return ":".join(groups[:3]) + "::" + ":".join(groups[6:])


def _nino(rng: random.Random) -> str:
    first, second = rng.choice("ABCEGHJKLMNPRSTWXYZ"), rng.choice("ABCEGHJKLMNPRSTWXY")
    digits = _pick(rng, string.digits, 6)
    if first + second in ("GB", "NK", "KN", "NT", "TN", "BG"):
        first = "A"
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{first}{second}{digits}{suffix}"


def _nhs(rng: random.Random) -> str:
    while True:
        digits = _pick(rng, string.digits, 9)
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
    e.US_BANK_ACCOUNT: (lambda r: _pick(r, string.digits, r.randint(8, 17)), "bank acct {}"),
    e.US_PASSPORT: (
        lambda r: r.choice(("", r.choice(string.ascii_uppercase))) + _pick(r, string.digits, 8),
        "passport {}",
    ),
    e.US_DRIVER_LICENSE: (
        lambda r: r.choice(string.ascii_uppercase) + _pick(r, string.digits, 7),
        "driver's license: {}",
    ),
    e.DATE_OF_BIRTH: (_birth_date, "DOB {}"),
}

TEMPLATES = (
    "{}", "Customer said: {}, please check (ticket 42).", "contact {} asap", "({})", "ref: {}.",
    "<td>{}</td>", '"{}"', "Zoë → {} ✓", "{}\nsecond line", "note: {}; ok", "value={}&next=1",
    "[{}]", "card:{}!", "«{}»", "\t{}\t", "'{}',",
)  # fmt: skip


def embed(rng: random.Random, value: str) -> str:
    """``value`` in one of :data:`TEMPLATES`: bare, in prose, markup, quotes, non-ASCII."""
    return rng.choice(TEMPLATES).format(value)
