"""What a detector is, and the pattern pieces the detector tables share.

A detector is a loose regex that finds candidates, a validator that keeps the well-formed
ones, and a *trigger*: an RE2 pattern over the UTF-8 bytes of a value that matches wherever
the detector could report a span (see :mod:`masking.detectors` for the rules triggers obey).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from masking import validators as v


@dataclass(frozen=True, slots=True)
class Detector:
    """``pattern`` finds candidates; ``group`` is the sensitive part of a match; ``valid``
    confirms it, or ``extent`` gives the length of the valid value at the start of the match
    (0 for none) where the regex may take in trailing text. With ``back`` the regex starts at
    a literal (``@``, ``://``), which Python's regex engine finds fast, and the value extends
    backwards over the characters of ``back`` (at least one): the local part of an address,
    the scheme of a URI; with ``back_letters`` over letters and digits of any script too. A
    ``cue`` is required context; ``keyword`` says whether words in the text itself may give
    it."""

    entity: str
    pattern: re.Pattern[str]
    trigger: str
    valid: Callable[[str], bool] = v.always
    group: int = 0
    extent: Callable[[str], int] | None = None
    cue: re.Pattern[str] | None = None
    keyword: bool = False
    back: str = ""
    back_letters: bool = False


def plain(entity: str, pattern: str, trigger: str, **kwargs: object) -> Detector:
    """A detector that needs no context; ``pattern`` is read as ASCII."""
    return Detector(entity, re.compile(pattern, re.ASCII), trigger, **kwargs)  # type: ignore[arg-type]


def cued(
    entity: str,
    pattern: str,
    cue: str,
    trigger: str,
    valid: Callable[[str], bool] = v.always,
    *,
    keyword: bool = True,
    group: int = 0,
) -> Detector:
    """A detector that reports only where ``cue`` names its value: in the column name, the
    JSON key or (with ``keyword``) the words just before it."""
    return Detector(
        entity,
        re.compile(pattern, re.ASCII),
        trigger,
        valid,
        group=group,
        cue=re.compile(cue, re.ASCII | re.IGNORECASE),
        keyword=keyword,
    )


def opening(head: str, not_before: str) -> str:
    """``head`` (fixed width) not preceded by a ``not_before`` character. The lookbehind comes
    after ``head`` so that Python's regex engine searches for ``head`` itself, several times
    faster than trying a leading lookbehind at every position."""
    return f"{head}(?<!{not_before}{head})"


def json_key(words: str) -> str:
    """A trigger for a JSON key holding one of ``words`` (case-insensitive): the word, the
    rest of the key, its closing quote."""
    return rf'(?i:{words})(?:[^"\\\x00]|\\[^\x00])*"'


TOKEN_AFTER = r"(?![\w-])"
ALONE_BEFORE = r"(?<![\w.-])"
ALONE_AFTER = r"(?![\w-]|\.\d)"
