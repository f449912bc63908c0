"""PostgreSQL v3 wire messages: one frozen type per message, each able to encode itself.

``encode()`` returns the complete wire bytes of a message: the type byte, the int32 length
(which counts itself) and the payload; startup-phase messages have no type byte. Strings
travel as UTF-8 with ``surrogateescape``, so text that is not valid UTF-8 decodes to lone
surrogates and encodes back to the same bytes. Strings sent as C strings must not contain NUL.

Constructors do not validate their arguments: ``encode()`` writes what it is given, and the
decoders in :mod:`proxy.codec` are where bytes from a peer are checked.

The integer constants name the type byte of each message (``QUERY == ord("Q")``). Several
bytes mean different things in each direction, e.g. ``DESCRIBE == DATA_ROW == ord("D")``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self, TypeAlias

from jitgate.errors import ProtocolError

# Frontend type bytes.
QUERY = ord("Q")
PARSE = ord("P")
BIND = ord("B")
DESCRIBE = ord("D")
EXECUTE = ord("E")
SYNC = ord("S")
FLUSH = ord("H")
CLOSE = ord("C")
COPY_FAIL = ord("f")
FUNCTION_CALL = ord("F")
TERMINATE = ord("X")
PASSWORD = ord("p")

# Type bytes used in both directions.
COPY_DATA = ord("d")
COPY_DONE = ord("c")

# Backend type bytes.
AUTHENTICATION = ord("R")
BACKEND_KEY_DATA = ord("K")
PARAMETER_STATUS = ord("S")
READY_FOR_QUERY = ord("Z")
ROW_DESCRIPTION = ord("T")
DATA_ROW = ord("D")
COMMAND_COMPLETE = ord("C")
EMPTY_QUERY_RESPONSE = ord("I")
ERROR_RESPONSE = ord("E")
NOTICE_RESPONSE = ord("N")
NOTIFICATION_RESPONSE = ord("A")
PARSE_COMPLETE = ord("1")
BIND_COMPLETE = ord("2")
CLOSE_COMPLETE = ord("3")
NO_DATA = ord("n")
PORTAL_SUSPENDED = ord("s")
PARAMETER_DESCRIPTION = ord("t")
COPY_IN_RESPONSE = ord("G")
COPY_OUT_RESPONSE = ord("H")
COPY_BOTH_RESPONSE = ord("W")
FUNCTION_CALL_RESPONSE = ord("V")
NEGOTIATE_PROTOCOL_VERSION = ord("v")

# Request codes that take the place of a protocol version in an untyped startup packet.
PROTOCOL_3_0 = 3 << 16
CANCEL_REQUEST_CODE = 1234 << 16 | 5678
SSL_REQUEST_CODE = 1234 << 16 | 5679
GSSENC_REQUEST_CODE = 1234 << 16 | 5680

# Authentication request codes carried by AUTHENTICATION messages.
AUTH_OK = 0
AUTH_CLEARTEXT_PASSWORD = 3
AUTH_MD5_PASSWORD = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12

_HEADER = struct.Struct("!Bi")
_INT32 = struct.Struct("!i")
_INT32_PAIR = struct.Struct("!ii")
_NULL = _INT32.pack(-1)
_FIELD = struct.Struct("!IhIhih")


def _message(type_code: int, payload: bytes) -> bytes:
    return _HEADER.pack(type_code, len(payload) + 4) + payload


def _startup_packet(payload: bytes) -> bytes:
    return _INT32.pack(len(payload) + 4) + payload


def _cstr(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape") + b"\0"


def _array(code: str, items: tuple[int, ...]) -> bytes:
    return struct.pack(f"!H{len(items)}{code}", len(items), *items)


def _values(values: tuple[bytes | None, ...]) -> bytes:
    parts = [struct.pack("!H", len(values))]
    for value in values:
        if value is None:
            parts.append(_NULL)
        else:
            parts.append(_INT32.pack(len(value)))
            parts.append(value)
    return b"".join(parts)


class _Bare:
    """A message without fields; its wire bytes are built once, at import."""

    __slots__ = ()
    _wire: ClassVar[bytes]

    def encode(self) -> bytes:
        return self._wire


# Startup phase (untyped).


@dataclass(frozen=True, slots=True)
class StartupMessage:
    """Opens a session: ``params`` holds user, database, options... in the order sent."""

    params: tuple[tuple[str, str], ...]
    protocol: int = PROTOCOL_3_0

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of parameter ``name``, or ``default`` when the client did not send it."""
        for key, value in self.params:
            if key == name:
                return value
        return default

    def encode(self) -> bytes:
        pairs = b"".join(_cstr(key) + _cstr(value) for key, value in self.params)
        return _startup_packet(_INT32.pack(self.protocol) + pairs + b"\0")


@dataclass(frozen=True, slots=True)
class SSLRequest(_Bare):
    """Asks for TLS; the server answers with the single byte ``S`` or ``N``."""

    _wire = _startup_packet(_INT32.pack(SSL_REQUEST_CODE))


@dataclass(frozen=True, slots=True)
class GSSENCRequest(_Bare):
    """Asks for GSSAPI encryption; the server answers with the single byte ``G`` or ``N``."""

    _wire = _startup_packet(_INT32.pack(GSSENC_REQUEST_CODE))


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Sent on a fresh connection to cancel the query running in another session."""

    process_id: int
    secret_key: bytes

    def encode(self) -> bytes:
        payload = _INT32_PAIR.pack(CANCEL_REQUEST_CODE, self.process_id) + self.secret_key
        return _startup_packet(payload)


# Frontend, typed.


@dataclass(frozen=True, slots=True)
class PasswordMessage:
    """Type ``p``: a password, SASLInitialResponse, SASLResponse or GSSResponse, still raw.

    Which one it is depends on the authentication request it answers; read it with
    :func:`password_text` or :func:`parse_sasl_initial_response`, or use ``data`` as is.
    """

    data: bytes

    def encode(self) -> bytes:
        return _message(PASSWORD, self.data)


@dataclass(frozen=True, slots=True)
class Query:
    """A simple-protocol query: one or more statements separated by semicolons."""

    sql: str

    def encode(self) -> bytes:
        return _message(QUERY, _cstr(self.sql))


@dataclass(frozen=True, slots=True)
class Parse:
    """Prepares ``query`` as statement ``name`` (``""`` is the unnamed statement)."""

    name: str
    query: str
    param_types: tuple[int, ...]

    def encode(self) -> bytes:
        payload = _cstr(self.name) + _cstr(self.query) + _array("I", self.param_types)
        return _message(PARSE, payload)


@dataclass(frozen=True, slots=True)
class Bind:
    """Binds parameter values to a prepared statement, creating a portal."""

    portal: str
    statement: str
    param_formats: tuple[int, ...]
    params: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]

    def encode(self) -> bytes:
        payload = b"".join(
            (
                _cstr(self.portal),
                _cstr(self.statement),
                _array("h", self.param_formats),
                _values(self.params),
                _array("h", self.result_formats),
            )
        )
        return _message(BIND, payload)


@dataclass(frozen=True, slots=True)
class Describe:
    """Asks for the description of a statement (``kind`` ``"S"``) or a portal (``"P"``)."""

    kind: str
    name: str

    def encode(self) -> bytes:
        return _message(DESCRIBE, self.kind.encode("ascii") + _cstr(self.name))


@dataclass(frozen=True, slots=True)
class Execute:
    """Runs a portal, returning at most ``max_rows`` rows (0 means all)."""

    portal: str
    max_rows: int

    def encode(self) -> bytes:
        return _message(EXECUTE, _cstr(self.portal) + _INT32.pack(self.max_rows))


@dataclass(frozen=True, slots=True)
class Sync(_Bare):
    """Ends an extended-query batch; the server answers with ReadyForQuery."""

    _wire = _message(SYNC, b"")


@dataclass(frozen=True, slots=True)
class Flush(_Bare):
    """Asks the server to send everything it has produced so far."""

    _wire = _message(FLUSH, b"")


@dataclass(frozen=True, slots=True)
class Close:
    """Closes a statement (``kind`` ``"S"``) or a portal (``"P"``)."""

    kind: str
    name: str

    def encode(self) -> bytes:
        return _message(CLOSE, self.kind.encode("ascii") + _cstr(self.name))


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """Calls the function ``function_oid`` directly, outside of any SQL statement."""

    function_oid: int
    arg_formats: tuple[int, ...]
    args: tuple[bytes | None, ...]
    result_format: int

    def encode(self) -> bytes:
        payload = b"".join(
            (
                struct.pack("!I", self.function_oid),
                _array("h", self.arg_formats),
                _values(self.args),
                struct.pack("!h", self.result_format),
            )
        )
        return _message(FUNCTION_CALL, payload)


@dataclass(frozen=True, slots=True)
class Terminate(_Bare):
    """The client is closing the connection."""

    _wire = _message(TERMINATE, b"")


@dataclass(frozen=True, slots=True)
class CopyFail:
    """The client aborts a COPY FROM STDIN with ``message`` as the reason."""

    message: str

    def encode(self) -> bytes:
        return _message(COPY_FAIL, _cstr(self.message))


# Both directions.


@dataclass(frozen=True, slots=True)
class CopyData:
    """A chunk of COPY data; chunks need not align with rows."""

    data: bytes

    def encode(self) -> bytes:
        return _message(COPY_DATA, self.data)


@dataclass(frozen=True, slots=True)
class CopyDone(_Bare):
    """The sender has no more COPY data."""

    _wire = _message(COPY_DONE, b"")


# Backend: authentication.


@dataclass(frozen=True, slots=True)
class AuthenticationOk(_Bare):
    """Authentication succeeded."""

    _wire = _message(AUTHENTICATION, _INT32.pack(AUTH_OK))


@dataclass(frozen=True, slots=True)
class AuthenticationCleartextPassword(_Bare):
    """The server wants the password in clear text."""

    _wire = _message(AUTHENTICATION, _INT32.pack(AUTH_CLEARTEXT_PASSWORD))


@dataclass(frozen=True, slots=True)
class AuthenticationMD5Password:
    """The server wants the password MD5-hashed with the 4-byte ``salt``."""

    salt: bytes

    def encode(self) -> bytes:
        return _message(AUTHENTICATION, _INT32.pack(AUTH_MD5_PASSWORD) + self.salt)


@dataclass(frozen=True, slots=True)
class AuthenticationSASL:
    """The server offers SASL with these mechanisms, in order of preference."""

    mechanisms: tuple[str, ...]

    def encode(self) -> bytes:
        names = b"".join(_cstr(name) for name in self.mechanisms)
        return _message(AUTHENTICATION, _INT32.pack(AUTH_SASL) + names + b"\0")


@dataclass(frozen=True, slots=True)
class AuthenticationSASLContinue:
    """A SASL challenge from the server."""

    data: bytes

    def encode(self) -> bytes:
        return _message(AUTHENTICATION, _INT32.pack(AUTH_SASL_CONTINUE) + self.data)


@dataclass(frozen=True, slots=True)
class AuthenticationSASLFinal:
    """The server's final SASL message (for SCRAM, its signature)."""

    data: bytes

    def encode(self) -> bytes:
        return _message(AUTHENTICATION, _INT32.pack(AUTH_SASL_FINAL) + self.data)


@dataclass(frozen=True, slots=True)
class AuthenticationRequest:
    """Any other authentication request (Kerberos 2, GSS 7, GSSContinue 8, SSPI 9...)."""

    code: int
    data: bytes

    def encode(self) -> bytes:
        return _message(AUTHENTICATION, _INT32.pack(self.code) + self.data)


# Backend: session and results.


@dataclass(frozen=True, slots=True)
class BackendKeyData:
    """The key a client needs to cancel queries; ``secret_key`` is 4 to 256 bytes."""

    process_id: int
    secret_key: bytes

    def encode(self) -> bytes:
        return _message(BACKEND_KEY_DATA, _INT32.pack(self.process_id) + self.secret_key)


@dataclass(frozen=True, slots=True)
class ParameterStatus:
    """The current value of a run-time parameter the client should know about."""

    name: str
    value: str

    def encode(self) -> bytes:
        return _message(PARAMETER_STATUS, _cstr(self.name) + _cstr(self.value))


_READY_FOR_QUERY = {status: _message(READY_FOR_QUERY, status.encode()) for status in "ITE"}


@dataclass(frozen=True, slots=True)
class ReadyForQuery:
    """The server awaits a query.

    ``status`` is ``"I"`` (idle), ``"T"`` (in a transaction) or ``"E"`` (in a failed one).
    """

    status: str

    def encode(self) -> bytes:
        wire = _READY_FOR_QUERY.get(self.status)
        if wire is None:
            return _message(READY_FOR_QUERY, self.status.encode("ascii"))
        return wire


@dataclass(frozen=True, slots=True)
class FieldDescription:
    """One column of a RowDescription (not a message of its own)."""

    name: str
    table_oid: int
    column_number: int
    type_oid: int
    type_size: int
    type_modifier: int
    format: int


@dataclass(frozen=True, slots=True)
class RowDescription:
    """The columns of the rows that follow."""

    fields: tuple[FieldDescription, ...]

    def encode(self) -> bytes:
        parts = [struct.pack("!H", len(self.fields))]
        for f in self.fields:
            parts.append(_cstr(f.name))
            parts.append(
                _FIELD.pack(
                    f.table_oid,
                    f.column_number,
                    f.type_oid,
                    f.type_size,
                    f.type_modifier,
                    f.format,
                )
            )
        return _message(ROW_DESCRIPTION, b"".join(parts))


@dataclass(frozen=True, slots=True)
class DataRow:
    """One result row; ``None`` is SQL NULL."""

    values: tuple[bytes | None, ...]

    def encode(self) -> bytes:
        return _message(DATA_ROW, _values(self.values))


@dataclass(frozen=True, slots=True)
class CommandComplete:
    """A statement finished; ``tag`` is e.g. ``"SELECT 5"`` or ``"INSERT 0 1"``."""

    tag: str

    def encode(self) -> bytes:
        return _message(COMMAND_COMPLETE, _cstr(self.tag))


@dataclass(frozen=True, slots=True)
class EmptyQueryResponse(_Bare):
    """Answers a query string that held no statement."""

    _wire = _message(EMPTY_QUERY_RESPONSE, b"")


@dataclass(frozen=True, slots=True)
class _Diagnostic:
    """ErrorResponse and NoticeResponse: ``fields`` pairs a one-letter code with its text."""

    fields: tuple[tuple[str, str], ...]
    _type_code: ClassVar[int]

    def _field(self, code: str) -> str | None:
        for key, value in self.fields:
            if key == code:
                return value
        return None

    @property
    def severity(self) -> str:
        """The non-localized severity (field ``V``), else the localized one (``S``)."""
        return self._field("V") or self._field("S") or ""

    @property
    def code(self) -> str:
        """The SQLSTATE (field ``C``), or ``""`` when absent."""
        return self._field("C") or ""

    @property
    def message(self) -> str:
        """The primary message (field ``M``), or ``""`` when absent."""
        return self._field("M") or ""

    @property
    def detail(self) -> str | None:
        """The DETAIL line (field ``D``)."""
        return self._field("D")

    @property
    def hint(self) -> str | None:
        """The HINT line (field ``H``)."""
        return self._field("H")

    @classmethod
    def build(
        cls,
        severity: str,
        code: str,
        message: str,
        *,
        detail: str | None = None,
        hint: str | None = None,
    ) -> Self:
        """A message with fields ``S``, ``V``, ``C``, ``M`` and, when given, ``D`` and ``H``."""
        fields = [("S", severity), ("V", severity), ("C", code), ("M", message)]
        if detail is not None:
            fields.append(("D", detail))
        if hint is not None:
            fields.append(("H", hint))
        return cls(tuple(fields))

    def encode(self) -> bytes:
        text = "".join([f"{key}{value}\0" for key, value in self.fields])
        return _message(self._type_code, text.encode("utf-8", "surrogateescape") + b"\0")


@dataclass(frozen=True, slots=True)
class ErrorResponse(_Diagnostic):
    """An error; severity ERROR ends the statement, FATAL the session."""

    _type_code = ERROR_RESPONSE


@dataclass(frozen=True, slots=True)
class NoticeResponse(_Diagnostic):
    """A notice, warning or informational message; the statement goes on."""

    _type_code = NOTICE_RESPONSE


@dataclass(frozen=True, slots=True)
class NotificationResponse:
    """A NOTIFY delivered on ``channel`` by the backend ``process_id``."""

    process_id: int
    channel: str
    payload: str

    def encode(self) -> bytes:
        body = _INT32.pack(self.process_id) + _cstr(self.channel) + _cstr(self.payload)
        return _message(NOTIFICATION_RESPONSE, body)


@dataclass(frozen=True, slots=True)
class ParseComplete(_Bare):
    """Parse succeeded."""

    _wire = _message(PARSE_COMPLETE, b"")


@dataclass(frozen=True, slots=True)
class BindComplete(_Bare):
    """Bind succeeded."""

    _wire = _message(BIND_COMPLETE, b"")


@dataclass(frozen=True, slots=True)
class CloseComplete(_Bare):
    """Close succeeded."""

    _wire = _message(CLOSE_COMPLETE, b"")


@dataclass(frozen=True, slots=True)
class NoData(_Bare):
    """The described statement or portal returns no rows."""

    _wire = _message(NO_DATA, b"")


@dataclass(frozen=True, slots=True)
class PortalSuspended(_Bare):
    """Execute stopped at its row limit; the portal can be executed again."""

    _wire = _message(PORTAL_SUSPENDED, b"")


@dataclass(frozen=True, slots=True)
class ParameterDescription:
    """The parameter types of a described statement."""

    type_oids: tuple[int, ...]

    def encode(self) -> bytes:
        return _message(PARAMETER_DESCRIPTION, _array("I", self.type_oids))


@dataclass(frozen=True, slots=True)
class _CopyResponse:
    """Starts a COPY: ``overall_format`` 0 is text, 1 binary; one format per column."""

    overall_format: int
    column_formats: tuple[int, ...]
    _type_code: ClassVar[int]

    def encode(self) -> bytes:
        payload = struct.pack("!b", self.overall_format) + _array("h", self.column_formats)
        return _message(self._type_code, payload)


@dataclass(frozen=True, slots=True)
class CopyInResponse(_CopyResponse):
    """The server is ready for COPY FROM STDIN data."""

    _type_code = COPY_IN_RESPONSE


@dataclass(frozen=True, slots=True)
class CopyOutResponse(_CopyResponse):
    """COPY TO STDOUT data follows."""

    _type_code = COPY_OUT_RESPONSE


@dataclass(frozen=True, slots=True)
class CopyBothResponse(_CopyResponse):
    """Both sides may now send COPY data (streaming replication)."""

    _type_code = COPY_BOTH_RESPONSE


@dataclass(frozen=True, slots=True)
class FunctionCallResponse:
    """The result of a FunctionCall; ``None`` is SQL NULL."""

    value: bytes | None

    def encode(self) -> bytes:
        if self.value is None:
            return _message(FUNCTION_CALL_RESPONSE, _NULL)
        return _message(FUNCTION_CALL_RESPONSE, _INT32.pack(len(self.value)) + self.value)


@dataclass(frozen=True, slots=True)
class NegotiateProtocolVersion:
    """The server speaks at most 3.``newest_minor`` and ignored these ``_pq_.`` options."""

    newest_minor: int
    unrecognized: tuple[str, ...]

    def encode(self) -> bytes:
        names = b"".join(_cstr(name) for name in self.unrecognized)
        payload = _INT32_PAIR.pack(self.newest_minor, len(self.unrecognized)) + names
        return _message(NEGOTIATE_PROTOCOL_VERSION, payload)


StartupPacket: TypeAlias = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest

FrontendMessage: TypeAlias = (
    PasswordMessage
    | Query
    | Parse
    | Bind
    | Describe
    | Execute
    | Sync
    | Flush
    | Close
    | FunctionCall
    | Terminate
    | CopyData
    | CopyDone
    | CopyFail
)

BackendMessage: TypeAlias = (
    AuthenticationOk
    | AuthenticationCleartextPassword
    | AuthenticationMD5Password
    | AuthenticationSASL
    | AuthenticationSASLContinue
    | AuthenticationSASLFinal
    | AuthenticationRequest
    | BackendKeyData
    | ParameterStatus
    | ReadyForQuery
    | RowDescription
    | DataRow
    | CommandComplete
    | EmptyQueryResponse
    | ErrorResponse
    | NoticeResponse
    | NotificationResponse
    | ParseComplete
    | BindComplete
    | CloseComplete
    | NoData
    | PortalSuspended
    | ParameterDescription
    | CopyInResponse
    | CopyOutResponse
    | CopyBothResponse
    | CopyData
    | CopyDone
    | FunctionCallResponse
    | NegotiateProtocolVersion
)


# The raw forms of PasswordMessage.


def password_text(message: PasswordMessage) -> str:
    """The password of a PasswordMessage that answers a cleartext or MD5 request."""
    data = message.data
    if not data or data.find(b"\0") != len(data) - 1:
        raise ProtocolError("invalid password packet: expected one NUL-terminated string")
    return data[:-1].decode("utf-8", "surrogateescape")


def parse_sasl_initial_response(message: PasswordMessage) -> tuple[str, bytes | None]:
    """The mechanism and initial client data (``None`` when absent) of a SASLInitialResponse."""
    data = message.data
    nul = data.find(b"\0")
    if nul < 0 or len(data) < nul + 5:
        raise ProtocolError("truncated SASLInitialResponse message")
    (length,) = _INT32.unpack_from(data, nul + 1)
    rest = data[nul + 5 :]
    if length == -1 and not rest:
        response = None
    elif length == len(rest):
        response = rest
    else:
        raise ProtocolError(
            f"SASLInitialResponse declares {length} bytes of data but carries {len(rest)}"
        )
    return data[:nul].decode("utf-8", "surrogateescape"), response


def sasl_initial_response(mechanism: str, data: bytes | None) -> PasswordMessage:
    """The client's first SASL message, choosing ``mechanism``."""
    tail = _NULL if data is None else _INT32.pack(len(data)) + data
    return PasswordMessage(_cstr(mechanism) + tail)


def sasl_response(data: bytes) -> PasswordMessage:
    """A SASL response to an AuthenticationSASLContinue."""
    return PasswordMessage(data)


def cleartext_password(text: str) -> PasswordMessage:
    """A password sent in answer to a cleartext or MD5 request."""
    return PasswordMessage(_cstr(text))
