"""The names of the entities jitgate can mask, which are on unless a policy turns them off,
and the context words that some of them need.

Entities in :data:`DEFAULT_ENTITIES` are specific enough to mask wherever they appear.
:data:`OPT_IN_ENTITIES` are ambiguous (an IPv4 address looks like a version string, a bank
account like an order number) and are masked only when a policy enables them; most of them
also need a cue: a column name, a JSON key or a nearby word matching their ``*_CUE``.
"""

from __future__ import annotations

CREDIT_CARD = "CREDIT_CARD"
US_SSN = "US_SSN"
EMAIL = "EMAIL"
IBAN = "IBAN"
PHONE = "PHONE"
PRIVATE_KEY = "PRIVATE_KEY"
AWS_ACCESS_KEY = "AWS_ACCESS_KEY"
GITHUB_TOKEN = "GITHUB_TOKEN"
GITLAB_TOKEN = "GITLAB_TOKEN"
SLACK_TOKEN = "SLACK_TOKEN"
STRIPE_KEY = "STRIPE_KEY"
OPENAI_KEY = "OPENAI_KEY"
GOOGLE_API_KEY = "GOOGLE_API_KEY"
JWT = "JWT"
URI_PASSWORD = "URI_PASSWORD"

IP_ADDRESS = "IP_ADDRESS"
UK_NINO = "UK_NINO"
NHS_NUMBER = "NHS_NUMBER"
US_BANK_ACCOUNT = "US_BANK_ACCOUNT"
US_DRIVER_LICENSE = "US_DRIVER_LICENSE"
US_PASSPORT = "US_PASSPORT"
DATE_OF_BIRTH = "DATE_OF_BIRTH"

SECRETS = frozenset(
    {
        PRIVATE_KEY, AWS_ACCESS_KEY, GITHUB_TOKEN, GITLAB_TOKEN, SLACK_TOKEN, STRIPE_KEY,
        OPENAI_KEY, GOOGLE_API_KEY, JWT, URI_PASSWORD,
    }
)  # fmt: skip
DEFAULT_ENTITIES = frozenset({CREDIT_CARD, US_SSN, EMAIL, IBAN, PHONE}) | SECRETS
OPT_IN_ENTITIES = frozenset(
    {
        IP_ADDRESS, UK_NINO, NHS_NUMBER, US_BANK_ACCOUNT, US_DRIVER_LICENSE, US_PASSPORT,
        DATE_OF_BIRTH,
    }
)  # fmt: skip
ALL_ENTITIES = DEFAULT_ENTITIES | OPT_IN_ENTITIES

NULLED = "NULLED"
"""Counted once for each value replaced by SQL NULL because its type cannot hold a mask."""

# Cues are searched case-insensitively in column names, JSON keys and the words just before
# a value. Short words must stand alone ("tel_no", not "hotel"); "_" does not join words here.
SSN_CUE = r"(?<![a-z])ssn|social[ _.-]?sec|soc[ _.-]?sec|tax[ _.-]?payer[ _.-]?id"
PHONE_CUE = r"phone|(?<![a-z])(?:mobile|telephone|msisdn|cellular|(?:cell|fax|tel)(?![a-z]))"
NHS_CUE = r"(?<![a-z])nhs"
BANK_CUE = r"bank|acct|account[ _.-]?(?:no|num)|routing"
LICENSE_CUE = r"driver|licen[cs]e"
PASSPORT_CUE = r"passport"
BIRTH_CUE = r"birth|(?<![a-z])(?:dob|born)(?![a-z])"
