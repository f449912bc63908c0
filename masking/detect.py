"""The detection engine: a :class:`Scanner` compiled for one set of enabled entities.

A scanner answers three questions, cheapest first. :attr:`Scanner.prefilter` is one RE2
search over raw bytes (a whole socket read of DataRows) whose matches are the only places
anything can be found; :attr:`Scanner.triggered` says which detectors a value's bytes could
set off; :meth:`Scanner.find` runs just those detectors' Python regexes and validators.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from typing import NamedTuple

import re2

from masking.detectors import CUE_WINDOW, DETECTORS, Detector

# A JSON string may spell any character as \\uXXXX; the detectors see the decoded text, so an
# escaped printable ASCII character must send the value to them as well.
_JSON_ESCAPE = r"\\u00[2-7][0-9A-Fa-f]"
_NAME_CACHE = 4096
_UNANCHORED = re2._Anchor.UNANCHORED
# How far back a value may extend from its literal: the longest e-mail local part is 64.
_BACK_LIMIT = 256
# RE2's default budget (8 MiB) holds too few DFA states for all the triggers at once: on rows
# of random tokens the cache was flushed over and over and every search ran 4× slower. The
# memory is taken only as states are built.
_DFA_MEMORY = 32 << 20


def _byte_options() -> re2.Options:
    options = re2.Options()
    # Latin-1: every byte is one character, so patterns see raw bytes whatever the encoding.
    options.encoding = re2.Options.Encoding.LATIN1
    options.never_capture = True
    options.max_mem = _DFA_MEMORY
    return options


class Span(NamedTuple):
    """``text[start:end]`` is a value of ``entity``."""

    start: int
    end: int
    entity: str


NO_CUES: frozenset[int] = frozenset()
# A NamedTuple's own constructor is a Python function; tuple.__new__ builds the same Span in C,
# in half the time (a masked row holds a span per value found).
_new_span = functools.partial(tuple.__new__, Span)


class Scanner:
    """The detectors of ``entities`` (in :data:`~masking.detectors.DETECTORS` order), compiled.

    Indices into :attr:`detectors` name detectors in the answers of :attr:`triggered` and
    :meth:`cued_by`. A scanner is immutable and shared; get one from :func:`scanner_for`.
    """

    def __init__(self, entities: Collection[str]) -> None:
        self.detectors: tuple[Detector, ...] = tuple(d for d in DETECTORS if d.entity in entities)
        options = _byte_options()
        triggers = re2.Set.SearchSet(options)
        for detector in self.detectors:
            triggers.Add(detector.trigger.encode())
        triggers.Compile()
        self.triggered: Callable[[bytes | bytearray | memoryview], list[int]] = triggers._set.Match
        """The detectors whose trigger occurs in ``data`` (UTF-8 bytes of a value), ``[]`` for
        none: the compiled set itself, without the Python wrapper's call, as with
        :attr:`prefilter` below."""
        alternatives = dict.fromkeys(d.trigger for d in self.detectors)
        pattern = "|".join([*alternatives, _JSON_ESCAPE])
        self.prefilter = re2.compile(pattern.encode(), options)
        """Matches in any stretch of bytes that holds something :meth:`find` would report."""
        # The compiled RE2 object under the Python wrapper: its Match() answers spans without
        # building a generator and a match object per call, a third of the cost per match.
        self._match = self.prefilter._regexp.Match
        self._cued = tuple((i, d.cue) for i, d in enumerate(self.detectors) if d.cue)
        # What find() reads of each detector, unpacked at once rather than by attribute.
        self._plans = tuple(
            (d.entity, d.pattern.search, d.valid, d.group, d.extent, d.cue, d.keyword, d.back,
             d.back_letters)
            for d in self.detectors
        )  # fmt: skip
        self.cued_by = functools.lru_cache(maxsize=_NAME_CACHE)(self._cued_by)

    def _cued_by(self, name: str | None) -> frozenset[int]:
        """The cued detectors that a column name or JSON key ``name`` switches on."""
        if not name:
            return NO_CUES
        return frozenset(i for i, cue in self._cued if cue.search(name))

    def first_match(self, data: bytes | bytearray | memoryview, pos: int = 0) -> int:
        """Where the first :attr:`prefilter` match at or after ``pos`` starts, or -1."""
        start: int = self._match(_UNANCHORED, data, pos, len(data))[0][0]
        return start

    def match_starts(self, data: bytes | bytearray | memoryview) -> list[int]:
        """Where the first :attr:`prefilter` match of each NUL-free stretch of ``data`` starts,
        in order. In wire messages that is at least one offset in every DataRow holding a
        match: the first length byte of a DataRow (under 16 MiB) is a NUL that no earlier
        match takes in, so no skip passes it: a match takes in a NUL only as the end of a
        card number's right context, after a digit, blank, dash or lowercase letter
        (:mod:`masking.detectors`), and this one follows the message type ``D``. The rest
        of a value then costs one ``bytes.find``, where each further match in it (a note
        with an e-mail, a card and a phone) would cost an RE2 call."""
        if isinstance(data, memoryview):
            data = data.tobytes()  # for find(), which a memoryview lacks
        starts: list[int] = []
        match, find, end, pos = self._match, data.find, len(data), 0
        while True:
            start, stop = match(_UNANCHORED, data, pos, end)[0]
            if start < 0:
                return starts
            starts.append(start)
            pos = find(b"\0", stop if stop > start else start + 1)
            if pos < 0:
                return starts

    def find(
        self, text: str, cues: frozenset[int] = NO_CUES, hits: Sequence[int] | None = None
    ) -> list[Span]:
        """Non-overlapping sensitive spans of ``text`` in text order. ``cues`` are the detectors
        its column name or JSON key switches on (:meth:`cued_by`); ``hits`` the answer of
        :attr:`triggered` for its bytes when the caller already has it."""
        if hits is None:
            hits = self.triggered(text.encode("utf-8", "surrogatepass"))
        if cues:
            chosen: Sequence[int] = sorted(cues.union(hits))
        else:
            chosen = hits if len(hits) < 2 else sorted(hits)
        taken: list[Span] = []
        for index in chosen:
            (entity, search, valid, group, extent, cue, keyword_ok, back, back_letters) = (
                self._plans[index]
            )
            keyword = None
            if cue is not None and index not in cues:
                if not keyword_ok:
                    continue
                keyword = cue
            # Inline, and search() rather than finditer(): a masked value runs a few detectors
            # of a match or two each, where the iterator and a call per detector cost a tenth.
            match = search(text)
            while match is not None:
                at, stop = match.span()
                start, end = match.span(group) if group else (at, stop)
                # The next match first, so that each rejection below can just continue.
                match = search(text, stop if stop > at else at + 1)
                if back:
                    head = text[max(0, at - _BACK_LIMIT) : at]
                    run = len(head) - len(head.rstrip(back))
                    if back_letters and run < len(head) and not head[-run - 1].isascii():
                        run = _back_over_letters(head, back)
                    if not run:
                        continue
                    if not group:
                        start -= run
                if (
                    keyword is not None
                    and keyword.search(text, max(0, start - CUE_WINDOW), start) is None
                ):
                    continue
                if extent is not None:
                    end = start + extent(text[start:end])
                    if end == start:
                        continue
                elif not valid(text[start:end]):
                    continue
                for other in taken:
                    if start < other[1] and other[0] < end:
                        break
                else:
                    taken.append(_new_span((start, end, entity)))
        taken.sort()
        return taken


def _back_over_letters(head: str, back: str) -> int:
    """How far a value extends back from the end of ``head`` over the characters of ``back``
    and letters and digits of any script (a local part such as ``zoë.müller``)."""
    end = len(head)
    start = end
    while start and (head[start - 1] in back or head[start - 1].isalnum()):
        start -= 1
    return end - start


@functools.lru_cache(maxsize=16)
def scanner_for(entities: frozenset[str]) -> Scanner:
    """The shared scanner of an entity set (policies with the same set share one)."""
    return Scanner(entities)
