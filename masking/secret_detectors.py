"""Detectors of credentials: keys, tokens and passwords, each by its issuer's published format.

Vendor tokens start with a fixed prefix, which is their trigger; an AWS secret access key has
none (40 characters of base64) and is reported only after words that name it. Passwords are
the values of ``password=`` pairs (libpq, JDBC, ADO.NET, environment files, YAML), the last
field of a ``.pgpass`` line and the password of an Oracle JDBC URL.
"""

from __future__ import annotations

import re
import string

from masking import entities as e
from masking import validators as v
from masking.detector import TOKEN_AFTER, Detector, cued, json_key, opening, plain

_SCHEME = string.ascii_letters + string.digits + "+.-"
# "://" (or ":\/\/" in JSON) then no blank, slash or NUL up to an "@".
_AUTHORITY = r":\\?/\\?/[^\x00\t\n\x0b\x0c\r /]*@"
_GITLAB_KINDS = "pat|dt|rt|rtr|ptt|ft|imt|agent|cbt|soat|oas|ffct|sptt"
# The DER of a private key in base64: a SEQUENCE whose length takes two bytes (MII), one
# (MIG) or none (M..C), then the version INTEGER (0, or 1 for SEC 1) and a SEQUENCE
# (PKCS#8), an INTEGER (PKCS#1) or an OCTET STRING (SEC 1).
_DER_KEY_HEAD = (
    r"MII[A-Za-z0-9+/]{3}IBA(?:DA|AK)|MIG[A-Za-z0-9+/]AgE[AB][MAB]|M[A-Za-z0-9+/]{2}CAQ[AE][wE]"
)
# JSON may write "/" as "\/".
_DER_KEY_TRIGGER = _DER_KEY_HEAD.replace("[A-Za-z0-9+/]", r"(?:[A-Za-z0-9+]|\\?/)")
_PASSWORD_KEY = r"passw(?:or)?d|pwd|passphrase"
# The value of a password pair: up to the closing quote after an opening one, else up to a
# blank or a separator of the pair syntaxes (";" ADO.NET, "&" JDBC query, "," lists).
_PAIR_VALUE = (
    r"""(?:"(?=[^"\r\n]+")|'(?=[^'\r\n]+'))?"""
    r"""((?<=")[^"\r\n]+|(?<=')[^'\r\n]+|[^\s;&,"'<>}\]]+)"""
)

SECRET_DETECTORS: tuple[Detector, ...] = (
    Detector(
        e.PRIVATE_KEY,
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r".*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
            re.DOTALL | re.ASCII,
        ),
        "-----BEGIN",
    ),
    plain(
        e.PRIVATE_KEY,
        rf"(?<![A-Za-z0-9+/])(?:{_DER_KEY_HEAD})(?:[A-Za-z0-9+/]|\r?\n){{40,}}={{0,2}}",
        _DER_KEY_TRIGGER,
        valid=v.valid_der_key,
    ),
    # Greedy up to the last "@" before the host: passwords may hold an unescaped "@".
    plain(e.URI_PASSWORD, r"://[^\s:/@]+:([^\s/]+)@[^\s/@]", _AUTHORITY, group=1, back=_SCHEME),
    plain(e.PASSWORD, r"jdbc:oracle:[a-z]+:[^/\s@:]+/([^@\s]+)@", "jdbc:oracle:", group=1),
    plain(
        e.PASSWORD,
        rf"(?i:{_PASSWORD_KEY})['\"]?[ \t]*[=:][ \t]*{_PAIR_VALUE}",
        rf"(?i:{_PASSWORD_KEY})['\"]?[ \t]*[=:]",
        group=1,
        valid=v.not_a_password_placeholder,
    ),
    # host:port:database:user:password, "*" for any of the first four
    plain(
        e.PASSWORD,
        # a colon in a field is escaped: an IPv6 address has too many fields to be a line
        r"(?<!\S)[^:\s#]+:(?:\d{1,5}|\*):[^:\s]+:[^:\s]+:((?:[^:\s\\]|\\.)+)(?!\S)",
        r":(?:[0-9]{1,5}|\*):[^:\x00\n]+:[^:\x00\n]+:",
        group=1,
    ),
    cued(
        e.PASSWORD,
        r"\A\S+\Z",
        rf"(?:{_PASSWORD_KEY})(?![a-z_])",
        json_key(_PASSWORD_KEY),
        v.not_a_password_placeholder,
        keyword=False,
    ),
    plain(
        e.JWT,
        # An unsigned token (alg "none") has an empty third part.
        opening("eyJ", r"[\w-]") + r"[\w-]+\.[\w-]+\.[\w-]*" + TOKEN_AFTER,
        "eyJ",
        valid=v.valid_jwt,
    ),
    plain(
        e.AWS_ACCESS_KEY,
        opening("A[KS]IA", "[A-Za-z0-9]") + r"[A-Z0-9]{16}(?![A-Za-z0-9])",
        "A[KS]IA[A-Z0-9]{4}",
        valid=v.not_placeholder,
    ),
    cued(
        e.AWS_SECRET_KEY,
        r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
        r"secret[ _.-]?access[ _.-]?key|aws[ _.-]?secret",
        r"(?i:secret[ _.-]?access[ _.-]?key|aws[ _.-]?secret)",
        v.random_looking,
    ),
    plain(
        e.AZURE_STORAGE_KEY,
        r"AccountKey=([A-Za-z0-9+/]{86}==)",
        "AccountKey=",
        group=1,
        valid=v.not_placeholder,
    ),
    plain(
        e.GITHUB_TOKEN,
        rf"(?:{opening('gh[pousr]_', '[A-Za-z0-9]')}[A-Za-z0-9]{{36}}"
        rf"|{opening('github_pat_', '[A-Za-z0-9]')}[A-Za-z0-9]{{22}}_[A-Za-z0-9]{{59}})"
        r"(?![A-Za-z0-9])",
        "gh[pousr]_|github_pat_",
        valid=v.not_placeholder,
    ),
    plain(
        e.GITLAB_TOKEN,
        rf"(?:{opening('gl', '[A-Za-z0-9]')}(?:{_GITLAB_KINDS})-"
        rf"|{opening('GR1348941', '[A-Za-z0-9]')})[\w-]{{20,}}" + TOKEN_AFTER,
        f"gl(?:{_GITLAB_KINDS})-|GR1348941",
        valid=v.random_looking,
    ),
    plain(
        e.SLACK_TOKEN,
        rf"(?:{opening('xox[abeprs]-', '[A-Za-z0-9]')}|{opening('xapp-', '[A-Za-z0-9]')})"
        r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+(?![A-Za-z0-9])",
        "xox[abeprs]-|xapp-",
        valid=v.valid_slack,
    ),
    plain(
        e.SLACK_WEBHOOK,
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(T[A-Z0-9]+/[A-Za-z0-9/]+)",
        r"hooks\.slack\.com\\?/",
        group=1,
        valid=v.random_looking,
    ),
    plain(
        e.STRIPE_KEY,
        rf"(?:{opening('[sr]k_(?:live|test)_', '[A-Za-z0-9]')}|{opening('whsec_', '[A-Za-z0-9]')})"
        r"[A-Za-z0-9]{24,}(?![A-Za-z0-9])",
        "[sr]k_(?:live|test)_|whsec_",
        valid=v.random_looking,
    ),
    plain(
        e.SENDGRID_KEY,
        opening(r"SG\.", r"[\w.-]") + r"[\w-]{22}\.[\w-]{43}" + TOKEN_AFTER,
        r"SG\.[A-Za-z0-9_-]",
        valid=v.not_placeholder,
    ),
    plain(
        e.NPM_TOKEN,
        opening("npm_", "[A-Za-z0-9]") + r"[A-Za-z0-9]{36}(?![A-Za-z0-9])",
        "npm_",
        valid=v.random_looking,
    ),
    plain(e.PYPI_TOKEN, r"pypi-AgE[A-Za-z0-9_-]{50,}", "pypi-AgE", valid=v.not_placeholder),
    plain(
        e.OPENAI_KEY,
        opening("sk-", r"[\w-]") + r"[\w-]{20,}" + TOKEN_AFTER,
        "sk-[0-9A-Za-z_-]{20}",
        valid=v.random_looking,
    ),
    plain(
        e.GOOGLE_API_KEY,
        opening("AIza", r"[\w-]") + r"[\w-]{35}" + TOKEN_AFTER,
        "AIza",
        valid=v.not_placeholder,
    ),
)
