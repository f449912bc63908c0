"""Audit before effect: every statement is on local disk before the target can run it.

The relay writes an *intent* (session, start, SQL text) for each statement it forwards to
the gateway's spool before the statement's bytes go to the target — the native engine in C
(``proxy/_spool.c``), the Python relay through :meth:`AuditSpool.write` — and, in the same
write, a *done* frame for the session's previous statement (how it ended). Records reach
the store later, batched (:mod:`audit.recorder`); if the process is killed in between, the
frames are still in the spool's segment files. At start, a gateway recovers the segments
of every spool whose process is gone (its lock file is free, :mod:`audit.recovery`): each
intent without its audit record in the store gets one, with the outcome its done frame
gives, or ``unknown`` when there is none (the statement was in flight: the target may or
may not have committed it), so every statement the target ran has exactly one record.

Plaintext frames: an intent is ``'I'``, the session id (16 bytes), the start (µs since the
epoch, i64 LE, as the audit record has it), the text's length (u32 LE) and the text; a
done frame is ``'D'``, the session id, the start, the duration in µs and the rows (i64 LE
each), then the outcome, the command tag and the SQLSTATE, each a length byte and bytes.

Segments are encrypted (ChaCha20, a random key per spool kept in the store's
``audit_spools``, never beside the files) because SQL texts may quote sensitive values.
Segments are files of :data:`SEGMENT_SIZE` bytes, allocated when made and written through
a shared mapping (``proxy/_spool.c``). A new one starts every :data:`ROTATE_EVERY` seconds
(sooner when half full); an old one is deleted as soon as a flush has stored every
statement it holds: the relay reports the start of its oldest
statement still in flight (:meth:`AuditSpool.release` is given it), and a segment closed
before that moment, followed by a successful flush, has nothing left to tell.

One append per forwarded client read (a copy into the mapping natively, a ``pwrite``
without the extension), no fsync: the spool outlives the process, not the machine. A
spool that cannot take a frame (a new segment the disk cannot hold) refuses: the relay
ends the session with "audit unavailable" rather than run a statement it could not
record.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import struct
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from uuid import UUID

import asyncpg
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from audit.events import StatementEvent, text_bytes

log = logging.getLogger("jitgate.audit")

ROTATE_EVERY = 2.0
SEGMENT_SIZE = 32 << 20  # rotated sooner when half full
_LENGTH = struct.Struct("<I")
_INTENT = struct.Struct("<c16sqI")
_DONE = struct.Struct("<c16sqqq")
_NONCE = struct.Struct("<4sQ")


class SpoolWriter(Protocol):
    """Seals plaintext frames and appends them to the current segment at once
    (``proxy._fastpath.Spool`` or :class:`PySpoolWriter`, the same bytes). ``write`` raises
    OSError ENOBUFS when the segment is full, EBADF when there is none."""

    @property
    def frames(self) -> int: ...
    @property
    def used(self) -> int: ...
    def write(self, plains: list[bytes]) -> None: ...
    def swap(self, fd: int, size: int) -> int: ...


class PySpoolWriter:
    """The spool's writer where the native extension is not built: one ``pwrite`` per
    append, the first frame's length word last, as the native writer copies."""

    def __init__(self, key: bytes, prefix: bytes) -> None:
        self._key, self._prefix = key, prefix
        self._fd, self._size = -1, 0
        self._counter = 0
        self.frames = self.used = 0

    def write(self, plains: list[bytes]) -> None:
        frames: list[bytes] = []
        for plain in plains:
            self._counter += 1
            nonce = _NONCE.pack(self._prefix, self._counter)
            frame = _LENGTH.pack(12 + len(plain)) + nonce + _cipher(self._key, nonce, plain)
            frames.append(frame + bytes(_padded(len(frame)) - len(frame)))
        data = b"".join(frames)
        if self._fd < 0:
            raise OSError(errno.EBADF, "the audit spool has no segment")
        if len(data) > self._size - self.used:
            raise OSError(errno.ENOBUFS, "the audit spool segment is full")
        os.pwrite(self._fd, data[4:], self.used + 4)
        os.pwrite(self._fd, data[:4], self.used)
        self.used += len(data)
        self.frames += len(plains)

    def swap(self, fd: int, size: int) -> int:
        old, self._fd, self._size = self._fd, fd, size
        self.frames = self.used = 0
        return old


def _padded(size: int) -> int:
    return (size + 3) & ~3


def intent_frame(event: StatementEvent) -> bytes:
    """The plaintext intent frame of ``event``, about to be forwarded."""
    text = text_bytes(event.sql)
    started = int(event.started_at * 1_000_000)
    return _INTENT.pack(b"I", event.session_id.bytes, started, len(text)) + text


def done_frame(event: StatementEvent) -> bytes:
    """The plaintext done frame of ``event``, just filed."""
    started = int(event.started_at * 1_000_000)
    duration = max(0, int(event.ended_at * 1_000_000) - started)
    head = _DONE.pack(b"D", event.session_id.bytes, started, duration, event.rows)
    tag = event.command_tag or b""
    return b"".join(
        (head, *(_short(v) for v in (event.outcome.encode(), tag, (event.sqlstate or "").encode())))
    )


def _short(value: bytes) -> bytes:
    value = value[:255]
    return bytes((len(value),)) + value


@dataclass(frozen=True, slots=True)
class Intent:
    session_id: UUID
    started_us: int
    sql: bytes


@dataclass(frozen=True, slots=True)
class Done:
    """How a spooled statement ended, as the relay filed it."""

    duration_us: int
    rows: int
    outcome: str
    command_tag: bytes | None
    sqlstate: str | None


# (session, start in µs) -> how it ended
Dones = dict[tuple[UUID, int], Done]


def read_segments(segments: list[Path], key: bytes) -> tuple[list[Intent], Dones]:
    """The intents of ``segments`` in order, and their done frames (blocking: run it in a
    thread)."""
    intents: list[Intent] = []
    dones: Dones = {}
    for segment in segments:
        read_frames(segment.read_bytes(), key, intents, dones)
    return intents, dones


def remove(paths: list[Path]) -> None:
    """Delete ``paths`` (blocking: run it in a thread)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_frames(data: bytes, key: bytes, intents: list[Intent], dones: Dones) -> None:
    """Add the frames of a segment's bytes to ``intents`` and ``dones``: frames start on
    4-byte boundaries, and a zero length (the segment's unused end, or an append the
    process died in) or a frame cut short (the machine stopped) ends them. ValueError for
    a frame that does not decrypt to one (the wrong key, a damaged file)."""
    at = 0
    while at + 4 <= len(data):
        (length,) = _LENGTH.unpack_from(data, at)
        frame = data[at + 4 : at + 4 + length]
        if length == 0 or len(frame) < length:
            break
        plain = _cipher(key, frame[:12], frame[12:])
        if plain[:1] == b"I" and len(plain) >= _INTENT.size:
            _, session, started, size = _INTENT.unpack_from(plain)
            if _INTENT.size + size != len(plain):
                raise ValueError("an audit spool frame that does not decrypt")
            intents.append(Intent(UUID(bytes=session), started, plain[_INTENT.size :]))
        elif plain[:1] == b"D" and len(plain) >= _DONE.size + 3:
            _, session, started, duration, rows = _DONE.unpack_from(plain)
            outcome, tag, state = _shorts(plain, _DONE.size)
            dones[(UUID(bytes=session), started)] = Done(
                duration, rows, outcome.decode(), tag or None, state.decode() or None
            )
        else:
            raise ValueError("an audit spool frame that does not decrypt")
        at += _padded(4 + length)


def _shorts(plain: bytes, at: int) -> list[bytes]:
    values = []
    for _ in range(3):
        size = plain[at]
        values.append(plain[at + 1 : at + 1 + size])
        at += 1 + size
    if at != len(plain):
        raise ValueError("an audit spool frame that does not decrypt")
    return values


def _cipher(key: bytes, nonce: bytes, data: bytes) -> bytes:
    # cryptography's ChaCha20 nonce: the 32-bit block counter (0), then RFC 8439's nonce.
    return Cipher(algorithms.ChaCha20(key, bytes(4) + nonce), None).encryptor().update(data)


def new_writer(key: bytes, prefix: bytes) -> SpoolWriter:
    """The native writer when the extension is built, else :class:`PySpoolWriter`."""
    try:
        from proxy._fastpath import Spool  # type: ignore[import-not-found]
    except ImportError:
        return PySpoolWriter(key, prefix)
    writer: SpoolWriter = Spool(key, prefix)
    return writer


class AuditSpool:
    """This process's spool: its key and lock, the current segment, the closed ones."""

    def __init__(self, directory: Path, pool: asyncpg.Pool) -> None:
        self.directory = directory
        self.id = uuid.uuid4()
        self._pool = pool
        self._key = os.urandom(32)
        self._lock_fd = -1
        self._segment = 0
        self._path: Path | None = None
        self._retired: list[tuple[float, Path]] = []
        self._rotated = 0.0
        self.writer: SpoolWriter | None = None

    async def open(self, gateway: str) -> None:
        """Create the directory (0700), keep the key in the store, lock the spool (a lock
        the kernel drops when the process dies: that is how recovery knows) and open the
        first segment."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        await self._pool.execute(
            "INSERT INTO audit_spools (id, gateway, key) VALUES ($1, $2, $3)",
            self.id,
            gateway,
            self._key,
        )
        self._lock_fd = os.open(self.directory / f"{self.id}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.writer = new_writer(self._key, os.urandom(4))
        self.writer.swap(self._next_segment(), SEGMENT_SIZE)
        self._rotated = time.monotonic()

    def write(self, plains: list[bytes]) -> None:
        """Append the plaintext frames (:func:`intent_frame`, :func:`done_frame`) in one
        write; OSError when the segment cannot take them."""
        if self.writer is None:
            raise OSError(errno.EBADF, "the audit spool is closed")
        try:
            self.writer.write(plains)
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            self.rotate()  # full before its time: the next segment takes them
            self.writer.write(plains)

    def rotate(self) -> None:
        """Start a new segment if the current one holds anything. OSError when a new one
        cannot be made (a full disk): appends go on into the current one while it lasts."""
        writer = self.writer
        if writer is None or not writer.frames:
            return
        closed = self._path
        fd = self._next_segment()
        os.close(writer.swap(fd, SEGMENT_SIZE))
        self._rotated = time.monotonic()
        if closed is not None:
            self._retired.append((time.time(), closed))

    def release(self, oldest_open: float) -> None:
        """A flush stored every record filed before it began, when the oldest statement
        still in flight had started at ``oldest_open``: delete the segments closed before."""
        while self._retired and self._retired[0][0] < oldest_open:
            _, path = self._retired.pop(0)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def run(self) -> None:
        """Rotate every :data:`ROTATE_EVERY` seconds until cancelled."""
        while True:
            await asyncio.sleep(ROTATE_EVERY / 4)
            writer = self.writer
            due = time.monotonic() - self._rotated >= ROTATE_EVERY
            if writer is None or not (due or writer.used > SEGMENT_SIZE // 2):
                continue
            try:
                self.rotate()
            except OSError as exc:
                log.error("cannot start a new audit spool segment", extra={"error": str(exc)})

    async def close(self, everything_stored: bool) -> None:
        """Stop writing; with ``everything_stored``, delete the segments, the lock and the
        key (otherwise the next gateway to start recovers them)."""
        writer, self.writer = self.writer, None
        if writer is not None:
            with contextlib.suppress(OSError):
                os.close(writer.swap(-1, 0))
        if self._path is not None:
            self._retired.append((time.time(), self._path))
        if everything_stored:
            self.release(float("inf"))
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{self.id}.lock").unlink()
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._pool.execute("DELETE FROM audit_spools WHERE id = $1", self.id)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _next_segment(self) -> int:
        """A new segment file, its blocks allocated (a segment the disk cannot hold is
        refused now, not when a frame is copied into its mapping)."""
        path = self.directory / f"{self.id}.{self._segment + 1:08d}.seg"
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, SEGMENT_SIZE)
        except OSError:
            os.close(fd)
            path.unlink()
            raise
        self._segment += 1
        self._path = path
        return fd


def dead_spools(directory: Path, own: UUID) -> list[tuple[UUID, list[Path], int]]:
    """The spools in ``directory`` whose process is gone: id, segments, the lock's fd
    (held: close it once recovered). Blocking: run it in a thread."""
    found: list[tuple[UUID, list[Path], int]] = []
    if not directory.is_dir():
        return found
    for lock in sorted(directory.glob("*.lock")):
        try:
            spool = UUID(lock.stem)
        except ValueError:
            continue
        if spool == own:
            continue
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # alive
            continue
        found.append((spool, sorted(directory.glob(f"{spool}.*.seg")), fd))
    return found


async def missing_intents(pool: asyncpg.Pool, intents: list[Intent]) -> list[Intent]:
    """The intents with no audit record in the store (matched by session and start)."""
    sessions = sorted({i.session_id for i in intents})
    rows = await pool.fetch(
        "SELECT b.session_id, (e ->> 7)::bigint AS started FROM statement_batches b"
        " CROSS JOIN LATERAL json_array_elements(b.events::json) AS e"
        " WHERE b.session_id = ANY($1::uuid[])",
        sessions,
    )
    stored = Counter((r["session_id"], r["started"]) for r in rows)
    missing = []
    for intent in intents:
        key = (intent.session_id, intent.started_us)
        if stored[key]:
            stored[key] -= 1
        else:
            missing.append(intent)
    return missing
