"""``python -m bench.audit``: what recording a pgbench statement costs the gateway's CPU
outside the kernel, in three parts:

- filing: the native engine taking the select-only Query and reading its answer, as the
  pump does for a busy session (here through the engine's Python methods, so the figure
  carries their call overhead too);
- draining: the engine giving a batch of filed statements to the recorder
  (``Engine.drain``: the events' JSON, the distinct texts as bytes and as ``text[]``);
- storing: what the recorder does to a drained batch before the COPY (the masking
  prefilter, the UTF-8 checks, the binary row, :func:`audit.events.batch_row`).

Each figure is the best of several passes, in µs per statement.
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from typing import cast

from audit.events import batch_row, row_json, stored_array, stored_json
from bench import BenchError
from guard.classify import numbers_key
from proxy import messages as m
from proxy.fastpath import NativeEngine, engine_kind

BATCH = 160  # statements per session and flush at ~25k tps, 8 sessions, 50 ms
BATCHES = 300
PASSES = 5
_SQL = "SELECT abalance FROM pgbench_accounts WHERE aid = {};"
_INT4 = 23


@dataclass(frozen=True, slots=True)
class AuditCost:
    """µs per statement of each part, and the bytes a statement takes in a batch."""

    filing: float
    draining: float
    storing: float
    text_bytes: float
    event_bytes: float


def measure(batches: int = BATCHES, passes: int = PASSES) -> AuditCost:
    """Time ``batches`` batches of :data:`BATCH` statements, ``passes`` times; the best
    pass of each part."""
    engine_type, stats_type, native = engine_kind(True)
    if not native:
        raise BenchError("the native engine is not built (no C compiler, or JITGATE_NATIVE=0)")
    session = uuid.uuid4()
    admitted: dict[str | bytes, tuple[str, tuple[str, ...]]] = {
        numbers_key(_SQL.format(100000)) or b"": ("read", ())
    }
    engine = cast(NativeEngine, engine_type(session, admitted, None, stats_type(()), {}))
    description = m.RowDescription((m.FieldDescription("abalance", 0, 0, _INT4, 4, -1, 0),))
    answer = b"".join(
        message.encode()
        for message in (
            description,
            m.DataRow((b"0",)),
            m.CommandComplete("SELECT 1"),
            m.ReadyForQuery("I"),
        )
    )
    queries = [m.Query(_SQL.format(100000 + 7 * i)).encode() for i in range(BATCH)]
    best = [float("inf")] * 3
    sizes = (0, 0)
    for _ in range(passes):
        spent = [0.0] * 3
        for _ in range(batches):
            started = time.perf_counter()
            for query in queries:
                if not engine.query(query) or engine.result(answer) != ord("I"):
                    raise BenchError("the engine did not take a select-only statement")
            filed = time.perf_counter()
            drained = engine.drain(row_json)
            done = time.perf_counter()
            if drained is None:
                raise BenchError("the engine drained nothing")
            joined, array, events, _, first, last, first_start = drained
            array = stored_array(joined, array)
            batch_row(session, first, last, first_start, array, stored_json(events))
            stored = time.perf_counter()
            spent[0] += filed - started
            spent[1] += done - filed
            spent[2] += stored - done
            sizes = (len(joined), len(events))
        best = [min(b, s) for b, s in zip(best, spent, strict=True)]
    per = 1e6 / (batches * BATCH)
    return AuditCost(
        best[0] * per, best[1] * per, best[2] * per, sizes[0] / BATCH, sizes[1] / BATCH
    )


def main() -> int:
    try:
        cost = measure()
    except BenchError as exc:
        print(f"bench.audit: {exc}", file=sys.stderr)
        return 1
    print(
        f"pgbench select-only statements, {BATCH} per batch (texts {cost.text_bytes:.0f} B and"
        f" events {cost.event_bytes:.0f} B per statement), best of {PASSES} passes:"
    )
    print(f"  filing (Engine.query + Engine.result)  {cost.filing:6.3f} us/statement")
    print(f"  draining (Engine.drain)                {cost.draining:6.3f} us/statement")
    print(f"  storing (prefilter, checks, COPY row)  {cost.storing:6.3f} us/statement")
    return 0


if __name__ == "__main__":
    sys.exit(main())
