"""Schema-less detection and masking of sensitive values in results, in flight.

:func:`mask_text` masks one value (with its column name as context) and names the entities
masked in it; text with nothing sensitive comes back as the very same object after one
prefilter search; :func:`mask_texts` masks many values with one search over all of them.
:mod:`masking.stream` rewrites PostgreSQL DataRow messages with the same
engine; :func:`masking.config.policy_from_mapping` builds a :class:`MaskingPolicy` from the
configuration file.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

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
    "mask_texts",
    "sensitive_in",
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


def mask_texts(values: Sequence[str], *, policy: MaskingPolicy = DEFAULT_POLICY) -> list[str]:
    """``[mask_text(v, policy=policy).value for v in values]``, with one prefilter search
    over all of them instead of one per value: the values are joined with NULs, and only
    those holding a match go through :func:`mask_text` (where each value starts is worked
    out only when one does).

    Sound because no trigger starts at a NUL or reads what precedes its match, and each
    trigger alternative that ends a value (``$``) has a twin that takes in a following NUL;
    a search resumes at the start of the value after the one it hit, so a match running
    over a NUL hides nothing."""
    scanner = scanner_for(policy.entities)
    masked = list(values)
    joined = "\0".join(values).encode("utf-8", "surrogatepass") + b"\0"
    first, size = scanner.first_match, len(joined)
    hit = first(joined, 0) if values else -1
    if hit < 0:
        return masked
    ends = list(accumulate(len(v.encode("utf-8", "surrogatepass")) + 1 for v in values))
    while hit >= 0:
        index = bisect_right(ends, hit)
        masked[index] = mask_text(values[index], policy=policy).value
        pos = ends[index]
        hit = first(joined, pos) if pos < size else -1
    return masked


def sensitive_in(joined: bytes, *, policy: MaskingPolicy = DEFAULT_POLICY) -> bool:
    """Whether :func:`mask_texts` could mask anything in the values ``joined`` holds (as
    valid UTF-8, each followed by a NUL): the one prefilter search it starts with."""
    return scanner_for(policy.entities).first_match(joined, 0) >= 0
