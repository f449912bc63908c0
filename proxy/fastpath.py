"""Each session's engine: its audit records in sequence order, and the native fast path.

The relay files every finished statement of a session with its engine (:meth:`add`); the
audit recorder drains engines (:meth:`drain`) into ``statement_batches`` records. When the
C extension ``proxy._fastpath`` is built (``pip install`` compiles it when a C compiler is
present), the engine also runs the session's common round trip natively: a client read that
is exactly one simple Query the hook chain has already admitted in this session
(:meth:`~proxy.hooks.HookChain.admit_known`), or exactly one extended-protocol round trip of
such a statement as libpq's ``PQexecParams`` sends it (Parse and Bind of the unnamed
statement and portal, Describe of the portal or not, Execute, Sync) or as
``PQexecPrepared`` and asyncpg do (the same without the Parse, binding a named statement
the relay let through at its Parse and told the engine of with :meth:`prepare`), goes to
the target untouched — binary results, and a Bind without a Describe, only where masking
cannot need the rows read (no masking, a described portal, or the relay's word through
:meth:`blank_binds`) — and each read of the target's answer that holds whole messages of
a plain result (rows of columns that need no masking, command tags, an error, notices, a
portal a row limit suspended) goes back to the client untouched; at
ReadyForQuery the engine files the audit record and counts the statement's metrics.
Everything else declines (``query`` returns False, ``result`` 0) and the Python relay does
it exactly as without the extension; a query in flight is handed back to it, with what its
answer said so far, by :meth:`take` (an extended round trip's answer is taken whole or not
at all, and one with an error is left to the relay, which knows which message failed).
The statement such a round trip left the unnamed portal bound to is told to the relay by
:meth:`take_unnamed` before it reads the client again.

:class:`PyEngine` is the engine without a fast path, used when the extension is missing or
``JITGATE_NATIVE=0`` is set; tests run the relay both ways and compare the audit trails.

The pump (:class:`Pump`, one per gateway, ``JITGATE_PUMP=0`` turns it off) goes one step
further for busy sessions: once a session's engine has taken a few round trips in a row,
the relay pauses the session's transports and hands both sockets to the pump's thread,
which reads them, asks the engine (without the GIL for a statement shape it has seen
admitted, while the audit store is up) and sends what it takes to the other socket
itself, off the event loop. The first read the engine declines, a
socket that will not take a whole read at once, or a connection's end hands the session
back to the event loop (:data:`HANDBACK_CLIENT_READ` …) with the bytes concerned, in order;
TLS sessions are never pumped.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

from audit.events import Drained, Row, batch_texts, index_rows, text_bytes

Known = tuple[str, tuple[str, ...]]

# Why the pump hands a session back (proxy/_fastpath.c): a read the engine declined, from
# the client or the target; bytes a socket did not take at once, for the target or the
# client; a socket that ended or failed.
HANDBACK_CLIENT_READ, HANDBACK_TARGET_READ, HANDBACK_TO_TARGET, HANDBACK_TO_CLIENT = 0, 1, 2, 3
HANDBACK_CLOSED = 4
# A query the engine hands to the Python relay: its text, class and reasons, start, the
# rows of finished commands and of the one going on, outcome, command tag and SQLSTATE.
Taken = tuple[str, Known, float, int, int, str, bytes | None, str | None]


class Engine(Protocol):
    armed: bool
    status: int

    @property
    def inflight(self) -> bool: ...
    @property
    def pending(self) -> int: ...
    @property
    def started(self) -> float | None: ...
    @property
    def description(self) -> bytes | None: ...
    @property
    def extended(self) -> tuple[bool, int, bool] | None: ...

    def take(self) -> Taken: ...
    def take_unnamed(self) -> tuple[str, tuple[int, ...], bytes] | None: ...
    def prepare(self, name: bytes, sql: bytes | None) -> None: ...
    def blank_binds(self, name: bytes, codes: bytes, columns: int) -> None: ...
    def forget_prepared(self) -> None: ...
    def take_description(self) -> bytes | None: ...
    def next_seq(self) -> int: ...
    def take_done(self) -> bytes | None: ...
    def add(self, row: Row) -> None: ...
    def drain(self, encode: Callable[[object], str]) -> Drained | None: ...
    def unwatch(self) -> bool: ...


class Pump(Protocol):
    """A thread that relays the sockets of sessions whose engine keeps taking their round
    trips, off the event loop and mostly without the GIL (proxy/_fastpath.c)."""

    @property
    def relayed(self) -> int: ...
    @property
    def returned(self) -> int: ...

    # Whether the audit store takes statements: the server keeps it in step with the
    # recorder's ``available`` (the pump's thread reads it without the GIL).
    available: bool

    def close(self) -> None: ...


class NativeEngine(Engine, Protocol):
    """The C engine: it also runs the fast path on the transports' reads."""

    def connect(
        self,
        recorder: object,
        client_write: Callable[[bytes], object],
        target_write: Callable[[bytes], object],
        client_fallback: Callable[[bytes], None],
        target_fallback: Callable[[bytes], None],
        pump: Pump | None = None,
        promote: Callable[[], None] | None = None,
        handback: Callable[[int, bytes | None], None] | None = None,
        spool: object = None,
        session_id: bytes | None = None,
    ) -> None: ...
    @property
    def watched(self) -> bool: ...
    def watch(self, client_fd: int, target_fd: int) -> None: ...
    def client_data(self, data: bytes) -> None: ...
    def target_data(self, data: bytes) -> None: ...
    def query(self, data: bytes) -> bool: ...
    def result(self, data: bytes) -> int: ...


class Stats(Protocol):
    def snapshot(self) -> tuple[int, int, list[int], float]: ...


class PyEngine:
    """The engine without a fast path: every statement goes through the Python relay."""

    @property
    def inflight(self) -> bool:
        return False

    @property
    def description(self) -> bytes | None:
        return None

    @property
    def started(self) -> float | None:
        return None

    @property
    def extended(self) -> tuple[bool, int, bool] | None:
        return None

    def __init__(
        self,
        session: object,
        admitted: dict[str | bytes, Known],
        blank: dict[bytes, bool] | None,
        stats: Stats,
        dirty: dict[Any, Any],
    ) -> None:
        self._session = session
        self._dirty = dirty
        self.armed = False
        self.status = ord("I")
        self._rows: list[Row] = []
        self._seq = 0

    @property
    def pending(self) -> int:
        return len(self._rows)

    def take(self) -> Taken:
        raise RuntimeError("no statement in flight")

    def take_unnamed(self) -> tuple[str, tuple[int, ...], bytes] | None:
        return None

    def prepare(self, name: bytes, sql: bytes | None) -> None:
        pass

    def blank_binds(self, name: bytes, codes: bytes, columns: int) -> None:
        pass

    def forget_prepared(self) -> None:
        pass

    def take_description(self) -> bytes | None:
        return None

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def take_done(self) -> bytes | None:
        return None

    def add(self, row: Row) -> None:
        if not self._rows:
            self._dirty[self] = self._session
        self._rows.append(row)

    def unwatch(self) -> bool:
        return False

    def drain(self, encode: Callable[[object], str]) -> Drained | None:
        rows, self._rows = self._rows, []
        if not rows:
            return None
        texts, indexed = index_rows(rows)
        joined, array = batch_texts(texts)
        events = text_bytes(encode(indexed))
        return joined, array, events, len(rows), rows[0][0], rows[-1][0], rows[0][7]


class PyStats:
    """What :class:`PyEngine` adds to the metrics: nothing (the relay observes each event)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._buckets = len(bounds) + 1

    def snapshot(self) -> tuple[int, int, list[int], float]:
        return 0, 0, [0] * self._buckets, 0.0


EngineFactory = Callable[
    [object, dict[str | bytes, Known], dict[bytes, bool] | None, Stats, dict[Any, Any]], Engine
]

# Imported by name, untyped: the Protocols above are its types.
_native: ModuleType | None
try:
    _native = importlib.import_module("proxy._fastpath")
except ImportError:  # built without a C compiler
    _native = None

NATIVE_AVAILABLE = _native is not None


def native_enabled() -> bool:
    """Whether new gateways use the native fast path: built, and not switched off with
    ``JITGATE_NATIVE=0``."""
    return NATIVE_AVAILABLE and os.environ.get("JITGATE_NATIVE", "1") != "0"


def pump_enabled() -> bool:
    """Whether native gateways hand busy sessions to a pump thread (``JITGATE_PUMP=0``
    keeps every session on the event loop)."""
    return os.environ.get("JITGATE_PUMP", "1") != "0"


def new_pump(post: Callable[..., object]) -> Pump:
    """A running pump whose hand-backs ``post`` schedules on the event loop (the loop's
    ``call_soon_threadsafe``)."""
    if _native is None:
        raise RuntimeError("the native fast path is not built")
    pump: Pump = _native.Pump(post)
    return pump


def engine_kind(
    native: bool,
) -> tuple[EngineFactory, Callable[[tuple[float, ...]], Stats], bool]:
    """The engine and stats types for a gateway, and whether they are the native ones
    (when asked for and built)."""
    if native and _native is not None:
        return _native.Engine, _native.Stats, True
    return PyEngine, PyStats, False
