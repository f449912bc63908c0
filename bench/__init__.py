"""Benchmarks of the gateway, measured against the direct path side by side in one run.

``python -m bench`` (``make bench``) drives pgbench at PostgreSQL directly and through a
``jitgate serve`` subprocess, alternating the two so that a noisy machine slows both alike,
and checks that every statement the gateway served was audited. ``python -m bench.codec``
times the sans-IO framer alone, the floor under the proxy's per-message cost.
"""


class BenchError(Exception):
    """The run itself broke (a server, pgbench or the gateway failed); not a slow result."""
