"""Seeded generators of national and health identifiers and of credentials that need their
surroundings, for the project's evaluation corpus.

Check digits are computed here from each issuer's published rule, not by
:mod:`masking.national_ids`. A credential found by the words around it (an AWS secret key, a
password) is generated with those words; :func:`secret_span` says where its secret lies.
"""

from __future__ import annotations

import random
import re
import string

from masking import entities as e
from masking.specs import draw, luhn_check_digit

ALNUM = string.ascii_letters + string.digits
_MBI_LETTERS = "ACDEFGHJKMNPQRTUVWXY"


def itin(rng: random.Random) -> str:
    group = rng.choice((*range(50, 66), *range(70, 89), 90, 91, 92, *range(94, 100)))
    return f"9{rng.randrange(100):02d}-{group}-{rng.randrange(10000):04d}"


def cpf(rng: random.Random) -> str:
    d = [rng.randrange(10) for _ in range(9)]
    for n in (9, 10):
        d.append(sum(x * (n + 1 - i) for i, x in enumerate(d)) * 10 % 11 % 10)
    s = "".join(map(str, d))
    return f"{s[:3]}.{s[3:6]}.{s[6:9]}-{s[9:]}"


def cnpj(rng: random.Random) -> str:
    d = [rng.randrange(10) for _ in range(8)] + [0, 0, 0, 1]
    for n in (12, 13):
        weights = [2 + (n - 1 - i) % 8 for i in range(n)]
        remainder = sum(x * w for x, w in zip(d, weights, strict=True)) % 11
        d.append(0 if remainder < 2 else 11 - remainder)
    s = "".join(map(str, d))
    return f"{s[:2]}.{s[2:5]}.{s[5:8]}/{s[8:12]}-{s[12:]}"


_CF_ODD = [
    1,
    0,
    5,
    7,
    9,
    13,
    15,
    17,
    19,
    21,
    2,
    4,
    18,
    20,
    11,
    3,
    6,
    8,
    12,
    14,
    16,
    10,
    22,
    25,
    24,
    23,
]


def codice_fiscale(rng: random.Random) -> str:
    up = string.ascii_uppercase
    body = draw(rng, up, 6) + f"{rng.randrange(100):02d}" + rng.choice("ABCDEHLMPRST")
    body += f"{rng.randint(1, 71):02d}" + rng.choice(up) + f"{rng.randrange(1000):03d}"
    total = 0
    for i, ch in enumerate(body):
        value = int(ch) if ch.isdigit() else ord(ch) - 65
        total += _CF_ODD[value] if i % 2 == 0 else value
    return body + up[total % 26]


def mbi(rng: random.Random) -> str:
    letter, mixed = _MBI_LETTERS, _MBI_LETTERS + string.digits
    digit = string.digits
    value = "".join(
        rng.choice(alphabet)
        for alphabet in ("123456789", letter, mixed, digit, letter, mixed, digit, letter, letter,
                         digit, digit)
    )  # fmt: skip
    return rng.choice((value, f"{value[:4]}-{value[4:7]}-{value[7:]}"))


def npi(rng: random.Random) -> str:
    body = rng.choice("12") + draw(rng, string.digits, 8)
    return body + luhn_check_digit("80840" + body)


def dea(rng: random.Random) -> str:
    d = [rng.randrange(10) for _ in range(6)]
    check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
    return (
        rng.choice("ABFGM") + rng.choice(string.ascii_uppercase) + "".join(map(str, d)) + str(check)
    )


def sin(rng: random.Random) -> str:
    body = str(rng.choice((1, 2, 3, 4, 5, 6, 7, 9))) + draw(rng, string.digits, 7)
    number = body + luhn_check_digit(body)
    return f"{number[:3]} {number[3:6]} {number[6:]}"


def dni(rng: random.Random) -> str:
    letters = "TRWAGMYFPDXBNJZSQVHLCKE"
    if rng.random() < 0.5:
        number = rng.randrange(10**8)
        return f"{number:08d}{letters[number % 23]}"
    prefix = rng.randrange(3)
    number = rng.randrange(10**7)
    return f"{'XYZ'[prefix]}{number:07d}{letters[int(f'{prefix}{number:07d}') % 23]}"


def tfn(rng: random.Random) -> str:
    weights = (1, 4, 3, 7, 5, 8, 6, 9, 10)
    while True:
        digits = [rng.randrange(10) for _ in range(9)]
        if sum(d * w for d, w in zip(digits, weights, strict=True)) % 11 == 0:
            return "".join(map(str, digits))


OPT_IN_IDS = {
    e.US_NPI: (npi, "NPI {}"),
    e.US_DEA: (dea, "DEA no. {}"),
    e.MEDICAL_RECORD_NUMBER: (lambda r: f"MRN{draw(r, string.digits, 8)}", "MRN: {}"),
    e.CA_SIN: (sin, "SIN {}"),
    e.ES_DNI: (dni, "{}"),
    e.AU_TFN: (tfn, "TFN {}"),
}
"""Opt-in identifiers, with the words that give the cued ones their context."""


def _aws_secret(rng: random.Random) -> str:
    key = draw(rng, ALNUM, 20) + "/" + draw(rng, ALNUM + "+", 19)
    return rng.choice(("aws_secret_access_key = {}", "AWS_SECRET_ACCESS_KEY={}",
                       '"SecretAccessKey": "{}"')).format(key)  # fmt: skip


def _password(rng: random.Random) -> str:
    secret = (
        draw(rng, ALNUM, 4) + draw(rng, ALNUM + "!#-_", rng.randint(6, 16)) + draw(rng, ALNUM, 2)
    )
    return rng.choice((
        "host=db.internal port=5432 user=app password={} dbname=main",
        "Server=sql1;Database=crm;User Id=sa;Password={};", "DB_PASSWORD={}",
        "jdbc:postgresql://db:5432/app?user=app&password={}", "db.internal:5432:app:report:{}",
        "  password: {}", "jdbc:oracle:thin:scott/{}@db:1521/orcl",
    )).format(secret)  # fmt: skip


_PASSWORD_VALUE = re.compile(r"(?i:password[=:] ?|:report:|scott/)([^\s;&@]+)")

SECRETS = {
    e.AWS_SECRET_KEY: _aws_secret,
    e.AZURE_STORAGE_KEY: lambda r: (
        "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey="
        f"{draw(r, ALNUM + '+/', 86)}==;EndpointSuffix=core.windows.net"
    ),
    e.SLACK_WEBHOOK: lambda r: (
        f"https://hooks.slack.com/services/T{draw(r, string.ascii_uppercase + string.digits, 8)}"
        f"/B{draw(r, string.ascii_uppercase + string.digits, 8)}/{draw(r, ALNUM, 24)}"
    ),
    e.SENDGRID_KEY: lambda r: f"SG.{draw(r, ALNUM + '-_', 22)}.{draw(r, ALNUM + '-_', 43)}",
    e.NPM_TOKEN: lambda r: "npm_" + draw(r, ALNUM, 36),
    e.PYPI_TOKEN: lambda r: "pypi-AgEIcHlwaS5vcmc" + draw(r, ALNUM + "-_", 60),
    e.PASSWORD: _password,
}
"""Default credentials the project's first generator did not cover."""

IDS = {e.US_ITIN: itin, e.BR_CPF: cpf, e.BR_CNPJ: cnpj, e.IT_FISCAL_CODE: codice_fiscale,
       e.US_MBI: mbi}  # fmt: skip
"""Default identifiers."""


def secret_span(entity: str, value: str) -> tuple[int, int] | None:
    """Where the secret of a credential generated with its surroundings lies."""
    if entity == e.AWS_SECRET_KEY:
        match = re.search(r"[A-Za-z0-9+/]{40}", value)
    elif entity == e.AZURE_STORAGE_KEY:
        match = re.search(r"(?<=AccountKey=)[^;]+", value)
    elif entity == e.SLACK_WEBHOOK:
        match = re.search(r"(?<=/services/).+", value)
    elif entity == e.PASSWORD:
        found = _PASSWORD_VALUE.search(value)
        return None if found is None else found.span(1)
    else:
        return None
    return None if match is None else match.span()
