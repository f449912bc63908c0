"""The layouts of values whose text is not simply their bytes, read into parts and written back.

Binary format: an array is a header (dimensions, a has-NULLs flag, the element type OID, each
dimension's size and lower bound) then its elements, each a 4-byte length (-1: NULL) and its
bytes; a composite is a field count then, per field, its type OID, length and bytes; a range
is a flags byte then its finite bounds, each length and bytes; a multirange a count of such
ranges, each behind its length; a tsvector a count of lexemes, each NUL-terminated text
followed by its positions. Text format: bytea as ``\\x`` and hex digits, or escaped.

Every ``mask_*`` function reads the whole layout before masking any part, so a layout that
does not hold (:class:`Undecodable`) has masked and counted nothing. Each part goes to the
caller's :data:`Part` function with its type OID, which answers with :data:`Masked`.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Callable

_INT32 = struct.Struct("!i")
_UINT32 = struct.Struct("!I")
_UINT16 = struct.Struct("!H")
_ARRAY_HEADER = struct.Struct("!iiI")
_NULL_LENGTH = _INT32.pack(-1)
_HAS_NULLS = _INT32.pack(1)
_MAX_DIMENSIONS = 6  # PostgreSQL's MAXDIM
_TEXT = 25
_UNKNOWN_TYPE = 0  # the bounds of a range of a type jitgate does not know
# Range flags (rangetypes.h): a bound is sent unless the range is empty or that bound is
# infinite (or NULL, which PostgreSQL never sets).
_EMPTY, _LOWER_ABSENT, _UPPER_ABSENT = 0x01, 0x08 | 0x20, 0x10 | 0x40
_BYTEA_ESCAPE = re.compile(rb"\\(\\|[0-3][0-7]{2})")
_BYTEA_PLAIN = frozenset(range(0x20, 0x7F)) - {ord("\\")}


class Undecodable(ValueError):
    """The bytes do not have the layout they were read as."""


class Nulled(enum.Enum):
    """A value to send as SQL NULL."""

    NULL = enum.auto()


NULL = Nulled.NULL
Masked = bytes | Nulled | None
"""What masking makes of a value or part: new bytes, NULL, or ``None`` for unchanged."""
Part = Callable[[int, bytes], Masked]
"""Masks one part of a value, given its type OID and bytes."""
# (type OID, offset of the part's length, start, end) of each part that is not NULL.
_Item = tuple[int, int, int, int]


def splice(payload: bytes | memoryview, edits: list[tuple[int, int, bytes | Nulled]]) -> bytes:
    """``payload`` with each length-prefixed ``(length_at, end, new)`` part replaced (NULL: a
    length of -1 and no bytes), its length rewritten."""
    parts: list[bytes | memoryview] = []
    pos = 0
    for length_at, end, new in edits:
        if new is NULL:
            parts += (payload[pos:length_at], _NULL_LENGTH)
        else:
            parts += (payload[pos:length_at], _INT32.pack(len(new)), new)
        pos = end
    parts.append(payload[pos:])
    return b"".join(parts)


def mask_array(value: bytes, part: Part) -> Masked:
    """A binary array with each element masked by its type; an element masked to NULL stays
    a NULL element."""
    return _mask_array_items(value, _array_items(value), part)


def mask_record(value: bytes, part: Part) -> Masked:
    """A binary composite with each field masked by its type."""
    return _mask_items(value, _record_items(value), part, whole=False)


def mask_range(value: bytes, subtype: int, part: Part) -> Masked:
    """A binary range of ``subtype`` with its bounds masked; NULL if either bound must be."""
    return _mask_items(value, _range_items(value, subtype), part, whole=True)


def mask_multirange(value: bytes, subtype: int, part: Part) -> Masked:
    """A binary multirange of ``subtype`` with each range masked; NULL if any range must be."""
    items = _items(value, 4, _count(value), typed=False)
    bounds = [_range_items(value[start:end], subtype) for _, _, start, end in items]
    edits: list[tuple[int, int, bytes | Nulled]] = []
    for (_, at, start, end), ends in zip(items, bounds, strict=True):
        new = _mask_items(value[start:end], ends, part, whole=True)
        if new is NULL:
            return NULL
        if new is not None:
            edits.append((at, end, new))
    return splice(value, edits) if edits else None


def mask_tsvector(value: bytes, part: Part) -> Masked:
    """A binary tsvector with each lexeme masked as text; NULL if any lexeme must be."""
    lexemes = []
    try:
        pos = 4
        for _ in range(_count(value)):
            nul = value.index(0, pos)
            (positions,) = _UINT16.unpack_from(value, nul + 1)
            lexemes.append((pos, nul))
            pos = nul + 3 + 2 * positions
    except (ValueError, struct.error) as exc:
        raise Undecodable("not a tsvector") from exc
    if pos != len(value):
        raise Undecodable("not a tsvector")
    pieces: list[bytes] = []
    done = 0
    for start, end in lexemes:
        new = part(_TEXT, value[start:end])
        if new is NULL:
            return NULL
        if new is not None:
            pieces += (value[done:start], new)
            done = end
    return b"".join((*pieces, value[done:])) if pieces else None


def mask_undeclared(value: bytes, part: Part) -> Masked:
    """A binary value of a type jitgate does not know (an extension's, an enum, a composite,
    an array or range of such types): text when it is UTF-8 without a NUL (the binary form of
    citext, enums, ltree… is their text; PostgreSQL text never holds a NUL), else an array,
    a composite or a range when its bytes have exactly that layout. Anything else raises
    :class:`Undecodable`."""
    if is_text(value):
        return part(_TEXT, value)
    for read in (_array_items, _record_items):
        try:
            items = read(value)
        except Undecodable:
            continue
        if read is _array_items:
            return _mask_array_items(value, items, part)
        return _mask_items(value, items, part, whole=False)
    return mask_range(value, _UNKNOWN_TYPE, part)


def is_text(value: bytes) -> bool:
    """Whether ``value`` could be PostgreSQL text: UTF-8 without a NUL."""
    if b"\0" in value:
        return False
    if value.isascii():
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def bytea_content(text: bytes) -> bytes:
    """The bytes a bytea value in text format (``\\x`` hex, or escaped) stands for."""
    try:
        if text[:2] == b"\\x":
            return bytes.fromhex(text[2:].decode("ascii"))
        if b"\\" in _BYTEA_ESCAPE.sub(b"", text):
            raise Undecodable("a lone backslash in an escaped bytea")
        return _BYTEA_ESCAPE.sub(_unescape, text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Undecodable("not a bytea in text format") from exc


def bytea_text(content: bytes, like: bytes) -> bytes:
    """``content`` as a bytea in text format, in the form (hex or escape) of ``like``."""
    if like[:2] == b"\\x":
        return b"\\x" + content.hex().encode("ascii")
    return b"".join(
        bytes((b,)) if b in _BYTEA_PLAIN else b"\\\\" if b == 0x5C else b"\\%03o" % b
        for b in content
    )


def _unescape(match: re.Match[bytes]) -> bytes:
    escaped = match.group(1)
    return b"\\" if escaped == b"\\" else bytes((int(escaped, 8),))


def _count(value: bytes) -> int:
    try:
        count: int = _INT32.unpack_from(value, 0)[0]
    except struct.error as exc:
        raise Undecodable("no count") from exc
    # Every part takes at least 4 bytes: a larger count cannot be honest.
    if not 0 <= count <= len(value) // 4:
        raise Undecodable(f"a count of {count}")
    return count


def _items(value: bytes, pos: int, count: int, *, typed: bool, oid: int = 0) -> list[_Item]:
    """The parts from ``pos``: ``count`` of them, each a length and bytes (after its type OID
    when ``typed``), which must end exactly where ``value`` does."""
    items: list[_Item] = []
    try:
        for _ in range(count):
            if typed:
                (oid,) = _UINT32.unpack_from(value, pos)
                pos += 4
            (length,) = _INT32.unpack_from(value, pos)
            if length < -1:
                raise Undecodable(f"a part of length {length}")
            if length >= 0:
                items.append((oid, pos, pos + 4, pos + 4 + length))
            pos += 4 + max(length, 0)
    except struct.error as exc:
        raise Undecodable("truncated") from exc
    if pos != len(value):
        raise Undecodable("parts do not end with the value")
    return items


def _array_items(value: bytes) -> list[_Item]:
    try:
        dimensions, flags, element = _ARRAY_HEADER.unpack_from(value, 0)
        if not 0 <= dimensions <= _MAX_DIMENSIONS or flags not in (0, 1):
            raise Undecodable("not an array header")
        count = 1 if dimensions else 0
        for d in range(dimensions):
            (size,) = _INT32.unpack_from(value, _ARRAY_HEADER.size + 8 * d)
            count *= size if size >= 0 else len(value)  # a negative size fails below
    except struct.error as exc:
        raise Undecodable("truncated array header") from exc
    pos = _ARRAY_HEADER.size + 8 * dimensions
    if count > (len(value) - pos) // 4:
        raise Undecodable(f"an array of {count} elements")
    return _items(value, pos, count, typed=False, oid=element)


def _record_items(value: bytes) -> list[_Item]:
    return _items(value, 4, _count(value), typed=True)


def _range_items(value: bytes, subtype: int) -> list[_Item]:
    if not value:
        raise Undecodable("an empty range")
    flags = value[0]
    if flags & _EMPTY:
        if len(value) != 1:
            raise Undecodable("an empty range with bounds")
        return []
    count = (not flags & _LOWER_ABSENT) + (not flags & _UPPER_ABSENT)
    return _items(value, 1, count, typed=False, oid=subtype)


def _edits(value: bytes, items: list[_Item], part: Part) -> list[tuple[int, int, bytes | Nulled]]:
    edits: list[tuple[int, int, bytes | Nulled]] = []
    for oid, length_at, start, end in items:
        new = part(oid, value[start:end])
        if new is not None:
            edits.append((length_at, end, new))
    return edits


def _mask_items(value: bytes, items: list[_Item], part: Part, *, whole: bool) -> Masked:
    """``value`` with its parts masked; ``whole``: a part masked to NULL makes it all NULL."""
    edits = _edits(value, items, part)
    if whole and any(new is NULL for _, _, new in edits):
        return NULL
    return splice(value, edits) if edits else None


def _mask_array_items(value: bytes, items: list[_Item], part: Part) -> Masked:
    edits = _edits(value, items, part)
    if not edits:
        return None
    masked = splice(value, edits)
    if any(new is NULL for _, _, new in edits):
        # Clients read NULL elements only when the header says there are some.
        masked = masked[:4] + _HAS_NULLS + masked[8:]
    return masked
