"""Prometheus metrics of one gateway process, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from audit.events import StatementEvent

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


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
        self.statements = Counter(
            "jitgate_statements",
            "Statements by decision and outcome",
            ["decision", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "jitgate_statement_duration_seconds",
            "Time from a statement's arrival to its completion",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audit_pending = Gauge(
            "jitgate_audit_pending", "Audit records waiting to be written", registry=self.registry
        )
        self.audit_available = Gauge(
            "jitgate_audit_store_up",
            "1 when the audit store accepts writes",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str], Counter] = {}

    def observe(self, event: StatementEvent) -> None:
        key = (event.decision, event.outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.statements.labels(*key)
        child.inc()
        self.latency.observe(event.ended_at - event.started_at)

    def render(self) -> bytes:
        return generate_latest(self.registry)
