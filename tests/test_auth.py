import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from jitgate.errors import AuthenticationError, ProtocolError, UsageError
from proxy.auth import (
    ScramClient,
    ScramServer,
    ScramVerifier,
    md5_response,
    scram_verifier,
)

DSN = os.environ.get("JITGATE_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

# RFC 7677, section 3.
RFC_CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

SALT = bytes(range(16))


def rfc_server() -> ScramServer:
    verifier = scram_verifier("pencil", salt=RFC_SALT, iterations=4096)
    return ScramServer(verifier, "user", nonce=RFC_SERVER_NONCE)


def started_server(password: str = "secret") -> tuple[ScramServer, ScramClient, bytes]:
    server = ScramServer(scram_verifier(password, salt=SALT, iterations=4096), "alice")
    client = ScramClient("alice", password)
    return server, client, server.first(client.first())


def client_final(password: str, client_first_bare: bytes, server_first: bytes, gs2: bytes) -> bytes:
    """A client-final-message computed straight from RFC 5802, for hand-made exchanges."""
    fields = dict(part.split(b"=", 1) for part in server_first.split(b","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(fields[b"s"]), int(fields[b"i"])
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = b"c=" + base64.b64encode(gs2) + b",r=" + fields[b"r"]
    auth_message = b",".join((client_first_bare, server_first, without_proof))
    signature = hmac.digest(stored_key, auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    return without_proof + b",p=" + base64.b64encode(proof)


# RFC 7677 test vector


def test_rfc7677_client() -> None:
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    assert client.first() == RFC_CLIENT_FIRST
    assert client.final(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    client.verify(RFC_SERVER_FINAL)


def test_rfc7677_server() -> None:
    server = rfc_server()
    assert server.first(RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    assert server.final(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL


# Client against server


@pytest.mark.parametrize("password", ["secret", "", "pässwörd", "\ufb01sh", "with,comma=equals"])
def test_client_and_server_agree(password: str) -> None:
    server, client, server_first = started_server(password)
    client.verify(server.final(client.final(server_first)))


def test_client_and_server_agree_with_random_salt() -> None:
    server = ScramServer(scram_verifier("secret"), "alice")
    client = ScramClient("alice", "secret")
    client.verify(server.final(client.final(server.first(client.first()))))


def test_wrong_password_fails() -> None:
    server = ScramServer(scram_verifier("secret", salt=SALT), "alice")
    client = ScramClient("alice", "guess")
    client_final_message = client.final(server.first(client.first()))
    with pytest.raises(AuthenticationError) as caught:
        server.final(client_final_message)
    assert str(caught.value) == 'password authentication failed for user "alice"'
    assert caught.value.sqlstate == "28P01"


def test_server_accepts_postgres_style_empty_username() -> None:
    server = ScramServer(scram_verifier("secret", salt=SALT), "alice")
    server_first = server.first(b"n,,n=,r=abcdefgh")
    assert server_first.startswith(b"r=abcdefgh")
    final = client_final("secret", b"n=,r=abcdefgh", server_first, b"n,,")
    assert server.final(final).startswith(b"v=")


def test_server_accepts_client_that_supports_but_does_not_use_channel_binding() -> None:
    server = ScramServer(scram_verifier("secret", salt=SALT), "alice")
    server_first = server.first(b"y,,n=,r=abcdefgh")
    server.final(client_final("secret", b"n=,r=abcdefgh", server_first, b"y,,"))


def test_server_rejects_channel_binding_echo_that_differs_from_gs2_header() -> None:
    server = ScramServer(scram_verifier("secret", salt=SALT), "alice")
    server_first = server.first(b"y,,n=,r=abcdefgh")
    with pytest.raises(ProtocolError, match="channel binding"):
        server.final(client_final("secret", b"n=,r=abcdefgh", server_first, b"n,,"))


def test_server_rejects_channel_binding_request() -> None:
    server = ScramServer(scram_verifier("secret", salt=SALT), "alice")
    with pytest.raises(AuthenticationError, match="channel binding") as caught:
        server.first(b"p=tls-server-end-point,,n=,r=abcdefgh")
    assert caught.value.sqlstate == "28000"


def test_server_rejects_authorization_identity() -> None:
    server = ScramServer(scram_verifier("secret", salt=SALT), "alice")
    with pytest.raises(AuthenticationError) as caught:
        server.first(b"n,a=bob,n=,r=abcdefgh")
    assert caught.value.sqlstate == "0A000"


def test_server_rejects_tampered_nonce() -> None:
    server, client, server_first = started_server()
    final = client.final(server_first)
    without_proof, _, proof = final.rpartition(b",p=")
    with pytest.raises(ProtocolError, match="nonce"):
        server.final(without_proof + b"x,p=" + proof)


def test_server_rejects_tampered_proof() -> None:
    server, client, server_first = started_server()
    final = client.final(server_first)
    without_proof, _, proof = final.rpartition(b",p=")
    flipped = bytes([base64.b64decode(proof)[0] ^ 1]) + base64.b64decode(proof)[1:]
    with pytest.raises(AuthenticationError, match="password authentication failed"):
        server.final(without_proof + b",p=" + base64.b64encode(flipped))


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"garbage",
        b"x,,n=,r=abc",
        b"n,",
        b"n,junk,n=,r=abc",
        b"n,,r=abc",
        b"n,,m=ext,n=,r=abc",
        b"n,,n=",
        b"n,,n=,r=",
        b"n,,n=,r=ab\x00c",
        b"n,,n=,r=caf\xc3\xa9",
        b"n,,n=,,r=abc",
        b"n,,n=,rabc",
    ],
)
def test_server_rejects_malformed_client_first(message: bytes) -> None:
    server = ScramServer(scram_verifier("secret", salt=SALT), "alice")
    with pytest.raises(ProtocolError) as caught:
        server.first(message)
    assert caught.value.sqlstate == "08P01"


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"garbage",
        b"c=biws,r=NONCE",
        b"r=NONCE,c=biws,p=AAAA",
        b"c=biws,p=AAAA",
        b"c=bi!ws,r=NONCE,p=AAAA",
        b"c=biws,r=NONCE,p=not base64",
        b"c=biws,r=NONCE,p=AAAA",
        b"c=biws,r=NONCE,p=" + base64.b64encode(bytes(32)) + b",x=1",
    ],
)
def test_server_rejects_malformed_client_final(message: bytes) -> None:
    server = ScramServer(scram_verifier("secret", salt=SALT), "alice", nonce="SUFFIX")
    server.first(b"n,,n=,r=CLIENT")
    with pytest.raises(ProtocolError):
        server.final(message.replace(b"NONCE", b"CLIENTSUFFIX"))


def test_server_steps_must_run_in_order() -> None:
    server = ScramServer(scram_verifier("secret", salt=SALT), "alice")
    with pytest.raises(UsageError):
        server.final(b"c=biws,r=abc,p=AAAA")
    server.first(b"n,,n=,r=abc")
    with pytest.raises(UsageError):
        server.first(b"n,,n=,r=abc")


def test_server_final_is_single_use() -> None:
    server, client, server_first = started_server()
    final = client.final(server_first)
    server.final(final)
    with pytest.raises(UsageError):
        server.final(final)


# The client's checks of the server


@pytest.mark.parametrize(
    "message",
    [
        b"r=someone-elses-nonce,s=AAAAAAAA,i=4096",
        b"r=CLIENT,s=AAAAAAAA,i=4096",
    ],
)
def test_client_rejects_nonce_that_does_not_extend_its_own(message: bytes) -> None:
    client = ScramClient("alice", "secret", nonce="CLIENT")
    with pytest.raises(ProtocolError, match="nonce"):
        client.final(message)


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"garbage",
        b"m=ext,r=CLIENTx,s=AAAAAAAA,i=4096",
        b"r=CLIENTx,i=4096,s=AAAAAAAA",
        b"r=CLIENTx,s=AAAAAAAA",
        b"r=CLIENTx,s=,i=4096",
        b"r=CLIENTx,s=%%%,i=4096",
        b"r=CLIENTx,s=AAAAAAAA,i=0",
        b"r=CLIENTx,s=AAAAAAAA,i=-1",
        b"r=CLIENTx,s=AAAAAAAA,i=+5",
        b"r=CLIENTx,s=AAAAAAAA,i=4k",
        b"r=CLIENTx,s=AAAAAAAA,i=2147483648",
        b"r=CLIENTx,s=AAAAAAAA,i=" + b"9" * 5000,
        b"r=CLIENT\x7f,s=AAAAAAAA,i=4096",
    ],
)
def test_client_rejects_malformed_server_first(message: bytes) -> None:
    client = ScramClient("alice", "secret", nonce="CLIENT")
    with pytest.raises(ProtocolError):
        client.final(message)


def test_client_accepts_server_first_extensions() -> None:
    client = ScramClient("alice", "secret", nonce="CLIENT")
    assert client.final(b"r=CLIENTx,s=AAAAAAAA,i=1,x=future").startswith(b"c=biws,r=CLIENTx,p=")


def test_client_rejects_wrong_server_signature() -> None:
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    client.final(RFC_SERVER_FIRST)
    with pytest.raises(AuthenticationError, match="signature"):
        client.verify(b"v=" + base64.b64encode(bytes(32)))


def test_client_reports_server_error() -> None:
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    client.final(RFC_SERVER_FIRST)
    with pytest.raises(AuthenticationError, match="invalid-proof"):
        client.verify(b"e=invalid-proof")


@pytest.mark.parametrize("message", [b"", b"garbage", b"x=1", b"v=%%%"])
def test_client_rejects_malformed_server_final(message: bytes) -> None:
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    client.final(RFC_SERVER_FIRST)
    with pytest.raises(ProtocolError):
        client.verify(message)


def test_client_verify_must_follow_final() -> None:
    with pytest.raises(UsageError):
        ScramClient("user", "pencil").verify(RFC_SERVER_FINAL)


def test_client_escapes_username() -> None:
    assert ScramClient("a=b,c", "x", nonce="N").first() == b"n,,n=a=3Db=2Cc,r=N"


def test_random_nonces_are_fresh() -> None:
    nonces = {ScramClient("alice", "secret").first().rpartition(b"r=")[2] for _ in range(10)}
    assert len(nonces) == 10
    assert all(len(nonce) == 24 for nonce in nonces)


@pytest.mark.parametrize("nonce", ["", "a,b", "tab\there", "caf\u00e9"])
def test_injected_nonce_must_be_printable(nonce: str) -> None:
    with pytest.raises(UsageError):
        ScramClient("alice", "secret", nonce=nonce)
    with pytest.raises(UsageError):
        ScramServer(scram_verifier("x", salt=SALT), "alice", nonce=nonce)


# Verifiers and SASLprep


def test_verifier_round_trips_through_its_string_form() -> None:
    verifier = scram_verifier("secret", salt=SALT, iterations=4096)
    text = verifier.to_string()
    assert text.startswith("SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$")
    assert ScramVerifier.parse(text) == verifier


def test_verifier_repr_hides_keys() -> None:
    verifier = scram_verifier("secret", salt=SALT)
    assert base64.b64encode(verifier.stored_key).decode() not in repr(verifier)
    assert repr(verifier.server_key) not in repr(verifier)
    assert "stored_key" not in repr(verifier)


def test_verifier_defaults_to_a_fresh_16_byte_salt() -> None:
    first, second = scram_verifier("secret"), scram_verifier("secret")
    assert len(first.salt) == 16
    assert first.salt != second.salt
    assert first.iterations == 4096


@pytest.mark.parametrize(
    "text",
    [
        "",
        "md5abcdef",
        "SCRAM-SHA-1$4096:AAAA$" + "A" * 43 + "=:" + "A" * 43 + "=",
        "SCRAM-SHA-256$0:AAAA$" + "A" * 43 + "=:" + "A" * 43 + "=",
        "SCRAM-SHA-256$x:AAAA$" + "A" * 43 + "=:" + "A" * 43 + "=",
        "SCRAM-SHA-256$\u0664:AAAA$" + "A" * 43 + "=:" + "A" * 43 + "=",
        "SCRAM-SHA-256$\udcff:AAAA$" + "A" * 43 + "=:" + "A" * 43 + "=",
        "SCRAM-SHA-256$4096:$" + "A" * 43 + "=:" + "A" * 43 + "=",
        "SCRAM-SHA-256$4096:A!AA$" + "A" * 43 + "=:" + "A" * 43 + "=",
        "SCRAM-SHA-256$4096:\u00e9AAA$" + "A" * 43 + "=:" + "A" * 43 + "=",
        "SCRAM-SHA-256$4096:AAAA$AAAA:" + "A" * 43 + "=",
        "SCRAM-SHA-256$4096:AAAA$" + "A" * 43 + "=",
    ],
)
def test_malformed_verifier_is_rejected(text: str) -> None:
    with pytest.raises(UsageError):
        ScramVerifier.parse(text)


@pytest.mark.parametrize("iterations", [0, -1, 2**31])
def test_verifier_needs_a_sane_iteration_count(iterations: int) -> None:
    with pytest.raises(UsageError):
        scram_verifier("secret", salt=SALT, iterations=iterations)


def test_verifier_needs_a_salt() -> None:
    with pytest.raises(UsageError):
        scram_verifier("secret", salt=b"")


@pytest.mark.parametrize(
    ("password", "prepared"),
    [
        ("\ufb01", "fi"),
        ("a\u00adb", "ab"),
        ("\u3000x\u00a0", " x "),
        ("e\u0301", "\u00e9"),
        ("\u2168", "IX"),
    ],
)
def test_saslprep_maps_and_normalises(password: str, prepared: str) -> None:
    assert scram_verifier(password, salt=SALT) == scram_verifier(prepared, salt=SALT)


@pytest.mark.parametrize(
    ("password", "prepared"),
    [
        ("\ufb01\ue000", "fi\ue000"),
        ("\ufb01\x01", "fi\x01"),
        ("\u05d0\ufb01", "\u05d0fi"),
        ("\u00ad", ""),
    ],
)
def test_saslprep_falls_back_to_raw_bytes(password: str, prepared: str) -> None:
    assert scram_verifier(password, salt=SALT) != scram_verifier(prepared, salt=SALT)


def test_undecodable_password_is_hashed_as_its_raw_bytes() -> None:
    raw = b"caf\xe9\xef\xac\x81"
    verifier = scram_verifier(raw.decode("utf-8", "surrogateescape"), salt=SALT)
    salted = hashlib.pbkdf2_hmac("sha256", raw, SALT, 4096)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    assert verifier.stored_key == hashlib.sha256(client_key).digest()


def test_password_with_lone_surrogate_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        scram_verifier("\ud800", salt=SALT)
    with pytest.raises(UsageError):
        md5_response("alice", "\ud800", b"salt")


# MD5


def test_md5_response_shape() -> None:
    response = md5_response("postgres", "secret", b"\x01\x02\x03\x04")
    assert len(response) == 35
    assert response.startswith(b"md5")
    assert response != md5_response("postgres", "secret", b"\x01\x02\x03\x05")


# Against a real PostgreSQL


@pytest_asyncio.fixture(scope="module")
async def postgres() -> AsyncIterator[asyncpg.Connection]:
    try:
        connection = await asyncpg.connect(DSN, timeout=5)
    except (OSError, TimeoutError) as exc:
        pytest.skip(f"no PostgreSQL answers at {DSN}: {exc}")
    try:
        yield connection
    finally:
        await connection.close()


@pytest.mark.parametrize(
    "password",
    [
        "x",
        "secret",
        "with 'quote' and \\",
        "pässwörd",
        "\ufb01sh",
        "a\u00adb",
        "\u3000pad\u00a0",
        "zero\u200bwidth",
        "e\u0301",
        "\u05d0\u05d1",
        "\u05d0a",
        "\ufb01\ue000",
        "tab\t\u00e9",
        "\u00ad",
    ],
)
async def test_verifier_matches_postgres(postgres: asyncpg.Connection, password: str) -> None:
    role = f"jitgate_auth_probe_{secrets.token_hex(4)}"
    transaction = postgres.transaction()
    await transaction.start()
    try:
        await postgres.execute("SET LOCAL password_encryption = 'scram-sha-256'")
        create = await postgres.fetchval(
            "SELECT format('CREATE ROLE %I PASSWORD %L', $1::text, $2::text)", role, password
        )
        await postgres.execute(create)
        stored = await postgres.fetchval(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role
        )
    finally:
        await transaction.rollback()
    theirs = ScramVerifier.parse(stored)
    ours = scram_verifier(password, salt=theirs.salt, iterations=theirs.iterations)
    assert ours == theirs
    assert ours.to_string() == stored


@pytest.mark.parametrize(
    ("user", "password", "salt"),
    [
        ("postgres", "secret", b"\x01\x02\x03\x04"),
        ("alice", "pässwörd", b"\x00\xff\x00\xff"),
        ("Ünïcode", "", b"abcd"),
    ],
)
async def test_md5_response_matches_postgres(
    postgres: asyncpg.Connection, user: str, password: str, salt: bytes
) -> None:
    expected = await postgres.fetchval(
        "SELECT 'md5' || md5(convert_to(md5($2::text || $1::text), 'UTF8') || $3::bytea)",
        user,
        password,
        salt,
    )
    assert md5_response(user, password, salt) == expected.encode("ascii")
