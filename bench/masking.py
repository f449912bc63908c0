"""``python -m bench.masking``: the in-flight row masker on one core, against framing alone.

Builds synthetic results shaped like ``SELECT * FROM orders`` (int8 id, name, city, order
number, timestamptz, uuid, numeric amount, free-text notes) in which 0 %, 10 % or 100 % of the
rows carry one PII value in their notes (e-mail, card, IBAN, phone or a secret), cut into
64 KiB reads and framed by :class:`proxy.codec.Framer` beforehand. The timed loop does what
the relay does per read: :meth:`RowMasker.candidates` once, then :meth:`RowMasker.mask_row`
for each DataRow holding a candidate offset (with that offset), and the splice of the new
rows into the read.

The ``psql shape`` results are the rows of ``bench/results.py`` (int4 id, name, city, order
number, timestamptz, uuid, numeric amount, a note) as psql receives them in text format, where
a PII row's note holds an e-mail, a card and a phone number. The ``us/PII`` column is the time
each PII row adds over the clean result of the same shape; for the psql shape it is the figure
behind the ``make bench`` ratio of the 10 % PII table.

Baselines on the same reads: ``Framer.feed`` (the relay's framing) and a bare Python loop that
only steps over message boundaries. A last line shows the cost of a binary-format result
(as asyncpg asks for), where int8 columns make every row go through ``mask_row``.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import random
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench import BenchError
from masking import samples
from masking.policy import MaskingPolicy
from masking.stream import ColumnPlan, RowMasker
from proxy import messages as m
from proxy.codec import Framer

ROWS = 100_000
READ_SIZE = 64 * 1024
PASSES = 5
GOALS = {"0% PII rows": 250.0, "10% PII rows": 100.0, "100% PII rows": 20.0}  # DESIGN.md
_COLUMNS = (
    ("id", 20), ("customer", 25), ("city", 25), ("order_no", 25), ("created_at", 1184),
    ("ref", 2950), ("amount", 1700), ("notes", 25),
)  # fmt: skip
_WORDS = (
    "the", "customer", "asked", "about", "delivery", "window", "and", "wants", "a", "refund",
    "for", "damaged", "item", "please", "call", "back", "tomorrow", "morning", "order",
    "shipped", "late", "again", "invoice", "attached", "courier", "left", "parcel", "at",
    "reception", "gift", "wrap", "requested", "Zoë", "→", "déjà", "vu",
)  # fmt: skip
_CITIES = ("Berlin", "Zürich", "São Paulo", "Lyon", "Osaka", "Austin", "Kraków", "Porto")
# bench/results.py's table: int4 id and 'customer ' || id, as psql asks for them (text format).
_PSQL_COLUMNS = (
    ("id", 23), ("name", 25), ("city", 25), ("order_no", 25), ("created", 1184), ("ref", 2950),
    ("amount", 1700), ("note", 25),
)  # fmt: skip
_PSQL_PII = "reach me at user{}@example.com, card 4111 1111 1111 1111, +14155552671"
_PII = (samples.email, samples.card, samples.iban, samples.phone, *samples.SECRETS.values())
_INT32 = struct.Struct("!i")


@dataclass(frozen=True, slots=True)
class Result:
    """A framed result: per read, the complete messages and their frames."""

    name: str
    reads: list[tuple[bytes, list[tuple[int, int, int]]]]
    raw: list[bytes]
    plan: ColumnPlan
    pii_rows: int

    @property
    def size(self) -> int:
        return sum(len(read) for read in self.raw)


def _row(rng: random.Random, pii: bool, binary: bool) -> m.DataRow:
    notes = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 30)))
    if pii:
        words = notes.split(" ")
        words.insert(rng.randrange(len(words) + 1), rng.choice(_PII)(rng))
        notes = " ".join(words)
    ident = rng.randrange(1, 10**7)
    return m.DataRow(
        (
            ident.to_bytes(8, "big") if binary else str(ident).encode(),
            f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()}".encode(),
            rng.choice(_CITIES).encode(),
            f"ORD-2024-{rng.randrange(10**6):06d}".encode(),
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} 10:{rng.randrange(60):02d}:"
            f"{rng.randrange(60):02d}.{rng.randrange(10**6):06d}+00".encode(),
            samples.NEGATIVES["uuid"](rng).encode(),
            f"{rng.randrange(10**5)}.{rng.randrange(100):02d}".encode(),
            notes.encode(),
        )
    )


def _psql_row(g: int, pii: bool) -> m.DataRow:
    """Row ``g`` of bench/results.py's table, spelled as PostgreSQL sends it to psql."""
    ref = hashlib.md5(str(g).encode()).hexdigest()
    return m.DataRow(
        (
            str(g).encode(),
            f"customer {g}".encode(),
            ("Lyon", "Porto", "Turku", "Graz")[g % 4].encode(),
            f"ORD-{g * 7919 % 1000000:07d}".encode(),
            f"2024-01-{1 + g // 1440 % 28:02d} {g // 60 % 24:02d}:{g % 60:02d}:00+00".encode(),
            f"{ref[:8]}-{ref[8:12]}-{ref[12:16]}-{ref[16:20]}-{ref[20:]}".encode(),
            f"{g % 1000 * 1.25:.2f}".encode(),
            (_PSQL_PII.format(g) if pii else "delivered on time, thanks").encode(),
        )
    )


def build(
    name: str, share: float, binary: bool = False, seed: int = 7, psql: bool = False
) -> Result:
    """``ROWS`` rows, ``share`` of them with PII, framed into ``READ_SIZE`` reads; with
    ``psql``, rows of bench/results.py's table instead of the orders above."""
    rng = random.Random(seed)
    fmt = 1 if binary else 0
    columns = _PSQL_COLUMNS if psql else _COLUMNS
    fields = tuple(
        m.FieldDescription(n, 0, i, oid, -1, -1, fmt) for i, (n, oid) in enumerate(columns)
    )
    description = m.RowDescription(fields).encode()
    flags = [rng.random() < share for _ in range(ROWS)]
    rows = (_psql_row(g, pii) if psql else _row(rng, pii, binary) for g, pii in enumerate(flags, 1))
    wire = b"".join(
        [
            description,
            *(row.encode() for row in rows),
            m.CommandComplete(f"SELECT {ROWS}").encode(),
            m.ReadyForQuery("I").encode(),
        ]
    )
    raw = [wire[i : i + READ_SIZE] for i in range(0, len(wire), READ_SIZE)]
    framer = Framer()
    reads = [framer.feed(read) for read in raw]
    plan = ColumnPlan.from_row_description(description[5:])
    return Result(name, reads, raw, plan, sum(flags))


def mask_reads(result: Result, masker: RowMasker) -> int:
    """The relay's work on every read; answers how many rows were rewritten."""
    rewritten = 0
    every_row = masker.every_row(result.plan)
    for buf, frames in result.reads:
        view = memoryview(buf)  # the relay hands mask_row views, not copies
        offsets = masker.candidates(buf)
        if not offsets and not every_row:
            continue
        rows: list[tuple[int, int | None]]
        if every_row:
            rows = [(i, None) for i, frame in enumerate(frames) if frame[0] == m.DATA_ROW]
        else:
            rows = _rows_holding(frames, offsets)
        parts: list[bytes] = []
        pos = 0
        for i, hit in rows:
            _, start, end = frames[i]
            body = masker.mask_row(view[start:end], result.plan, hit)
            if body is not None:
                parts += (buf[pos : start - 5], b"D", _INT32.pack(len(body) + 4), body)
                pos = end
                rewritten += 1
        if parts:
            parts.append(buf[pos:])
            b"".join(parts)  # the bytes the relay would write
    return rewritten


def _rows_holding(
    frames: list[tuple[int, int, int]], offsets: list[int]
) -> list[tuple[int, int | None]]:
    """Indices of the DataRows whose bodies hold an offset, each with its first offset less
    the body's start, as the relay hands it to ``mask_row``: one bisection per offset."""
    starts = [frame[1] for frame in frames]
    rows: list[tuple[int, int | None]] = []
    for offset in offsets:
        i = bisect.bisect_right(starts, offset) - 1
        kind, start, end = frames[i] if i >= 0 else (0, 0, 0)
        if kind == m.DATA_ROW and offset < end and (not rows or rows[-1][0] != i):
            rows.append((i, offset - start))
    return rows


def step_messages(result: Result) -> int:
    """Framing at its barest: step over message lengths, carrying partial messages."""
    unpack = _INT32.unpack_from
    count, carry = 0, b""
    for read in result.raw:
        buf = carry + read if carry else read
        pos, end = 0, len(buf)
        while end - pos >= 5:
            stop = pos + 1 + unpack(buf, pos + 1)[0]
            if stop > end:
                break
            count += buf[pos] == m.DATA_ROW
            pos = stop
        carry = buf[pos:]
    return count


def feed_framer(result: Result) -> int:
    framer = Framer()
    return sum(len(framer.feed(read)[1]) for read in result.raw)


def best(run: Callable[[], int], passes: int = PASSES) -> tuple[float, int]:
    """The fastest of ``passes`` runs in seconds, and what the run answered."""
    times, answer = [], 0
    for _ in range(passes):
        start = time.perf_counter()
        answer = run()
        times.append(time.perf_counter() - start)
    return min(times), answer


def main() -> int:
    policy = MaskingPolicy()
    results = [
        build("0% PII rows", 0.0),
        build("10% PII rows", 0.1),
        build("100% PII rows", 1.0),
        build("0% PII rows, binary format", 0.0, binary=True),
        build("psql shape, 0% PII rows", 0.0, psql=True),
        build("psql shape, 10% PII rows", 0.1, psql=True),
        build("psql shape, 100% PII rows", 1.0, psql=True),
    ]
    print(f"masking.stream.RowMasker, best of {PASSES} passes, {ROWS} rows per result, "
          f"{READ_SIZE // 1024} KiB reads, Python {sys.version.split()[0]}")  # fmt: skip
    header = (
        f"{'result':<28} {'MB':>5} {'masked':>7} {'mask MB/s':>10} {'us/row':>7}"
        f" {'us/PII':>7} {'Framer MB/s':>12} {'step MB/s':>10}"
    )
    print(header)
    print("-" * len(header))
    speeds: dict[str, float] = {}
    clean_seconds = 0.0
    for result in results:
        seconds, masked = best(functools.partial(mask_reads, result, RowMasker(policy)))
        if masked != result.pii_rows:
            raise BenchError(f"{result.name}: rewrote {masked} rows, {result.pii_rows} carry PII")
        framer, _ = best(functools.partial(feed_framer, result))
        step, _ = best(functools.partial(step_messages, result))
        mb = result.size / 1e6
        speeds[result.name] = mb / seconds
        if not result.pii_rows:
            clean_seconds = seconds
        # What each PII row adds over the clean result just before it in the list.
        per_pii = (seconds - clean_seconds) / result.pii_rows * 1e6 if result.pii_rows else 0.0
        print(
            f"{result.name:<28} {mb:>5.1f} {masked:>7} {mb / seconds:>10.1f}"
            f" {seconds / ROWS * 1e6:>7.2f} {per_pii:>7.2f} {mb / framer:>12.1f}"
            f" {mb / step:>10.1f}"
        )
    print()
    for name, goal in GOALS.items():
        verdict = "PASS" if speeds[name] >= goal else "FAIL"
        print(f"{verdict}  {name} >= {goal:.0f} MB/s: {speeds[name]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
