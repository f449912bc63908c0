"""Bound parameter values as text, for approval cards: what an approver must see to know
what an extended-protocol statement will do."""

from __future__ import annotations

import struct
import uuid

from proxy import messages as m
from proxy.codec import decode_backend, decode_frontend

_TEXT_TYPES = frozenset((25, 1043, 1042, 19, 114, 142, 705))
_INTS = {21: "!h", 23: "!i", 20: "!q", 26: "!I"}
_FLOATS = {700: "!f", 701: "!d"}


class ParameterTypes:
    """Remembers the parameter types the target reports for a described statement (a
    capture in the relay's sense: it sees the Describe's responses and hides none)."""

    __slots__ = ("type_oids",)

    def __init__(self) -> None:
        self.type_oids: tuple[int, ...] = ()

    def see(self, type_code: int, buf: bytes, start: int, end: int) -> bool:
        if type_code == m.PARAMETER_DESCRIPTION:
            description = decode_backend(type_code, buf[start:end])
            assert isinstance(description, m.ParameterDescription)
            self.type_oids = description.type_oids
        return False


def bound_values(
    buf: bytes, start: int, end: int, type_oids: tuple[int, ...]
) -> tuple[str | None, ...]:
    """The values of the Bind message at ``buf[start:end]``, as text."""
    bind = decode_frontend(m.BIND, buf[start:end])
    assert isinstance(bind, m.Bind)
    formats = bind.param_formats
    values: list[str | None] = []
    for i, value in enumerate(bind.params):
        binary = (formats[i] if len(formats) > 1 else formats[0] if formats else 0) == 1
        oid = type_oids[i] if i < len(type_oids) else 0
        values.append(None if value is None else render(value, oid) if binary else _text(value))
    return tuple(values)


def render(value: bytes, oid: int) -> str:
    """A binary-format value of type ``oid`` as text; unknown types (0: the client named
    none) in hex."""
    try:
        if oid in _TEXT_TYPES:
            return _text(value)
        if oid in _INTS:
            return str(struct.unpack(_INTS[oid], value)[0])
        if oid in _FLOATS:
            return repr(struct.unpack(_FLOATS[oid], value)[0])
        if oid == 16:
            return "true" if value == b"\x01" else "false"
        if oid == 2950:
            return str(uuid.UUID(bytes=value))
        if oid == 3802 and value[:1] == b"\x01":
            return _text(value[1:])
    except (struct.error, ValueError):
        pass
    return "\\x" + value.hex()


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")
