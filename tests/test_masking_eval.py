"""The masking evaluation on a small seeded sample: recall of every default entity in every
carrier, nothing leaked beyond the designed partial reveal, every class of hard negatives
under its bar; the generators against their specifications; ``python -m masking.eval``."""

from __future__ import annotations

import random
import string

import pytest

from masking import DEFAULT_ENTITIES, MaskingPolicy, samples, specs
from masking import eval as evaluation
from masking import negatives as neg
from masking.carriers import CARRIERS, Carriers, Outcome

SAMPLES = 200
CLASSES = {
    "luhn-failing", "non-card luhn id", "uuid", "epoch s", "epoch ms", "iso timestamp",
    "version", "git sha", "hex digest", "money", "price", "sku", "isbn", "tracking",
    "placeholder", "order id",
}  # fmt: skip


@pytest.fixture(scope="module")
def found() -> list[evaluation.Tally]:
    return evaluation.default_recall(1, SAMPLES)


def test_recall_in_every_carrier(found: list[evaluation.Tally]) -> None:
    assert {t.name for t in found} >= DEFAULT_ENTITIES
    for tally in found:
        for carrier in CARRIERS:
            share = tally.share(carrier=carrier)
            assert share is not None and share >= evaluation.RECALL_GOAL, (
                tally.name,
                carrier,
                tally.examples,
            )


def test_every_context_is_evaluated(found: list[evaluation.Tally]) -> None:
    for tally in found:
        contexts = {context for _, context in tally.totals}
        expected = {"informative"} if tally.name == "US_SSN, 9 digits" else set(evaluation.CONTEXTS)
        assert contexts == expected, tally.name


def test_nothing_leaks_beyond_the_partial_reveal(found: list[evaluation.Tally]) -> None:
    for tally in found:
        assert tally.chars > 0 and tally.leaked == 0, (tally.name, tally.examples)


def test_leak_counts_what_stays_visible() -> None:
    card = "4111 1111 1111 1111"
    text = f"card {card} ok"
    span = (5, 5 + len(card))
    partial = Outcome(text, span, "card **** **** **** 1111 ok", frozenset({"CREDIT_CARD"}))
    assert partial.visible() == [15, 16, 17, 18]  # the last four digits, the designed reveal
    assert len(Outcome(text, span, text, frozenset()).visible()) == 16
    cut = Outcome("x abc@ex.com y", (2, 12), "x abc[EMAIL] y", frozenset({"EMAIL"}))
    assert cut.visible() == [0, 1, 2]
    assert Outcome("4111111111111111", (0, 16), None, frozenset()).visible() == []


def test_every_negative_class_is_touched_at_most_half_a_percent() -> None:
    touched = evaluation.negatives_touched(2, SAMPLES)
    assert {t.name for t in touched} == set(neg.NEGATIVES) == CLASSES
    for tally in touched:
        share = tally.share()
        assert share is not None and share <= evaluation.TOUCHED_GOAL, (tally.name, tally.examples)


def test_carriers_go_through_the_masker_with_their_context() -> None:
    carriers, rng = Carriers(MaskingPolicy()), random.Random(6)
    ssn = "123456789"
    for carrier in CARRIERS:
        assert carriers.run(carrier, rng, ssn, (0, 9), "ssn").entities == {"US_SSN"}, carrier
        assert not carriers.run(carrier, rng, ssn, (0, 9), "note").touched, carrier
    out = carriers.run("json", rng, "4111111111111111", (0, 16), "order_id")
    assert out.touched and out.entities == {"CREDIT_CARD"} and '"order_id": ' in out.text


def test_opt_in_entities_are_found_with_their_cues() -> None:
    for tally in evaluation.opt_in_recall(3, 200):
        share = tally.share()
        assert share is not None and share >= 0.98, (tally.name, tally.examples)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def test_positives_are_well_formed_by_their_specifications() -> None:
    """The generators are independent of the detectors: check their output by the rules."""
    rng = random.Random(4)
    brands, countries = set(), set()
    for _ in range(3000):
        digits = "".join(ch for ch in samples.card(rng) if ch.isdigit())
        brand = specs.issuer_of(digits)
        assert brand is not None and _luhn_ok(digits)
        brands.add(brand)
        compact = samples.typed_iban(rng).replace(" ", "").replace("-", "").upper()
        assert len(compact) == specs.iban_length(compact[:2])
        rearranged = compact[4:] + compact[:4]
        assert int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1
        countries.add(compact[:2])
        area, group, serial = (int(part) for part in samples.ssn(rng).split("-"))
        assert 1 <= area <= 899 and area != 666 and 1 <= group <= 99 and 1 <= serial <= 9999
    assert brands == {"visa", "mastercard", "amex", "discover", "jcb", "unionpay", "diners",
                      "maestro", "mir", "rupay", "troy"}  # fmt: skip
    assert len(countries) >= 80


def test_card_like_negatives_are_not_cards() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        failing = neg.NEGATIVES["luhn-failing"](rng).replace(" ", "")
        assert 13 <= len(failing) <= 19 and not _luhn_ok(failing)
        ident = neg.no_issuer_id(rng).replace(" ", "")
        assert 13 <= len(ident) <= 19 and _luhn_ok(ident)
        assert set(ident) <= set(string.digits) and specs.issuer_of(ident) is None


def test_cli_prints_the_tables_and_the_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluation.main(["--samples", "60", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    for name in [*DEFAULT_ENTITIES, *CLASSES]:
        assert f"\n  {name} " in out
    assert "bare*" in out and "json*" in out and "mask_text(value, column=...)" in out
    assert "PASS  recall >= 99.5% on every default entity in every carrier" in out
    assert "PASS  hard negatives touched <= 0.5% in every class" in out
    assert "PASS  leak beyond the designed reveal = 0" in out
    assert "GS1-valid is a barcode (chosen)" in out
