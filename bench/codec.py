"""``python -m bench.codec``: the sans-IO framer alone, the floor under the proxy's cost.

Times :meth:`proxy.codec.Framer.feed` over byte streams built with the
:mod:`proxy.messages` encoders and cut into reads as a socket would deliver them:

- pgbench select-only, client side: one Query per read;
- pgbench select-only, server side: RowDescription, DataRow, CommandComplete and
  ReadyForQuery in one read per transaction;
- a 200k-row result shaped like ``pgbench_accounts``, in 64 KiB reads that split messages.

Each figure is the best of several passes, a fresh Framer each time.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass

from bench import BenchError
from proxy import messages as m
from proxy.codec import Framer

TRANSACTIONS = 50_000
RESULT_ROWS = 200_000
READ_SIZE = 64 * 1024
PASSES = 5
_INT4 = 23
_BPCHAR = 1042


@dataclass(frozen=True, slots=True)
class Stream:
    """Wire bytes already cut into the reads the framer is fed, and how many messages."""

    name: str
    reads: list[bytes]
    messages: int

    @property
    def size(self) -> int:
        return sum(len(read) for read in self.reads)


def _column(
    name: str, number: int, type_oid: int, type_size: int, modifier: int = -1
) -> m.FieldDescription:
    return m.FieldDescription(name, 16384, number, type_oid, type_size, modifier, 0)


def select_only_streams(transactions: int, seed: int = 0) -> tuple[Stream, Stream]:
    """The client and server sides of ``transactions`` pgbench select-only transactions."""
    rng = random.Random(seed)
    description = m.RowDescription((_column("abalance", 3, _INT4, 4),)).encode()
    tail = m.CommandComplete("SELECT 1").encode() + m.ReadyForQuery("I").encode()
    queries, responses = [], []
    for _ in range(transactions):
        aid = rng.randint(1, 1_000_000)
        queries.append(
            m.Query(f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid};").encode()
        )
        row = m.DataRow((str(rng.randint(-5000, 5000)).encode(),)).encode()
        responses.append(description + row + tail)
    return (
        Stream("select-only, client side", queries, transactions),
        Stream("select-only, server side", responses, 4 * transactions),
    )


def large_result_stream(rows: int, read_size: int) -> Stream:
    """``SELECT * FROM pgbench_accounts`` with ``rows`` rows, in reads of ``read_size``."""
    description = m.RowDescription(
        (
            _column("aid", 1, _INT4, 4),
            _column("bid", 2, _INT4, 4),
            _column("abalance", 3, _INT4, 4),
            _column("filler", 4, _BPCHAR, -1, 88),
        )
    ).encode()
    filler = b" " * 84
    body = b"".join(
        m.DataRow((str(aid).encode(), str(1 + aid // 100_000).encode(), b"0", filler)).encode()
        for aid in range(1, rows + 1)
    )
    wire = (
        description
        + body
        + m.CommandComplete(f"SELECT {rows}").encode()
        + m.ReadyForQuery("I").encode()
    )
    reads = [wire[i : i + read_size] for i in range(0, len(wire), read_size)]
    return Stream(f"{rows // 1000}k-row result, {read_size // 1024} KiB reads", reads, rows + 3)


def time_feed(stream: Stream, passes: int) -> float:
    """The fastest of ``passes`` runs of the stream through a new Framer, in seconds."""
    best = float("inf")
    for _ in range(passes):
        framer = Framer()
        feed = framer.feed
        framed = 0
        start = time.perf_counter()
        for read in stream.reads:
            framed += len(feed(read)[1])
        elapsed = time.perf_counter() - start
        if framed != stream.messages or framer.buffered:
            raise BenchError(f"{stream.name}: framed {framed} of {stream.messages} messages")
        best = min(best, elapsed)
    return best


def main() -> int:
    streams = [*select_only_streams(TRANSACTIONS), large_result_stream(RESULT_ROWS, READ_SIZE)]
    print(f"proxy.codec.Framer.feed, best of {PASSES} passes, Python {sys.version.split()[0]}")
    header = (
        f"{'stream':<32}  {'MB':>7}  {'messages':>9}  {'reads':>7}  {'MB/s':>8}  {'ns/msg':>7}"
        f"  {'ns/read':>8}"
    )
    print(header)
    print("-" * len(header))
    for stream in streams:
        seconds = time_feed(stream, PASSES)
        print(
            f"{stream.name:<32}  {stream.size / 1e6:>7.2f}  {stream.messages:>9}"
            f"  {len(stream.reads):>7}  {stream.size / seconds / 1e6:>8.1f}"
            f"  {seconds * 1e9 / stream.messages:>7.1f}  {seconds * 1e9 / len(stream.reads):>8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
