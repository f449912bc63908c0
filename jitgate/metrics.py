"""Prometheus metrics of one gateway process, in a registry of its own.

Per-statement numbers are kept in plain integers and a bucket list, and turned into
Prometheus families only when ``/metrics`` is scraped: the proxy path pays a dict lookup
and a bisect per statement, not a lock per counter.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from audit.events import StatementEvent
from proxy.fastpath import Stats

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class _StatementCollector(Collector):
    def __init__(self) -> None:
        self.by_outcome: dict[tuple[str, str], int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        # The native fast path counts its statements itself (proxy/fastpath.py).
        self.native: list[Stats] = []

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        by_outcome = dict(self.by_outcome)
        buckets = list(self.buckets)
        latency_sum = self.latency_sum
        for stats in self.native:
            ok, error, counts, total = stats.snapshot()
            for outcome, count in (("ok", ok), ("error", error)):
                if count:
                    by_outcome["allow", outcome] = by_outcome.get(("allow", outcome), 0) + count
            buckets = [a + b for a, b in zip(buckets, counts, strict=True)]
            latency_sum += total
        statements = CounterMetricFamily(
            "jitgate_statements",
            "Statements by decision and outcome",
            labels=["decision", "outcome"],
        )
        for (decision, outcome), count in sorted(by_outcome.items()):
            statements.add_metric([decision, outcome], count)
        yield statements
        cumulative, running = [], 0
        for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), buckets, strict=True):
            running += count
            cumulative.append((bound, running))
        latency = HistogramMetricFamily(
            "jitgate_statement_duration_seconds",
            "Time from a statement's arrival at the gateway to its completion",
        )
        latency.add_metric([], cumulative, latency_sum)
        yield latency


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sessions_active = Gauge(
            "jitgate_sessions_active", "Client sessions open now", registry=self.registry
        )
        self.sessions_total = Counter(
            "jitgate_sessions", "Client sessions accepted", registry=self.registry
        )
        self.auth_failures = Counter(
            "jitgate_auth_failures", "Failed client authentications", registry=self.registry
        )
        self.audit_pending = Gauge(
            "jitgate_audit_pending", "Audit records waiting to be written", registry=self.registry
        )
        self.audit_available = Gauge(
            "jitgate_audit_store_up",
            "1 when the audit store accepts writes",
            registry=self.registry,
        )
        self._statements = _StatementCollector()
        self.registry.register(self._statements)

    def add_native(self, stats: Stats) -> None:
        """Count the statements a native fast path completes (it counts them itself)."""
        self._statements.native.append(stats)

    def observe(self, event: StatementEvent) -> None:
        counts = self._statements.by_outcome
        key = (event.decision, event.outcome)
        counts[key] = counts.get(key, 0) + 1
        elapsed = event.ended_at - event.started_at
        self._statements.buckets[bisect_left(LATENCY_BUCKETS, elapsed)] += 1
        self._statements.latency_sum += elapsed

    def render(self) -> bytes:
        return generate_latest(self.registry)
