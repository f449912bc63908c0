"""Side-by-side results, the printed table and the quality-bar verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import median

from bench.gateway import CpuTimes
from bench.pgbench import PgbenchResult

RATIO_GOAL = 0.65
ADDED_LATENCY_GOAL_US = 50.0

_HEADER = (
    f"{'clients':>7}  {'protocol':<8}  {'direct tps':>10}  {'via tps':>10}  {'via/direct':>10}  "
    f"{'direct lat us':>13}  {'via lat us':>10}  {'added us':>8}  {'gw cpu us/tx':>12}"
)


@dataclass(slots=True)
class Comparison:
    """Every round of one workload, direct and through the gateway."""

    clients: int
    protocol: str
    direct: list[PgbenchResult] = field(default_factory=list)
    via: list[PgbenchResult] = field(default_factory=list)
    gateway_cpu_us_per_tx: list[float] = field(default_factory=list)
    # the relay's CPU per transaction in the kernel, and on its main thread
    kernel_us_per_tx: list[float] = field(default_factory=list)
    main_thread_us_per_tx: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.clients} client{'s' if self.clients > 1 else ''}, {self.protocol}"

    @property
    def direct_tps(self) -> float:
        return median(r.tps for r in self.direct)

    @property
    def via_tps(self) -> float:
        return median(r.tps for r in self.via)

    @property
    def ratio(self) -> float:
        return self.via_tps / self.direct_tps

    @property
    def direct_latency_us(self) -> float:
        return median(r.latency_ms for r in self.direct) * 1000

    @property
    def via_latency_us(self) -> float:
        return median(r.latency_ms for r in self.via) * 1000

    @property
    def added_latency_us(self) -> float:
        return self.via_latency_us - self.direct_latency_us

    @property
    def cpu_us_per_tx(self) -> float:
        return median(self.gateway_cpu_us_per_tx)

    def add_cpu(self, spent: CpuTimes, transactions: int) -> float:
        """Count what the relay spent on ``transactions``; its CPU µs per transaction."""
        per_tx = 1e6 / max(transactions, 1)
        self.gateway_cpu_us_per_tx.append(spent.total * per_tx)
        self.kernel_us_per_tx.append(spent.system * per_tx)
        self.main_thread_us_per_tx.append(spent.main_thread * per_tx)
        return spent.total * per_tx

    def row(self) -> str:
        return (
            f"{self.clients:>7}  {self.protocol:<8}  {self.direct_tps:>10.0f}  "
            f"{self.via_tps:>10.0f}  {self.ratio:>10.3f}  {self.direct_latency_us:>13.1f}  "
            f"{self.via_latency_us:>10.1f}  {self.added_latency_us:>8.1f}  "
            f"{self.cpu_us_per_tx:>12.1f}"
        )


def table(comparisons: list[Comparison]) -> str:
    """Medians over the rounds; ``via/direct`` is the ratio of the median rates."""
    return "\n".join([_HEADER, "-" * len(_HEADER), *(c.row() for c in comparisons)])


def goal_lines(
    ratio_at_8: float, added_latency_at_1_us: float, socket_ratio_at_8: float | None = None
) -> list[str]:
    """One ``PASS``/``FAIL`` line per quality bar of DESIGN.md that this run measures; the
    ratio bar once for the target over TCP and, when measured, once over its Unix socket."""
    lines = [_verdict(ratio_at_8 >= RATIO_GOAL, f"ratio@8 >= {RATIO_GOAL}: {ratio_at_8:.3f}")]
    if socket_ratio_at_8 is not None:
        lines.append(
            _verdict(
                socket_ratio_at_8 >= RATIO_GOAL,
                f"ratio@8 >= {RATIO_GOAL}, target over its Unix socket: {socket_ratio_at_8:.3f}",
            )
        )
    lines.append(
        _verdict(
            added_latency_at_1_us <= ADDED_LATENCY_GOAL_US,
            f"added latency@1 <= {ADDED_LATENCY_GOAL_US:.0f} us: {added_latency_at_1_us:.1f} us",
        )
    )
    return lines


def rounds_line(relays: Sequence[tuple[str, Comparison]]) -> str:
    """Each relay's ratio at 8 clients round by round (against the round's direct run):
    how far one round lies from the next, beside the medians the verdicts use."""
    parts = (
        f"{name} " + " ".join(f"{v.tps / d.tps:.3f}" for d, v in zip(c.direct, c.via, strict=True))
        for name, c in relays
    )
    return "ratio@8 round by round: " + "; ".join(parts)


def _verdict(met: bool, text: str) -> str:
    return f"{'PASS' if met else 'FAIL'}  {text}"


def parity_line(gateway_at_8: Comparison, pgbouncer_at_8: Comparison, where: str = "") -> str:
    """The gateway's rate at 8 clients against PgBouncer's in the same rounds (both with the
    target reached ``where``: over TCP when empty)."""
    parity = gateway_at_8.via_tps / pgbouncer_at_8.via_tps
    return (
        f"gateway vs pgbouncer @8{', ' + where if where else ''}: {parity:.3f} of PgBouncer's rate"
        f" ({gateway_at_8.via_tps:.0f} vs {pgbouncer_at_8.via_tps:.0f} tps),"
        f" {gateway_at_8.cpu_us_per_tx:.1f} vs {pgbouncer_at_8.cpu_us_per_tx:.1f} us/tx"
    )


def cpu_line(gateway_at_8: Comparison, pgbouncer_at_8: Comparison | None) -> str:
    """Where the gateway's CPU per transaction goes at 8 clients (medians): the kernel's
    part (its sockets), its event loop's (the audit batches and anything the pump hands
    back), and PgBouncer's, for scale."""
    line = (
        f"gateway cpu @8: {gateway_at_8.cpu_us_per_tx:.1f} us/tx, in the kernel"
        f" {median(gateway_at_8.kernel_us_per_tx):.1f}, on the event loop"
        f" {median(gateway_at_8.main_thread_us_per_tx):.1f}"
    )
    if pgbouncer_at_8 is not None:
        line += (
            f"; PgBouncer {pgbouncer_at_8.cpu_us_per_tx:.1f} us/tx, in the kernel"
            f" {median(pgbouncer_at_8.kernel_us_per_tx):.1f}"
        )
    return line
