"""Detectors of personal data specific enough to find without context: e-mail addresses,
IBANs, payment cards, US SSNs and ITINs, telephone numbers, IP addresses; and the forms of
them (a bare nine-digit SSN, a national phone number) that need a column name or key.
"""

from __future__ import annotations

import re
import string

from masking import cards, phones
from masking import entities as e
from masking import national_ids as ids
from masking import validators as v
from masking.detector import Detector, cued, json_key, opening, plain

# An IBAN in capitals, compact or in fours by spaces or dashes (the same all along).
_IBAN = r"\d\d(?:[A-Z0-9]{11,30}|([ -])[A-Z0-9]{4}(?:\1[A-Z0-9]{4}){1,6}(?:\1[A-Z0-9]{1,4})?)"
# One with its country code in lower case: compact, all in lower case (the validator holds
# it to that), grouped, the rest in any case. Its trigger is short and generic (two letters
# of which one is past ``f``, two digits, six more or a group), except for a country of hex
# letters, which needs the digits its BBAN opens with
# (:data:`masking.validators.HEX_LETTER_BBAN_DIGITS`, at most twelve), so that lower-case
# hex digests and UUIDs seldom send a row to the detectors. Country codes are not case-
# folded: a trigger that also took ``Gb82…`` halved the prefilter's speed on rows of random
# tokens, and a list of every country code cost clean rows 20 % of theirs. A detector of its
# own, so that its regex runs only where its trigger is.
_HEX_COUNTRIES = v.HEX_LETTER_BBAN_DIGITS
_LOWER_IBAN_TRIGGER = "|".join(
    [
        "(?:[g-z][a-z]|[a-f][g-z])[0-9]{2}(?:[a-z0-9]{6}|[ -][A-Za-z0-9]{4}[ -])",
        "(?:" + "|".join(sorted(_HEX_COUNTRIES)).lower() + ")[0-9]{2}[ -][0-9]{4}[ -][0-9]{4}",
        *(f"{c.lower()}[0-9]{{{2 + min(n, 12)}}}" for c, n in sorted(_HEX_COUNTRIES.items())),
    ]
)
# An isolated run of digits: no digit, "_", decimal point or "+" (a phone number) glued to
# its start, no further digit group before it after a single separator, and letters glued to
# it (``PAN4111…``, track data ``%B4111…``) only where they start a word, not inside a hex
# string. The first digit comes before the lookbehinds so that Python's regex engine skips
# ahead to digits instead of trying every position.
_CARD_START = (
    r"\d(?<![\d_.+]\d)(?<!\d[ .-]\d)"
    r"(?<![0-9][A-Za-z]\d)(?<![0-9][A-Za-z]{2}\d)(?<![0-9][A-Za-z]{3}\d)"
    # two capitals alone, then digits: the country and check digits of an IBAN
    r"(?<![^A-Za-z][A-Z]{2}\d)(?<!^[A-Z]{2}\d)"
)
# No word character after, nor a further digit group (``4111 1111 1111 1111 2222`` is no
# card), except an expiry date (``4111 1111 1111 1111 12/27``).
_CARD_END = r"(?![\w]|[ .-](?!\d\d?/\d)\d|\.\d)"
# An expiry date after the number, which a barcode never has.
_EXPIRY = r"(?: (?:0[1-9]|1[0-2])/(?:20)?\d\d(?![\d/]))?"
# After a compact number: no word character, further digit group or decimal.
_COMPACT_END = r"(?![\w]|[ .-]\d|\.\d)"
# Words that call the number right after them a card.
_CARD_WORDS = (
    r"(?i:(?:(?:credit|debit)?card|cc|pan|visa|maestro)(?: ?(?:no|nr|num|number)\.?)?"
    r"[ #:=-]{0,2})"
)
# No word character after, nor a further digit group; an extension may follow (``x291``).
_PHONE_END = r"(?!(?!x\d)\w|[ .-]\d|\.\d)"

_LOCAL_PART = string.ascii_letters + string.digits + "._%+-"
# The prefilter reads UTF-8 bytes: the dashes U+2010–U+2015 are E2 80 90–95.
_SSN_SEPARATOR = r"(?:[- ./]|\xe2\x80[\x90-\x95])"
_SSN_SEPARATED = f"[0-9]{{3}}{_SSN_SEPARATOR}[0-9]{{2}}{_SSN_SEPARATOR}[0-9]{{4}}"
# The end of a digit run as the bytes of a row show it: a byte that is not a digit, a
# lowercase letter (UUIDs, hex) or a separator; a separator and no digit; or the end of the
# value, where the next length (NUL or 0xFF) or message type follows ('s' is lowercase).
_RUN_END = r"(?:[^0-9a-z_ .-]|[ .-][^0-9]|[ .-]$|[ .-][0-9]{1,2}\\?/|[a-z]\x00|$)"
# Twelve digits or more, single separators between them allowed, and the end of the run.
_LONG_RUN = "[0-9](?:[ .-]{0,2}[0-9]){11,18}" + _RUN_END
_SSN_WORDS = "(?i:ssn|social[ _.-]?sec|soc[ _.-]?sec|tax[ _.-]?payer[ _.-]?id|itin)"
_PHONE_WORDS = "phone|mobile|cell|fax|tel|msisdn"
# A domain of letters and digits of any script, and a top-level domain of letters or
# punycode (``xn--p1ai``). Each label is taken whole, by runs (one test per character, not a
# choice between two): a shorter one could never be followed by its dot.
_DOMAIN = r"(?:(?:[^\W_]++|-)++\.)+(?:[^\W\d_]{2,24}|xn--[a-z0-9-]{2,59})(?![\w-])"

PII_DETECTORS: tuple[Detector, ...] = (
    Detector(
        e.EMAIL,
        re.compile("@" + _DOMAIN),
        r"[A-Za-z0-9._%+'\x80-\xff-]@[A-Za-z0-9\x80-\xff-]",
        v.valid_email,
        back=_LOCAL_PART,
        back_letters=True,
    ),
    Detector(
        e.EMAIL,
        # percent-encoded in a URL or a query string: jane.doe%40example.com
        re.compile("%40" + _DOMAIN),
        "[A-Za-z0-9._%+-]%40[A-Za-z0-9-]",
        v.valid_encoded_email,
        back=_LOCAL_PART,
    ),
    plain(
        e.IBAN,
        opening("[A-Z]", "[A-Za-z0-9]") + "[A-Z]" + _IBAN + "(?![A-Za-z0-9])",
        "[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11}|[ -][A-Z0-9]{4}[ -][A-Z0-9]{4})",
        extent=v.iban_extent,
    ),
    plain(
        e.IBAN,
        # from the check digits, which the regex engine finds faster than a letter; the
        # value extends back over the two letters of the country code
        r"\d(?<=[a-z]{2}\d)(?<![A-Za-z0-9][a-z]{2}\d)"
        + _IBAN[2:].replace("A-Z0-9", "A-Za-z0-9")
        + "(?![A-Za-z0-9])",
        _LOWER_IBAN_TRIGGER,
        extent=v.iban_extent,
        back=string.ascii_lowercase,
    ),
    plain(
        e.CREDIT_CARD,
        # magnetic-stripe track 1 (%B, name, expiry, service code, discretionary data) and
        # track 2 (;PAN=…?): all of it, the discretionary data holds the card's check value
        r"%B(\d{12,19})\^[^^\n]{0,26}\^\d{4}[^?\s]*\?|;(\d{12,19})=\d{4}[^?\s]*\?",
        r"%B[0-9]{12}|;[0-9]{12}",
        valid=cards.valid_track,
    ),
    plain(
        e.CREDIT_CARD,
        # each further digit, unless it starts an expiry date, which is taken in to be read
        # by card_extent and left visible
        _CARD_START + r"(?:\d|(?:[ .-]| {2})(?!\d\d?/)\d){11,18}" + _CARD_END + _EXPIRY,
        _LONG_RUN,
        extent=cards.card_extent,
    ),
    cued(
        e.CREDIT_CARD,
        # A compact 12 or 13 digits that is also a valid EAN or UPC barcode is a card only
        # where something says so: its column name or JSON key, ...
        r"(?<![\w.+])\d{12,13}(?![\w]|\.\d)",
        e.CARD_CUE,
        json_key("card|credit|pan|cc"),
        cards.valid_compact_card,
        keyword=False,
    ),
    cued(
        e.CREDIT_CARD,
        # ... the issuer's or a card's word glued to it or just before it
        # ("Visa4065379981615", "card no. 4118703789798"), or its expiry date (above).
        opening(r"\d", r"[\d_.+]") + r"\d{11,12}" + _COMPACT_END,
        r"(?<![a-z])" + _CARD_WORDS + r"\Z",  # ending where the number starts
        _CARD_WORDS + "[0-9]{12}",
        cards.valid_compact_card,
    ),
    plain(
        e.US_SSN,
        # 123-45-6789, and with spaces, dots, slashes or any dash, the same one twice
        opening(r"\d", r"[\w./-]") + r"\d\d([- ./\u2010-\u2015])\d{2}\1\d{4}(?![\w-]|[./ ]\d)",
        _SSN_SEPARATED,
        valid=v.valid_ssn,
    ),
    plain(
        e.US_ITIN,
        opening("9", r"[\w./-]") + r"\d\d([- ./\u2010-\u2015])\d{2}\1\d{4}(?![\w-]|[./ ]\d)",
        _SSN_SEPARATED,
        valid=ids.valid_itin,
    ),
    cued(
        e.US_SSN,
        # Not part of a decimal; a full stop may end the sentence.
        opening(r"\d", r"[\w.-]") + r"\d{8}(?![\w-]|\.\d)",
        e.SSN_CUE,
        _SSN_WORDS,
        v.valid_ssn,
    ),
    cued(
        e.US_ITIN,
        opening("9", r"[\w.-]") + r"\d{8}(?![\w-]|\.\d)",
        e.SSN_CUE,
        _SSN_WORDS,
        ids.valid_itin,
    ),
    plain(
        e.PHONE,
        # "+1 415-555-2671", "+1.415.555.2671", "+1 (415) 555-2671", "+44 (0)20 7946 0958"
        opening(r"\+", r"[\w+]")
        + r"\d(?:[ .-]?\d){0,2}(?:[ .-]?\( ?\d{1,4}\))?(?:[ .-]?\d){4,14}"
        + _PHONE_END,
        r"\+[1-9](?:[ .-]?[0-9]){7}|\+[1-9](?:[ .-]?[0-9]){0,2}[ .-]?\(",
        valid=phones.valid_phone,
    ),
    plain(
        e.PHONE,
        # dialled with an exit code: "0049 30 1234567", "011 44 20 7946 0958"
        r"0(?<![\w+.-]0)(?<!\d[ .-]0)(?:0|11)[ .-]?[1-9](?:[ .-]?\d){0,2}(?:[ .-]?\( ?\d{1,4}\))?"
        r"(?:[ .-]?\d){4,14}" + _PHONE_END,
        r"0(?:0|11)[ .-]?[1-9](?:[ .-]?[0-9]){7}",
        valid=phones.valid_dialled,
    ),
    cued(
        e.PHONE,
        r"(?<![\w+.:-])(?:\+?\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?|\d{1,5}[ .-]?)"
        r"(?:\d{2,5}[ .-]?){0,3}\d{2,5}(?!(?!x\d)\w|[ .-]?\d)",
        e.PHONE_CUE,
        json_key(_PHONE_WORDS),
        phones.valid_national_phone,
        keyword=False,  # "phone 4155552671" in prose is as often an order or ticket number
    ),
    plain(
        e.IP_ADDRESS,
        r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)",
        r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]",
        valid=v.valid_ipv4,
    ),
    plain(
        e.IP_ADDRESS,
        r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?![\w:])",
        "::|[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){5}:[0-9A-Fa-f]",
        valid=v.valid_ipv6,
    ),
)
