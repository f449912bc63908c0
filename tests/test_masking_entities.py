"""Each format and entity added for recall on data the project did not write: a positive that
must be masked as its entity, and a look-alike that must stay untouched."""

from __future__ import annotations

import pytest

from masking import MaskingPolicy, mask_text
from masking.entities import ALL_ENTITIES

EVERYTHING = MaskingPolicy(entities=ALL_ENTITIES)
AZURE_KEY = "Zm9v" * 21 + "YmE=="[:2] + "=="

POSITIVES = [
    ("CREDIT_CARD", "card 4111.1111.1111.1111 ok", None),
    ("CREDIT_CARD", "4111  1111  1111  1111", None),
    ("CREDIT_CARD", "4111 1111 1111 1111 12/27", None),
    ("CREDIT_CARD", "%B4111111111111111^DOE/JANE^2712101000000000000000?", None),
    ("CREDIT_CARD", ";4111111111111111=27121010000000000?", None),
    ("CREDIT_CARD", "PAN4111111111111111", None),
    ("CREDIT_CARD", "6759 6498 2643 8453", None),  # Maestro
    ("CREDIT_CARD", "2200 0000 0000 0004", None),  # Mir
    ("CREDIT_CARD", "6521 0000 0000 0007", None),  # RuPay
    ("CREDIT_CARD", "9792 0000 0000 0003", None),  # Troy
    ("CREDIT_CARD", "213100000000001", None),  # JCB 15
    ("CREDIT_CARD", "4006381330060", "card_number"),  # also an EAN-13: named a card
    ("CREDIT_CARD", "Visa4006381330060", None),  # ... its issuer glued to it
    ("CREDIT_CARD", "paid by card no. 4006381330060", None),  # ... a card's word before it
    ("CREDIT_CARD", "4006381330060 04/29", None),  # ... its expiry date after it
    ("PHONE", "+1.415.555.2671", None),
    ("PHONE", "call 0049 30 1234567", None),
    ("PHONE", "011 44 20 7946 0958", None),
    ("PHONE", "+1-780-563-6083x7783", None),
    ("PHONE", "394.518.7683", "telefon"),
    ("PHONE", "(591)341-7776", "phone_number"),
    ("EMAIL", "jörg@bücher.de", None),
    ("EMAIL", "owen@横浜市南区.jp", None),
    ("EMAIL", "zoë.martin@example.fr", None),
    ("EMAIL", "jane@xn--bcher-kva.de", None),
    ("EMAIL", "/unsubscribe?u=jane.doe%40example.com", None),
    ("US_ITIN", "917-70-1234", None),
    ("US_ITIN", "917701234", "itin"),
    ("US_MBI", "1EG4-TE5-MK73", None),
    ("BR_CPF", "187.244.670-14", None),
    ("BR_CNPJ", "18.724.467/0001-40", None),
    ("IT_FISCAL_CODE", "BCCFRC15M25E852P", None),
    ("AWS_SECRET_KEY", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY9q2Lm4Tz1a", None),
    ("AZURE_STORAGE_KEY", f"AccountName=acme;AccountKey={AZURE_KEY};Endpoint", None),
    ("SENDGRID_KEY", "SG." + "aB3" * 7 + "x." + "Zy9" * 14 + "w", None),
    ("NPM_TOKEN", "npm_" + "a1B2c3" * 6, None),
    ("PYPI_TOKEN", "pypi-AgEIcHlwaS5vcmc" + "Ab1-" * 15, None),
    ("SLACK_TOKEN", "xapp-1-A0123BCDE-1234567890123-abc123def456abc123def456", None),
    (
        "SLACK_WEBHOOK",
        "https://hooks.slack.com/services/T0A1B2C3D/B0A1B2C3D/a1B2c3D4e5F6g7H8",
        None,
    ),
    ("STRIPE_KEY", "sk_test_" + "a1B2c3D4" * 3, None),
    ("STRIPE_KEY", "whsec_" + "a1B2c3D4" * 4, None),
    ("GITLAB_TOKEN", "gldt-" + "a1B2c3D4e5" * 2, None),
    ("GITLAB_TOKEN", "glrt-" + "a1B2c3D4e5" * 2, None),
    ("JWT", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjMifQ.", None),
    (
        "PRIVATE_KEY",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nabc\n-----END PGP PRIVATE KEY BLOCK-----",
        None,
    ),
    ("PRIVATE_KEY", "MIIEvAIBADANBgkqhkiG9w0BAQEFAASC" + "Ab3+" * 16, None),
    ("PASSWORD", "host=db user=app password=hunter22 dbname=x", None),
    ("PASSWORD", "Server=sql1;User Id=sa;Password=Tr0ub4dor;", None),
    ("PASSWORD", "jdbc:postgresql://db/app?user=app&password=s3cr3t-pw", None),
    ("PASSWORD", "jdbc:oracle:thin:scott/tiger77@db:1521/orcl", None),
    ("PASSWORD", "db.internal:5432:app:report:s3cr3t", None),
    ("PASSWORD", "DB_PASSWORD=s3cr3t-pw", None),
    ("PASSWORD", "  password: s3cr3t-pw", None),
    ("PASSWORD", "s3cr3t-pw", "db_password"),
]

OPT_IN = [
    ("US_NPI", "NPI 1234567893", None),
    ("US_DEA", "DEA AB1234563", None),
    ("MEDICAL_RECORD_NUMBER", "MRN: 00482913", None),
    ("DATE_OF_BIRTH", "1985-04-12", "date_of_birth"),
    ("CA_SIN", "SIN 130 692 544", None),
    ("IN_AADHAAR", "aadhaar 2345 6789 0124", None),
    ("IN_PAN", "ESZPI1777U", None),
    ("ES_DNI", "12345678Z", None),
    ("ES_DNI", "X1234567L", None),
    ("DE_TAX_ID", "Steuer-ID 86095742719", None),
    ("FR_NIR", "1 85 05 78 006 084 91", None),
    ("AU_TFN", "TFN 123 456 782", None),
    ("PERSON_NAME", "Jane Q. Public", "full_name"),
    ("STREET_ADDRESS", "Hauptstraße 5, 10115 Berlin", "billing_address"),
]


@pytest.mark.parametrize(("entity", "text", "column"), POSITIVES)
def test_default_entity_is_found(entity: str, text: str, column: str | None) -> None:
    result = mask_text(text, column=column)
    assert entity in result.entities, result


@pytest.mark.parametrize(("entity", "text", "column"), OPT_IN)
def test_opt_in_entity_is_found_when_enabled(entity: str, text: str, column: str | None) -> None:
    assert entity not in mask_text(text, column=column).entities
    result = mask_text(text, column=column, policy=EVERYTHING)
    assert entity in result.entities, result


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("4006381330060", "barcode"),  # EAN-13 that also passes Luhn
        ("discard 4006381330060", None),  # a word ending in "card" says nothing
        ("4006381330060 12/05/2024", None),  # a date, not an expiry
        ("+12500000", "delta"),
        ("+5381256.41", "amount"),
        ("-4500.00", "amount"),
        ("13.78.967", "phone_os_version"),
        ("1995-01-24T22:31:57.382828", "phone_verified_at"),
        ("0060160218912", "gtin"),  # a UPC read as 00 60 …
        ("logo@2x.png", "image"),
        ("FI4643449864431121", "iban"),  # an IBAN with a wrong check is no glued card
        ("3173 0062 1172 8077", None),
        ("password: ${DB_PASSWORD}", None),
        ("password=changeme", None),
        ("123.456.789-00", None),  # CPF with wrong check digits
        ("RSSMRA85T10A562X", None),  # codice fiscale with a wrong check letter
        ("987-12-3456", None),  # neither SSN (area 9xx) nor ITIN (group 12)
        ("3fa4111111111111111", None),  # inside a hex string
    ],
)
def test_look_alikes_stay_untouched(text: str, column: str | None) -> None:
    assert mask_text(text, column=column, policy=EVERYTHING).value == text


def test_a_card_expiry_stays_visible() -> None:
    assert mask_text("4006381330060 04/29").value == "*********0060 04/29"


def test_ipv6_is_not_a_pgpass_line() -> None:
    text = "client 52a:4742:3032:5ca1:c569:2eff:8013:b512"
    assert mask_text(text).value == text


@pytest.mark.parametrize(
    ("column", "cued"),
    [("full_name", True), ("customerName", True), ("name", True), ("file_name", False),
     ("hostname", False), ("username", False)],
)  # fmt: skip
def test_person_names_need_a_name_column(column: str, cued: bool) -> None:
    result = mask_text("Jane Public", column=column, policy=EVERYTHING)
    assert ("PERSON_NAME" in result.entities) is cued


@pytest.mark.parametrize(
    ("column", "cued"),
    [("street_address", True), ("shipping_address", True), ("email_address", False),
     ("ip_address", False), ("mac_address", False)],
)  # fmt: skip
def test_addresses_need_an_address_column(column: str, cued: bool) -> None:
    result = mask_text("12 High Street", column=column, policy=EVERYTHING)
    assert ("STREET_ADDRESS" in result.entities) is cued
