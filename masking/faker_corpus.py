"""A second evaluation corpus, built without the project's generators: values from Faker.

:mod:`masking.samples` and :mod:`masking.negatives` were written by the same hands as the
detectors; this corpus is not. Positives come from Faker's own providers across many locales
(cards of every issuer Faker offers, US SSNs, ``iban()`` per locale, ``phone_number()`` per
locale, e-mails plain, plus-addressed, with an internationalised domain or a non-ASCII local
part). Faker offers no AWS, GitHub or Slack credentials, so secrets are not in this corpus.
Each positive must pass a small checker written here, apart from :mod:`masking.validators`
(Luhn; ISO 13616 mod-97 in integer arithmetic and the registry's length per country; SSA
area, group and serial rules; a digit count for phones; ``@`` and an IDNA-encodable domain
for e-mails): what fails is counted as
rejected and never as a positive. Hard negatives are Faker's order ids, UUIDs, ISBNs, EANs,
dates, versions, hashes, prices, file names (``logo@2x.png``), hostnames and URLs, and
16-digit numbers that fail Luhn.

Every value goes through :class:`masking.cell.CellMasker` (the gateway's row masker on a
DataRow) in three carriers: ``bare`` (a text or varchar cell, an all-digit value also int8 or
numeric), ``sentence`` (inside a Faker sentence in a text cell) and ``json`` (under a key of a
json or jsonb document), under a column name or key that is informative, neutral or
misleading for a positive, natural or neutral for a negative.

A positive is found when its entity is reported and no five consecutive letters and digits
of it stay visible beyond the designed reveal (a card's last four); a negative is touched
when its cell changes at all.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from masking.cell import CellMasker
from masking.entities import CREDIT_CARD, EMAIL, IBAN, PHONE, US_SSN
from masking.policy import MaskingPolicy
from masking.strategies import KEEP_LAST

if TYPE_CHECKING:
    from faker import Faker

LOCALES = (
    "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "en_IN", "en_CA", "en_AU",
    "ja_JP", "nl_NL", "pl_PL", "de_CH", "sv_SE", "pt_PT",
)  # fmt: skip
CARRIERS = ("bare", "sentence", "json")
CONTEXTS = ("informative", "neutral", "misleading")
NEGATIVE_CONTEXTS = ("natural", "neutral")
# Faker's issuers ("visa" and "jcb" are aliases of visa16 and jcb16).
ISSUERS = ("maestro", "mastercard", "visa16", "visa13", "visa19", "amex", "discover", "diners",
           "jcb15", "jcb16")  # fmt: skip
INFORMATIVE = {
    CREDIT_CARD: ("credit_card_number", "cardNumber", "cc_num", "pan"),
    US_SSN: ("ssn", "SSN", "social_security_no"),
    IBAN: ("iban", "IBAN", "bank_iban"),
    PHONE: ("phone_number", "mobile", "contact_phone", "telefon", "tel"),
    EMAIL: ("email_address", "e_mail", "customer_email", "mail"),
}
NEUTRAL = ("col1", "value", "content", "body", "remarks", "info")
MISLEADING = ("order_number", "reference", "tracking_code", "sku", "created", "zip", "id")
_WINDOW = 5
_KEEP_LAST = {CREDIT_CARD: KEEP_LAST}

Fakers = dict[str, "Faker"]


@dataclass(frozen=True, slots=True)
class Positive:
    """A value of ``entity`` as placed; ``tags`` are its formats (issuer, locale, layout)."""

    entity: str
    value: str
    tags: tuple[str, ...]
    secret: str  # the part that must not stay visible (a phone without its extension)


@dataclass(slots=True)
class Tally:
    """Hits over totals of one entity or negative class, by carrier, context and tag."""

    name: str
    by_carrier: dict[str, list[int]] = field(default_factory=dict)
    by_context: dict[str, list[int]] = field(default_factory=dict)
    by_tag: dict[str, list[int]] = field(default_factory=dict)
    rejected: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, carrier: str, context: str, tags: tuple[str, ...], hit: bool) -> None:
        for table, key in [(self.by_carrier, carrier), (self.by_context, context)] + [
            (self.by_tag, tag) for tag in tags
        ]:
            cell = table.setdefault(key, [0, 0])
            cell[0] += hit
            cell[1] += 1

    @property
    def hits(self) -> int:
        return sum(h for h, _ in self.by_carrier.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self.by_carrier.values())

    def share(self) -> float | None:
        return self.hits / self.total if self.total else None


# Independent checkers: none of them imports masking.validators.


def luhn_ok(digits: str) -> bool:
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


# IBAN lengths of the SWIFT IBAN registry, for the countries Faker's locales give.
IBAN_LENGTHS = {"GB": 22, "DE": 22, "FR": 27, "ES": 24, "IT": 27, "BR": 29, "NL": 18, "PL": 28,
                "CH": 21, "PT": 25, "SE": 24, "AT": 20, "BE": 16, "IE": 22}  # fmt: skip


def iban_ok(iban: str) -> bool:
    compact = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", compact):
        return False
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    number = int("".join(str(int(ch, 36)) for ch in moved))
    return number % 97 == 1


def ssn_ok(ssn: str) -> bool:
    match = re.fullmatch(r"(\d{3})-(\d{2})-(\d{4})", ssn)
    if match is None:
        return False
    area, group, serial = (int(g) for g in match.groups())
    return area not in (0, 666) and area < 900 and group != 0 and serial != 0


def phone_ok(main_number: str) -> bool:
    return 7 <= sum(ch.isdigit() for ch in main_number) <= 15


def email_ok(email: str) -> bool:
    local, at, domain = email.rpartition("@")
    if not at or not 0 < len(local) <= 64 or "@" in local or any(c.isspace() for c in email):
        return False
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels):
        return False
    try:
        domain.encode("idna")
    except UnicodeError:
        return False
    return True


def _grouped(digits: str, sizes: tuple[int, ...], sep: str) -> str:
    parts, pos = [], 0
    for size in sizes:
        parts.append(digits[pos : pos + size])
        pos += size
    if pos < len(digits):
        parts.append(digits[pos:])
    return sep.join(p for p in parts if p)


def _card(fakers: Fakers, rng: random.Random) -> Positive | None:
    locale = rng.choice(LOCALES)
    faker = fakers[locale]
    issuers = _issuers(faker)
    issuer = rng.choice(issuers)
    number = faker.credit_card_number(card_type=issuer)
    if issuers != ISSUERS:
        issuer = f"{issuer} ({locale})"
    elif issuer == "jcb16" and not "3528" <= number[:4] <= "3589":
        issuer = "jcb16 outside 3528-3589"  # Faker draws any 35xx; JCB holds 3528-3589
    if not luhn_ok(number):
        return None
    sizes = {15: (4, 6, 5), 14: (4, 6, 4)}.get(len(number), (4, 4, 4, 4, 4))
    layout = rng.choice(("compact", "spaced", "dashed"))
    sep = {"compact": "", "spaced": " ", "dashed": "-"}[layout]
    value = _grouped(number, sizes, sep)
    return Positive(CREDIT_CARD, value, (issuer, layout), value)


def _issuers(faker: Faker) -> tuple[str, ...]:
    """The issuers of ``faker``'s card provider, without the aliases of the default one."""
    (provider,) = (p for p in faker.providers if hasattr(p, "credit_card_types"))
    types = tuple(provider.credit_card_types)
    return ISSUERS if set(ISSUERS) <= set(types) else types


def _ssn(fakers: Fakers, rng: random.Random) -> Positive | None:
    ssn = fakers["en_US"].ssn()
    if not ssn_ok(ssn):
        return None
    layout = rng.choice(("dashed", "spaced", "digits"))
    value = {"dashed": ssn, "spaced": ssn.replace("-", " "), "digits": ssn.replace("-", "")}
    return Positive(US_SSN, value[layout], (layout,), value[layout])


def _iban(fakers: Fakers, rng: random.Random) -> Positive | None:
    iban = _faker(fakers, rng).iban()
    if not iban_ok(iban):
        return None
    layout = rng.choice(("compact", "grouped"))
    value = iban if layout == "compact" else " ".join(re.findall(".{1,4}", iban))
    return Positive(IBAN, value, (f"IBAN {iban[:2]}", layout), value)


_EXTENSION = re.compile(r"\s*(?:x|ext\.?\s*)\d+$")


def _phone(fakers: Fakers, rng: random.Random) -> Positive | None:
    locale = rng.choice(LOCALES)
    value = fakers[locale].phone_number()
    main = _EXTENSION.sub("", value)
    if not phone_ok(main):
        return None
    tags = (locale, "with extension" if main != value else "no extension")
    return Positive(PHONE, value, tags, main)


_IDN_TLDS = {"de_DE": "de", "fr_FR": "fr", "es_ES": "es", "ja_JP": "jp", "pl_PL": "pl"}


def _email(fakers: Fakers, rng: random.Random) -> Positive | None:
    faker = _faker(fakers, rng)
    layout = rng.choice(("faker", "free", "plus", "idn domain", "unicode local"))
    if layout == "faker":
        value = faker.email()
    elif layout == "free":
        value = faker.free_email()
    elif layout == "plus":
        value = f"{faker.user_name()}+{faker.word().lower()}@{faker.free_email_domain()}"
    else:
        locale = rng.choice(tuple(_IDN_TLDS))
        native = fakers[locale]
        if layout == "idn domain":
            city = re.sub(r"[^\w-]", "", native.city().lower().replace(" ", "-"))
            value = f"{faker.user_name()}@{city}.{_IDN_TLDS[locale]}"
        else:
            name = native.first_name().lower()
            value = f"{name}.{faker.user_name()}@{faker.free_email_domain()}"
        if value.isascii():
            layout = "plain"
    if not email_ok(value):
        return None
    return Positive(EMAIL, value, (layout, "ASCII" if value.isascii() else "non-ASCII"), value)


POSITIVES: dict[str, Callable[[Fakers, random.Random], Positive | None]] = {
    CREDIT_CARD: _card, US_SSN: _ssn, IBAN: _iban, PHONE: _phone, EMAIL: _email,
}  # fmt: skip


def _sixteen_digits_failing_luhn(faker: Faker, rng: random.Random) -> str:
    while True:
        digits = faker.numerify("%###############")
        if not luhn_ok(digits):
            return digits


def _version(faker: Faker, rng: random.Random) -> str:
    return ".".join(str(rng.randint(0, n)) for n in (30, 99, 999)[: rng.randint(2, 3)])


# class: (make, natural column names)
NEGATIVES: dict[str, tuple[Callable[[Faker, random.Random], str], tuple[str, ...]]] = {
    "order id": (lambda f, r: f.bothify(r.choice(("ORD-########", "#########", "??-######-##"))),
                 ("order_id", "order_number")),
    "uuid": (lambda f, r: f.uuid4(), ("id", "uuid", "request_id")),
    "isbn": (lambda f, r: r.choice((f.isbn13, f.isbn10))(), ("isbn",)),
    "ean": (lambda f, r: r.choice((f.ean13, f.ean8))(), ("ean", "barcode", "gtin")),
    "date": (lambda f, r: r.choice((f.date, f.iso8601, f.date_time().isoformat, f.time))(),
             ("created_at", "updated_at")),
    "epoch": (lambda f, r: str(int(f.unix_time()) * r.choice((1, 1000))), ("ts", "epoch")),
    "version": (_version, ("version", "app_version")),
    "hash": (lambda f, r: r.choice((f.md5, f.sha1, f.sha256))(), ("checksum", "sha")),
    "price": (lambda f, r: r.choice((f.pricetag, lambda: str(f.pydecimal(4, 2, True))))(),
              ("price", "amount")),
    "file name": (lambda f, r: r.choice((f.file_name, lambda: f"{f.word()}@{r.choice('23')}x."
                                         f"{r.choice(('png', 'jpg', 'webp'))}"))(),
                  ("file", "asset", "image")),
    "hostname": (lambda f, r: r.choice((f.hostname, f.domain_name, f.url))(), ("host", "url")),
    "card expiry/cvv": (lambda f, r: r.choice((f.credit_card_expire,
                                               f.credit_card_security_code))(), ("exp", "cvv")),
    "user agent": (lambda f, r: f.user_agent(), ("user_agent",)),
    "16 digits, not Luhn": (_sixteen_digits_failing_luhn, ("account_ref", "batch")),
}  # fmt: skip


def _faker(fakers: Fakers, rng: random.Random) -> Faker:
    return fakers[rng.choice(LOCALES)]


def make_fakers(seed: int) -> Fakers:
    """One seeded Faker per locale. Raises :class:`ImportError` without Faker installed."""
    from faker import Faker

    fakers: Fakers = {}
    for locale in LOCALES:
        faker = Faker(locale)
        faker.seed_instance(f"{seed}:{locale}")
        fakers[locale] = faker
    return fakers


class _Carriers:
    def __init__(self, policy: MaskingPolicy, fakers: Fakers) -> None:
        self._cells = CellMasker(policy)
        self._text = fakers["en_US"]

    def run(
        self, carrier: str, rng: random.Random, value: str, name: str
    ) -> tuple[str, str | None, str, tuple[str, ...]]:
        """``value`` through ``carrier`` under context ``name``: the cell's text, what came
        out (``None``: NULL), the text around the value, and the entities reported."""
        if carrier == "bare":
            type_name = rng.choice(("text", "varchar"))
            if value.isdigit() and value[0] != "0" and rng.random() < 0.5:
                type_name = rng.choice(("int8", "numeric")) if int(value) < 2**63 else "numeric"
            out = self._cells.mask(value, name, type_name)
            return value, out.value, "", out.entities
        if carrier == "sentence":
            words = self._text.sentence(nb_words=rng.randint(4, 12)).split()
            words.insert(rng.randint(0, len(words)), value)
            text = " ".join(words)
            out = self._cells.mask(text, name, "text")
            return text, out.value, text.replace(value, " ", 1), out.entities
        number = value.isdigit() and value[0] != "0" and rng.random() < 0.5
        cell: dict[str, object] = {"id": rng.randint(1, 10**6)}
        cell[name] = int(value) if number else value
        shapes: list[object] = [cell, {"data": cell, "tags": ["a", "b"]}, {"items": [cell]}]
        doc = rng.choice(shapes)
        text = json.dumps(doc, ensure_ascii=False)
        out = self._cells.mask(text, rng.choice(("payload", "attributes", "doc")),
                               rng.choice(("json", "jsonb")))  # fmt: skip
        return text, out.value, text.replace(value, " ", 1), out.entities


def _alnum(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def leaked(entity: str, secret: str, output: str | None, around: str) -> bool:
    """Whether five consecutive letters and digits of ``secret`` (past its designed reveal)
    are still in ``output`` and not merely in the text ``around`` it."""
    if output is None:
        return False
    key, out, rest = _alnum(secret), _alnum(output), _alnum(around)
    keep = _KEEP_LAST.get(entity, 0)
    hidden = len(key) - keep
    windows = {key[i : i + _WINDOW] for i in range(max(hidden, 1)) if i + _WINDOW <= len(key)}
    return any(w in out and w not in rest for w in windows)


def positives(fakers: Fakers, policy: MaskingPolicy, seed: int, n: int) -> list[Tally]:
    """``n`` checked positives of each entity per carrier, the contexts taking turns (bare
    nine-digit SSNs under informative names only, as nothing else tells them apart)."""
    carriers, tallies = _Carriers(policy, fakers), []
    for entity, make in POSITIVES.items():
        tally = Tally(entity)
        for carrier in CARRIERS:
            rng = random.Random(f"{seed}:{entity}:{carrier}")
            for i in range(n):
                sample = make(fakers, rng)
                while sample is None:
                    tally.rejected += 1
                    sample = make(fakers, rng)
                context = CONTEXTS[i % len(CONTEXTS)]
                if sample.tags == ("digits",) and entity == US_SSN:
                    context = "informative"
                names = INFORMATIVE[entity] if context == "informative" else (
                    NEUTRAL if context == "neutral" else MISLEADING)  # fmt: skip
                name = rng.choice(names)
                text, out, around, entities = carriers.run(carrier, rng, sample.value, name)
                hit = entity in entities and not leaked(entity, sample.secret, out, around)
                tally.add(carrier, context, sample.tags, hit)
                if not hit and len(tally.examples) < 4:
                    tally.examples.append(f"[{carrier}, {name}] {text!r} -> {out!r}")
        tallies.append(tally)
    return tallies


def negatives(fakers: Fakers, policy: MaskingPolicy, seed: int, n: int) -> list[Tally]:
    """``n`` hard negatives of each class per carrier; a hit is a touched cell."""
    carriers, tallies = _Carriers(policy, fakers), []
    for cls, (make, natural) in NEGATIVES.items():
        tally = Tally(cls)
        for carrier in CARRIERS:
            rng = random.Random(f"{seed}:{cls}:{carrier}")
            for i in range(n):
                value = make(_faker(fakers, rng), rng)
                context = NEGATIVE_CONTEXTS[i % 2]
                name = rng.choice(natural if context == "natural" else NEUTRAL)
                text, out, _, _ = carriers.run(carrier, rng, value, name)
                touched = out != text
                tally.add(carrier, context, (), touched)
                if touched and len(tally.examples) < 4:
                    tally.examples.append(f"[{carrier}, {name}] {text!r} -> {out!r}")
        tallies.append(tally)
    return tallies


def _pct(hits_total: list[int] | None) -> str:
    return "—" if not hits_total or not hits_total[1] else f"{hits_total[0] / hits_total[1]:.2%}"


def print_formats(tallies: list[Tally]) -> None:
    """Recall of each positive by format tag (issuer, layout, locale), with misses shown."""
    print("\nFaker corpus: recall by format (issuer, layout, locale, country)")
    for t in tallies:
        print(f"  {t.name} (rejected by the checkers and redrawn: {t.rejected})")
        for tag, cell in sorted(t.by_tag.items()):
            print(f"    {tag:<34}{cell[1]:>7}{_pct(cell):>9}")
        for example in t.examples:
            print(f"      e.g. {example}")


def print_negatives(tallies: list[Tally]) -> None:
    """Share of each class of Faker hard negatives touched, by carrier and context."""
    heads = [*CARRIERS, *NEGATIVE_CONTEXTS, "touched"]
    print("\nFaker corpus: hard negatives touched (default policy)")
    print(f"  {'':<26}" + "".join(f"{h[:8]:>9}" for h in heads))
    for t in tallies:
        cells = [t.by_carrier.get(c) for c in CARRIERS]
        cells += [t.by_context.get(c) for c in NEGATIVE_CONTEXTS] + [[t.hits, t.total]]
        print(f"  {t.name:<26}" + "".join(f"{_pct(c):>9}" for c in cells))
        for example in t.examples[:3]:
            print(f"      e.g. {example}")
    hits, total = sum(t.hits for t in tallies), sum(t.total for t in tallies)
    print(f"  {'all classes':<26}{_pct([hits, total]):>{9 * len(heads)}}")
