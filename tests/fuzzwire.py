"""A mutational fuzzer of the client side of the wire protocol, after login.

Recorded client streams (what psql, libpq pipelines and drivers send: simple and
multi-statement queries, Parse/Bind/Describe/Execute with and without Sync, Flush, Close,
COPY in and out, Terminate, a CancelRequest on a second connection) are mutated by a
seeded generator, at the level of messages (drop, duplicate, swap, splice two streams, a
random message, a payload cut or bit-flipped with its length kept right) and of bytes
(bit flips, truncation, a length field made short, long, negative or huge, junk). The
bytes go out in one write, per message, at random cuts or one byte at a time.

Each case is one connection. It ends in one of four ways, chosen by its seed: the client
half-closes and reads to EOF; it sends Terminate; it sends a probe (Sync, Query, Sync,
Query, which reaches a fresh query from any state the target can be in) and reads until
the probe's row or EOF; or it resets the connection. The gateway must never be silent
beyond :data:`BOUND` while the client waits, and everything it sends must frame and
decode as backend messages.

Effects are witnessed by the target itself: every statement that inserts into
``fuzz_effects`` fires a statement trigger that writes the client's application name and
``current_query()`` (the text of the Query or Parse that ran) to ``fuzz_log``, in the
same transaction. So ``fuzz_log`` holds exactly the statements that committed, and each
must have an audit record of its session with that text and the outcome ``ok``.

A case is named by its seed alone: :func:`make_case` rebuilds it.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from jitgate.errors import ProtocolError
from proxy import messages as m
from proxy.codec import Framer, decode_backend

BOUND = 10.0
"""How long the gateway may stay silent while a case's client waits for it."""

TARGET_SCHEMA = """
CREATE TABLE fuzz_effects (tok text);
CREATE TABLE fuzz_log (app text, query text);
CREATE FUNCTION fuzz_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fuzz_log VALUES (current_setting('application_name'), current_query());
    RETURN NULL;
END $$;
CREATE TRIGGER fuzz_note AFTER INSERT ON fuzz_effects
    FOR EACH STATEMENT EXECUTE FUNCTION fuzz_note();
"""

_LETTERS = "bcdfghjkmnpqrstvwxz"


def token(rng: random.Random) -> str:
    """A marker no masking rule mistakes for a value (letters only)."""
    return "".join(rng.choice(_LETTERS) for _ in range(10))


# -- recorded client streams -------------------------------------------------------------

Stream = list[bytes]
"""One client stream after login, as its messages in order (each one encoded)."""


def _insert(tok: str) -> str:
    return f"INSERT INTO fuzz_effects VALUES ('{tok}')"


def _copy_in() -> str:
    return "COPY fuzz_effects (tok) FROM STDIN"


def _extended(sql: str, params: Sequence[bytes | None] = (), portal: str = "") -> Stream:
    return [
        m.Parse("", sql, ()).encode(),
        m.Bind(portal, "", (), tuple(params), ()).encode(),
        m.Describe("P", portal).encode(),
        m.Execute(portal, 0).encode(),
    ]


def recorded_streams(rng: random.Random) -> dict[str, Stream]:
    """The corpus, with fresh markers from ``rng`` in every text that writes."""
    t = [token(rng) for _ in range(12)]
    sync, flush = m.Sync().encode(), m.Flush().encode()
    return {
        "select": [m.Query("SELECT 1").encode()],
        "insert": [m.Query(_insert(t[0])).encode()],
        "multi": [
            m.Query(f"{_insert(t[1])}; SELECT count(*) FROM fuzz_effects; {_insert(t[2])}").encode()
        ],
        "transaction": [
            m.Query("BEGIN").encode(),
            m.Query(_insert(t[3])).encode(),
            m.Query("COMMIT").encode(),
        ],
        "rollback": [
            m.Query("BEGIN").encode(),
            m.Query(_insert(t[4])).encode(),
            m.Query("SAVEPOINT a").encode(),
            m.Query(_insert(t[5])).encode(),
            m.Query("ROLLBACK TO SAVEPOINT a").encode(),
            m.Query("ROLLBACK").encode(),
        ],
        "error-then-insert": [
            m.Query("SELECT 1/0").encode(),
            m.Query(_insert(t[6])).encode(),
        ],
        "extended": [
            *_extended("INSERT INTO fuzz_effects VALUES ($1)", (t[7].encode(),)),
            sync,
        ],
        "named": [
            m.Parse("s1", "SELECT $1::text, count(*) FROM fuzz_effects", ()).encode(),
            m.Describe("S", "s1").encode(),
            m.Bind("p1", "s1", (), (b"x",), ()).encode(),
            m.Execute("p1", 0).encode(),
            m.Close("P", "p1").encode(),
            m.Close("S", "s1").encode(),
            sync,
        ],
        "pipeline": [
            *_extended(_insert(t[8])),
            flush,
            *_extended("SELECT g FROM generate_series(1, 5) g"),
            *_extended("SELECT 1/0"),
            *_extended(_insert(token(rng))),
            sync,
            *_extended("SELECT 2"),
            sync,
        ],
        "unsynced": [*_extended(_insert(t[9])), flush],
        "suspended": [
            m.Parse("", "SELECT g FROM generate_series(1, 10) g", ()).encode(),
            m.Bind("", "", (), (), ()).encode(),
            m.Execute("", 3).encode(),
            m.Execute("", 0).encode(),
            sync,
        ],
        "copy-in": [
            m.Query(_copy_in()).encode(),
            m.CopyData(f"{t[10]}\n".encode()).encode(),
            m.CopyData(f"{token(rng)}\n{token(rng)}\n".encode()).encode(),
            m.CopyDone().encode(),
            m.Query("SELECT 3").encode(),
        ],
        "copy-in-sync": [
            m.Query(_copy_in()).encode(),
            sync,
            flush,
            m.CopyData(f"{t[11]}\n".encode()).encode(),
            sync,
            m.CopyDone().encode(),
            *_extended(_insert(token(rng))),
            sync,
        ],
        "copy-fail": [
            m.Query(_copy_in()).encode(),
            m.CopyData(f"{token(rng)}\n".encode()).encode(),
            m.CopyFail("client gave up").encode(),
            m.Query(_insert(token(rng))).encode(),
        ],
        "copy-in-extended": [
            *_extended(_copy_in()),
            sync,
            m.CopyData(f"{token(rng)}\n".encode()).encode(),
            m.CopyDone().encode(),
            sync,
        ],
        "copy-out": [
            m.Query("COPY (SELECT g FROM generate_series(1, 20) g) TO STDOUT").encode(),
            m.Query("SELECT 4").encode(),
        ],
        "terminate": [m.Query(_insert(token(rng))).encode(), m.Terminate().encode()],
        "cancel": [m.Query("SELECT pg_sleep(0.05)").encode()],
    }


# -- mutations -----------------------------------------------------------------------------

CLIENT_TYPES = b"QPBDESHCXdcfFp"


def frame(code: int, payload: bytes) -> bytes:
    return bytes([code]) + struct.pack("!i", len(payload) + 4) + payload


def _flip(rng: random.Random, data: bytes, flips: int) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(flips):
        at = rng.randrange(len(buf))
        buf[at] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _random_message(rng: random.Random, corpus: dict[str, Stream]) -> bytes:
    code = rng.choice(CLIENT_TYPES) if rng.random() < 0.8 else rng.randrange(256)
    if rng.random() < 0.5:
        payload = rng.randbytes(rng.randrange(12))
    else:
        donor = rng.choice(rng.choice(list(corpus.values())))
        payload = donor[5:]
    return frame(code, payload)


def _payload(message: bytes) -> bytes:
    return message[5:]


MessageMutation = Callable[[random.Random, Stream, dict[str, Stream]], Stream]


def _drop(rng: random.Random, s: Stream, _: dict[str, Stream]) -> Stream:
    if s:
        del s[rng.randrange(len(s))]
    return s


def _duplicate(rng: random.Random, s: Stream, _: dict[str, Stream]) -> Stream:
    if s:
        at = rng.randrange(len(s))
        s.insert(at, s[at])
    return s


def _swap(rng: random.Random, s: Stream, _: dict[str, Stream]) -> Stream:
    if len(s) > 1:
        at = rng.randrange(len(s) - 1)
        s[at], s[at + 1] = s[at + 1], s[at]
    return s


def _shuffle(rng: random.Random, s: Stream, _: dict[str, Stream]) -> Stream:
    if len(s) > 2:
        a = rng.randrange(len(s) - 1)
        b = rng.randrange(a + 2, len(s) + 1)
        part = s[a:b]
        rng.shuffle(part)
        s[a:b] = part
    return s


def _splice(rng: random.Random, s: Stream, corpus: dict[str, Stream]) -> Stream:
    other = rng.choice(list(corpus.values()))
    return s[: rng.randrange(len(s) + 1)] + other[rng.randrange(len(other) + 1) :]


def _graft(rng: random.Random, s: Stream, corpus: dict[str, Stream]) -> Stream:
    donor = rng.choice(rng.choice(list(corpus.values())))
    s.insert(rng.randrange(len(s) + 1), donor)
    return s


def _random(rng: random.Random, s: Stream, corpus: dict[str, Stream]) -> Stream:
    s.insert(rng.randrange(len(s) + 1), _random_message(rng, corpus))
    return s


def _retype(rng: random.Random, s: Stream, _: dict[str, Stream]) -> Stream:
    if s:
        at = rng.randrange(len(s))
        s[at] = frame(rng.choice(CLIENT_TYPES), _payload(s[at]))
    return s


def _cut_payload(rng: random.Random, s: Stream, _: dict[str, Stream]) -> Stream:
    if s:
        at = rng.randrange(len(s))
        body = _payload(s[at])
        s[at] = frame(s[at][0], body[: rng.randrange(len(body) + 1)])
    return s


def _flip_payload(rng: random.Random, s: Stream, _: dict[str, Stream]) -> Stream:
    if s:
        at = rng.randrange(len(s))
        s[at] = frame(s[at][0], _flip(rng, _payload(s[at]), rng.randint(1, 3)))
    return s


MESSAGE_MUTATIONS: dict[str, MessageMutation] = {
    "drop": _drop,
    "duplicate": _duplicate,
    "swap": _swap,
    "shuffle": _shuffle,
    "splice": _splice,
    "graft": _graft,
    "random": _random,
    "retype": _retype,
    "cut-payload": _cut_payload,
    "flip-payload": _flip_payload,
}

ByteMutation = Callable[[random.Random, bytes, Stream], bytes]


def _starts(s: Stream) -> list[int]:
    starts, at = [], 0
    for message in s:
        starts.append(at)
        at += len(message)
    return starts


def _bit_flips(rng: random.Random, data: bytes, _: Stream) -> bytes:
    return _flip(rng, data, rng.randint(1, 4))


def _truncate(rng: random.Random, data: bytes, _: Stream) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


LENGTHS = (0, 1, 3, 4, 5, -1, -4, 0x7FFFFFFF, 1 << 30, (1 << 30) + 1, 1 << 24, 65536)


def _bad_length(rng: random.Random, data: bytes, s: Stream) -> bytes:
    if not s:
        return data
    at = rng.choice(_starts(s))
    (length,) = struct.unpack_from("!i", data, at + 1)
    choice = rng.random()
    if choice < 0.4:
        length = rng.choice(LENGTHS)
    elif choice < 0.8:
        length += rng.choice((-2, -1, 1, 2, 7))
    else:
        length = rng.randrange(-(1 << 31), 1 << 31)
    return data[: at + 1] + struct.pack("!i", length) + data[at + 5 :]


def _huge_claim(rng: random.Random, data: bytes, s: Stream) -> bytes:
    """A message that claims far more than follows (its body never completes)."""
    at = rng.choice(_starts(s)) if s else 0
    code = rng.choice(b"QPBdp")
    claim = rng.choice((1 << 20, 1 << 26, 1 << 30, (1 << 31) - 1))
    return data[:at] + frame(code, b"")[:1] + struct.pack("!i", claim) + rng.randbytes(64)


def _junk(rng: random.Random, data: bytes, _: Stream) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.randbytes(rng.randint(1, 16)) + data[at:]


BYTE_MUTATIONS: dict[str, ByteMutation] = {
    "bit-flips": _bit_flips,
    "truncate": _truncate,
    "bad-length": _bad_length,
    "huge-claim": _huge_claim,
    "junk": _junk,
}

ENDINGS = ("half-close", "terminate", "probe", "reset")


@dataclass
class Case:
    """One mutated stream and how it is sent and ended."""

    seed: int
    origin: str
    mutations: list[str]
    data: bytes
    writes: list[bytes]
    ending: str
    cancel: str | None = None  # "real" key, "wrong" key, or no CancelRequest

    def describe(self) -> str:
        cuts = [len(w) for w in self.writes]
        return (
            f"case seed {self.seed}: {self.origin} via {'+'.join(self.mutations) or 'as recorded'},"
            f" ended by {self.ending}, cancel={self.cancel}, writes {cuts[:20]}"
            f"{'...' if len(cuts) > 20 else ''}\n  bytes {self.data[:400].hex()}"
        )


def _writes(rng: random.Random, data: bytes, s: Stream | None) -> list[bytes]:
    choice = rng.random()
    if choice < 0.35 or not data:
        return [data]
    if choice < 0.55 and s is not None and b"".join(s) == data:
        return list(s)
    if choice < 0.7 and len(data) <= 600:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(rng.sample(range(1, len(data) + 1), min(len(data), rng.randint(1, 8))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True) if a < b]


def make_case(seed: int) -> Case:
    """The case ``seed`` names; the same seed gives the same case on any machine."""
    rng = random.Random(seed)
    corpus = recorded_streams(rng)
    origin = rng.choice(sorted(corpus))
    stream = list(corpus[origin])
    mutations: list[str] = []
    level = rng.random()
    if level < 0.1:
        pass
    elif level < 0.7:
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            name = rng.choice(sorted(MESSAGE_MUTATIONS))
            mutations.append(name)
            stream = MESSAGE_MUTATIONS[name](rng, stream, corpus)
    data = b"".join(stream)
    framed = True
    if level >= 0.7:
        name = rng.choice(sorted(BYTE_MUTATIONS))
        mutations.append(name)
        data = BYTE_MUTATIONS[name](rng, data, stream)
        framed = False
    cancel = None
    if origin == "cancel" or rng.random() < 0.03:
        cancel = rng.choice(("real", "real", "wrong"))
    # A real cancel may stop the probe itself.
    endings = ENDINGS if framed and cancel is None else ("half-close", "reset", "half-close")
    ending = rng.choice(endings)
    writes = _writes(rng, data, stream if framed else None)
    return Case(seed, origin, mutations, data, writes, ending, cancel)


# -- running a case ------------------------------------------------------------------------


class Finding(AssertionError):
    """A case broke a promise: the message names the case's seed and what broke."""


@dataclass
class Outcome:
    """What a case's connection saw."""

    answers: list[m.BackendMessage] = field(default_factory=list)
    eof: bool = False
    elapsed: float = 0.0


class Connection:
    """A logged-in client on a blocking socket that reads with a deadline."""

    def __init__(self, port: int, user: str, token: str, app: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.framer = Framer()
        self.inbox: list[m.BackendMessage] = []
        self.eof = False
        params = (
            ("user", user),
            ("database", "prod"),
            ("application_name", app),
            ("statement_timeout", "3000"),
        )
        self.sock.sendall(m.StartupMessage(params).encode())
        self.read_until(lambda x: isinstance(x, m.AuthenticationCleartextPassword), "login")
        self.sock.sendall(m.cleartext_password(token).encode())
        greeting = self.read_until(lambda x: isinstance(x, m.ReadyForQuery), "login")
        keys = [x for x in greeting if isinstance(x, m.BackendKeyData)]
        if not keys or self.eof:
            raise Finding(f"login refused: {greeting}")
        self.key = keys[0]
        self.inbox.clear()

    def send(self, writes: Sequence[bytes]) -> None:
        try:
            for chunk in writes:
                self.sock.sendall(chunk)
        except OSError:
            # The gateway may close as soon as it reads a message it cannot accept.
            pass

    def _read(self, deadline: float, what: str) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Finding(f"the gateway was silent for {BOUND:g}s while {what}")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError as exc:
            raise Finding(f"the gateway was silent for {BOUND:g}s while {what}") from exc
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            if self.framer.buffered:
                raise Finding(f"the gateway closed inside a message while {what}")
            return
        try:
            buf, frames = self.framer.feed(data)
            self.inbox += [decode_backend(t, buf[s:e]) for t, s, e in frames]
        except ProtocolError as exc:
            raise Finding(f"the gateway sent a malformed message while {what}: {exc}") from exc

    def read_until(
        self, done: Callable[[m.BackendMessage], bool], what: str
    ) -> list[m.BackendMessage]:
        """Messages up to the first ``done`` one, or up to EOF."""
        deadline = time.monotonic() + BOUND
        seen = 0
        while True:
            while seen < len(self.inbox):
                seen += 1
                if done(self.inbox[seen - 1]):
                    return self.inbox
            if self.eof:
                return self.inbox
            self._read(deadline, what)

    def read_to_eof(self, what: str) -> list[m.BackendMessage]:
        deadline = time.monotonic() + BOUND
        while not self.eof:
            self._read(deadline, what)
        return self.inbox

    def reset(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


PROBE = "fuzz probe"
# From any state the target can be in, one of these Syncs ends an extended-protocol
# error, the ROLLBACK an open or failed transaction, so the SELECT runs; a Query that
# reaches the target while it copies in ends the connection instead.
PROBE_SUFFIX = b"".join(
    [
        m.Sync().encode(),
        m.Query("ROLLBACK").encode(),
        m.Sync().encode(),
        m.Query(f"SELECT '{PROBE}'").encode(),
    ]
)


def _probed(message: m.BackendMessage) -> bool:
    return isinstance(message, m.DataRow) and message.values == (PROBE.encode(),)


def send_cancel(port: int, key: m.BackendKeyData, wrong: bool) -> None:
    secret = bytes(b ^ 0x5A for b in key.secret_key) if wrong else key.secret_key
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as sock:
        sock.sendall(m.CancelRequest(key.process_id, secret).encode())
        sock.settimeout(BOUND)
        try:
            if sock.recv(1):
                raise Finding("the gateway answered a CancelRequest")
        except ConnectionResetError:
            pass


def app_name(seed: int) -> str:
    return f"fz{seed}"


def run_case(port: int, user: str, token: str, case: Case) -> Outcome:
    """Run ``case`` on a new connection; raise :class:`Finding` if the gateway hangs or
    sends bytes that are not backend messages."""
    started = time.monotonic()
    conn = Connection(port, user, token, app_name(case.seed))
    outcome = Outcome()
    try:
        conn.send(case.writes)
        if case.cancel is not None:
            send_cancel(port, conn.key, case.cancel == "wrong")
        if case.ending == "probe":
            conn.send([PROBE_SUFFIX])
            conn.read_until(_probed, "answering the probe")
            if not conn.eof:
                conn.sock.shutdown(socket.SHUT_WR)
            conn.read_to_eof("ending after the probe")
        elif case.ending == "terminate":
            conn.send([m.Terminate().encode()])
            conn.read_to_eof("ending after Terminate")
        elif case.ending == "half-close":
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
            conn.read_to_eof("ending after the client's EOF")
        else:
            conn.reset()
        outcome.answers, outcome.eof = conn.inbox, conn.eof
    finally:
        conn.close()
    outcome.elapsed = time.monotonic() - started
    return outcome
