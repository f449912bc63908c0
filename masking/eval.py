"""``python -m masking.eval`` (``make eval-masking``): recall, leaks and false positives, measured.

Positives come from :mod:`masking.samples` (built from the specifications, never from the
detectors), hard negatives from :mod:`masking.negatives`. Each is evaluated in the four
carriers of :mod:`masking.carriers` (bare cell and JSON in flight, sentence and key=value
through :func:`masking.mask_text`), a third of the positives under an informative context
name, a third neutral, a third misleading; negatives half under their natural name, half
neutral.

A positive counts as found when its entity is reported and none of its letters and digits
is left visible beyond the designed reveal: the default policy masks CREDIT_CARD with the
partial strategy, which keeps the last 4 digits on purpose, and a connection URI keeps its
scheme, user and host (only the password is sensitive). The leak of an entity is the share
of its sensitive letters and digits still visible beyond that reveal, misses included. A
hard negative counts as touched when anything of its carrier changes.

Goals: recall ≥ 99.5 % on every default entity in every carrier, ≤ 0.5 % of every class of
hard negatives touched, nothing leaked. Opt-in entities are measured enabled, behind their
cue words, with no goal. Exits 1 when a goal fails.

A second corpus, built by Faker and checked by checkers of its own
(:mod:`masking.faker_corpus`), is measured beside it against the same goals: recall side by
side, then its recall by format and its hard negatives. Its verdicts are printed; they
change the exit status only with ``--strict`` (the first corpus is the regression gate,
the second the honest measure). Without Faker installed (the ``dev`` extra) it is skipped.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from masking import entity_table, mask_text, samples
from masking import faker_corpus as fc
from masking import faker_values as fv
from masking.carriers import CARRIERS, IN_FLIGHT, INFORMATIVE, MISLEADING, NEUTRAL, Carriers
from masking.entities import ALL_ENTITIES, CREDIT_CARD, US_SSN
from masking.negatives import NATURAL_COLUMNS, NEGATIVES
from masking.policy import MaskingPolicy
from masking.short_cards import print_short_cards
from masking.strategies import KEEP_LAST

RECALL_GOAL = 0.995
TOUCHED_GOAL = 0.005
CONTEXTS = ("informative", "neutral", "misleading")
NEGATIVE_CONTEXTS = ("natural", "neutral")
_SHOWN = 3

Make = Callable[[random.Random], str]


@dataclass(slots=True)
class Tally:
    """One row of a table (an entity, or a class of negatives): ``hits`` of ``totals`` per
    (carrier, context); the sensitive letters and digits seen and leaked; a few examples
    of what went wrong."""

    name: str
    hits: Counter[tuple[str, str]] = field(default_factory=Counter)
    totals: Counter[tuple[str, str]] = field(default_factory=Counter)
    chars: int = 0
    leaked: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, carrier: str, context: str, hit: bool, wrong: str | None) -> None:
        self.totals[carrier, context] += 1
        self.hits[carrier, context] += hit
        if wrong is not None and len(self.examples) < _SHOWN:
            self.examples.append(f"[{carrier}, {context}] {wrong!r}")

    def share(self, carrier: str | None = None, context: str | None = None) -> float | None:
        """Hits over samples, of one carrier or context or all; ``None`` for no samples."""
        hits = total = 0
        for (c, k), count in self.totals.items():
            if carrier in (None, c) and context in (None, k):
                hits, total = hits + self.hits[c, k], total + count
        return hits / total if total else None

    @property
    def leak(self) -> float:
        return self.leaked / self.chars if self.chars else 0.0


def _name(rng: random.Random, entity: str, context: str) -> str:
    if context == "informative":
        return rng.choice(INFORMATIVE[entity])
    return rng.choice(NEUTRAL if context == "neutral" else MISLEADING)


def recall(
    name: str,
    entity: str,
    make: Make,
    seed: int,
    n: int,
    contexts: Sequence[str] = CONTEXTS,
) -> Tally:
    """``n`` positives of ``entity`` per carrier, the contexts taking turns, through the
    default policy."""
    policy = MaskingPolicy()
    carriers, tally = Carriers(policy), Tally(name)
    reveal = KEEP_LAST if policy.strategy_for(entity) == "partial" else 0
    for carrier in CARRIERS:
        rng = random.Random(f"{seed}:{name}:{carrier}")
        for i in range(n):
            context = contexts[i % len(contexts)]
            value = make(rng)
            span = samples.sensitive_span(entity, value)
            out = carriers.run(carrier, rng, value, span, _name(rng, entity, context))
            secret = out.text[out.secret[0] : out.secret[1]]
            alnum = [j for j, ch in enumerate(secret) if ch.isalnum()]
            allowed = set(alnum[len(alnum) - reveal :]) if reveal else set()
            leaked = sum(j not in allowed for j in out.visible())
            tally.chars += len(alnum)
            tally.leaked += leaked
            found = entity in out.entities and leaked == 0
            tally.add(carrier, context, found, None if found else out.text)
    return tally


def default_recall(seed: int, n: int) -> list[Tally]:
    """Every default entity, and bare nine-digit SSNs under an informative name."""
    tallies = [recall(entity, entity, make, seed, n) for entity, make in samples.POSITIVES.items()]
    tallies.append(recall("US_SSN, 9 digits", US_SSN, _ssn_digits, seed, n, ("informative",)))
    return tallies


def _ssn_digits(rng: random.Random) -> str:
    return samples.ssn(rng).replace("-", "")


def negatives_touched(seed: int, n: int) -> list[Tally]:
    """``n`` hard negatives of each class per carrier that the default policy changes."""
    carriers, tallies = Carriers(MaskingPolicy()), []
    for name, make in NEGATIVES.items():
        tally = Tally(name)
        for carrier in CARRIERS:
            rng = random.Random(f"{seed}:{name}:{carrier}")
            for i in range(n):
                context = NEGATIVE_CONTEXTS[i % 2]
                column = rng.choice(NATURAL_COLUMNS[name] if context == "natural" else NEUTRAL)
                value = make(rng)
                out = carriers.run(carrier, rng, value, (0, len(value)), column)
                tally.add(carrier, context, out.touched, out.text if out.touched else None)
        tallies.append(tally)
    return tallies


def opt_in_recall(seed: int, n: int) -> list[Tally]:
    """Each opt-in entity, enabled, behind the words that cue it (``mask_text`` only)."""
    policy, tallies = MaskingPolicy(entities=ALL_ENTITIES), []
    for entity, (make, cue) in samples.OPT_IN.items():
        rng, tally = random.Random(f"{seed}:{entity}"), Tally(entity)
        for _ in range(n):
            value = make(rng)
            text = cue.format(value)
            result = mask_text(text, policy=policy)
            found = entity in result.entities and value not in result.value
            tally.add("sentence", "cue", found, None if found else text)
        tallies.append(tally)
    return tallies


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share:.2%}"


def _table(title: str, tallies: list[Tally], contexts: Sequence[str], positive: bool) -> None:
    """Rows of ``tallies`` by carrier (``*`` in flight), by context and overall; the leak for
    positives."""
    heads = [f"{c}{'*' if c in IN_FLIGHT else ''}" for c in CARRIERS] + [c[:7] for c in contexts]
    heads += ["recall", "leak"] if positive else ["touched"]
    print(f"\n{title}")
    print(f"  {'':<26}" + "".join(f"{h:>9}" for h in heads))
    for t in tallies:
        cells = [t.share(carrier=c) for c in CARRIERS] + [t.share(context=c) for c in contexts]
        row = [_pct(share) for share in [*cells, t.share()]]
        row += [f"{t.leak:.3%}"] if positive else []
        print(f"  {t.name:<26}" + "".join(f"{cell:>9}" for cell in row))
        for example in t.examples:
            print(f"      e.g. {example}")


def _opt_in_table(tallies: list[Tally]) -> None:
    print("\nOpt-in entities (enabled, behind their cue words; mask_text; no goal)")
    print(f"  {'':<26}{'samples':>9}{'recall':>9}")
    for t in tallies:
        print(f"  {t.name:<26}{t.totals.total():>9}{_pct(t.share()):>9}")
        for example in t.examples:
            print(f"      e.g. {example}")


_NOTES = f"""\
  leak: sensitive letters and digits left visible. By design {CREDIT_CARD} keeps its last
  {KEEP_LAST} digits (partial strategy) and a URI its scheme, user and host: not counted.
  US_SSN, 9 digits: only a name tells these from other numbers, so informative names only."""


def _verdicts(found: list[Tally], touched: list[Tally]) -> list[tuple[str, bool, str]]:
    """The goals: (what, met, the figure) for recall, hard negatives and leaks."""
    cells = [(t.share(carrier=c) or 0.0, f"{t.name}, {c}") for t in found for c in CARRIERS]
    low, where = min(cells, key=lambda cell: cell[0])
    worst = max(touched, key=lambda t: t.share() or 0.0)
    rate = worst.share() or 0.0
    overall = sum(t.hits.total() for t in touched) / sum(t.totals.total() for t in touched)
    leakiest = max(found, key=lambda t: t.leak)
    return [
        (f"recall >= {RECALL_GOAL:.1%} on every default entity in every carrier (lowest {where})",
         low >= RECALL_GOAL, f"{low:.2%}"),
        (f"hard negatives touched <= {TOUCHED_GOAL:.1%} in every class (highest {worst.name}; "
         f"all classes {overall:.3%})", rate <= TOUCHED_GOAL, f"{rate:.3%}"),
        (f"leak beyond the designed reveal = 0 on every default entity (highest {leakiest.name})",
         leakiest.leaked == 0, f"{leakiest.leak:.3%}"),
    ]  # fmt: skip


def _side_by_side(found: list[Tally], faker: list[fc.Tally]) -> None:
    """Recall of each default entity on both corpora; the Faker corpus by carrier and context."""
    heads = ["project", "faker", *fc.CARRIERS, *(c[:7] for c in fc.CONTEXTS)]
    print("\nRecall side by side: the project's corpus and the Faker corpus (in flight, all)")
    print(f"  {'':<26}" + "".join(f"{h:>9}" for h in heads))
    ours = {t.name: t.share() for t in found}
    for t in faker:
        cells = [t.by_carrier.get(c) for c in fc.CARRIERS]
        cells += [t.by_context.get(c) for c in fc.CONTEXTS]
        row = [_pct(ours.get(t.name)), _pct(t.share())] + [fc._pct(c) for c in cells]
        print(f"  {t.name:<26}" + "".join(f"{cell:>9}" for cell in row))
    missing = sorted(set(ours) - {t.name for t in faker} - {"US_SSN, 9 digits"})
    print(f"  not in the Faker corpus (Faker has no generator): {', '.join(missing)}")


def _faker_verdicts(found: list[fc.Tally], touched: list[fc.Tally]) -> list[tuple[str, bool, str]]:
    cells = [(h / n, f"{t.name}, {c}") for t in found for c, (h, n) in t.by_carrier.items()]
    low, where = min(cells)
    worst = max(touched, key=lambda t: t.share() or 0.0)
    rate = worst.share() or 0.0
    return [
        (f"Faker corpus: recall >= {RECALL_GOAL:.1%} on every entity in every carrier "
         f"(lowest {where})", low >= RECALL_GOAL, f"{low:.2%}"),
        (f"Faker corpus: hard negatives touched <= {TOUCHED_GOAL:.1%} in every class "
         f"(highest {worst.name})", rate <= TOUCHED_GOAL, f"{rate:.3%}"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m masking.eval", description=__doc__)
    parser.add_argument("--samples", type=int, default=4000, help="per row and carrier")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--faker-samples", type=int, default=2000, help="Faker corpus: per row and carrier"
    )
    parser.add_argument(
        "--strict", action="store_true", help="the Faker corpus's goals set the exit status too"
    )
    args = parser.parse_args(argv)
    seed, n = args.seed, args.samples
    found = default_recall(seed, n)
    opt_in, touched = opt_in_recall(seed, 4 * n), negatives_touched(seed, n)
    print(f"masking evaluation: seed {seed}, {n} samples per row and carrier")
    print("  * in flight: RowMasker.candidates + mask_row over DataRow bytes built with")
    print("    proxy.messages; sentence and kv: mask_text(value, column=...)")
    title = "Default entities: recall by carrier, by context name, overall; leak"
    _table(title, found, CONTEXTS, positive=True)
    print(_NOTES)
    _opt_in_table(opt_in)
    _table("Hard negatives (default policy): share touched", touched, NEGATIVE_CONTEXTS, False)
    overall = sum(t.hits.total() for t in touched) / sum(t.totals.total() for t in touched)
    print(f"  {'all classes':<26}{overall:>{9 * (len(CARRIERS) + len(NEGATIVE_CONTEXTS) + 1)}.3%}")
    checks, measured = _verdicts(found, touched), []
    try:
        fakers = fc.make_fakers(seed)
    except ImportError:
        print("\nFaker corpus: skipped (install the dev extra: pip install -e '.[dev]')")
    else:
        from faker import VERSION

        n_faker, policy = args.faker_samples, MaskingPolicy()
        faker_found = fc.positives(fakers, policy, seed, n_faker)
        faker_opt_in = fc.positives(fakers, entity_table.EVERYTHING, seed, n_faker, fv.OPT_IN)
        faker_touched = fc.negatives(fakers, policy, seed, n_faker)
        faker_all = fc.negatives(fakers, entity_table.EVERYTHING, seed, n_faker)
        print(f"\nFaker corpus: Faker {VERSION}, seed {seed}, {n_faker} samples per row and")
        print(f"  carrier, locales {' '.join(fv.LOCALES)}; through masking.cell.CellMasker")
        _side_by_side(found, faker_found)
        fc.print_formats(faker_found)
        fc.print_formats(faker_opt_in)
        fc.print_negatives(faker_touched)
        print_short_cards(seed, n_faker * 5)
        measured = _faker_verdicts(faker_found, faker_touched)
        entity_table.print_table(
            {t.name: t.share() for t in found + opt_in},
            {t.name: t.share() for t in faker_found + faker_opt_in},
            entity_table.reported_on_negatives(seed, n),
            entity_table.faker_reported(faker_all),
        )
    print()
    for label, ok, value in checks + measured:
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {value}")
    gate = checks + measured if args.strict else checks
    return 0 if all(ok for _, ok, _ in gate) else 1


if __name__ == "__main__":
    sys.exit(main())
