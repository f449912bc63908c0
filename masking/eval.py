"""``python -m masking.eval`` (``make eval-masking``): recall and false positives, measured.

Generates seeded labelled values (:mod:`masking.samples`) embedded in varied text and masks
them with :func:`masking.mask_text`. A positive counts as found when its entity is reported
and its sensitive part is gone from the output; a hard negative counts as touched when the
output differs at all. The same positives also go through the in-flight row masker. Goals
(DESIGN.md, "Quality bars"): recall ≥ 99.5 % on every default entity, ≤ 0.5 % of hard
negatives touched. Opt-in entities are measured with a policy that enables them and the
context words they need; they have no goal. Exits 1 when a goal fails.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass

from masking import mask_text, samples
from masking.entities import ALL_ENTITIES, US_SSN
from masking.policy import MaskingPolicy
from masking.stream import ColumnPlan, RowMasker
from proxy import messages as m

RECALL_GOAL = 0.995
TOUCHED_GOAL = 0.005
_ALL = MaskingPolicy(entities=ALL_ENTITIES)
_DESCRIPTION = m.RowDescription(
    (m.FieldDescription("id", 0, 1, 23, 4, -1, 0), m.FieldDescription("note", 0, 2, 25, -1, -1, 0))
).encode()[5:]


@dataclass(frozen=True, slots=True)
class Score:
    """``hits`` of ``total`` samples of one entity or negative class; ``misses`` shows a few."""

    name: str
    hits: int
    total: int
    misses: tuple[str, ...]

    @property
    def share(self) -> float:
        return self.hits / self.total if self.total else 0.0


Place = Callable[[random.Random, str], tuple[str, str | None]]
"""Puts a generated value in context: the text to mask and its column name."""


def _recall(
    name: str,
    entity: str,
    make: Callable[[random.Random], str],
    place: Place,
    policy: MaskingPolicy,
    rng: random.Random,
    n: int,
) -> Score:
    hits, misses = 0, list[str]()
    for _ in range(n):
        value = make(rng)
        text, column = place(rng, value)
        result = mask_text(text, column=column, policy=policy)
        if entity in result.entities and samples.sensitive_part(entity, value) not in result.value:
            hits += 1
        elif len(misses) < 3:
            misses.append(text)
    return Score(name, hits, n, tuple(misses))


def _embedded(rng: random.Random, value: str) -> tuple[str, str | None]:
    return samples.embed(rng, value), None


def _after(cue: str) -> Place:
    def place(rng: random.Random, value: str) -> tuple[str, str | None]:
        return cue.format(value), None

    return place


def _bare_ssn(rng: random.Random) -> str:
    return samples.ssn(rng).replace("-", "")


def _in_ssn_column(rng: random.Random, value: str) -> tuple[str, str | None]:
    return value, "ssn"


def _after_keyword(rng: random.Random, value: str) -> tuple[str, str | None]:
    return f"SSN: {value}", None


def default_recall(rng: random.Random, n: int) -> list[Score]:
    """Recall of each default entity, and of bare SSNs given their column name as context."""
    policy = MaskingPolicy()
    scores = [
        _recall(name, name, make, _embedded, policy, rng, n)
        for name, make in samples.POSITIVES.items()
    ]
    scores.append(_recall("US_SSN bare, column", US_SSN, _bare_ssn, _in_ssn_column, policy, rng, n))
    scores.append(
        _recall("US_SSN bare, keyword", US_SSN, _bare_ssn, _after_keyword, policy, rng, n)
    )
    return scores


def in_flight_recall(rng: random.Random, n: int) -> list[Score]:
    """Recall of each default entity through :class:`~masking.stream.RowMasker` the way the
    relay drives it: a DataRow counts as found when :meth:`~RowMasker.candidates` points into
    it and :meth:`~RowMasker.mask_row` leaves nothing of the value."""
    masker = RowMasker(MaskingPolicy())
    plan = ColumnPlan.from_row_description(_DESCRIPTION)
    scores = []
    for name, make in samples.POSITIVES.items():
        hits, misses = 0, list[str]()
        for _ in range(n):
            value = make(rng)
            text = samples.embed(rng, value)
            wire = m.DataRow((b"42", text.encode())).encode()
            masked = masker.mask_row(wire[5:], plan) if masker.candidates(wire) else None
            secret = samples.sensitive_part(name, value).encode()
            if masked is not None and secret not in masked:
                hits += 1
            elif len(misses) < 3:
                misses.append(text)
        scores.append(Score(name, hits, n, tuple(misses)))
    return scores


def opt_in_recall(rng: random.Random, n: int) -> list[Score]:
    """Recall of each opt-in entity, enabled, behind the words that cue it."""
    return [
        _recall(entity, entity, make, _after(cue), _ALL, rng, n)
        for entity, (make, cue) in samples.OPT_IN.items()
    ]


def negatives_touched(rng: random.Random, n: int) -> list[Score]:
    """How many hard negatives of each class the default policy changes."""
    scores = []
    for name, make in samples.NEGATIVES.items():
        touched, shown = 0, list[str]()
        for _ in range(n):
            text = samples.embed(rng, make(rng))
            if mask_text(text).value != text:
                touched += 1
                if len(shown) < 3:
                    shown.append(text)
        scores.append(Score(name, touched, n, tuple(shown)))
    return scores


def _table(title: str, scores: list[Score], column: str) -> None:
    print(f"\n{title}")
    print(f"  {'':<24} {'samples':>8} {column:>9}")
    for score in scores:
        print(f"  {score.name:<24} {score.total:>8} {score.share:>9.2%}")
        for miss in score.misses:
            print(f"      e.g. {miss!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m masking.eval", description=__doc__)
    parser.add_argument("--samples", type=int, default=4000, help="per entity or class")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    recall = default_recall(rng, args.samples)
    in_flight = in_flight_recall(rng, args.samples)
    opt_in = opt_in_recall(rng, args.samples)
    touched = negatives_touched(rng, args.samples)
    print(f"masking evaluation: seed {args.seed}, {args.samples} samples per row")
    _table("Default entities", recall, "recall")
    _table("Default entities in flight (candidates + mask_row)", in_flight, "recall")
    _table("Opt-in entities (enabled, with their cue words)", opt_in, "recall")
    _table("Hard negatives (default policy)", touched, "touched")
    worst = min([*recall, *in_flight], key=lambda s: s.share)
    share = sum(s.hits for s in touched) / sum(s.total for s in touched)
    checks = [
        (f"recall >= {RECALL_GOAL:.1%} on every default entity (lowest {worst.name})",
         worst.share >= RECALL_GOAL, f"{worst.share:.2%}"),
        (f"hard negatives touched <= {TOUCHED_GOAL:.1%}", share <= TOUCHED_GOAL, f"{share:.3%}"),
    ]  # fmt: skip
    print()
    for label, ok, value in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {value}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
