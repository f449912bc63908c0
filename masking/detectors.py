"""The detector table: for each entity, a loose regex that finds candidates, a validator that
keeps the well-formed ones, and a *trigger* that every match implies (:mod:`masking.detector`).
The detectors themselves are grouped by what they find: credentials
(:mod:`masking.secret_detectors`), personal data with a shape of its own
(:mod:`masking.pii_detectors`), and national and health identifiers, names and addresses
(:mod:`masking.id_detectors`).

A trigger is an RE2 pattern over the UTF-8 bytes of a value: when the detector reports a span,
the trigger matches somewhere in the value's bytes. Triggers are what the in-flight masker
searches for, all at once, before any Python runs; they must never be narrower than their
detector (``tests/test_masking_stream.py`` checks this over generated rows). They match no
NUL byte, except the one that may end a card number's right context, and the length of every
message under 16 MiB starts with one: a match never runs past the first length byte of the
next wire message, so it cannot hide that message's own matches.

Detectors with a ``cue`` report a match only when the cue is found in the column name, the
JSON key or (unless ``keyword`` is off) the :data:`CUE_WINDOW` characters before it; their
trigger is the cue's words as the bytes of a keyword or a JSON key show them. (A column name
is not in the bytes: a plan with a cued column sends every row to the masker.)

Triggers are kept short and free of ``\b``: RE2 runs them all as one DFA, and long counted
repetitions or word boundaries multiply its states until its cache thrashes (3× slower).
Where two detectors claim overlapping text, the one earlier in :data:`DETECTORS` wins (a
password inside a connection URI is not also read as an e-mail address).
"""

from __future__ import annotations

from masking.detector import Detector
from masking.id_detectors import ID_DETECTORS
from masking.pii_detectors import PII_DETECTORS
from masking.secret_detectors import SECRET_DETECTORS

__all__ = ["CUE_WINDOW", "DETECTORS", "Detector"]

CUE_WINDOW = 24

# Identifiers before phones and cards: "005.702.335-26" is a CPF, not a number dialled
# abroad, and a twelve-digit Aadhaar under its name is not read as a Maestro card.
DETECTORS: tuple[Detector, ...] = (*SECRET_DETECTORS, *ID_DETECTORS, *PII_DETECTORS)
