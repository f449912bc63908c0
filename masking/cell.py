"""One value masked exactly as the gateway masks a cell of a result: what ``jitgate mask`` shows.

:class:`CellMasker` builds the RowDescription the gateway would read for a column of that
name and type (text format) and a DataRow holding the value, both with
:mod:`proxy.messages`, and drives a :class:`~masking.stream.RowMasker` the way the relay
does (:meth:`~masking.stream.RowMasker.blank`, :meth:`~masking.stream.RowMasker.candidates`
and :meth:`~masking.stream.RowMasker.every_row`, then
:meth:`~masking.stream.RowMasker.mask_row`). So the type matters as it does in flight: json
and jsonb values are walked as JSON and stay JSON, an int8 (or an int8[]) holding a card
becomes NULL, a bytea (``\\x`` hex or escaped) is masked in its content and stays in its
form, arrays, composites and ranges (``{a@b.co}``, ``(1,a@b.co)``) and contrib types such
as citext are read as text, uuid or timestamp values are never read; the column name is
context as a RowDescription's column name is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from masking.entities import NULLED
from masking.pgtypes import type_oid
from masking.plan import ColumnPlan
from masking.policy import DEFAULT_POLICY, MaskingPolicy
from masking.stream import RowMasker
from proxy import messages as m
from proxy.codec import decode_backend

# What PostgreSQL names a column that has no name of its own (SELECT 'x').
ANONYMOUS_COLUMN = "?column?"
DEFAULT_TYPE = "text"


@dataclass(frozen=True, slots=True)
class MaskedCell:
    """``value`` as the client receives it (``None``: SQL NULL, for a type that cannot hold
    a mask); ``entities`` names each value masked, once per value, grouped by entity in the
    order each was first met."""

    value: str | None
    entities: tuple[str, ...]


class CellMasker:
    """Masks single values by one policy, with one :class:`~masking.stream.RowMasker` as a
    session has. Not shared between threads."""

    def __init__(self, policy: MaskingPolicy = DEFAULT_POLICY) -> None:
        self._masker = RowMasker(policy)
        self._last: tuple[str, int, ColumnPlan] | None = None

    def mask(
        self, value: str, column: str | None = None, type_name: str | None = None
    ) -> MaskedCell:
        """``value`` in text format in a column named ``column`` (unnamed: ``?column?``) of
        PostgreSQL type ``type_name`` (default ``text``). An unknown type name raises
        :class:`ValueError` naming it; a value that is not valid Unicode text (a lone
        surrogate) raises :class:`UnicodeEncodeError`."""
        plan = self.plan(column, type_name)
        cell = value.encode("utf-8")
        wire = m.DataRow((cell,)).encode()
        masker = self._masker
        if masker.blank(plan) or not (masker.candidates(wire) or masker.every_row(plan)):
            return MaskedCell(value, ())
        body = masker.mask_row(wire[5:], plan)
        counts = masker.take_counts()
        if body is None:
            return MaskedCell(value, ())
        out = cast(m.DataRow, decode_backend(m.DATA_ROW, body)).values[0]
        entities = tuple(e for e, n in counts.items() if e != NULLED for _ in range(n))
        return MaskedCell(None if out is None else out.decode("utf-8"), entities)

    def plan(self, column: str | None, type_name: str | None) -> ColumnPlan:
        """The plan the gateway builds from the RowDescription of one such column."""
        name = ANONYMOUS_COLUMN if column is None else column
        oid = type_oid(DEFAULT_TYPE if type_name is None else type_name)
        # The same plan object for a run of values of one column, as for the rows of a result.
        if self._last is not None and self._last[:2] == (name, oid):
            return self._last[2]
        field = m.FieldDescription(name, 0, 1, oid, -1, -1, 0)
        plan = ColumnPlan.from_row_description(m.RowDescription((field,)).encode()[5:])
        self._last = (name, oid, plan)
        return plan


def mask_value(
    value: str,
    column: str | None = None,
    type_name: str | None = None,
    policy: MaskingPolicy = DEFAULT_POLICY,
) -> MaskedCell:
    """:meth:`CellMasker.mask` with a masker of its own: ``value`` masked as the gateway masks
    a cell of column ``column`` of type ``type_name`` under ``policy``."""
    return CellMasker(policy).mask(value, column, type_name)
