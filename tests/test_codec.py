"""The sans-IO wire codec: round trips, framing split at every byte, malformed input."""

from __future__ import annotations

import contextlib
import functools
import random
import struct
from collections.abc import Callable
from typing import Any

import pytest

from jitgate.errors import ProtocolError
from proxy import messages as m
from proxy.codec import (
    STARTUP,
    Framer,
    bind_result_formats,
    command_complete_tag,
    decode_backend,
    decode_frontend,
    decode_startup,
    error_sqlstate,
    query_text,
)

# Latin-1 text and a stray byte: not UTF-8, so it decodes to lone surrogates.
NOT_UTF8 = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")

STARTUP_PACKETS = [
    m.StartupMessage((("user", "alice@example.com"), ("database", "prod"))),
    m.StartupMessage((("user", NOT_UTF8), ("_pq_.test", "on")), protocol=3 << 16 | 2),
    m.StartupMessage(()),
    m.SSLRequest(),
    m.GSSENCRequest(),
    m.CancelRequest(4242, b"\x01\x02\x03\x04"),
    m.CancelRequest(-1, bytes(range(256))),
]

FRONTEND = [
    m.PasswordMessage(b"secret\0"),
    m.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc"),
    m.sasl_response(b"c=biws,r=abc,p=xyz"),
    m.Query("SELECT 1"),
    m.Query(""),
    m.Query(f"SELECT '{NOT_UTF8}'"),
    m.Parse("s1", "SELECT $1::int, $2", (23, 0xFFFFFFFF)),
    m.Parse("", "SELECT 1", ()),
    m.Bind("p1", "s1", (0, 1), (b"42", None, b""), (1,)),
    m.Bind("", "", (), (), ()),
    m.Describe("S", "s1"),
    m.Describe("P", ""),
    m.Execute("", 0),
    m.Execute("p1", 100),
    m.Sync(),
    m.Flush(),
    m.Close("S", "s1"),
    m.Close("P", "p1"),
    m.FunctionCall(1598, (1,), (b"\x00\x00\x00\x01", None), 1),
    m.Terminate(),
    m.CopyData(b"1\tone\n"),
    m.CopyData(b""),
    m.CopyDone(),
    m.CopyFail("aborted by user"),
]

BACKEND = [
    m.AuthenticationOk(),
    m.AuthenticationCleartextPassword(),
    m.AuthenticationMD5Password(b"\x01\x02\x03\x04"),
    m.AuthenticationSASL(("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256")),
    m.AuthenticationSASLContinue(b"r=abc,s=c2FsdA==,i=4096"),
    m.AuthenticationSASLFinal(b"v=c2lnbmF0dXJl"),
    m.AuthenticationRequest(7, b""),
    m.AuthenticationRequest(8, b"\x60\x82"),
    m.BackendKeyData(12345, b"\xaa\xbb\xcc\xdd"),
    m.BackendKeyData(12345, bytes(32)),
    m.ParameterStatus("server_version", "17.2"),
    m.ParameterStatus("application_name", NOT_UTF8),
    m.ReadyForQuery("I"),
    m.ReadyForQuery("T"),
    m.ReadyForQuery("E"),
    m.RowDescription(
        (
            m.FieldDescription("id", 16384, 1, 23, 4, -1, 0),
            m.FieldDescription(NOT_UTF8, 0, 0, 0xFFFFFFF0, -1, 0x7FFFFFFF, 1),
        )
    ),
    m.RowDescription(()),
    m.DataRow((b"1", None, b"", b"\x00\xff")),
    m.DataRow(()),
    m.CommandComplete("SELECT 5"),
    m.EmptyQueryResponse(),
    m.ErrorResponse.build("ERROR", "42501", "approval required", detail="request 7", hint="#db"),
    m.ErrorResponse((("S", "FEHLER"), ("V", "ERROR"), ("C", "42P01"), ("\udcff", "odd"))),
    m.NoticeResponse.build("NOTICE", "00000", NOT_UTF8),
    m.NoticeResponse(()),
    m.NotificationResponse(99, "jobs", '{"id": 1}'),
    m.ParseComplete(),
    m.BindComplete(),
    m.CloseComplete(),
    m.NoData(),
    m.PortalSuspended(),
    m.ParameterDescription((23, 25)),
    m.ParameterDescription(()),
    m.CopyInResponse(0, (0, 0)),
    m.CopyOutResponse(1, (1,)),
    m.CopyBothResponse(0, ()),
    m.CopyData(b"\\."),
    m.CopyDone(),
    m.FunctionCallResponse(b"\x00\x00\x00\x01"),
    m.FunctionCallResponse(None),
    m.NegotiateProtocolVersion(0, ("_pq_.compression",)),
]

TYPED = [(decode_frontend, msg) for msg in FRONTEND] + [(decode_backend, msg) for msg in BACKEND]
TYPED_IDS = [type(msg).__name__ for _, msg in TYPED]

# Messages whose last field runs to the end of the payload, so a prefix may still be valid.
OPEN_ENDED = (
    m.PasswordMessage,
    m.CopyData,
    m.AuthenticationSASLContinue,
    m.AuthenticationSASLFinal,
    m.AuthenticationRequest,
    m.BackendKeyData,
)

Decoder = Callable[[int, bytes | memoryview], Any]


def _name(value: object) -> str:
    return type(value).__name__


# Round trips.


@pytest.mark.parametrize("msg", STARTUP_PACKETS, ids=_name)
def test_startup_packet_round_trip(msg: m.StartupPacket) -> None:
    wire = msg.encode()
    assert struct.unpack_from("!i", wire)[0] == len(wire)
    assert decode_startup(wire[4:]) == msg
    assert decode_startup(wire[4:]).encode() == wire

    buf, frames = Framer(startup=True).feed(wire)
    assert buf is wire
    assert frames == [(STARTUP, 4, len(wire))]


@pytest.mark.parametrize(("decode", "msg"), TYPED, ids=TYPED_IDS)
def test_typed_message_round_trip(decode: Decoder, msg: Any) -> None:
    wire = msg.encode()
    assert struct.unpack_from("!i", wire, 1)[0] == len(wire) - 1

    buf, frames = Framer().feed(wire)
    assert buf is wire
    assert frames == [(wire[0], 5, len(wire))]
    decoded = decode(wire[0], memoryview(buf)[5:])
    assert decoded == msg
    assert type(decoded) is type(msg)
    assert decoded.encode() == wire


@pytest.mark.parametrize(
    ("msg", "wire"),
    [
        (m.SSLRequest(), b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
        (m.GSSENCRequest(), b"\x00\x00\x00\x08\x04\xd2\x16\x30"),
        (m.CancelRequest(7, b"keys"), b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x07keys"),
        (
            m.StartupMessage((("user", "bob"),)),
            b"\x00\x00\x00\x12\x00\x03\x00\x00user\x00bob\x00\x00",
        ),
        (m.Query("SELECT 1"), b"Q\x00\x00\x00\x0dSELECT 1\x00"),
        (m.Sync(), b"S\x00\x00\x00\x04"),
        (m.Execute("", 0), b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00"),
        (m.Describe("P", ""), b"D\x00\x00\x00\x06P\x00"),
        (m.AuthenticationOk(), b"R\x00\x00\x00\x08\x00\x00\x00\x00"),
        (m.ReadyForQuery("I"), b"Z\x00\x00\x00\x05I"),
        (m.DataRow((b"ab", None)), b"D\x00\x00\x00\x10\x00\x02\x00\x00\x00\x02ab\xff\xff\xff\xff"),
        (m.CommandComplete("SELECT 1"), b"C\x00\x00\x00\x0dSELECT 1\x00"),
        (
            m.ErrorResponse((("S", "ERROR"), ("C", "42501"))),
            b"E\x00\x00\x00\x13SERROR\x00C42501\x00\x00",
        ),
        (
            m.RowDescription((m.FieldDescription("a", 0, 0, 23, 4, -1, 0),)),
            b"T\x00\x00\x00\x1a\x00\x01a\x00"
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00",
        ),
    ],
    ids=lambda value: "wire" if isinstance(value, bytes) else _name(value),
)
def test_encoding_matches_the_protocol_documentation(msg: Any, wire: bytes) -> None:
    assert msg.encode() == wire


def test_text_that_is_not_utf8_round_trips_byte_for_byte() -> None:
    payload = b"SELECT '\xff\xfe\xc3('\x00"
    query = decode_frontend(m.QUERY, payload)
    assert isinstance(query, m.Query)
    assert query.encode()[5:] == payload
    status = decode_backend(m.PARAMETER_STATUS, b"client_encoding\x00LATIN1 \xe9\x00")
    assert status.encode()[5:] == b"client_encoding\x00LATIN1 \xe9\x00"


# Framing.

CLIENT_STREAM: list[Any] = [
    m.SSLRequest(),
    m.StartupMessage((("user", "alice"), ("database", "prod"), ("application_name", "psql"))),
    m.cleartext_password("token-123"),
    m.Parse("", "SELECT * FROM customers WHERE id = $1", (23,)),
    m.Bind("", "", (0,), (b"42",), (0,)),
    m.Describe("P", ""),
    m.Execute("", 0),
    m.Sync(),
    m.Query("COPY t FROM STDIN"),
    m.CopyData(b"1\tone\n"),
    m.CopyData(b"2\ttwo\n" * 3),
    m.CopyDone(),
    m.Query("SELECT 1; SELECT 2"),
    m.Terminate(),
]

SERVER_STREAM: list[Any] = [
    m.AuthenticationCleartextPassword(),
    m.AuthenticationOk(),
    m.ParameterStatus("server_version", "17.2"),
    m.ParameterStatus("client_encoding", "UTF8"),
    m.BackendKeyData(31337, bytes(range(32))),
    m.ReadyForQuery("I"),
    m.ParseComplete(),
    m.BindComplete(),
    m.RowDescription(
        (
            m.FieldDescription("id", 16384, 1, 23, 4, -1, 0),
            m.FieldDescription("email", 16384, 2, 25, -1, -1, 0),
        )
    ),
    *(m.DataRow((str(i).encode(), f"user{i}@example.com".encode())) for i in range(5)),
    m.DataRow((b"6", None)),
    m.CommandComplete("SELECT 6"),
    m.ReadyForQuery("I"),
    m.CopyOutResponse(0, (0, 0)),
    m.CopyData(b"1\tone\n"),
    m.CopyData(b"2\ttwo\n"),
    m.CopyDone(),
    m.CommandComplete("COPY 2"),
    m.NoticeResponse.build("WARNING", "01000", "careful"),
    m.ReadyForQuery("I"),
]


def _run(framer: Framer, chunks: list[bytes], decode: Decoder) -> tuple[bytes, list[Any]]:
    """Feeds ``chunks``; checks each buf is tiled exactly by its frames."""
    bufs, decoded = [], []
    for chunk in chunks:
        buf, frames = framer.feed(chunk)
        pos = 0
        for type_code, start, end in frames:
            assert start == pos + (4 if type_code == STARTUP else 5)
            payload = buf[start:end]
            decoded.append(
                decode_startup(payload) if type_code == STARTUP else decode(type_code, payload)
            )
            pos = end
        assert pos == len(buf)
        bufs.append(buf)
    return b"".join(bufs), decoded


@pytest.mark.parametrize(
    ("stream", "startup", "decode"),
    [(CLIENT_STREAM, True, decode_frontend), (SERVER_STREAM, False, decode_backend)],
    ids=["client", "server"],
)
def test_split_at_every_byte_boundary(stream: list[Any], startup: bool, decode: Decoder) -> None:
    wire = b"".join(msg.encode() for msg in stream)
    for cut in range(len(wire) + 1):
        framer = Framer(startup=startup)
        joined, decoded = _run(framer, [wire[:cut], wire[cut:]], decode)
        assert joined == wire, cut
        assert decoded == stream, cut
        assert framer.buffered == 0

    framer = Framer(startup=startup)
    joined, decoded = _run(framer, [wire[i : i + 1] for i in range(len(wire))], decode)
    assert (joined, decoded) == (wire, stream)


def test_complete_data_is_returned_without_a_copy() -> None:
    framer = Framer()
    first = b"".join(msg.encode() for msg in SERVER_STREAM)
    buf, frames = framer.feed(first)
    assert buf is first
    assert len(frames) == len(SERVER_STREAM)

    row = m.DataRow((b"x" * 100,)).encode()
    buf, frames = framer.feed(row[:50])
    assert (buf, frames, framer.buffered) == (b"", [], 50)
    buf, frames = framer.feed(row[50:])
    assert buf == row
    assert framer.buffered == 0

    again = m.CommandComplete("SELECT 1").encode()
    buf, _ = framer.feed(again)
    assert buf is again


def test_incomplete_tail_is_buffered_and_only_whole_messages_returned() -> None:
    head = m.CommandComplete("SELECT 1").encode() + m.ReadyForQuery("I").encode()
    tail = m.DataRow((b"abc",)).encode()
    framer = Framer()
    buf, frames = framer.feed(head + tail[:7])
    assert buf == head
    assert [type_code for type_code, _, _ in frames] == [m.COMMAND_COMPLETE, m.READY_FOR_QUERY]
    assert framer.buffered == 7
    buf, frames = framer.feed(tail[7:])
    assert (buf, frames) == (tail, [(m.DATA_ROW, 5, len(tail))])


@pytest.mark.parametrize("request_packet", [m.SSLRequest(), m.GSSENCRequest()], ids=_name)
def test_encryption_request_is_followed_by_a_new_startup_packet(
    request_packet: m.SSLRequest | m.GSSENCRequest,
) -> None:
    framer = Framer(startup=True)
    _, frames = framer.feed(request_packet.encode())
    assert frames == [(STARTUP, 4, 8)]
    startup = m.StartupMessage((("user", "alice"),)).encode()
    _, frames = framer.feed(startup)
    assert frames == [(STARTUP, 4, len(startup))]
    _, frames = framer.feed(m.Sync().encode())
    assert frames == [(m.SYNC, 5, 5)]


def test_bytes_sent_before_the_tls_handshake_stay_buffered() -> None:
    framer = Framer(startup=True)
    _, frames = framer.feed(m.SSLRequest().encode() + b"\x00\x00")
    assert len(frames) == 1
    assert framer.buffered == 2


# Malformed input.


def _raises(call: Callable[[], object], message: str, sqlstate: str = "08P01") -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        call()
    assert str(info.value) == message
    assert info.value.sqlstate == sqlstate
    return info.value


@pytest.mark.parametrize("length", [-1, 0, 2, 3])
def test_message_length_below_four_is_rejected(length: int) -> None:
    data = b"Q" + struct.pack("!i", length)
    _raises(lambda: Framer().feed(data), f"invalid message length {length} for message type 'Q'")


def test_oversized_claim_is_rejected_from_the_header_alone() -> None:
    header = b"D" + struct.pack("!i", 2147483000)
    framer = Framer()
    for byte in header[:4]:
        assert framer.feed(bytes([byte])) == (b"", [])
    _raises(
        lambda: framer.feed(header[4:]),
        "message of type 'D' claims 2147483000 bytes, limit is 1073741824",
    )


def test_max_message_size_is_configurable() -> None:
    framer = Framer(max_message_size=100)
    assert framer.feed(b"d" + struct.pack("!i", 100)) == (b"", [])
    _raises(
        lambda: Framer(max_message_size=100).feed(b"d" + struct.pack("!i", 101)),
        "message of type 'd' claims 101 bytes, limit is 100",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00\x00\x00", "invalid startup packet length 0"),
        (b"\x00\x00\x00\x07\x00\x03\x00", "invalid startup packet length 7"),
        (struct.pack("!i", 10001), "startup packet claims 10001 bytes, limit is 10000"),
        (b"GET / HTTP/1.1\r\n", f"startup packet claims {0x47455420} bytes, limit is 10000"),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            "startup packet claims 369295618 bytes, limit is 10000",
        ),
        (m.Query("SELECT 1").encode(), "startup packet claims 1358954496 bytes, limit is 10000"),
    ],
    ids=["zero", "short", "10001", "http", "tls-hello", "typed-query"],
)
def test_garbage_before_startup_is_rejected(data: bytes, message: str) -> None:
    _raises(lambda: Framer(startup=True).feed(data), message)


@pytest.mark.parametrize(
    ("major", "minor"), [(4, 0), (2, 0), (3, 3), (0, 0), (1234, 5677), (1234, 5681)]
)
def test_unsupported_protocol_version_is_rejected(major: int, minor: int) -> None:
    payload = struct.pack("!HH", major, minor) + b"user\x00alice\x00\x00"
    _raises(
        lambda: decode_startup(payload), f"unsupported protocol version {major}.{minor}", "0A000"
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x04\xd2", "truncated startup message"),
        (b"\x04\xd2\x16\x2f\x00", "invalid startup message: 1 bytes of trailing data"),
        (b"\x00\x03\x00\x00user\x00alice\x00", "truncated startup message"),
        (b"\x00\x03\x00\x00user\x00", "truncated startup message"),
        (b"\x00\x03\x00\x00\x00junk", "invalid startup message: 4 bytes of trailing data"),
        (
            b"\x04\xd2\x16\x2e\x00\x00\x00\x01abc",
            "invalid secret key length 3 in CancelRequest message",
        ),
        (
            b"\x04\xd2\x16\x2e\x00\x00\x00\x01" + bytes(257),
            "invalid secret key length 257 in CancelRequest message",
        ),
    ],
    ids=["short", "ssl-junk", "no-terminator", "no-value", "junk", "key-3", "key-257"],
)
def test_malformed_startup_packet_is_rejected(payload: bytes, message: str) -> None:
    _raises(lambda: decode_startup(payload), message)


@pytest.mark.parametrize(
    ("decode", "type_code", "message"),
    [
        (decode_frontend, ord("x"), "unknown frontend message type 'x'"),
        (decode_frontend, ord("T"), "unknown frontend message type 'T'"),
        (decode_frontend, 0, "unknown frontend message type '\\x00'"),
        (decode_backend, ord("Q"), "unknown backend message type 'Q'"),
        (decode_backend, 0xFF, "unknown backend message type '\\xff'"),
    ],
)
def test_unknown_message_type_is_rejected(decode: Decoder, type_code: int, message: str) -> None:
    _raises(lambda: decode(type_code, b""), message)


@pytest.mark.parametrize(("decode", "msg"), TYPED, ids=TYPED_IDS)
def test_every_truncation_and_extension_raises_protocol_error(decode: Decoder, msg: Any) -> None:
    wire = msg.encode()
    for cut in range(5, len(wire)):
        if isinstance(msg, OPEN_ENDED):
            with contextlib.suppress(ProtocolError):
                decode(wire[0], wire[5:cut])
        else:
            with pytest.raises(ProtocolError) as info:
                decode(wire[0], wire[5:cut])
            assert info.value.sqlstate == "08P01"
    if not isinstance(msg, OPEN_ENDED):
        with pytest.raises(ProtocolError, match="trailing data"):
            decode(wire[0], wire[5:] + b"\x00")


def test_truncation_names_the_message_and_chains_the_cause() -> None:
    payload = m.Bind("p", "s", (0,), (b"42",), ()).encode()[5:-2]
    _raises(lambda: decode_frontend(m.BIND, payload), "truncated Bind message")
    error = _raises(
        lambda: decode_frontend(m.EXECUTE, b"\x00\x00\x00"), "truncated Execute message"
    )
    assert isinstance(error.__cause__, struct.error)


@pytest.mark.parametrize(
    ("decode", "type_code", "payload", "message"),
    [
        (decode_frontend, m.DESCRIBE, b"X\x00", "invalid Describe target type 'X'"),
        (decode_frontend, m.CLOSE, b"s\x00", "invalid Close target type 's'"),
        (decode_frontend, m.SYNC, b"\x00", "invalid Sync message: 1 bytes of trailing data"),
        (
            decode_frontend,
            m.BIND,
            b"\x00\x00\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00",
            "invalid value length -2 in Bind message",
        ),
        (
            decode_backend,
            m.READY_FOR_QUERY,
            b"X",
            "invalid transaction status 'X' in ReadyForQuery message",
        ),
        (
            decode_backend,
            m.BACKEND_KEY_DATA,
            b"\x00\x00\x00\x01abc",
            "invalid secret key length 3 in BackendKeyData message",
        ),
        (
            decode_backend,
            m.BACKEND_KEY_DATA,
            b"\x00\x00\x00\x01" + bytes(257),
            "invalid secret key length 257 in BackendKeyData message",
        ),
        (
            decode_backend,
            m.NEGOTIATE_PROTOCOL_VERSION,
            b"\x00\x00\x00\x00\xff\xff\xff\xff",
            "invalid option count -1 in NegotiateProtocolVersion message",
        ),
        (
            decode_backend,
            m.DATA_ROW,
            b"\x00\x02\x00\x00\x00\x01a",
            "truncated DataRow message",
        ),
    ],
    ids=["describe", "close", "sync", "bind-null", "rfq", "key-3", "key-257", "npv", "datarow"],
)
def test_invalid_field_is_rejected(
    decode: Decoder, type_code: int, payload: bytes, message: str
) -> None:
    _raises(lambda: decode(type_code, payload), message)


# Field helpers.


def _frame_one(msg: Any) -> tuple[bytes, int, int]:
    buf, [(_, start, end)] = Framer().feed(msg.encode())
    return buf, start, end


def test_query_text_reads_the_sql_in_place() -> None:
    assert query_text(*_frame_one(m.Query("SELECT 1"))) == "SELECT 1"
    assert query_text(*_frame_one(m.Query(NOT_UTF8))) == NOT_UTF8
    assert query_text(*_frame_one(m.Query(""))) == ""


@pytest.mark.parametrize(
    "payload", [b"SELECT 1", b"SELECT 1\x00; DROP TABLE t\x00", b""], ids=["no-nul", "nul", "empty"]
)
def test_query_text_rejects_anything_but_one_string(payload: bytes) -> None:
    wire = b"Q" + struct.pack("!i", len(payload) + 4) + payload
    message = "invalid Query message: expected one NUL-terminated string"
    _raises(lambda: query_text(wire, 5, len(wire)), message)
    with pytest.raises(ProtocolError):
        decode_frontend(m.QUERY, payload)


def test_command_complete_tag() -> None:
    assert command_complete_tag(*_frame_one(m.CommandComplete("INSERT 0 1"))) == "INSERT 0 1"
    message = "invalid CommandComplete message: expected one NUL-terminated string"
    _raises(lambda: command_complete_tag(b"C\x00\x00\x00\x06ab", 5, 7), message)


def test_error_sqlstate() -> None:
    error = m.ErrorResponse.build("ERROR", "42501", "permission denied", hint="ask")
    assert error_sqlstate(*_frame_one(error)) == "42501"
    late = m.ErrorResponse((("M", "boom"), ("S", "FATAL"), ("C", "57P01")))
    assert error_sqlstate(*_frame_one(late)) == "57P01"
    assert error_sqlstate(*_frame_one(m.NoticeResponse((("M", "hi"),)))) is None
    _raises(lambda: error_sqlstate(b"SERROR\x00", 0, 7), "truncated ErrorResponse message")
    _raises(lambda: error_sqlstate(b"C4250", 0, 5), "truncated ErrorResponse message")


# Message helpers.


def test_startup_message_get() -> None:
    startup = m.StartupMessage((("user", "alice"), ("database", "prod")))
    assert startup.get("database") == "prod"
    assert startup.get("options") is None
    assert startup.get("options", "-c x=1") == "-c x=1"


def test_diagnostic_fields_and_build() -> None:
    error = m.ErrorResponse.build("ERROR", "42501", "approval required", detail="#7", hint="see")
    assert error.fields == (
        ("S", "ERROR"),
        ("V", "ERROR"),
        ("C", "42501"),
        ("M", "approval required"),
        ("D", "#7"),
        ("H", "see"),
    )
    assert (error.severity, error.code, error.message, error.detail, error.hint) == (
        "ERROR",
        "42501",
        "approval required",
        "#7",
        "see",
    )
    localized = m.ErrorResponse((("S", "FATAL"), ("V", "FATAL"), ("S", "x")))
    assert localized.severity == "FATAL"
    german = m.ErrorResponse((("S", "FEHLER"), ("V", "ERROR")))
    assert german.severity == "ERROR"
    notice = m.NoticeResponse.build("NOTICE", "00000", "waiting")
    assert isinstance(notice, m.NoticeResponse)
    assert (notice.detail, notice.hint) == (None, None)
    same_fields: object = m.ErrorResponse(notice.fields)
    assert notice != same_fields
    assert m.ErrorResponse(()).code == ""


def test_password_message_forms() -> None:
    assert m.password_text(m.cleartext_password(NOT_UTF8)) == NOT_UTF8
    for bad in (b"secret", b"sec\x00ret\x00", b""):
        with pytest.raises(ProtocolError):
            m.password_text(m.PasswordMessage(bad))

    initial = m.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc")
    assert m.parse_sasl_initial_response(initial) == ("SCRAM-SHA-256", b"n,,n=,r=abc")
    empty = m.sasl_initial_response("SCRAM-SHA-256", None)
    assert empty.data == b"SCRAM-SHA-256\x00\xff\xff\xff\xff"
    assert m.parse_sasl_initial_response(empty) == ("SCRAM-SHA-256", None)
    assert m.parse_sasl_initial_response(m.sasl_initial_response("X", b"")) == ("X", b"")
    assert m.sasl_response(b"c=biws").encode() == b"p\x00\x00\x00\x0ac=biws"

    for bad in (
        b"SCRAM",
        b"SCRAM\x00\x00\x00",
        b"SCRAM\x00\x00\x00\x00\x05abc",
        b"X\x00\xff\xff\xff\xffa",
    ):
        with pytest.raises(ProtocolError):
            m.parse_sasl_initial_response(m.PasswordMessage(bad))


def test_constant_messages_are_encoded_once() -> None:
    assert m.Sync().encode() is m.Sync().encode()
    assert m.ReadyForQuery("I").encode() is m.ReadyForQuery("I").encode()
    flush: object = m.Flush()
    assert m.Sync() != flush
    assert hash(m.Query("x")) == hash(m.Query("x"))


def test_bind_result_formats_reads_what_the_decoder_reads() -> None:
    rng = random.Random(3)
    for _ in range(300):
        values = tuple(
            None
            if rng.random() < 0.2
            else bytes(rng.randrange(256) for _ in range(rng.randrange(9)))
            for _ in range(rng.randrange(4))
        )
        bind = m.Bind(
            rng.choice(("", "p1")),
            rng.choice(("", "s1")),
            tuple(rng.choice((0, 1)) for _ in range(rng.randrange(3))),
            values,
            tuple(rng.choice((0, 1)) for _ in range(rng.randrange(4))),
        )
        wire = b"xx" + bind.encode() + b"yy"  # other messages on either side
        start, end = 2 + 5, len(wire) - 2
        assert bind_result_formats(wire, start, end) == bind.result_formats
        # every truncation, and bytes past the end, are refused rather than read
        for cut in range(start, end):
            with pytest.raises(ProtocolError):
                bind_result_formats(wire, start, cut)


# A client's Framer checks the fields a relay reads in place.


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"D\0\0\0\4", "truncated Describe message"),
        (b"D\0\0\0\5S", "truncated Describe message"),
        (b"D\0\0\0\6X\0", "invalid Describe target type 'X'"),
        (b"D\0\0\0\7S\0x", "invalid Describe message: 1 bytes of trailing data"),
        (b"C\0\0\0\4", "truncated Close message"),
        (b"C\0\0\0\6Pp", "truncated Close message"),
        (b"E\0\0\0\4", "truncated Execute message"),
        (b"E\0\0\0\5\0", "truncated Execute message"),
        (b"E\0\0\0\7p\0\0", "truncated Execute message"),
        (b"f\0\0\0\4", "truncated CopyFail message"),
        (b"F\0\0\0\6\0\0", "truncated FunctionCall message"),
    ],
    ids=repr,
)
def test_a_client_framer_rejects_a_malformed_message_alone_or_followed(
    wire: bytes, message: str
) -> None:
    sync = m.Sync().encode()
    startup = m.StartupMessage((("user", "u"),)).encode()
    for data in (wire, wire + sync, m.Query("SELECT 1").encode() + wire + sync):
        _raises(functools.partial(Framer(startup=True).feed, startup + data), message)
        framer = Framer(frontend=True)
        assert framer.single(data) == 0
        _raises(functools.partial(framer.feed, data), message)
    # The server's stream has other messages under these codes; they are not checked there.
    assert Framer().single(wire) == wire[0]


def test_a_client_framer_passes_well_formed_messages_in_one_piece() -> None:
    wire = b"".join(
        msg.encode()
        for msg in (m.Describe("S", "s1"), m.Close("P", ""), m.Execute("", 0), m.CopyFail("x"))
    )
    buf, frames = Framer(frontend=True).feed(wire)
    assert buf is wire and len(frames) == 4
    assert Framer(frontend=True).single(m.Describe("P", "").encode()) == 0
