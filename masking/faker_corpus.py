"""A second evaluation corpus, built without the project's generators: values from Faker.

:mod:`masking.samples` and :mod:`masking.negatives` were written by the same hands as the
detectors; this corpus is not. Positives come from Faker's own providers across sixteen
locales and are laid out the ways people write them (:mod:`masking.faker_values`); each must
pass the corpus's own checker (:mod:`masking.faker_checks`, apart from the validators under
test), and what fails is counted as rejected and never as a positive. Hard negatives are in
:mod:`masking.faker_negatives`. Faker offers no credentials, so secrets are not in this
corpus.

Every value goes through :class:`masking.cell.CellMasker` (the gateway's row masker on a
DataRow) in three carriers: ``bare`` (a text or varchar cell, an all-digit value also int8 or
numeric), ``sentence`` (inside a Faker sentence in a text cell) and ``json`` (under a key of a
json or jsonb document), under a column name or key that is informative, neutral or
misleading for a positive, natural or neutral for a negative. A positive that only a name can
tell apart (a bare nine-digit SSN, a national phone number) is placed under informative names
only.

A positive is found when its entity is reported and no five consecutive letters and digits
of it stay visible beyond the designed reveal (a card's last four); a negative is touched
when its cell changes at all, and each entity reported in it is counted against that entity.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from masking import entities as e
from masking.cell import CellMasker
from masking.faker_negatives import NEGATIVES
from masking.faker_values import LOCALES, POSITIVES, Fakers, Positive
from masking.policy import MaskingPolicy
from masking.strategies import KEEP_LAST

CARRIERS = ("bare", "sentence", "json")
CONTEXTS = ("informative", "neutral", "misleading")
NEGATIVE_CONTEXTS = ("natural", "neutral")
INFORMATIVE = {
    e.CREDIT_CARD: ("credit_card_number", "cardNumber", "cc_num", "pan"),
    e.US_SSN: ("ssn", "SSN", "social_security_no"),
    e.US_ITIN: ("itin", "taxpayer_id"),
    e.IBAN: ("iban", "IBAN", "bank_iban"),
    e.PHONE: ("phone_number", "mobile", "contact_phone", "telefon", "tel"),
    e.EMAIL: ("email_address", "e_mail", "customer_email", "mail"),
    e.BR_CPF: ("cpf", "cpf_cliente"),
    e.BR_CNPJ: ("cnpj", "cnpj_empresa"),
    e.IT_FISCAL_CODE: ("codice_fiscale", "cf"),
    e.IN_AADHAAR: ("aadhaar", "aadhaar_no"),
    e.IN_PAN: ("pan_number", "pan_card"),
    e.ES_DNI: ("dni", "nif"),
    e.FR_NIR: ("nir", "numero_secu"),
    e.CA_SIN: ("sin", "social_insurance_number"),
    e.PERSON_NAME: ("full_name", "customer_name", "name", "lastName"),
    e.STREET_ADDRESS: ("street_address", "address", "billing_address_line1"),
}
NEUTRAL = ("col1", "value", "content", "body", "remarks", "info")
MISLEADING = ("order_number", "reference", "tracking_code", "sku", "created", "zip", "id")
_WINDOW = 5
_KEEP_LAST = {e.CREDIT_CARD: KEEP_LAST}
_SHOWN = 4

Make = Callable[[Fakers, random.Random], "Positive | None"]


@dataclass(slots=True)
class Tally:
    """Hits over totals of one entity or negative class, by carrier, context and tag."""

    name: str
    by_carrier: dict[str, list[int]] = field(default_factory=dict)
    by_context: dict[str, list[int]] = field(default_factory=dict)
    by_tag: dict[str, list[int]] = field(default_factory=dict)
    rejected: int = 0
    examples: list[str] = field(default_factory=list)
    reported: Counter[str] = field(default_factory=Counter)

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


def leaked(entity: str, secret: str, output: str | None, text: str, value: str) -> bool:
    """Whether five consecutive letters and digits of ``secret`` (past its designed reveal)
    are still in what became of ``value`` in ``output`` (the masked ``text``): the output
    less what it shares with the text before and after the value, so that a key name or a
    word beside it is never read as part of it."""
    if output is None:
        return False
    start = text.find(value)
    end = start + len(value)
    head = min(_shared(text, output), start)
    tail = min(_shared(text[::-1], output[::-1]), len(text) - end)
    out = _alnum(output[head : len(output) - tail])
    key = _alnum(secret)
    hidden = len(key) - _KEEP_LAST.get(entity, 0)
    windows = {key[i : i + _WINDOW] for i in range(max(hidden, 1)) if i + _WINDOW <= len(key)}
    return any(w in out for w in windows)


def _shared(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def positives(
    fakers: Fakers,
    policy: MaskingPolicy,
    seed: int,
    n: int,
    makers: Mapping[str, Make] | None = None,
) -> list[Tally]:
    """``n`` checked positives of each entity of ``makers`` (the default entities' unless
    given) per carrier, the contexts taking turns (informative only for a positive that
    needs a name)."""
    carriers, tallies = _Carriers(policy, fakers), []
    for entity, make in (POSITIVES if makers is None else makers).items():
        tally = Tally(entity)
        for carrier in CARRIERS:
            rng = random.Random(f"{seed}:{entity}:{carrier}")
            for i in range(n):
                sample = make(fakers, rng)
                while sample is None:
                    tally.rejected += 1
                    sample = make(fakers, rng)
                context = "informative" if sample.cued else CONTEXTS[i % len(CONTEXTS)]
                names = INFORMATIVE[entity] if context == "informative" else (
                    NEUTRAL if context == "neutral" else MISLEADING)  # fmt: skip
                name = rng.choice(names)
                text, out, _, entities = carriers.run(carrier, rng, sample.value, name)
                hit = entity in entities and not leaked(
                    entity, sample.secret, out, text, sample.value
                )
                tally.add(carrier, context, sample.tags, hit)
                if not hit and len(tally.examples) < _SHOWN:
                    tally.examples.append(f"[{carrier}, {name}] {text!r} -> {out!r}")
        tallies.append(tally)
    return tallies


def negatives(fakers: Fakers, policy: MaskingPolicy, seed: int, n: int) -> list[Tally]:
    """``n`` hard negatives of each class per carrier; a hit is a touched cell, and each
    entity reported in it is counted in :attr:`Tally.reported`."""
    carriers, tallies = _Carriers(policy, fakers), []
    for cls, (make, natural) in NEGATIVES.items():
        tally = Tally(cls)
        for carrier in CARRIERS:
            rng = random.Random(f"{seed}:{cls}:{carrier}")
            for i in range(n):
                value = make(fakers[rng.choice(LOCALES)], rng)
                context = NEGATIVE_CONTEXTS[i % 2]
                name = rng.choice(natural if context == "natural" else NEUTRAL)
                text, out, _, entities = carriers.run(carrier, rng, value, name)
                touched = out != text
                tally.add(carrier, context, (), touched)
                tally.reported.update(set(entities))
                if touched and len(tally.examples) < _SHOWN:
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
