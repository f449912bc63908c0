"""The per-entity summary of the masking evaluation: for every entity, whether it is on by
default, its recall on each corpus, and how often it is reported on each corpus's hard
negatives with every entity enabled (its false-positive rate, which decides whether it can
be on by default).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping

from masking import faker_corpus as fc
from masking.carriers import CARRIERS, NEUTRAL, Carriers
from masking.entities import ALL_ENTITIES, DEFAULT_ENTITIES
from masking.negatives import NATURAL_COLUMNS, NEGATIVES
from masking.policy import MaskingPolicy

EVERYTHING = MaskingPolicy(entities=ALL_ENTITIES)


def reported_on_negatives(seed: int, n: int) -> tuple[Counter[str], int]:
    """How many of the project's hard negatives each entity is reported in, every entity
    enabled (``n`` per class and carrier, half under natural names), and how many there are."""
    carriers, reported, total = Carriers(EVERYTHING), Counter[str](), 0
    for name, make in NEGATIVES.items():
        for carrier in CARRIERS:
            rng = random.Random(f"{seed}:{name}:{carrier}:all")
            for i in range(n):
                column = rng.choice(NATURAL_COLUMNS[name] if i % 2 else NEUTRAL)
                value = make(rng)
                reported.update(carriers.run(carrier, rng, value, (0, len(value)), column).entities)
                total += 1
    return reported, total


def faker_reported(touched: list[fc.Tally]) -> tuple[Counter[str], int]:
    """The same count over the Faker corpus's hard negatives (run with every entity)."""
    reported: Counter[str] = Counter()
    for tally in touched:
        reported.update(tally.reported)
    return reported, sum(t.total for t in touched)


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share:.2%}"


def print_table(
    recall: Mapping[str, float | None],
    faker_recall: Mapping[str, float | None],
    project_fp: tuple[Counter[str], int],
    faker_fp: tuple[Counter[str], int],
) -> None:
    """One row per entity: default or opt-in, recall and false-positive rate per corpus."""
    print("\nEvery entity: recall, and share of hard negatives reported as it (all enabled)")
    heads = ("", "recall", "", "false positives", "")
    print(f"  {'':<24}{'':<9}" + "".join(f"{h:>11}" for h in heads[1:]))
    print(f"  {'entity':<24}{'default':<9}{'project':>11}{'Faker':>11}{'project':>11}{'Faker':>11}")
    (ours, our_total), (theirs, their_total) = project_fp, faker_fp
    for entity in sorted(ALL_ENTITIES, key=lambda x: (x not in DEFAULT_ENTITIES, x)):
        row = (
            _pct(recall.get(entity)),
            _pct(faker_recall.get(entity)),
            _pct(ours[entity] / our_total),
            _pct(theirs[entity] / their_total if their_total else None),
        )
        on = "yes" if entity in DEFAULT_ENTITIES else "opt-in"
        print(f"  {entity:<24}{on:<9}" + "".join(f"{cell:>11}" for cell in row))
