"""Validators of national and health identifiers, each by the rules its issuer publishes.

Each takes the candidate as the detector's regex matched it (separators included) and
answers ``True`` only for a well-formed identifier: a check digit or letter where the
identifier has one, otherwise its structure (ranges, forbidden letters).
"""

from __future__ import annotations

from masking.validators import luhn_ok

_SEPARATORS = str.maketrans("", "", " .-/")


def _compact(candidate: str) -> str:
    return candidate.translate(_SEPARATORS)


def valid_itin(candidate: str) -> bool:
    """IRS: nine digits starting with 9, the fourth and fifth in 50–65, 70–88, 90–92 or
    94–99."""
    digits = _compact(candidate)
    if len(digits) != 9 or not digits.isdigit() or digits[0] != "9":
        return False
    group = int(digits[3:5])
    return 50 <= group <= 65 or 70 <= group <= 88 or 90 <= group <= 92 or group >= 94


def valid_mbi(candidate: str) -> bool:
    """CMS Medicare Beneficiary Identifier: the regex holds the positions; dashes after the
    fourth and seventh character, both or neither."""
    return candidate.count("-") in (0, 2)


def valid_npi(candidate: str) -> bool:
    """CMS National Provider Identifier: ten digits starting with 1 or 2, Luhn over the
    number prefixed with 80840 (the card issuer prefix of US health)."""
    return len(candidate) == 10 and candidate[0] in "12" and luhn_ok("80840" + candidate)


def valid_dea(candidate: str) -> bool:
    """DEA registration: a registrant letter, a letter (or 9), seven digits whose last is
    the sum of the odd digits plus twice the sum of the even ones, modulo 10."""
    d = [ord(ch) - 48 for ch in candidate[2:]]
    return (
        candidate[0] in "ABCDEFGHJKLMPRSTUX"
        and (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]
    )


def valid_sin(candidate: str) -> bool:
    """Canadian Social Insurance Number: nine digits, Luhn, not starting with 0 or 8."""
    digits = _compact(candidate)
    return len(digits) == 9 and digits[0] not in "08" and luhn_ok(digits)


def valid_cpf(candidate: str) -> bool:
    """Brazilian CPF: eleven digits, not all alike, and two mod-11 check digits."""
    d = [ord(ch) - 48 for ch in _compact(candidate)]
    if len(d) != 11 or len(set(d)) == 1:
        return False
    for n in (9, 10):
        total = sum(digit * (n + 1 - i) for i, digit in enumerate(d[:n]))
        if total * 10 % 11 % 10 != d[n]:
            return False
    return True


_CNPJ_WEIGHTS = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)


def valid_cnpj(candidate: str) -> bool:
    """Brazilian CNPJ: fourteen digits, not all alike, and two mod-11 check digits."""
    d = [ord(ch) - 48 for ch in _compact(candidate)]
    if len(d) != 14 or len(set(d)) == 1:
        return False
    for n in (12, 13):
        remainder = sum(x * w for x, w in zip(d[:n], _CNPJ_WEIGHTS[13 - n :], strict=True)) % 11
        if (0 if remainder < 2 else 11 - remainder) != d[n]:
            return False
    return True


_VERHOEFF_D = (
    "0123456789", "1234067895", "2340178956", "3401289567", "4012395678",
    "5987604321", "6598710432", "7659821043", "8765932104", "9876543210",
)  # fmt: skip
_VERHOEFF_P = (
    "0123456789", "1576283094", "5803796142", "8916043527", "9453126870",
    "4286573901", "2793806415", "7046913258",
)  # fmt: skip


def valid_aadhaar(candidate: str) -> bool:
    """UIDAI Aadhaar: twelve digits, the first 2–9, the Verhoeff check."""
    digits = _compact(candidate)
    if len(digits) != 12 or digits[0] in "01":
        return False
    check = 0
    for i, ch in enumerate(reversed(digits)):
        check = int(_VERHOEFF_D[check][int(_VERHOEFF_P[i % 8][int(ch)])])
    return check == 0


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def valid_dni(candidate: str) -> bool:
    """Spanish DNI (eight digits) or NIE (X, Y or Z and seven digits) and the letter of the
    number modulo 23."""
    compact = _compact(candidate).upper()
    number = compact[:-1].replace("X", "0", 1).replace("Y", "1", 1).replace("Z", "2", 1)
    return number.isdigit() and _DNI_LETTERS[int(number) % 23] == compact[-1]


def valid_steuer_id(candidate: str) -> bool:
    """German Steuerliche Identifikationsnummer: eleven digits, the first not 0; in the
    first ten one digit occurs twice or three times; ISO 7064 MOD 11,10 check digit."""
    digits = _compact(candidate)
    if len(digits) != 11 or digits[0] == "0":
        return False
    counts = sorted((digits[:10].count(d) for d in set(digits[:10])), reverse=True)
    if counts[0] not in (2, 3) or counts[1] != 1:
        return False
    product = 10
    for ch in digits[:10]:
        total = (int(ch) + product) % 10 or 10
        product = total * 2 % 11
    return (11 - product) % 10 == int(digits[10])


def valid_nir(candidate: str) -> bool:
    """French NIR (numéro de sécurité sociale): sex 1, 2, 3, 7 or 8, month 01–12 (or 20–42,
    50–99 when unknown), and the key 97 minus the first thirteen digits modulo 97 (Corsica's
    2A and 2B read as 19 and 18)."""
    compact = _compact(candidate).upper()
    if len(compact) != 15 or compact[0] not in "12378":
        return False
    body = compact[:13].replace("2A", "19", 1).replace("2B", "18", 1)
    if not (body.isdigit() and compact[13:].isdigit()):
        return False
    month = int(body[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or month >= 50):
        return False
    return 97 - int(body) % 97 == int(compact[13:])


_CF_ODD = dict(zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", (
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3,
    6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
), strict=True))  # fmt: skip


def valid_codice_fiscale(candidate: str) -> bool:
    """Italian codice fiscale: the check letter from the odd and even position tables."""
    total = 0
    for i, ch in enumerate(candidate[:15]):
        if i % 2 == 0:
            total += _CF_ODD[ch]
        else:
            total += ord(ch) - (48 if ch.isdigit() else 65)
    return chr(65 + total % 26) == candidate[15]


def valid_tfn(candidate: str) -> bool:
    """Australian Tax File Number: nine digits (eight for older ones) whose weighted sum is
    a multiple of 11."""
    digits = _compact(candidate)
    weights = {9: (1, 4, 3, 7, 5, 8, 6, 9, 10), 8: (10, 7, 8, 4, 6, 3, 5, 1)}.get(len(digits))
    if weights is None or not digits.isdigit():
        return False
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11 == 0
