"""Failed password attempts: exponential backoff per user and per client address, and one
security alert per burst.

After ``failures_before_backoff`` failed attempts within ``failure_window``, a user (or an
address) gets one attempt at a time, the next no sooner than ``backoff · 2^(n - k)``
seconds after the n-th failure (k = ``failures_before_backoff``), capped at
``max_backoff``. Attempts that come sooner are refused without their token being checked,
so they tell a guesser nothing; they do not lengthen the wait, so a user whose name is
being hammered can still get in once per ``max_backoff`` at worst. A success forgets the
user's failures (not the address's: one valid token must not launder another user's
guesses).

``alert_after`` failed or refused attempts within ``alert_window`` for one user or one
address raise one alert; the burst lasts until ``alert_window`` passes without another.
State is in memory, per gateway process; nothing here ever sees a token.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from approvals.model import Alert
from jitgate.config import Limits

# Stale records (no failure in the window, no attempt under way) are dropped this often.
_SWEEP_INTERVAL = 60.0


@dataclass(slots=True)
class _Record:
    failures: deque[float] = field(default_factory=deque)
    recent: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    not_before: float = 0.0
    burst_until: float = 0.0


class PasswordAttempts:
    def __init__(
        self,
        limits: Limits,
        alert: Callable[[Alert], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._alert = alert
        self._clock = clock
        self._records: dict[tuple[str, str], _Record] = {}
        self._swept = clock()

    def begin(self, user: str, address: str | None) -> float | None:
        """Start an attempt for ``user`` from ``address``: None when it may go ahead (then
        call :meth:`failed`, :meth:`succeeded` or :meth:`abandoned` once), else the seconds
        to wait before the next one may (the attempt counts as failed)."""
        now = self._clock()
        self._sweep(now)
        records = self._of(user, address)
        waits = [self._wait(record, now) for record in records]
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            self._note(records, now, user, address)
            return wait
        for record in records:
            record.in_flight += 1
        return None

    def failed(self, user: str, address: str | None) -> None:
        now = self._clock()
        records = self._of(user, address)
        limits = self.limits
        for record in records:
            record.in_flight = max(record.in_flight - 1, 0)
            record.failures.append(now)
            excess = len(record.failures) - limits.failures_before_backoff
            if excess >= 0:
                delay = min(limits.backoff * 2.0 ** min(excess, 64), limits.max_backoff)
                record.not_before = now + delay
        self._note(records, now, user, address)

    def succeeded(self, user: str, address: str | None) -> None:
        records = self._of(user, address)
        for record in records:
            record.in_flight = max(record.in_flight - 1, 0)
        records[0].failures.clear()
        records[0].not_before = 0.0

    def abandoned(self, user: str, address: str | None) -> None:
        """The client went away (or the store did) before its token was checked."""
        for record in self._of(user, address):
            record.in_flight = max(record.in_flight - 1, 0)

    def _of(self, user: str, address: str | None) -> list[_Record]:
        """The user's record first, then the address's."""
        keys = [("user", user)] + ([("address", address)] if address is not None else [])
        return [self._records.setdefault(key, _Record()) for key in keys]

    def _wait(self, record: _Record, now: float) -> float | None:
        _drop_before(record.failures, now - self.limits.failure_window)
        # Attempts under way count only once something has failed: concurrent logins of
        # a user with no failures (a pool opening its connections) all go ahead.
        under_way = record.in_flight if record.failures else 0
        if len(record.failures) + under_way < self.limits.failures_before_backoff:
            return None
        if record.in_flight == 0 and now >= record.not_before:
            return None
        # While an attempt is under way its outcome decides the wait; say at least the base.
        return max(record.not_before - now, self.limits.backoff)

    def _note(self, records: list[_Record], now: float, user: str, address: str | None) -> None:
        """Count a failed or refused attempt towards the alert; alert once per burst."""
        limits = self.limits
        crossed = False
        for record in records:
            record.recent.append(now)
            _drop_before(record.recent, now - limits.alert_window)
            if len(record.recent) >= limits.alert_after and now >= record.burst_until:
                crossed = True
        if crossed and self._alert is not None:
            count = max(len(r.recent) for r in records)
            self._alert(
                Alert("password_failures",
                      f"{count} failed password attempts for {user} from"
                      f" {address or 'a local socket'} within {limits.alert_window:g} s;"
                      f" further attempts back off up to {limits.max_backoff:g} s each",
                      user)
            )  # fmt: skip
        for record in records:
            if crossed or now < record.burst_until:
                record.burst_until = now + limits.alert_window

    def _sweep(self, now: float) -> None:
        if now - self._swept < _SWEEP_INTERVAL:
            return
        self._swept = now
        oldest = now - max(self.limits.failure_window, self.limits.alert_window)
        for key, record in list(self._records.items()):
            last = max(record.failures[-1] if record.failures else 0.0,
                       record.recent[-1] if record.recent else 0.0)  # fmt: skip
            if record.in_flight == 0 and last < oldest and now >= record.not_before:
                del self._records[key]


def _drop_before(times: deque[float], cutoff: float) -> None:
    while times and times[0] < cutoff:
        times.popleft()
