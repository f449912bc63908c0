"""The names of the entities jitgate can mask, which are on unless a policy turns them off,
and the context words that some of them need.

Entities in :data:`DEFAULT_ENTITIES` are specific enough to mask wherever they appear (their
false positives on the evaluation's hard negatives are measured, see the README).
:data:`OPT_IN_ENTITIES` are ambiguous (an IPv4 address looks like a version string, a bank
account like an order number) or personal data a policy should choose to hide, and are
masked only when a policy enables them; most of them also need a cue: a column name, a JSON
key or a nearby word matching their ``*_CUE``.
"""

from __future__ import annotations

CREDIT_CARD = "CREDIT_CARD"
US_SSN = "US_SSN"
US_ITIN = "US_ITIN"
EMAIL = "EMAIL"
IBAN = "IBAN"
PHONE = "PHONE"
PRIVATE_KEY = "PRIVATE_KEY"
AWS_ACCESS_KEY = "AWS_ACCESS_KEY"
AWS_SECRET_KEY = "AWS_SECRET_KEY"
AZURE_STORAGE_KEY = "AZURE_STORAGE_KEY"
GITHUB_TOKEN = "GITHUB_TOKEN"
GITLAB_TOKEN = "GITLAB_TOKEN"
SLACK_TOKEN = "SLACK_TOKEN"
SLACK_WEBHOOK = "SLACK_WEBHOOK"
STRIPE_KEY = "STRIPE_KEY"
SENDGRID_KEY = "SENDGRID_KEY"
NPM_TOKEN = "NPM_TOKEN"
PYPI_TOKEN = "PYPI_TOKEN"
OPENAI_KEY = "OPENAI_KEY"
GOOGLE_API_KEY = "GOOGLE_API_KEY"
JWT = "JWT"
URI_PASSWORD = "URI_PASSWORD"
PASSWORD = "PASSWORD"

BR_CPF = "BR_CPF"
BR_CNPJ = "BR_CNPJ"
IT_FISCAL_CODE = "IT_FISCAL_CODE"
US_MBI = "US_MBI"

IP_ADDRESS = "IP_ADDRESS"
UK_NINO = "UK_NINO"
NHS_NUMBER = "NHS_NUMBER"
US_BANK_ACCOUNT = "US_BANK_ACCOUNT"
US_DRIVER_LICENSE = "US_DRIVER_LICENSE"
US_PASSPORT = "US_PASSPORT"
US_NPI = "US_NPI"
US_DEA = "US_DEA"
MEDICAL_RECORD_NUMBER = "MEDICAL_RECORD_NUMBER"
DATE_OF_BIRTH = "DATE_OF_BIRTH"
CA_SIN = "CA_SIN"
IN_AADHAAR = "IN_AADHAAR"
IN_PAN = "IN_PAN"
ES_DNI = "ES_DNI"
DE_TAX_ID = "DE_TAX_ID"
FR_NIR = "FR_NIR"
AU_TFN = "AU_TFN"
PERSON_NAME = "PERSON_NAME"
STREET_ADDRESS = "STREET_ADDRESS"

SECRETS = frozenset(
    {
        PRIVATE_KEY, AWS_ACCESS_KEY, AWS_SECRET_KEY, AZURE_STORAGE_KEY, GITHUB_TOKEN,
        GITLAB_TOKEN, SLACK_TOKEN, SLACK_WEBHOOK, STRIPE_KEY, SENDGRID_KEY, NPM_TOKEN,
        PYPI_TOKEN, OPENAI_KEY, GOOGLE_API_KEY, JWT, URI_PASSWORD, PASSWORD,
    }
)  # fmt: skip
DEFAULT_ENTITIES = (
    frozenset({CREDIT_CARD, US_SSN, US_ITIN, EMAIL, IBAN, PHONE})
    | frozenset({BR_CPF, BR_CNPJ, IT_FISCAL_CODE, US_MBI})
    | SECRETS
)
OPT_IN_ENTITIES = frozenset(
    {
        IP_ADDRESS, UK_NINO, NHS_NUMBER, US_BANK_ACCOUNT, US_DRIVER_LICENSE, US_PASSPORT,
        US_NPI, US_DEA, MEDICAL_RECORD_NUMBER, DATE_OF_BIRTH, CA_SIN, IN_AADHAAR, IN_PAN,
        ES_DNI, DE_TAX_ID, FR_NIR, AU_TFN, PERSON_NAME, STREET_ADDRESS,
    }
)  # fmt: skip
ALL_ENTITIES = DEFAULT_ENTITIES | OPT_IN_ENTITIES

NULLED = "NULLED"
"""Counted once for each value replaced by SQL NULL because its type cannot hold a mask."""

# Cues are searched case-insensitively in column names, JSON keys and the words just before
# a value. Short words must stand alone ("tel_no", not "hotel"); "_" does not join words here.
SSN_CUE = r"(?<![a-z])(?:ssn|itin)|social[ _.-]?sec|soc[ _.-]?sec|tax[ _.-]?payer[ _.-]?id"
# Not a name about the number (its version, when it was verified, its country code).
PHONE_CUE = (
    r"\A(?!.*(?:version|verif|_at\Z|date|time|count|type|model|brand|country|code|prefix|os\Z))"
    r".*(?:phone|telef|(?<![a-z])(?:mobile|msisdn|cellular|(?:cell|fax|tel)(?![a-z])))"
)
CARD_CUE = r"card|credit|(?<![a-z])(?:cc|pan)(?![a-z])"
NHS_CUE = r"(?<![a-z])nhs"
BANK_CUE = r"bank|acct|account[ _.-]?(?:no|num)|routing"
LICENSE_CUE = r"driver|licen[cs]e"
PASSPORT_CUE = r"passport"
BIRTH_CUE = r"birth|(?<![a-z])(?:dob|born)(?![a-z])"
NPI_CUE = r"(?<![a-z])npi(?![a-z])"
DEA_CUE = r"(?<![a-z])dea(?![a-z])"
MRN_CUE = r"(?<![a-z])mrn|medical[ _.-]?rec|patient[ _.-]?(?:id|no|num)|chart[ _.-]?(?:no|num)"
SIN_CUE = r"(?<![a-z])sin(?![a-z])|social[ _.-]?insurance"
CPF_CUE = r"cpf"
CNPJ_CUE = r"cnpj"
AADHAAR_CUE = r"aadhaa?r|uidai"
STEUER_CUE = r"steuer|idnr|(?<![a-z])(?:tax[ _.-]?id|tin)(?![a-z])"
NIR_CUE = r"(?<![a-z])nir(?![a-z])|insee|s[eé]cu"
TFN_CUE = r"(?<![a-z])tfn|tax[ _.-]?file"
NAME_CUE = (
    r"(?:first|last|full|given|family|middle|maiden|sur|fore|customer|patient|contact|person|"
    r"legal|billing|shipping|holder|employee)[ _.-]?names?(?![a-z])|\A(?:names?|nom|vorname|"
    r"nachname|prenom|nombre|apellidos?)\Z"
)
# Not the address of a mailbox, a host or a wallet.
ADDRESS_CUE = (
    r"\A(?!.*(?:mail|(?<![a-z])ip(?![a-z])|mac|web|wallet|url|host|server|node|remote|bind))"
    r".*(?:address|addr(?![a-z])|street|strasse|adresse|direcci|indirizzo)"
)
