"""Password authentication on the Postgres wire, for both sides of the gateway, sans-IO.

The gateway authenticates clients itself and authenticates to its upstream on their
behalf, so it plays both roles of SCRAM-SHA-256 (RFC 5802, RFC 7677):

* :class:`ScramServer` checks a client against a stored :class:`ScramVerifier`;
* :class:`ScramClient` proves a password to an upstream PostgreSQL;
* :func:`md5_response` answers an upstream that still asks for ``md5``.

Every function takes and returns the bytes of SASL messages; framing them into
AuthenticationSASL / SASLResponse messages is the codec's job. Channel binding is not
offered (only ``SCRAM-SHA-256``, never ``-PLUS``).

Errors: a malformed message from the peer raises :class:`~jitgate.errors.ProtocolError`
(08P01); a wrong password, a server that cannot prove it knows the password, or a
feature we refuse raises :class:`~jitgate.errors.AuthenticationError`; calling the
steps out of order, or passing a bad nonce or verifier, raises
:class:`~jitgate.errors.UsageError`.

Passwords are prepared as PostgreSQL's ``pg_saslprep`` prepares them: ASCII passwords
are used unchanged; others are mapped, NFKC-normalised and checked against the
RFC 4013 prohibited, unassigned and bidirectional tables. A password that fails
those checks, or is not valid UTF-8, is hashed as its raw bytes, exactly as
PostgreSQL does, so verifiers stay interchangeable with ``pg_authid``. A ``str``
decoded with ``surrogateescape`` (as :data:`os.environ` is) gives back its raw bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from dataclasses import dataclass, field

from jitgate.errors import AuthenticationError, ProtocolError, UsageError

__all__ = [
    "SCRAM_SHA_256",
    "ScramClient",
    "ScramServer",
    "ScramVerifier",
    "md5_response",
    "scram_verifier",
]

SCRAM_SHA_256 = "SCRAM-SHA-256"

_KEY_BYTES = hashlib.sha256().digest_size
_NONCE_BYTES = 18
_SALT_BYTES = 16
# PostgreSQL keeps the iteration count in a C int.
_MAX_ITERATIONS = 2**31 - 1


@dataclass(frozen=True)
class ScramVerifier:
    """What a server stores to check SCRAM-SHA-256 passwords, as in ``pg_authid``.

    The keys let anyone impersonate the server, so ``repr`` leaves them out.
    """

    iterations: int
    salt: bytes
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.iterations <= _MAX_ITERATIONS:
            raise UsageError(f"SCRAM iteration count must be 1..{_MAX_ITERATIONS}")
        if not self.salt:
            raise UsageError("SCRAM salt must not be empty")
        if len(self.stored_key) != _KEY_BYTES or len(self.server_key) != _KEY_BYTES:
            raise UsageError(f"SCRAM StoredKey and ServerKey must be {_KEY_BYTES} bytes")

    def to_string(self) -> str:
        """``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, base64 parts."""
        return (
            f"{SCRAM_SHA_256}${self.iterations}:{_b64(self.salt).decode()}"
            f"${_b64(self.stored_key).decode()}:{_b64(self.server_key).decode()}"
        )

    @classmethod
    def parse(cls, text: str) -> ScramVerifier:
        """Read the format of :meth:`to_string`; raise UsageError if it is malformed."""
        scheme, _, rest = text.partition("$")
        params, _, keys = rest.partition("$")
        iterations, _, salt = params.partition(":")
        stored_key, _, server_key = keys.partition(":")
        count = _iteration_count(iterations.encode("ascii", "replace"))
        if scheme != SCRAM_SHA_256 or count is None:
            raise UsageError(
                f"malformed SCRAM verifier: expected {SCRAM_SHA_256}$<iterations>:<salt>$…"
            )
        try:
            return cls(
                iterations=count,
                salt=base64.b64decode(salt, validate=True),
                stored_key=base64.b64decode(stored_key, validate=True),
                server_key=base64.b64decode(server_key, validate=True),
            )
        except ValueError as exc:
            raise UsageError("malformed SCRAM verifier: invalid base64") from exc


def scram_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = 4096
) -> ScramVerifier:
    """Compute the verifier PostgreSQL would store for ``password``; random 16-byte salt."""
    if not 1 <= iterations <= _MAX_ITERATIONS:
        raise UsageError(f"SCRAM iteration count must be 1..{_MAX_ITERATIONS}")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    if not salt:
        raise UsageError("SCRAM salt must not be empty")
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password), salt, iterations)
    return ScramVerifier(
        iterations=iterations,
        salt=salt,
        stored_key=hashlib.sha256(_hmac(salted, b"Client Key")).digest(),
        server_key=_hmac(salted, b"Server Key"),
    )


class ScramServer:
    """The gateway's side of SCRAM-SHA-256 towards a client: ``first``, then ``final``.

    ``user`` is the role from the startup packet; PostgreSQL clients leave the SCRAM
    username empty. ``nonce`` fixes the server's nonce suffix (for tests).
    """

    mechanisms = (SCRAM_SHA_256,)

    def __init__(self, verifier: ScramVerifier, user: str, *, nonce: str | None = None) -> None:
        self._verifier = verifier
        self._user = user
        self._nonce_suffix = _own_nonce(nonce)
        self._gs2_header = b""
        self._nonce = b""
        self._client_first_bare = b""
        self._server_first: bytes | None = None
        self._finished = False

    def first(self, client_first: bytes) -> bytes:
        """Take the client-first-message; return the server-first-message."""
        if self._server_first is not None:
            raise UsageError("ScramServer.first() may be called only once")
        what = "client-first-message"
        flag, _, rest = client_first.partition(b",")
        authzid, separator, bare = rest.partition(b",")
        if flag.startswith(b"p="):
            raise AuthenticationError(
                "channel binding was requested but SCRAM-SHA-256-PLUS is not offered",
                sqlstate="28000",
            )
        if flag not in (b"n", b"y") or not separator:
            raise ProtocolError(f"malformed SCRAM {what}: bad GS2 header")
        if authzid.startswith(b"a="):
            raise AuthenticationError(
                "SCRAM authorization identities are not supported", sqlstate="0A000"
            )
        if authzid:
            raise ProtocolError(f"malformed SCRAM {what}: bad GS2 header")
        attributes = _attributes(bare, what)
        _attribute(attributes, 0, "n", what)
        client_nonce = _attribute(attributes, 1, "r", what)
        _check_nonce(client_nonce, what)
        self._gs2_header = flag + b",,"
        self._nonce = client_nonce + self._nonce_suffix
        self._client_first_bare = bare
        self._server_first = b"r=%s,s=%s,i=%d" % (
            self._nonce,
            _b64(self._verifier.salt),
            self._verifier.iterations,
        )
        return self._server_first

    def final(self, client_final: bytes) -> bytes:
        """Check the client-final-message's proof; return the server-final-message."""
        if self._server_first is None or self._finished:
            raise UsageError("ScramServer.final() must follow one call to first()")
        self._finished = True
        what = "client-final-message"
        without_proof, separator, encoded_proof = client_final.rpartition(b",p=")
        if not separator:
            raise ProtocolError(f"malformed SCRAM {what}: missing proof")
        attributes = _attributes(without_proof, what)
        channel_binding = _b64decode(_attribute(attributes, 0, "c", what), what)
        nonce = _attribute(attributes, 1, "r", what)
        proof = _b64decode(encoded_proof, what)
        if channel_binding != self._gs2_header:
            raise ProtocolError("SCRAM channel binding check failed")
        if not hmac.compare_digest(nonce, self._nonce):
            raise ProtocolError("SCRAM nonce does not match")
        if len(proof) != _KEY_BYTES:
            raise ProtocolError(f"malformed SCRAM {what}: proof has the wrong length")
        auth_message = b",".join((self._client_first_bare, self._server_first, without_proof))
        client_key = _xor(proof, _hmac(self._verifier.stored_key, auth_message))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self._verifier.stored_key):
            raise AuthenticationError(f'password authentication failed for user "{self._user}"')
        return b"v=" + _b64(_hmac(self._verifier.server_key, auth_message))


class ScramClient:
    """The gateway's side of SCRAM-SHA-256 towards an upstream.

    Call ``first``, send it; pass the server's reply to ``final``, send that; pass the
    server's last message to ``verify``. ``nonce`` fixes the client nonce (for tests).
    """

    def __init__(self, user: str, password: str, *, nonce: str | None = None) -> None:
        self._password = _saslprep(password)
        self._nonce = _own_nonce(nonce)
        saslname = _encode(user, "user").replace(b"=", b"=3D").replace(b",", b"=2C")
        self._client_first_bare = b"n=" + saslname + b",r=" + self._nonce
        self._server_signature: bytes | None = None

    def first(self) -> bytes:
        """The client-first-message, without channel binding."""
        return b"n,," + self._client_first_bare

    def final(self, server_first: bytes) -> bytes:
        """Take the server-first-message; return the client-final-message with the proof."""
        what = "server-first-message"
        attributes = _attributes(server_first, what)
        nonce = _attribute(attributes, 0, "r", what)
        _check_nonce(nonce, what)
        if not nonce.startswith(self._nonce) or nonce == self._nonce:
            raise ProtocolError("SCRAM server nonce does not extend the client nonce")
        salt = _b64decode(_attribute(attributes, 1, "s", what), what)
        iterations = _iteration_count(_attribute(attributes, 2, "i", what))
        if not salt:
            raise ProtocolError(f"malformed SCRAM {what}: empty salt")
        if iterations is None:
            raise ProtocolError(f"malformed SCRAM {what}: bad iteration count")
        salted = hashlib.pbkdf2_hmac("sha256", self._password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = b"c=" + _b64(b"n,,") + b",r=" + nonce
        auth_message = b",".join((self._client_first_bare, server_first, without_proof))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return without_proof + b",p=" + _b64(_xor(client_key, _hmac(stored_key, auth_message)))

    def verify(self, server_final: bytes) -> None:
        """Check that the server knew the password; raise AuthenticationError if not."""
        if self._server_signature is None:
            raise UsageError("ScramClient.verify() must follow final()")
        what = "server-final-message"
        attributes = _attributes(server_final, what)
        if attributes[0][0] == "e":
            reason = attributes[0][1].decode("utf-8", "replace")
            raise AuthenticationError(f"upstream rejected SCRAM authentication: {reason}")
        signature = _b64decode(_attribute(attributes, 0, "v", what), what)
        if not hmac.compare_digest(signature, self._server_signature):
            raise AuthenticationError("upstream SCRAM server signature does not match")


def md5_response(user: str, password: str, salt: bytes) -> bytes:
    """The PasswordMessage body (no trailing NUL) answering AuthenticationMD5Password."""
    # MD5 is what the wire protocol dictates; FIPS builds must still speak it.
    inner = hashlib.md5(
        _encode(password, "password") + _encode(user, "user"), usedforsecurity=False
    )
    outer = hashlib.md5(inner.hexdigest().encode("ascii") + salt, usedforsecurity=False)
    return b"md5" + outer.hexdigest().encode("ascii")


def _saslprep(password: str) -> bytes:
    raw = _encode(password, "password")
    if password.isascii():
        return raw
    if any("\ud800" <= char <= "\udfff" for char in password):
        return raw  # surrogateescape'd bytes: the input was not UTF-8
    mapped = []
    for char in password:
        if stringprep.in_table_c12(char):
            mapped.append(" ")
        elif not stringprep.in_table_b1(char):
            mapped.append(char)
    # pg_saslprep checks the mapped input, not the normalised output; so do we.
    if not mapped or any(_prohibited(char) for char in mapped):
        return raw
    if any(stringprep.in_table_d1(char) for char in mapped) and (
        any(stringprep.in_table_d2(char) for char in mapped)
        or not stringprep.in_table_d1(mapped[0])
        or not stringprep.in_table_d1(mapped[-1])
    ):
        return raw
    return unicodedata.normalize("NFKC", "".join(mapped)).encode("utf-8")


def _prohibited(char: str) -> bool:
    return (
        stringprep.in_table_c21_c22(char)
        or stringprep.in_table_c3(char)
        or stringprep.in_table_c4(char)
        or stringprep.in_table_c5(char)
        or stringprep.in_table_c6(char)
        or stringprep.in_table_c7(char)
        or stringprep.in_table_c8(char)
        or stringprep.in_table_c9(char)
        or stringprep.in_table_a1(char)
    )


def _iteration_count(text: bytes) -> int | None:
    """The count in ``text`` if it is plain decimal digits within 1..2**31-1, else None."""
    if not (text.isdigit() and len(text) <= 10):
        return None
    count = int(text)
    return count if 1 <= count <= _MAX_ITERATIONS else None


def _encode(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise UsageError(f"{what} contains a lone surrogate and cannot be encoded") from exc


def _own_nonce(nonce: str | None) -> bytes:
    if nonce is None:
        return _b64(secrets.token_bytes(_NONCE_BYTES))
    encoded = nonce.encode("utf-8")
    if not _is_printable(encoded):
        raise UsageError("a SCRAM nonce must be printable ASCII without ','")
    return encoded


def _check_nonce(nonce: bytes, what: str) -> None:
    if not _is_printable(nonce):
        raise ProtocolError(f"malformed SCRAM {what}: bad nonce")


def _is_printable(value: bytes) -> bool:
    return bool(value) and all(0x21 <= byte <= 0x7E and byte != 0x2C for byte in value)


def _attributes(message: bytes, what: str) -> list[tuple[str, bytes]]:
    attributes = []
    for part in message.split(b","):
        if len(part) < 2 or not part[:1].isalpha() or part[1:2] != b"=":
            raise ProtocolError(f"malformed SCRAM {what}: expected attribute=value")
        attributes.append((part[:1].decode("ascii"), part[2:]))
    return attributes


def _attribute(attributes: list[tuple[str, bytes]], index: int, name: str, what: str) -> bytes:
    if index >= len(attributes) or attributes[index][0] != name:
        raise ProtocolError(f"malformed SCRAM {what}: expected attribute {name!r}")
    return attributes[index][1]


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def _b64decode(data: bytes, what: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise ProtocolError(f"malformed SCRAM {what}: invalid base64") from exc


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))
