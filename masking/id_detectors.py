"""Detectors of national and health identifiers, people's names and street addresses.

Identifiers printed in a shape of their own (a CPF ``123.456.789-09``, a codice fiscale) are
found anywhere their check passes; a bare run of digits is one of them only where a column
name, JSON key or (for most) the words just before it name the identifier. Names and
addresses have no shape at all: they are whole values under a column or key that names them.
"""

from __future__ import annotations

from masking import entities as e
from masking import national_ids as ids
from masking import validators as v
from masking.detector import ALONE_AFTER, ALONE_BEFORE, Detector, cued, json_key, plain

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_MBI_LETTER = "[AC-HJKMNP-RT-Y]"
_MBI = (
    rf"[1-9]{_MBI_LETTER}[AC-HJKMNP-RT-Y0-9][0-9]-?{_MBI_LETTER}[AC-HJKMNP-RT-Y0-9][0-9]-?"
    rf"{_MBI_LETTER}{{2}}[0-9]{{2}}"
)
# Codice fiscale: the digits of a name's clash-free variant (omocodia) may be letters L–V.
_CF_DIGIT = "[0-9LMNP-V]"
_CODICE_FISCALE = (
    f"[A-Z]{{6}}{_CF_DIGIT}{{2}}[A-EHLMPR-T]{_CF_DIGIT}{{2}}[A-Z]{_CF_DIGIT}{{3}}[A-Z]"
)
_NOT_ALNUM_BEFORE = "(?<![A-Za-z0-9])"
_NOT_ALNUM_AFTER = "(?![A-Za-z0-9])"
# A whole value: what a name or address column holds, one line or several.
_WHOLE_VALUE = r"(?s)\A\s*(\S.*?)\s*\Z"


def _digits(*groups: int, sep: str = "[ -]?") -> str:
    return ALONE_BEFORE + sep.join(rf"\d{{{n}}}" for n in groups) + ALONE_AFTER


ID_DETECTORS: tuple[Detector, ...] = (
    plain(
        e.US_MBI,
        _NOT_ALNUM_BEFORE + _MBI + r"(?![A-Za-z0-9-])",
        _MBI,
        valid=ids.valid_mbi,
    ),
    cued(e.US_NPI, _digits(10), e.NPI_CUE, "(?i:npi)", ids.valid_npi),
    cued(
        e.US_DEA,
        _NOT_ALNUM_BEFORE + r"[A-Z][A-Z9]\d{7}" + _NOT_ALNUM_AFTER,
        e.DEA_CUE,
        "(?i:dea)",
        ids.valid_dea,
    ),
    cued(
        e.MEDICAL_RECORD_NUMBER,
        r"(?<![\w-])[A-Z]{0,3}-?\d{5,12}(?![\w-])",
        e.MRN_CUE,
        "(?i:mrn|medical[ _.-]?rec|patient[ _.-]?(?:id|no|num)|chart[ _.-]?(?:no|num))",
    ),
    cued(
        e.DATE_OF_BIRTH,
        r"(?<![\w/.-])(?i:\d{4}-\d\d?-\d\d?|\d\d?([/.-])\d\d?\1(?:\d{4}|\d\d)"
        rf"|\d\d? {_MONTH},? \d{{4}}|{_MONTH} \d\d?,? \d{{4}})(?![\w/-]|\.\d)",
        e.BIRTH_CUE,
        "(?i:birth|dob|born)",
        v.valid_date,
    ),
    plain(
        e.UK_NINO,
        r"(?<![A-Za-z0-9])[A-Z]{2} ?\d\d ?\d\d ?\d\d ?[A-D](?![A-Za-z0-9])",
        "[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]",
        valid=v.valid_nino,
    ),
    cued(e.NHS_NUMBER, _digits(3, 3, 4), e.NHS_CUE, "(?i:nhs)", v.valid_nhs),
    cued(e.CA_SIN, _digits(3, 3, 3), e.SIN_CUE, "(?i:sin|social[ _.-]?insurance)", ids.valid_sin),
    plain(
        e.BR_CPF,
        ALONE_BEFORE + r"\d{3}\.\d{3}\.\d{3}-\d{2}" + ALONE_AFTER,
        r"[0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2}",
        valid=ids.valid_cpf,
    ),
    cued(e.BR_CPF, _digits(11), e.CPF_CUE, "(?i:cpf)", ids.valid_cpf),
    plain(
        e.BR_CNPJ,
        ALONE_BEFORE + r"\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}" + ALONE_AFTER,
        r"[0-9]{2}\.[0-9]{3}\.[0-9]{3}\\?/[0-9]{4}-[0-9]{2}",
        valid=ids.valid_cnpj,
    ),
    cued(e.BR_CNPJ, _digits(14), e.CNPJ_CUE, "(?i:cnpj)", ids.valid_cnpj),
    cued(
        e.IN_AADHAAR,
        _digits(4, 4, 4, sep="[ -]?"),
        e.AADHAAR_CUE,
        "(?i:aadhaa?r|uidai)",
        ids.valid_aadhaar,
    ),
    plain(
        e.IN_PAN,
        _NOT_ALNUM_BEFORE + "[A-Z]{3}[PCHABGJLFT][A-Z][0-9]{4}[A-Z]" + _NOT_ALNUM_AFTER,
        "[A-Z]{3}[PCHABGJLFT][A-Z][0-9]{4}[A-Z]",
    ),
    plain(
        e.ES_DNI,
        _NOT_ALNUM_BEFORE + r"(?:\d{8}|[XYZ]-?\d{7})-?[A-Z]" + _NOT_ALNUM_AFTER,
        "(?:[0-9]{8}|[XYZ]-?[0-9]{7})-?[A-Z]",
        valid=ids.valid_dni,
    ),
    cued(
        e.DE_TAX_ID,
        _digits(2, 3, 3, 3, sep=" ?"),
        e.STEUER_CUE,
        "(?i:steuer|idnr|tax[ _.-]?id|tin)",
        ids.valid_steuer_id,
    ),
    plain(
        e.FR_NIR,
        # printed in its groups: 1 85 05 78 006 084 36
        ALONE_BEFORE + r"[12378] \d\d \d\d (?:\d\d|2[AB]) \d{3} \d{3} \d\d" + ALONE_AFTER,
        "[12378] [0-9]{2} [0-9]{2} (?:[0-9]{2}|2[AB]) [0-9]{3} [0-9]{3} [0-9]{2}",
        valid=ids.valid_nir,
    ),
    cued(
        e.FR_NIR,
        ALONE_BEFORE + r"[12378]\d{4}(?:\d\d|2[AB])\d{8}" + ALONE_AFTER,
        e.NIR_CUE,
        r"(?i:nir|insee|s(?:e|\xc3\xa9)cu)",
        ids.valid_nir,
    ),
    plain(
        e.IT_FISCAL_CODE,
        _NOT_ALNUM_BEFORE + _CODICE_FISCALE + _NOT_ALNUM_AFTER,
        _CODICE_FISCALE,
        valid=ids.valid_codice_fiscale,
    ),
    cued(e.AU_TFN, _digits(3, 3, 3, sep=" ?"), e.TFN_CUE, "(?i:tfn|tax[ _.-]?file)", ids.valid_tfn),
    cued(
        e.US_BANK_ACCOUNT,
        ALONE_BEFORE + r"\d{8,17}" + ALONE_AFTER,
        e.BANK_CUE,
        "(?i:bank|acct|account[ _.-]?(?:no|num)|routing)",
    ),
    cued(
        e.US_PASSPORT,
        ALONE_BEFORE + r"[A-Z]?\d{8,9}" + ALONE_AFTER,
        e.PASSPORT_CUE,
        "(?i:passport)",
    ),
    cued(
        e.US_DRIVER_LICENSE,
        ALONE_BEFORE + r"[A-Z]{0,2}\d{5,13}" + ALONE_AFTER,
        e.LICENSE_CUE,
        "(?i:driver|licen[cs]e)",
    ),
    cued(
        e.PERSON_NAME,
        _WHOLE_VALUE,
        e.NAME_CUE,
        json_key("name|vorname|prenom|nombre|apellido"),
        v.has_letter,
        keyword=False,
        group=1,
    ),
    cued(
        e.STREET_ADDRESS,
        _WHOLE_VALUE,
        e.ADDRESS_CUE,
        json_key("addr|street|strasse|adresse|direcci|indirizzo"),
        v.has_letter,
        keyword=False,
        group=1,
    ),
)
