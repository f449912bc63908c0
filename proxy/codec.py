"""The sans-IO PostgreSQL v3 codec: frames a byte stream and decodes message payloads.

Nothing here touches a socket. A relay feeds the bytes it reads to a :class:`Framer`, forwards
or inspects the complete messages it gets back, and decodes only the payloads it needs, either
fully (:func:`decode_frontend`, :func:`decode_backend`, :func:`decode_startup`) or with the
helpers that read one field without building an object (:func:`query_text`,
:func:`command_complete_tag`, :func:`error_sqlstate`).

Every malformed input raises :class:`~jitgate.errors.ProtocolError`; its ``sqlstate`` is
``08P01`` (protocol violation) except for an unsupported protocol version (``0A000``), as
PostgreSQL itself reports them. After a ProtocolError the stream cannot be resynchronised.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import TypeVar

from jitgate.errors import ProtocolError
from proxy import messages as m

STARTUP = 0
"""The type code a Framer reports for an untyped startup-phase packet."""

_MAX_STARTUP_LENGTH = 10000
_SECRET_KEY_LENGTHS = range(4, 257)

_UINT8 = struct.Struct("!B")
_INT8 = struct.Struct("!b")
_INT16 = struct.Struct("!h")
_UINT16 = struct.Struct("!H")
_INT32 = struct.Struct("!i")
_UINT32 = struct.Struct("!I")

_T = TypeVar("_T")


def _type_name(type_code: int) -> str:
    return repr(bytes([type_code]))[1:]


class Framer:
    """Splits one direction of a connection into complete messages, without decoding them.

    With ``startup=True`` the stream begins with an untyped startup packet, as a client's
    does. After a StartupMessage or CancelRequest the Framer expects typed messages; after an
    SSLRequest or GSSENCRequest it expects another startup packet. A caller that accepts TLS
    or GSS encryption must first check that :attr:`buffered` is 0: bytes that arrived before
    the handshake were not protected by it.

    The single-byte answers to those requests (``S``, ``N``, ``G``) are not framed messages;
    the caller reads them itself.

    A Framer of a client's stream (``frontend``, by default the same as ``startup``) also
    checks the messages whose fields a relay reads in place (Describe, Close, Execute,
    CopyFail, FunctionCall) or whose answers it counts (Sync, Flush) and raises the
    decoder's ProtocolError for a malformed one, so a relay may index their fields without
    checking bounds.
    """

    __slots__ = ("_checked", "_max_message_size", "_startup", "buffer")

    def __init__(
        self,
        *,
        startup: bool = False,
        max_message_size: int = 1 << 30,
        frontend: bool | None = None,
    ) -> None:
        # The start of a message still incomplete (callers only read it: empty means
        # the next byte received starts a message).
        self.buffer = bytearray()
        self._startup = startup
        self._max_message_size = max_message_size
        self._checked = _CHECKED_FRONTEND if (startup if frontend is None else frontend) else _NONE

    def allow(self, max_message_size: int) -> None:
        """From now on, messages up to ``max_message_size`` bytes (a relay raises its limit
        once the client has authenticated)."""
        self._max_message_size = max_message_size

    @property
    def buffered(self) -> int:
        """How many bytes wait for the rest of their message."""
        return len(self.buffer)

    def feed(self, data: bytes) -> tuple[bytes, list[tuple[int, int, int]]]:
        """Add ``data`` and return every message it completes, as ``(buf, frames)``.

        ``buf`` holds the complete messages exactly as received, ready to forward with one
        write; it is ``data`` itself when nothing was buffered and ``data`` ends on a message
        boundary. ``frames`` lists ``(type_code, payload_start, payload_end)`` offsets into
        ``buf``, the payload excluding type byte and length; startup packets have type code
        :data:`STARTUP`. A declared length out of bounds raises at once, before its body
        arrives.
        """
        if self.buffer:
            self.buffer += data
            buf: bytes | bytearray = self.buffer
        else:
            buf = data
        frames: list[tuple[int, int, int]] = []
        pos = self._scan(buf, frames)
        if buf is data:
            if pos == len(data):
                return data, frames
            self.buffer += memoryview(data)[pos:]
            return data[:pos], frames
        complete = bytes(memoryview(buf)[:pos])
        del self.buffer[:pos]
        return complete, frames

    def single(self, data: bytes) -> int:
        """The type code of ``data`` when it is exactly one complete typed message of an
        allowed size and nothing is buffered (what :meth:`feed` would frame as
        ``[(code, 5, len(data))]``, without building its answer); 0 when it must be fed."""
        if self.buffer or self._startup or len(data) < 5:
            return 0
        (length,) = _INT32.unpack_from(data, 1)
        if length != len(data) - 1 or length > self._max_message_size or data[0] in self._checked:
            return 0
        return data[0]

    def _scan(self, buf: bytes | bytearray, frames: list[tuple[int, int, int]]) -> int:
        pos = 0
        end = len(buf)
        while self._startup:
            if end - pos < 4:
                return pos
            (length,) = _INT32.unpack_from(buf, pos)
            if length < 8:
                raise ProtocolError(f"invalid startup packet length {length}")
            limit = min(_MAX_STARTUP_LENGTH, self._max_message_size)
            if length > limit:
                raise ProtocolError(f"startup packet claims {length} bytes, limit is {limit}")
            if end - pos < length:
                return pos
            (code,) = _UINT32.unpack_from(buf, pos + 4)
            self._startup = code in (m.SSL_REQUEST_CODE, m.GSSENC_REQUEST_CODE)
            frames.append((STARTUP, pos + 4, pos + length))
            pos += length

        unpack_from = _INT32.unpack_from
        limit = self._max_message_size
        append = frames.append
        checked = self._checked
        while end - pos >= 5:
            (length,) = unpack_from(buf, pos + 1)
            if length < 4 or length > limit:
                raise self._bad_length(buf[pos], length)
            stop = pos + 1 + length
            if stop > end:
                break
            code = buf[pos]
            if code in checked:
                _check_frontend(code, buf, pos + 5, stop)
            append((code, pos + 5, stop))
            pos = stop
        return pos

    def _bad_length(self, type_code: int, length: int) -> ProtocolError:
        name = _type_name(type_code)
        if length < 4:
            return ProtocolError(f"invalid message length {length} for message type {name}")
        limit = self._max_message_size
        return ProtocolError(f"message of type {name} claims {length} bytes, limit is {limit}")


def _check_frontend(code: int, buf: bytes | bytearray, start: int, end: int) -> None:
    """Raise the decoder's ProtocolError unless the client message ``buf[start:end]`` has
    the fields a relay reads in place: the target type and name of a Describe or Close,
    the portal name and row limit of an Execute, the text of a CopyFail, the empty payload
    of a Sync or Flush (with one, the server fails it and skips to the next Sync); a
    FunctionCall (refused, and rare) is decoded whole. The NUL checks are what the decoder
    requires."""
    if code in _TARGET_MESSAGES:
        fields = end - start >= 2 and buf[start] in b"SP" and buf.find(0, start + 1, end) == end - 1
    elif code == m.EXECUTE:
        fields = end - start >= 5 and buf.find(0, start, end) == end - 5
    elif code == m.SYNC or code == m.FLUSH:
        fields = end == start
    else:
        fields = code == m.COPY_FAIL and buf.find(0, start, end) == end - 1
    if not fields:
        decode_frontend(code, bytes(buf[start:end]))


class _Reader:
    """Reads one payload front to back; reading past its end raises ProtocolError."""

    __slots__ = ("_data", "_pos", "name")

    def __init__(self, data: bytes, name: str) -> None:
        self._data = data
        self._pos = 0
        self.name = name

    def truncated(self) -> ProtocolError:
        return ProtocolError(f"truncated {self.name} message")

    def _number(self, fmt: struct.Struct) -> int:
        try:
            number: int = fmt.unpack_from(self._data, self._pos)[0]
        except struct.error as exc:
            raise self.truncated() from exc
        self._pos += fmt.size
        return number

    def uint8(self) -> int:
        return self._number(_UINT8)

    def int8(self) -> int:
        return self._number(_INT8)

    def int16(self) -> int:
        return self._number(_INT16)

    def count(self) -> int:
        return self._number(_UINT16)

    def int32(self) -> int:
        return self._number(_INT32)

    def uint32(self) -> int:
        return self._number(_UINT32)

    def array(self, code: str) -> tuple[int, ...]:
        """An int16 count followed by that many numbers of struct format ``code``."""
        fmt = struct.Struct(f"!{self.count()}{code}")
        try:
            numbers: tuple[int, ...] = fmt.unpack_from(self._data, self._pos)
        except struct.error as exc:
            raise self.truncated() from exc
        self._pos += fmt.size
        return numbers

    def cstring(self) -> str:
        end = self._data.find(b"\0", self._pos)
        if end < 0:
            raise self.truncated()
        text = self._data[self._pos : end].decode("utf-8", "surrogateescape")
        self._pos = end + 1
        return text

    def take(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise self.truncated()
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def rest(self) -> bytes:
        return self.take(len(self._data) - self._pos)

    def value(self) -> bytes | None:
        """An int32 length and that many bytes; length -1 is NULL."""
        size = self.int32()
        if size >= 0:
            return self.take(size)
        if size == -1:
            return None
        raise ProtocolError(f"invalid value length {size} in {self.name} message")

    def values(self) -> tuple[bytes | None, ...]:
        return tuple(self.value() for _ in range(self.count()))

    def skip_values(self) -> None:
        """Steps over what :meth:`values` would read, checking the same, copying nothing."""
        for _ in range(self.count()):
            size = self.int32()
            if size < -1:
                raise ProtocolError(f"invalid value length {size} in {self.name} message")
            if self._pos + max(size, 0) > len(self._data):
                raise self.truncated()
            self._pos += max(size, 0)

    def finish(self) -> None:
        left = len(self._data) - self._pos
        if left:
            raise ProtocolError(f"invalid {self.name} message: {left} bytes of trailing data")


def _decode(
    table: Mapping[int, tuple[str, Callable[[_Reader], _T]]],
    direction: str,
    type_code: int,
    payload: bytes | memoryview,
) -> _T:
    entry = table.get(type_code)
    if entry is None:
        raise ProtocolError(f"unknown {direction} message type {_type_name(type_code)}")
    name, read = entry
    reader = _Reader(bytes(payload), name)
    message = read(reader)
    reader.finish()
    return message


def decode_frontend(type_code: int, payload: bytes | memoryview) -> m.FrontendMessage:
    """The typed message a client sent; ``payload`` excludes the type byte and length."""
    return _decode(_FRONTEND, "frontend", type_code, payload)


def decode_backend(type_code: int, payload: bytes | memoryview) -> m.BackendMessage:
    """The typed message a server sent; ``payload`` excludes the type byte and length."""
    return _decode(_BACKEND, "backend", type_code, payload)


def decode_startup(payload: bytes | memoryview) -> m.StartupPacket:
    """The untyped packet that opens a connection; ``payload`` excludes the length word.

    Accepts protocol versions 3.0 to 3.2 and the SSL, GSSENC and cancel request codes.
    """
    reader = _Reader(bytes(payload), "startup")
    code = reader.uint32()
    if code == m.SSL_REQUEST_CODE:
        reader.finish()
        return m.SSLRequest()
    if code == m.GSSENC_REQUEST_CODE:
        reader.finish()
        return m.GSSENCRequest()
    if code == m.CANCEL_REQUEST_CODE:
        reader.name = "CancelRequest"
        return m.CancelRequest(reader.int32(), _secret_key(reader))
    major, minor = code >> 16, code & 0xFFFF
    if major != 3 or minor > 2:
        raise ProtocolError(f"unsupported protocol version {major}.{minor}", sqlstate="0A000")
    params = []
    while name := reader.cstring():
        params.append((name, reader.cstring()))
    reader.finish()
    return m.StartupMessage(tuple(params), code)


def query_text(buf: bytes, start: int, end: int) -> str:
    """The SQL of the Query payload ``buf[start:end]``."""
    return _only_string(buf, start, end, "Query")


def command_complete_tag(buf: bytes, start: int, end: int) -> str:
    """The tag (``"UPDATE 3"``...) of the CommandComplete payload ``buf[start:end]``."""
    return _only_string(buf, start, end, "CommandComplete")


def error_sqlstate(buf: bytes, start: int, end: int) -> str | None:
    """The SQLSTATE of the ErrorResponse or NoticeResponse payload ``buf[start:end]``."""
    pos = start
    while pos < end:
        if buf[pos] == 0:
            return None
        nul = buf.find(b"\0", pos + 1, end)
        if nul < 0:
            break
        if buf[pos] == 0x43:  # "C"
            return buf[pos + 1 : nul].decode("utf-8", "surrogateescape")
        pos = nul + 1
    raise ProtocolError("truncated ErrorResponse message")


def bind_result_formats(buf: bytes, start: int, end: int) -> tuple[int, ...]:
    """The result-format codes of the Bind payload ``buf[start:end]``, read as
    :func:`decode_frontend` reads them but stepping over the parameter values instead of
    copying each; a malformed payload raises :class:`ProtocolError`."""
    reader = _Reader(buf[start:end], "Bind")
    reader.cstring()
    reader.cstring()
    reader.array("h")
    reader.skip_values()
    formats = reader.array("h")
    reader.finish()
    return formats


def _only_string(buf: bytes, start: int, end: int, name: str) -> str:
    # A NUL inside the text would make the server read a shorter string than we inspect.
    if end <= start or buf.find(b"\0", start, end) != end - 1:
        raise ProtocolError(f"invalid {name} message: expected one NUL-terminated string")
    return buf[start : end - 1].decode("utf-8", "surrogateescape")


def _kind(reader: _Reader) -> str:
    kind = chr(reader.uint8())
    if kind not in ("S", "P"):
        raise ProtocolError(f"invalid {reader.name} target type {kind!r}")
    return kind


def _secret_key(reader: _Reader) -> bytes:
    key = reader.rest()
    if len(key) not in _SECRET_KEY_LENGTHS:
        raise ProtocolError(f"invalid secret key length {len(key)} in {reader.name} message")
    return key


def _ready_for_query(reader: _Reader) -> m.ReadyForQuery:
    status = chr(reader.uint8())
    if status not in ("I", "T", "E"):
        raise ProtocolError(f"invalid transaction status {status!r} in ReadyForQuery message")
    return m.ReadyForQuery(status)


def _authentication(reader: _Reader) -> m.BackendMessage:
    code = reader.int32()
    if code == m.AUTH_OK:
        return m.AuthenticationOk()
    if code == m.AUTH_CLEARTEXT_PASSWORD:
        return m.AuthenticationCleartextPassword()
    if code == m.AUTH_MD5_PASSWORD:
        return m.AuthenticationMD5Password(reader.take(4))
    if code == m.AUTH_SASL:
        mechanisms = []
        while mechanism := reader.cstring():
            mechanisms.append(mechanism)
        return m.AuthenticationSASL(tuple(mechanisms))
    if code == m.AUTH_SASL_CONTINUE:
        return m.AuthenticationSASLContinue(reader.rest())
    if code == m.AUTH_SASL_FINAL:
        return m.AuthenticationSASLFinal(reader.rest())
    return m.AuthenticationRequest(code, reader.rest())


def _field_description(reader: _Reader) -> m.FieldDescription:
    return m.FieldDescription(
        name=reader.cstring(),
        table_oid=reader.uint32(),
        column_number=reader.int16(),
        type_oid=reader.uint32(),
        type_size=reader.int16(),
        type_modifier=reader.int32(),
        format=reader.int16(),
    )


def _diagnostic_fields(reader: _Reader) -> tuple[tuple[str, str], ...]:
    fields = []
    while (code := reader.take(1)) != b"\0":
        fields.append((code.decode("utf-8", "surrogateescape"), reader.cstring()))
    return tuple(fields)


def _negotiate_protocol_version(reader: _Reader) -> m.NegotiateProtocolVersion:
    newest_minor = reader.int32()
    count = reader.int32()
    if count < 0:
        raise ProtocolError(f"invalid option count {count} in NegotiateProtocolVersion message")
    return m.NegotiateProtocolVersion(newest_minor, tuple(reader.cstring() for _ in range(count)))


_FRONTEND: dict[int, tuple[str, Callable[[_Reader], m.FrontendMessage]]] = {
    m.PASSWORD: ("PasswordMessage", lambda r: m.PasswordMessage(r.rest())),
    m.QUERY: ("Query", lambda r: m.Query(r.cstring())),
    m.PARSE: ("Parse", lambda r: m.Parse(r.cstring(), r.cstring(), r.array("I"))),
    m.BIND: (
        "Bind",
        lambda r: m.Bind(r.cstring(), r.cstring(), r.array("h"), r.values(), r.array("h")),
    ),
    m.DESCRIBE: ("Describe", lambda r: m.Describe(_kind(r), r.cstring())),
    m.EXECUTE: ("Execute", lambda r: m.Execute(r.cstring(), r.int32())),
    m.SYNC: ("Sync", lambda r: m.Sync()),
    m.FLUSH: ("Flush", lambda r: m.Flush()),
    m.CLOSE: ("Close", lambda r: m.Close(_kind(r), r.cstring())),
    m.FUNCTION_CALL: (
        "FunctionCall",
        lambda r: m.FunctionCall(r.uint32(), r.array("h"), r.values(), r.int16()),
    ),
    m.TERMINATE: ("Terminate", lambda r: m.Terminate()),
    m.COPY_DATA: ("CopyData", lambda r: m.CopyData(r.rest())),
    m.COPY_DONE: ("CopyDone", lambda r: m.CopyDone()),
    m.COPY_FAIL: ("CopyFail", lambda r: m.CopyFail(r.cstring())),
}

_TARGET_MESSAGES = (m.DESCRIBE, m.CLOSE)
_CHECKED_FRONTEND = frozenset(
    (m.DESCRIBE, m.CLOSE, m.EXECUTE, m.COPY_FAIL, m.FUNCTION_CALL, m.SYNC, m.FLUSH)
)
_NONE: frozenset[int] = frozenset()

_BACKEND: dict[int, tuple[str, Callable[[_Reader], m.BackendMessage]]] = {
    m.AUTHENTICATION: ("Authentication", _authentication),
    m.BACKEND_KEY_DATA: (
        "BackendKeyData",
        lambda r: m.BackendKeyData(r.int32(), _secret_key(r)),
    ),
    m.PARAMETER_STATUS: ("ParameterStatus", lambda r: m.ParameterStatus(r.cstring(), r.cstring())),
    m.READY_FOR_QUERY: ("ReadyForQuery", _ready_for_query),
    m.ROW_DESCRIPTION: (
        "RowDescription",
        lambda r: m.RowDescription(tuple(_field_description(r) for _ in range(r.count()))),
    ),
    m.DATA_ROW: ("DataRow", lambda r: m.DataRow(r.values())),
    m.COMMAND_COMPLETE: ("CommandComplete", lambda r: m.CommandComplete(r.cstring())),
    m.EMPTY_QUERY_RESPONSE: ("EmptyQueryResponse", lambda r: m.EmptyQueryResponse()),
    m.ERROR_RESPONSE: ("ErrorResponse", lambda r: m.ErrorResponse(_diagnostic_fields(r))),
    m.NOTICE_RESPONSE: ("NoticeResponse", lambda r: m.NoticeResponse(_diagnostic_fields(r))),
    m.NOTIFICATION_RESPONSE: (
        "NotificationResponse",
        lambda r: m.NotificationResponse(r.int32(), r.cstring(), r.cstring()),
    ),
    m.PARSE_COMPLETE: ("ParseComplete", lambda r: m.ParseComplete()),
    m.BIND_COMPLETE: ("BindComplete", lambda r: m.BindComplete()),
    m.CLOSE_COMPLETE: ("CloseComplete", lambda r: m.CloseComplete()),
    m.NO_DATA: ("NoData", lambda r: m.NoData()),
    m.PORTAL_SUSPENDED: ("PortalSuspended", lambda r: m.PortalSuspended()),
    m.PARAMETER_DESCRIPTION: (
        "ParameterDescription",
        lambda r: m.ParameterDescription(r.array("I")),
    ),
    m.COPY_IN_RESPONSE: ("CopyInResponse", lambda r: m.CopyInResponse(r.int8(), r.array("h"))),
    m.COPY_OUT_RESPONSE: ("CopyOutResponse", lambda r: m.CopyOutResponse(r.int8(), r.array("h"))),
    m.COPY_BOTH_RESPONSE: (
        "CopyBothResponse",
        lambda r: m.CopyBothResponse(r.int8(), r.array("h")),
    ),
    m.COPY_DATA: ("CopyData", lambda r: m.CopyData(r.rest())),
    m.COPY_DONE: ("CopyDone", lambda r: m.CopyDone()),
    m.FUNCTION_CALL_RESPONSE: ("FunctionCallResponse", lambda r: m.FunctionCallResponse(r.value())),
    m.NEGOTIATE_PROTOCOL_VERSION: ("NegotiateProtocolVersion", _negotiate_protocol_version),
}
