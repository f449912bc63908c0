"""The masking evaluation on a small seeded sample: the recall and false-positive bars of
DESIGN.md ("Quality bars") hold, and ``python -m masking.eval`` reports them."""

from __future__ import annotations

import random

import pytest

from masking import DEFAULT_ENTITIES, samples
from masking import eval as evaluation

SAMPLES = 400


def test_recall_on_every_default_entity() -> None:
    scores = evaluation.default_recall(random.Random(1), SAMPLES)
    assert {s.name for s in scores} >= DEFAULT_ENTITIES
    for score in scores:
        assert score.share >= evaluation.RECALL_GOAL, (score.name, score.misses)


def test_recall_in_flight() -> None:
    for score in evaluation.in_flight_recall(random.Random(5), SAMPLES):
        assert score.share >= evaluation.RECALL_GOAL, (score.name, score.misses)


def test_hard_negatives_touched() -> None:
    scores = evaluation.negatives_touched(random.Random(2), SAMPLES)
    assert {s.name for s in scores} == set(samples.NEGATIVES)
    touched = sum(s.hits for s in scores) / sum(s.total for s in scores)
    assert touched <= evaluation.TOUCHED_GOAL, [s.misses for s in scores if s.hits]


def test_opt_in_entities_are_found_with_their_cues() -> None:
    for score in evaluation.opt_in_recall(random.Random(3), 200):
        assert score.share >= 0.98, (score.name, score.misses)


def test_positives_are_well_formed_by_their_specifications() -> None:
    """The generator is independent of the detectors: check its output by the rules."""
    rng = random.Random(4)
    for _ in range(500):
        digits = "".join(ch for ch in samples.card(rng) if ch.isdigit())
        assert samples.luhn_check_digit(digits[:-1]) == digits[-1]
        compact = samples.iban(rng).replace(" ", "")
        rearranged = compact[4:] + compact[:4]
        assert int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def test_cli_prints_the_table_and_the_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluation.main(["--samples", "60", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    for entity in DEFAULT_ENTITIES:
        assert f"\n  {entity} " in out
    assert "PASS  recall >= 99.5% on every default entity" in out
    assert "PASS  hard negatives touched <= 0.5%" in out
