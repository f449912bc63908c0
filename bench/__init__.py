"""Benchmarks of the gateway, measured against the direct path side by side in one run.

``python -m bench`` (``make bench``) drives pgbench at PostgreSQL directly and through a
``jitgate serve`` subprocess, alternating the two so that a noisy machine slows both alike,
and checks that every statement the gateway served was audited. ``python -m bench.codec``
times the sans-IO framer alone, the floor under the proxy's per-message cost.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from bench.postgres import BenchServer

_T = TypeVar("_T")


class BenchError(Exception):
    """The run itself broke (a server, pgbench or the gateway failed); not a slow result."""


def run_alone(
    prog: str,
    measure: Callable[[BenchServer], Coroutine[Any, Any, _T]],
    lines: Callable[[_T], list[str]],
) -> int:
    """What ``python -m bench.NAME`` does: ``measure`` against a PostgreSQL of its own, its
    ``lines`` printed; a broken run is one line on stderr and exit status 1."""
    from bench.postgres import BenchServer  # bench.postgres imports BenchError from here

    try:
        with BenchServer() as server:
            result = asyncio.run(measure(server))
    except BenchError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines(result)))
    return 0
