"""Batched, fail-closed audit writing.

Each client session files its statements with its engine (:mod:`proxy.fastpath`), which
enters itself in :attr:`AuditRecorder.dirty` when it holds records; events from elsewhere
(statements run for approved access requests) are appended here. Both are written with
one autocommitted ``COPY`` every ``flush_interval`` (or sooner, after ``batch_size`` of the
latter), on a store connection the recorder keeps, so recording costs the proxy path an
append and the store one statement per flush. A failed write keeps the batch (it is retried
until the store answers again) and flips :attr:`AuditRecorder.available` to False; the
proxy then refuses new statements, so nothing runs unrecorded and nothing already accepted
is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from audit.events import (
    BATCH_COLUMNS,
    COPY_HEADER,
    COPY_TRAILER,
    Drained,
    SessionRecord,
    StatementEvent,
    batch_row,
    encode_batch,
    row_json,
    stored_array,
    stored_json,
)
from jitgate.errors import StoreUnavailable

if TYPE_CHECKING:
    from audit.spool import AuditSpool

log = logging.getLogger("jitgate.audit")

# What a store going away raises; InternalClientError is asyncpg's word for a connection
# that broke in the middle of an operation (seen when releasing one after a failed COPY).
_STORE_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    TimeoutError,
)
# What a connection that ended raises when it is used.
_CONNECTION_ERRORS = (ConnectionError, asyncpg.InterfaceError, asyncpg.InternalClientError)
_HEALTH_INTERVAL = 1.0
_RETRY_BACKOFF_MAX = 2.0
# A store that has not taken a batch this long (``audit.max_lag``) is down for the proxy
# (it refuses statements) even while the write waits on: a silent network gives no error
# for seconds. Every statement is in the spool meanwhile (audit/spool.py), so the bound is
# how far the trail may lag, not what a crash could lose; a store slower than SLOW is
# logged at once.
MAX_LAG = 10.0
SLOW = 2.0


class AuditRecorder:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        flush_interval: float,
        batch_size: int,
        max_lag: float = MAX_LAG,
    ) -> None:
        self._pool = pool
        self._max_lag = max_lag
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._events: list[StatementEvent] = []
        # Session engines holding records, with their session's id (proxy/fastpath.py).
        self.dirty: dict[Drainable, UUID] = {}
        # Encoded batches a failed flush could not write, written first next time.
        self._retry: list[bytes] = []
        self._session_ends: list[tuple[UUID, datetime, str]] = []
        self._wake = asyncio.Event()
        self._last_ok = time.monotonic()
        self.available = True
        self._listeners: list[Callable[[bool], None]] = []
        self.written = 0
        self._stopping = False
        self._flushing = asyncio.Lock()
        self._conn: PoolConnectionProxy[asyncpg.Record] | None = None
        # The audit spool (audit/spool.py) and when its oldest statement in flight began.
        self._spool: AuditSpool | None = None
        self._oldest_open: Callable[[], float] = time.time

    @property
    def pending(self) -> int:
        return (
            len(self._events)
            + len(self._session_ends)
            + len(self._retry)
            + sum(engine.pending for engine in self.dirty)
        )

    def attach_spool(self, spool: AuditSpool, oldest_open: Callable[[], float]) -> None:
        """Release ``spool``'s segments as flushes store what they hold; ``oldest_open()``
        is when the oldest statement forwarded and not yet filed began."""
        self._spool, self._oldest_open = spool, oldest_open

    def spool_failed(self, exc: OSError) -> None:
        """The spool could not take an intent: refuse statements like a store down (the
        next successful flush or ping, once the spool writes again, lifts it)."""
        self._mark_down(exc)

    def on_availability(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(available)`` whenever :attr:`available` changes."""
        self._listeners.append(listener)

    def record(self, event: StatementEvent) -> None:
        """Queue a finished statement event; never blocks."""
        self._events.append(event)
        if len(self._events) >= self._batch_size:
            self._wake.set()

    async def open_session(self, session: SessionRecord) -> None:
        """Write the session row now: a session the store cannot see is not accepted."""
        try:
            await self._pool.execute(
                "INSERT INTO sessions (id, identity, resource, client_addr, application_name,"
                " gateway, started_at, cancel_pid, cancel_secret, upstream_host, upstream_port,"
                " upstream_pid, upstream_secret, agent)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                session.id,
                session.identity,
                session.resource,
                session.client_addr,
                session.application_name,
                session.gateway,
                session.started_at,
                session.cancel_pid,
                session.cancel_secret,
                session.upstream_host,
                session.upstream_port,
                session.upstream_pid,
                session.upstream_secret,
                session.agent,
                timeout=5,
            )
        except _STORE_ERRORS as exc:
            self._mark_down(exc)
            raise StoreUnavailable(f"cannot record the session: {exc}") from exc

    def close_session(self, session_id: UUID, reason: str) -> None:
        self._session_ends.append((session_id, datetime.now(UTC), reason))
        self._wake.set()

    async def run(self) -> None:
        """Flush until :meth:`close` is called; a flush is never interrupted halfway."""
        backoff = self._flush_interval
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()
            try:
                flushed = await self.flush()
            except Exception as exc:
                # Whatever broke, recording must not stop while the proxy goes on: refuse
                # statements until a flush succeeds (the batch is kept for it).
                log.exception("audit flush failed unexpectedly")
                self._mark_down(exc)
                flushed = False
            if flushed:
                backoff = self._flush_interval
            else:
                backoff = min(max(backoff * 2, 0.05), _RETRY_BACKOFF_MAX)

    async def flush(self) -> bool:
        """Write everything queued so far; True when the store took it (or nothing was
        queued). Flushes run one at a time, so when this returns, every event recorded
        before the call is committed or still queued."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> bool:
        # Taken before draining: every statement begun before it is filed by now, so
        # once this flush is stored, spool segments closed before it can go.
        oldest_open = self._oldest_open() if self._spool is not None else 0.0
        stored = await self._flush_queued()
        if stored and not self._retry and self._spool is not None:
            self._spool.release(oldest_open)
        return stored

    async def _flush_queued(self) -> bool:
        events, ends = self._events, self._session_ends
        self._events, self._session_ends = [], []
        records, self._retry = self._retry, []
        count = _drain(self.dirty, records) + len(events)
        records += event_batches(events)
        if not records and not ends:
            # (engines the pump watches stay listed with nothing to give)
            if time.monotonic() - self._last_ok > _HEALTH_INTERVAL:
                return await self._ping()
            return True
        loop = asyncio.get_running_loop()
        slow = loop.call_later(min(SLOW, self._max_lag), self._slow)
        lagging = loop.call_later(
            self._max_lag,
            self._mark_down,
            TimeoutError(f"the store took no batch for {self._max_lag:g} s"),
        )
        try:
            return await self._write(records, ends, count)
        finally:
            slow.cancel()
            lagging.cancel()

    def _slow(self) -> None:
        log.warning(
            "the audit store has taken no batch for a while",
            extra={"seconds": SLOW, "refusing_after": self._max_lag, "pending": self.pending},
        )

    async def _write(
        self, records: list[bytes], ends: list[tuple[UUID, datetime, str]], count: int
    ) -> bool:
        stored = False
        while True:
            kept = _is_open(self._conn)
            try:
                conn = await self._writer()
                if records and not stored:
                    await write_batches(conn, records)
                stored = True
                if ends:
                    await end_sessions(conn, ends)
                break
            except BaseException as exc:
                await self._drop_writer()
                if kept and isinstance(exc, _CONNECTION_ERRORS):
                    # The kept connection had ended (the store closed it, say) unseen:
                    # once more on a new one before calling the store down. A COPY whose
                    # commit was lost with it is stored once (write_batches).
                    continue
                # Put back what the store did not take, in front of anything queued
                # meanwhile, in order; a cancelled flush (shutdown) must not lose it either.
                if not stored:
                    self._retry = records + self._retry
                self._session_ends = ends + self._session_ends
                if stored:
                    self.written += count
                if not isinstance(exc, _STORE_ERRORS):
                    raise
                self._mark_down(exc)
                return False
        self.written += count
        self._mark_up()
        return True

    async def _writer(self) -> PoolConnectionProxy[asyncpg.Record]:
        """The connection flushes write on, taken from the pool once and kept: each flush
        is then one autocommitted COPY (and an UPDATE for ended sessions), without the
        round trips of a transaction and of a pool's acquire and release (which resets
        the session)."""
        conn = self._conn
        if conn is None or not _is_open(conn):
            await self._drop_writer()
            conn = self._conn = await self._pool.acquire(timeout=5)
        return conn

    async def _drop_writer(self) -> None:
        """Give the writer's connection back, closed: after a failure its state is unknown."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*_STORE_ERRORS):
                conn.terminate()
                await self._pool.release(conn)

    async def close(self, deadline: float = 10.0) -> None:
        """Stop :meth:`run` after its current flush, then write what is left, retrying
        until ``deadline`` seconds have passed."""
        self._stopping = True
        self._wake.set()
        give_up = time.monotonic() + deadline
        while self.pending and time.monotonic() < give_up:
            if not await self.flush():
                await asyncio.sleep(0.2)
        if self.pending:
            log.error(
                "audit store unreachable at shutdown",
                extra={"records_unwritten": self.pending},
            )
        async with self._flushing:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(*_STORE_ERRORS):
                    await self._pool.release(conn, timeout=5)

    async def _ping(self) -> bool:
        try:
            await self._pool.fetchval("SELECT 1", timeout=2)
        except _STORE_ERRORS as exc:
            self._mark_down(exc)
            return False
        self._mark_up()
        return True

    def _mark_down(self, exc: BaseException) -> None:
        if self.available:
            log.error("audit store unavailable; refusing statements", extra={"error": str(exc)})
            self._set_available(False)

    def _mark_up(self) -> None:
        if not self.available:
            log.warning("audit store reachable again; accepting statements")
            self._set_available(True)
        self._last_ok = time.monotonic()

    def _set_available(self, available: bool) -> None:
        self.available = available
        for listener in self._listeners:
            listener(available)


def _is_open(conn: PoolConnectionProxy[asyncpg.Record] | None) -> bool:
    """Whether ``conn`` can still be used: the pool takes a connection that ended back
    at once, and its proxy then answers nothing but InterfaceError."""
    try:
        return conn is not None and not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


class Drainable(Protocol):
    """What a session's engine gives the recorder (proxy/fastpath.py)."""

    @property
    def pending(self) -> int: ...
    def drain(self, encode: Callable[[object], str]) -> Drained | None: ...


def _drain(dirty: dict[Drainable, UUID], records: list[bytes]) -> int:
    """Append the records of every engine in ``dirty`` to ``records`` (one per session,
    as :func:`batch_row` encodes it), empty ``dirty``, and return how many statements that
    was."""
    engines = list(dirty.items())
    dirty.clear()
    count = 0
    for index, (engine, session_id) in enumerate(engines):
        try:
            drained = engine.drain(row_json)
        except Exception:
            # Nothing is lost: the engine keeps what it could not give, and is listed again.
            dirty.update(engines[index:])
            raise
        if drained is None:
            continue
        joined, array, events, n, first, last, started = drained
        count += n
        array = stored_array(joined, array)
        records.append(batch_row(session_id, first, last, started, array, stored_json(events)))
    return count


async def write_batches(conn: PoolConnectionProxy[asyncpg.Record], rows: list[bytes]) -> None:
    """COPY the batches (rows as :func:`batch_row` encodes them) in: one statement, all or
    none of them is stored; when one is there already (a flush whose commit was lost with
    its connection, retried), one COPY each, skipping those already stored. Inside a
    transaction the failed COPY would abort it: ``conn`` is in none."""
    try:
        await _copy(conn, rows)
    except asyncpg.UniqueViolationError:
        for row in rows:
            with contextlib.suppress(asyncpg.UniqueViolationError):
                await _copy(conn, [row])


async def _copy(conn: PoolConnectionProxy[asyncpg.Record], rows: list[bytes]) -> None:
    async def payload() -> AsyncIterator[bytes]:  # (bytes themselves: a file name to asyncpg)
        yield b"".join((COPY_HEADER, *rows, COPY_TRAILER))

    await conn.copy_to_table(
        "statement_batches", source=payload(), columns=BATCH_COLUMNS, format="binary", timeout=10
    )


async def end_sessions(
    conn: PoolConnectionProxy[asyncpg.Record], ends: list[tuple[UUID, datetime, str]]
) -> None:
    """Record when and why the sessions in ``ends`` ended (id, end, reason)."""
    await conn.execute(
        "UPDATE sessions s SET ended_at = v.ended_at, end_reason = v.reason"
        " FROM unnest($1::uuid[], $2::timestamptz[], $3::text[])"
        " AS v(id, ended_at, reason) WHERE s.id = v.id",
        [e[0] for e in ends],
        [e[1] for e in ends],
        [e[2] for e in ends],
        timeout=10,
    )


def event_batches(events: list[StatementEvent]) -> list[bytes]:
    """``events`` as ``statement_batches`` rows (one per session), ready for
    :func:`write_batches`."""
    by_session: dict[UUID, list[StatementEvent]] = {}
    for event in events:
        by_session.setdefault(event.session_id, []).append(event)
    records: list[bytes] = []
    for session_id, batch in by_session.items():
        array, encoded = encode_batch(batch)
        started = int(batch[0].started_at * 1_000_000)
        records.append(batch_row(session_id, batch[0].seq, batch[-1].seq, started, array, encoded))
    return records
