"""The masking engine: positives built from the specifications (issuer tables, Luhn, SSA rules,
IBAN country lengths and mod 97), in a bare cell and in a sentence; hard negatives that must
come back untouched as the same object; strategies; several entities in one value."""

from __future__ import annotations

import base64
import json
import random
import string

import pytest

from audit.events import batch_texts, stored_array, stored_texts
from jitgate.errors import ConfigError
from masking import (
    DEFAULT_ENTITIES,
    DEFAULT_POLICY,
    MaskingPolicy,
    Strategy,
    cards,
    mask_text,
    mask_texts,
    samples,
)
from masking.config import policy_from_mapping
from masking.entities import ALL_ENTITIES
from masking.negatives import NEGATIVES
from masking.samples import POSITIVES as POSITIVE_MAKERS
from masking.validators import HEX_LETTER_BBAN_DIGITS, IBAN_LENGTHS

RNG = random.Random(4)
ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits


def _pick(alphabet: str, n: int) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def luhn_complete(prefix: str, length: int) -> str:
    """``prefix`` padded with random digits to ``length`` with a valid Luhn check digit."""
    body = prefix + _pick(string.digits, length - len(prefix) - 1)
    for check in string.digits:
        candidate = body + check
        total = 0
        for i, ch in enumerate(reversed(candidate)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def iban(country: str, bban: str) -> str:
    """An IBAN whose check digits are computed by ISO 7064 mod 97-10."""
    number = int("".join(str(int(ch, 36)) for ch in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def grouped(value: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(value[i : i + size] for i in range(0, len(value), size))


def jwt(header: dict[str, str]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return (
        f"{part(dict(header))}.{part({'sub': '1234567890', 'iat': 1516239022})}.{_pick(ALNUM, 43)}"
    )


CARD_PREFIXES = [
    ("4", 13), ("4", 16), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16),
    ("2500", 16), ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("644", 16), ("649", 19),
    ("36", 14), ("300", 14), ("3095", 16), ("38", 16), ("3528", 16), ("62", 16),
]  # fmt: skip
CARDS = [luhn_complete(prefix, length) for prefix, length in CARD_PREFIXES]

IBAN_BBANS = {
    "DE": "370400440532013000", "GB": "WEST12345698765432", "FR": "20041010050500013M02606",
    "NL": "ABNA0417164300", "BE": "539007547034", "ES": "21000418450200051332",
    "IT": "X0542811101000000123456", "CH": "00762011623852957", "AT": "1904300234573201",
    "SE": "50000000058398257466", "NO": "86011117947", "DK": "00400440116243",
    "FI": "21000000000000", "PL": "109010140000071219812874", "PT": "000201231234567890154",
    "IE": "AIBK93115212345678", "LU": "0019400644750000", "CZ": "06000000000000000001",
    "HU": "117730161111101800000000", "RO": "AAAA1B31007593840000",
    "SA": "80000000608010167519", "AE": "0331234567890123456",
}  # fmt: skip
IBANS = [iban(country, bban) for country, bban in IBAN_BBANS.items()]

SECRETS = [
    ("AWS_ACCESS_KEY", "AKIA" + _pick(UPPER_ALNUM, 16)),
    ("AWS_ACCESS_KEY", "ASIA" + _pick(UPPER_ALNUM, 16)),
    *[("GITHUB_TOKEN", f"{p}_" + _pick(ALNUM, 36)) for p in ("ghp", "gho", "ghu", "ghs", "ghr")],
    ("GITHUB_TOKEN", "github_pat_" + _pick(ALNUM, 22) + "_" + _pick(ALNUM, 59)),
    ("GITLAB_TOKEN", "glpat-" + _pick(ALNUM, 20)),
    ("SLACK_TOKEN", "xoxb-1234567890123-1234567890123-" + _pick(ALNUM, 24)),
    ("SLACK_TOKEN", "xoxp-1234567890-1234567890-1234567890-" + _pick(ALNUM, 32)),
    ("STRIPE_KEY", "sk_live_" + _pick(ALNUM, 24)),
    ("STRIPE_KEY", "rk_live_" + _pick(ALNUM, 32)),
    ("OPENAI_KEY", "sk-" + _pick(ALNUM, 48)),
    ("OPENAI_KEY", "sk-proj-" + _pick(ALNUM + "-_", 40) + "9a"),
    ("GOOGLE_API_KEY", "AIza" + _pick(ALNUM + "-_", 35)),
    ("JWT", jwt({"alg": "HS256", "typ": "JWT"})),
    ("JWT", jwt({"alg": "RS256", "kid": "k1"})),
    (
        "PRIVATE_KEY",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow"
        + _pick(ALNUM, 64)
        + "\n-----END RSA PRIVATE KEY-----",
    ),
    (
        "PRIVATE_KEY",
        "-----BEGIN PRIVATE KEY-----\n" + _pick(ALNUM, 64) + "\n-----END PRIVATE KEY-----",
    ),
]

POSITIVES: list[tuple[str, str]] = [
    *[("CREDIT_CARD", card) for card in CARDS],
    *[("CREDIT_CARD", grouped(card)) for card in CARDS if len(card) == 16],
    *[("CREDIT_CARD", grouped(card, sep="-")) for card in CARDS if len(card) == 16],
    ("CREDIT_CARD", "3782 822463 10005"),
    ("US_SSN", "123-45-6789"),
    ("US_SSN", "078-05-1120"),
    ("US_SSN", "899-99-0001"),
    ("EMAIL", "alice@example.com"),
    ("EMAIL", "first.last+tag@mail.example.co.uk"),
    ("EMAIL", "o'neil_99@sub-domain.example.org".replace("'", "")),
    *[("IBAN", value) for value in IBANS],
    *[("IBAN", grouped(value)) for value in IBANS],
    ("PHONE", "+14155552671"),
    ("PHONE", "+44 20 7946 0958"),
    ("PHONE", "+49-30-901820"),
    ("PHONE", "+1 415-555-2671"),
    ("PHONE", "+861012345678"),
    *SECRETS,
]


@pytest.mark.parametrize(("entity", "value"), POSITIVES, ids=repr)
def test_positive_in_a_bare_cell(entity: str, value: str) -> None:
    result = mask_text(value)
    assert result.entities == (entity,)
    if entity != "CREDIT_CARD":
        assert result.value == f"[{entity}]"


@pytest.mark.parametrize(("entity", "value"), POSITIVES, ids=repr)
def test_positive_in_a_sentence(entity: str, value: str) -> None:
    result = mask_text(f"Customer said: {value}, please check (ticket 42).")
    assert result.entities == (entity,)
    assert value not in result.value
    assert result.value.startswith("Customer said: ")
    assert result.value.endswith(", please check (ticket 42).")


@pytest.mark.parametrize(
    "uri",
    [
        "postgres://app:s3cr3t-Pa55@db.internal:5432/app",
        "mysql://root:hunter2@10.0.0.5/db",
        "redis://default:Zm9vYmFy@cache:6379",
        "amqp://guest:guest@localhost:5672/",
        "postgresql://svc:p@ss:w0rd@db.example.com/prod",
    ],
)
def test_connection_uri_password(uri: str) -> None:
    result = mask_text(f"dsn={uri}")
    authority = uri.split("://", 1)[1].split("/", 1)[0]
    password = authority.rsplit("@", 1)[0].split(":", 1)[1]
    assert result.entities == ("URI_PASSWORD",)
    assert result.value == "dsn=" + uri.replace(f":{password}@", ":[URI_PASSWORD]@")


def _luhn_failing(card: str) -> str:
    return card[:-1] + str((int(card[-1]) + 1) % 10)


HARD_NEGATIVES = [
    "550e8400-e29b-41d4-a716-446655440000",
    "123e4567-e89b-12d3-a456-426614174000",
    "2024-01-15T10:30:00Z",
    "2024-01-15 10:30:00.123456+00:00",
    "1700000000",
    "1700000000123",
    "1.2.3",
    "v10.24.1-rc.2",
    "3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c",
    "d41d8cd98f00b204e9800998ecf8427e",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "$1,234,567.89",
    "EUR 12 345,67",
    "ORD-2024-000123",
    "SKU-4411-2093-77",
    *[_luhn_failing(card) for card in CARDS if len(card) == 16],
    "1234567890123456",
    "YOUR_API_KEY",
    "sk-your-api-key-goes-here",
    "xoxb-your-token-here-please",
    "AKIA_EXAMPLE",
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "000-12-3456",
    "666-12-3456",
    "900-12-3456",
    "123-00-4567",
    "123-45-0000",
    "123456789",
    "phone 4155552671",
    "+0123456789",
    "+1234567",
    "user@localhost",
    "DE00370400440532013000",
    "GB82WEST1234569876543",
    "eyJub3QiOiJhIGp3dCJ9.eyJzdWIiOiIxIn0.c2ln",
    "https://example.com/path?q=1",
    "4111 1111-1111 1111",
    "41111111111111112222",
    "4111 1111 1111 1111 2222",
]


@pytest.mark.parametrize("value", HARD_NEGATIVES, ids=repr)
def test_hard_negative_is_returned_untouched(value: str) -> None:
    for carried in (value, f"row {value} end"):
        result = mask_text(carried)
        assert result.value is carried
        assert result.entities == ()


def _generated_negatives(rng: random.Random, n: int) -> list[str]:
    hexdigits = "0123456789abcdef"
    makers = [
        lambda: "-".join(_pick(hexdigits, k) for k in (8, 4, 4, 4, 12)),
        lambda: _pick(hexdigits, rng.choice((7, 32, 40, 64))),
        lambda: str(rng.randrange(10**9, 2 * 10**9)),
        lambda: str(rng.randrange(10**12, 2 * 10**12)),
        lambda: f"{rng.randrange(30)}.{rng.randrange(30)}.{rng.randrange(300)}",
        lambda: f"${rng.randrange(10**7):,}.{rng.randrange(100):02d}",
        lambda: f"ORD-{rng.randrange(2000, 2030)}-{rng.randrange(10**6):06d}",
        lambda: _luhn_failing(luhn_complete(rng.choice(["4", "51", "6011"]), 16)),
        lambda: luhn_complete(rng.choice(["0", "7", "99", "31", "33"]), rng.randrange(13, 20)),
        lambda: f"978-{rng.randrange(10)}-{rng.randrange(100, 999)}-{rng.randrange(10**5)}-1",
        lambda: f"{rng.randrange(2000, 2030)}-{rng.randrange(1, 13):02d}-01T00:00:00Z",
    ]
    return [rng.choice(makers)() for _ in range(n)]


def test_generated_hard_negatives_are_untouched() -> None:
    for value in _generated_negatives(random.Random(7), 5000):
        assert mask_text(value).value is value, value


def test_generated_cards_are_all_masked() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        prefix, length = rng.choice(CARD_PREFIXES)
        card = luhn_complete(prefix, length)
        carried = rng.choice((card, grouped(card), grouped(card, sep="-")))
        if carried == card and len(card) == 13 and cards.gs1_ok(card):
            continue  # also an EAN-13 barcode: a card only where a name says so
        result = mask_text(f"paid with {carried} today")
        assert result.entities == ("CREDIT_CARD",), carried
        assert "".join(ch for ch in result.value if ch.isdigit()) == card[-4:]


def test_generated_ibans_for_every_listed_country() -> None:
    rng = random.Random(13)
    for country, length in IBAN_LENGTHS.items():
        value = iban(country, "".join(rng.choice(string.digits) for _ in range(length - 4)))
        for carried in (value, grouped(value)):
            assert mask_text(f"IBAN: {carried}.").value == "IBAN: [IBAN].", carried
            broken = carried[:-1] + str((int(carried[-1]) + 1) % 10)
            assert mask_text(broken).value is broken


@pytest.mark.parametrize(
    "value",
    [
        "de89 3704 0044 0532 0130 00",
        "de89370400440532013000",
        "gb82-west-1234-5698-7654-32",
        "GB82-WEST-1234-5698-7654-32",
        "gb82 West 1234 5698 7654 32",
        "gb82west12345698765432",
        "fr14-2004-1010-0505-0001-3m02-606",
        "be68539007547034",
        "nl91abna0417164300",
    ],
)
def test_iban_in_any_case_and_separator(value: str) -> None:
    for text in (value, f"refund to {value}, thanks"):
        result = mask_text(text)
        assert result.entities == ("IBAN",), text
        assert value not in result.value and "[IBAN]" in result.value
    broken = value[:-1] + str((int(value[-1]) + 1) % 10)
    assert mask_text(broken).value is broken


def test_every_country_of_hex_letters_is_held_to_its_digits() -> None:
    hex_letters = {c for c in IBAN_LENGTHS if set(c) <= set("ABCDEF")}
    assert set(HEX_LETTER_BBAN_DIGITS) == hex_letters


def test_lower_case_ibans_for_every_listed_country() -> None:
    rng = random.Random(17)
    for country, length in IBAN_LENGTHS.items():
        value = iban(country, "".join(rng.choice(string.digits) for _ in range(length - 4)))
        for carried in (value.lower(), grouped(value.lower()), grouped(value, sep="-").lower()):
            assert mask_text(f"iban: {carried}.").value == "iban: [IBAN].", carried


@pytest.mark.parametrize(
    "value",
    [
        # hex digests and UUIDs holding a country code and two digits, IBAN-long or grouped
        "de12ab34cd56ef7890ab12",
        "ad129e2b41d4a716446655",
        "550e8400-de12-41d4-a716-446655440000",
        "9f3c0a1b-be68-5390-0754-7034ab12cd34",
        "be68 5390 0754 7035",  # the check digits of another account
        "nl91-abna-0417-1643",  # too short for the Netherlands
        # random tokens mixing cases, with a valid check by chance
        "gb82WeSt12345698765432",
        "gb82WEST12345698765432",
    ],
)
def test_lower_case_look_alikes_are_no_iban(value: str) -> None:
    assert mask_text(value).entities == (), value


def test_clean_text_is_the_same_object() -> None:
    value = "".join(["plain ", "text"])
    assert mask_text(value).value is value
    assert mask_text(value, column="ssn").value is value


@pytest.mark.parametrize(
    ("column", "masked"),
    [
        ("ssn", True), ("customer_ssn", True), ("SocialSecurityNumber", True),
        ("social_sec", True), (None, False), ("order_id", False), ("zip", False),
        ("session", False),
    ],
)  # fmt: skip
def test_bare_ssn_needs_an_ssn_like_column(column: str | None, masked: bool) -> None:
    result = mask_text("123456789", column=column)
    assert result.entities == (("US_SSN",) if masked else ())
    assert (result.value == "[US_SSN]") is masked


@pytest.mark.parametrize(
    "text",
    ["123 45 6789", "123.45.6789", "123/45/6789", "123\u201145\u20116789", "123\u201345\u20136789",
     "ssn: 123 45 6789."],
)  # fmt: skip
def test_ssn_with_any_one_separator(text: str) -> None:
    assert mask_text(text).entities == ("US_SSN",)


@pytest.mark.parametrize(
    "text",
    ["123 45-6789", "v1.123.45.6789", "123 45 6789 0", "666 12 3456", "10/12/2024",
     "logo@2x.png", "icon@3x.webp", "hero@1.5x.jpg", "font@latin.woff2", "doc@v2.pdf"],
)  # fmt: skip
def test_separated_numbers_and_file_names_that_are_not_ssns_or_emails(text: str) -> None:
    assert mask_text(text).entities == ()


def test_bare_ssn_still_follows_ssa_rules() -> None:
    for value in ("000123456", "666123456", "912345678", "123004567", "123450000"):
        assert mask_text(value, column="ssn").entities == ()


@pytest.mark.parametrize(
    ("card", "masked"),
    [
        ("4242424242424242", "************4242"),
        ("4242 4242 4242 4242", "**** **** **** 4242"),
        ("5555-5555-5555-4444", "****-****-****-4444"),
        ("378282246310005", "***********0005"),
    ],
)
def test_partial_card_keeps_last_four_and_separators(card: str, masked: str) -> None:
    assert mask_text(f"card {card}").value == f"card {masked}"


def test_partial_on_other_entities() -> None:
    policy = MaskingPolicy(strategies={"IBAN": "partial", "US_SSN": "partial"})
    value = grouped(IBANS[0])
    assert mask_text(value, policy=policy).value == "**** **** **** **** **30 00"
    assert mask_text("123-45-6789", policy=policy).value == "***-**-6789"


def test_hash_is_stable_per_key() -> None:
    a = MaskingPolicy(default="hash", hash_key=b"key-a")
    b = MaskingPolicy(default="hash", hash_key=b"key-b")
    first = mask_text("mail alice@example.com", policy=a).value
    assert first == mask_text("mail alice@example.com", policy=a).value
    assert first != mask_text("mail alice@example.com", policy=b).value
    assert first != mask_text("mail bob@example.com", policy=a).value
    token = first.removeprefix("mail ")
    assert token.startswith("[EMAIL:") and token.endswith("]")
    assert len(token) == len("[EMAIL:]") + 8
    assert all(ch in string.hexdigits for ch in token[7:-1])


def test_hash_joins_the_same_value_written_two_ways() -> None:
    policy = MaskingPolicy(strategies={"CREDIT_CARD": "hash"}, hash_key=b"k")
    spaced = mask_text("4242 4242 4242 4242", policy=policy).value
    assert spaced == mask_text("4242424242424242", policy=policy).value
    assert spaced.startswith("[CREDIT_CARD:")


def test_multiple_entities_in_order() -> None:
    card = CARDS[1]
    value = (
        f"Contact alice@example.com or +14155552671; card {card}, SSN 123-45-6789, "
        f"iban {IBANS[0]}, key {SECRETS[0][1]}."
    )
    result = mask_text(value)
    assert result.entities == (
        "EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "AWS_ACCESS_KEY",
    )  # fmt: skip
    assert result.value == (
        "Contact [EMAIL] or [PHONE]; card ************" + card[-4:] + ", SSN [US_SSN], "
        "iban [IBAN], key [AWS_ACCESS_KEY]."
    )


def test_grouped_iban_followed_by_a_word() -> None:
    value = grouped(iban("BE", "539007547034"))
    assert mask_text(f"{value} ABCD").value == "[IBAN] ABCD"
    assert mask_text(f"{value}ABCD").entities == ()
    assert mask_text(value.replace(" ", "") + "ABCD").entities == ()


def test_same_entity_twice_counts_twice() -> None:
    result = mask_text("a@example.com, b@example.com")
    assert result == type(result)("[EMAIL], [EMAIL]", ("EMAIL", "EMAIL"))


def test_policy_is_a_private_copy() -> None:
    strategies: dict[str, Strategy] = {"EMAIL": "partial"}
    policy = MaskingPolicy(strategies=strategies)
    strategies["EMAIL"] = "redact"
    assert policy.strategy_for("EMAIL") == "partial"


def test_default_policy() -> None:
    assert DEFAULT_POLICY.strategy_for("CREDIT_CARD") == "partial"
    assert DEFAULT_POLICY.strategy_for("EMAIL") == "redact"
    assert DEFAULT_POLICY.hash_key is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default": "hash"},
        {"strategies": {"EMAIL": "hash"}},
        {"strategies": {"NOT_AN_ENTITY": "redact"}},
        {"strategies": {"EMAIL": "scramble"}},
        {"default": "scramble"},
    ],
)
def test_bad_policy_is_refused_when_built(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="masking policy"):
        MaskingPolicy(**kwargs)  # type: ignore[arg-type]


def test_mask_cli_reads_and_writes_json_lines() -> None:
    import json
    import subprocess
    import sys

    lines = [
        {"column": "email", "type": "text", "value": "write to jane.doe@example.com please"},
        {"value": "card 4242 4242 4242 4242"},
        {"value": "order ORD-2024-000123"},
        {"column": "ssn", "value": "123456789"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    out = subprocess.run(
        [sys.executable, "-m", "jitgate", "mask"],
        input=text, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert [json.loads(line) for line in out.stdout.splitlines()] == [
        {"value": "write to [EMAIL] please", "entities": ["EMAIL"]},
        {"value": "card **** **** **** 4242", "entities": ["CREDIT_CARD"]},
        {"value": "order ORD-2024-000123", "entities": []},
        {"value": "[US_SSN]", "entities": ["US_SSN"]},
        {"error": "line 5: expected an object with a string value"},
    ]


# Opt-in entities, context cues and the policy built from configuration.

ALL = MaskingPolicy(entities=ALL_ENTITIES)


@pytest.mark.parametrize(
    ("entity", "text"),
    [
        ("IP_ADDRESS", "client 192.168.10.254 connected"),
        ("IP_ADDRESS", "from 2001:db8:85a3::8a2e:370:7334."),
        ("IP_ADDRESS", "peer ::ffff:10.0.0.1"),
        ("UK_NINO", "NI number JK 12 34 56 C"),
        ("UK_NINO", "nino AB123456D"),
        ("NHS_NUMBER", "NHS number 943 476 5919"),
        ("US_BANK_ACCOUNT", "bank account 000123456789"),
        ("US_PASSPORT", "passport no. 123456789"),
        ("US_DRIVER_LICENSE", "driver's license D1234567"),
        ("DATE_OF_BIRTH", "DOB: 1985-04-12"),
        ("DATE_OF_BIRTH", "born 12 April 1985"),
        ("DATE_OF_BIRTH", "date of birth 04/12/1985"),
    ],
)
def test_opt_in_entity_is_masked_only_when_enabled(entity: str, text: str) -> None:
    assert mask_text(text).entities == ()
    assert mask_text(text, policy=ALL).entities == (entity,)


@pytest.mark.parametrize(
    "text",
    [
        "version 1.2.3.4567", "256.1.1.1", "at 10:30:00", "std::vector", "::",
        "NHS number 943 476 5918", "account 12345678", "passport photo 2024", "DOB: 2024-13-45",
        "released 1985-04-12", "GB123456A", "order 000123456789",
    ],
)  # fmt: skip
def test_opt_in_look_alikes_are_left(text: str) -> None:
    assert mask_text(text, policy=ALL).value is text


@pytest.mark.parametrize(
    ("column", "cued"),
    [
        ("phone", True), ("mobile_no", True), ("tel_no", True), ("fax", True),
        ("CellPhone", True), ("hotel", False), ("cancelled", False), ("telemetry", False),
    ],
)  # fmt: skip
def test_national_phone_needs_a_phone_column(column: str, cued: bool) -> None:
    assert (mask_text("(415) 555-2671", column=column).entities == ("PHONE",)) is cued
    assert mask_text("call (415) 555-2671").entities == ()


def test_cue_words_must_be_near() -> None:
    assert mask_text("SSN 123456789").entities == ("US_SSN",)
    far = "SSN on file; the order number is 123456789"
    assert mask_text(far).entities == ()


def test_policy_entities_enable_and_disable() -> None:
    no_phone = MaskingPolicy(entities=DEFAULT_ENTITIES - {"PHONE"})
    assert mask_text("+14155552671", policy=no_phone).entities == ()
    assert mask_text("+14155552671").entities == ("PHONE",)
    with pytest.raises(ValueError, match="unknown entity 'NOPE'"):
        MaskingPolicy(entities=frozenset({"NOPE"}))


def test_policy_from_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASK_KEY", "k" * 32)
    policy = policy_from_mapping(
        {
            "default": "partial",
            "strategies": {"EMAIL": "hash"},
            "entities": {"enable": ["IP_ADDRESS"], "disable": ["PHONE"]},
            "hash_key_env": "MASK_KEY",
        },
        "resources.prod.masking",
    )
    assert policy.hash_key == b"k" * 32
    assert policy.entities == (DEFAULT_ENTITIES | {"IP_ADDRESS"}) - {"PHONE"}
    assert policy.strategy_for("EMAIL") == "hash"
    assert policy.strategy_for("CREDIT_CARD") == "partial"
    assert policy.strategy_for("IBAN") == "partial"
    assert policy_from_mapping({}, "masking") == DEFAULT_POLICY


@pytest.mark.parametrize(
    ("raw", "key", "problem"),
    [
        ({"defualt": "hash"}, "m.defualt", "unknown key"),
        ({"default": "scramble"}, "m.default", "expected one of redact, partial, hash"),
        ({"strategies": {"EMIAL": "hash"}}, "m.strategies.EMIAL", "unknown entity 'EMIAL'"),
        ({"strategies": {"EMAIL": "hsah"}}, "m.strategies.EMAIL", "not 'hsah'"),
        ({"strategies": ["EMAIL"]}, "m.strategies", "expected a mapping"),
        ({"entities": {"enable": ["IP_ADDRESS", "IP"]}}, "m.entities.enable[1]", "'IP'"),
        ({"entities": {"enable": "IP_ADDRESS"}}, "m.entities.enable", "expected a list"),
        ({"entities": {"disabled": []}}, "m.entities.disabled", "unknown key"),
        ({"entities": {"enable": ["JWT"], "disable": ["JWT"]}}, "m.entities.disable[0]", "also"),
        ({"default": "hash"}, "m.hash_key_env", "needs a key"),
        ({"default": "hash", "hash_key_env": "UNSET_MASK_KEY"}, "m.hash_key_env", "not set"),
        ({"default": "hash", "hash_key_env": "SHORT_MASK_KEY"}, "m.hash_key_env", "shorter"),
        ({"hash_key_env": 3}, "m.hash_key_env", "expected the name"),
    ],
)
def test_policy_from_mapping_names_the_bad_key(
    raw: dict[str, object], key: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNSET_MASK_KEY", raising=False)
    monkeypatch.setenv("SHORT_MASK_KEY", "short")
    with pytest.raises(ConfigError) as caught:
        policy_from_mapping(raw, "m")
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_mask_texts_answers_as_mask_text_does_for_each_value() -> None:
    """Many values, one prefilter search: each value comes back exactly as ``mask_text``
    masks it alone, with sensitive values at the start, the end and the middle of a value
    and in neighbours of values that match (a card at the end of one value, followed by
    another value that starts with digits, must not hide the second)."""
    rng = random.Random(11)
    makers = [*POSITIVE_MAKERS.values(), *NEGATIVES.values()]
    values: list[str] = []
    for _ in range(600):
        value = rng.choice(makers)(rng)
        values.append(
            rng.choice(
                (
                    value,
                    f"UPDATE t SET x = '{value}' WHERE id = {rng.randint(1, 9999)}",
                    f"SELECT {value}",
                    f"{value} ",
                    f"{rng.randint(0, 99)}{value}",
                    "",
                    "SELECT 1",
                )
            )
        )
    assert mask_texts(values) == [mask_text(v).value for v in values]
    # a match in every value, and in none
    cards = [samples.card(rng) for _ in range(50)]
    assert mask_texts(cards) == [mask_text(c).value for c in cards]
    assert all(m != c for m, c in zip(mask_texts(cards), cards, strict=True))
    assert mask_texts([]) == []


def test_audit_texts_are_stored_masked_and_as_valid_utf8() -> None:
    """What the audit trail keeps of SQL texts: masked, and valid UTF-8 even when a text
    held bytes that were not (decoded with surrogateescape, stored with U+FFFD)."""
    texts = ["SELECT 1", "SELECT 'caf\udce9'", "SELECT 'mail bob@corp.io'"]
    assert stored_texts(texts) == ["SELECT 1", "SELECT 'caf\ufffd'", "SELECT 'mail [EMAIL]'"]
    clean = ["SELECT 1", "SELECT 'café'"]
    assert stored_texts(clean) == clean


@pytest.mark.parametrize(
    ("texts", "stored"),
    [
        (["SELECT 1", "SELECT 'café'"], ["SELECT 1", "SELECT 'café'"]),
        (["SELECT 1", "SELECT 'mail bob@corp.io'"], ["SELECT 1", "SELECT 'mail [EMAIL]'"]),
        (["SELECT 'caf\udce9'", "SELECT 2"], ["SELECT 'caf\ufffd'", "SELECT 2"]),
    ],
)
def test_drained_audit_texts_are_stored_masked_and_as_valid_utf8(
    texts: list[str], stored: list[str]
) -> None:
    """A batch's texts as engines drain them (NUL-separated bytes and the binary text[]
    COPY sends): the text[] goes as built only when nothing in it needs masking or
    repair; otherwise it is built again from the texts as :func:`stored_texts` keeps them."""
    joined, array = batch_texts(texts)
    kept = stored_array(joined, array)
    assert (kept is array) == (texts == stored)
    assert kept == batch_texts(stored)[1]
