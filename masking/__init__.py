"""Schema-less detection and masking of sensitive values in results, in flight.

:func:`mask_text` masks one value (with its column name as context) and names the entities
masked in it; text with nothing sensitive comes back as the very same object after one
prefilter search. :mod:`masking.stream` rewrites PostgreSQL DataRow messages with the same
engine; :func:`masking.config.policy_from_mapping` builds a :class:`MaskingPolicy` from the
configuration file.
"""

from __future__ import annotations

from dataclasses import dataclass

from masking.detect import scanner_for
from masking.entities import ALL_ENTITIES, DEFAULT_ENTITIES, OPT_IN_ENTITIES
from masking.policy import DEFAULT_POLICY, MaskingPolicy
from masking.strategies import Strategy

ENTITIES: tuple[str, ...] = tuple(sorted(ALL_ENTITIES))

__all__ = [
    "DEFAULT_ENTITIES",
    "DEFAULT_POLICY",
    "ENTITIES",
    "OPT_IN_ENTITIES",
    "MaskResult",
    "MaskingPolicy",
    "Strategy",
    "mask_text",
]


@dataclass(frozen=True, slots=True)
class MaskResult:
    """``value`` masked; ``entities`` names each masked span, in text order."""

    value: str
    entities: tuple[str, ...]


def mask_text(
    value: str, *, column: str | None = None, policy: MaskingPolicy = DEFAULT_POLICY
) -> MaskResult:
    """Mask every sensitive span of ``value`` by ``policy``. ``column`` is the name of the
    column the value came from; it is context only (a bare nine-digit SSN needs it)."""
    scanner = scanner_for(policy.entities)
    spans = scanner.find(value, scanner.cued_by(column))
    if not spans:
        return MaskResult(value, ())
    return MaskResult(policy.mask(value, spans), tuple(span.entity for span in spans))
