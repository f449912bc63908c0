"""Schema-less detection and masking of sensitive values in results, in flight.

:func:`mask_text` is the whole public surface: give it a value (and the column name, as
context), get back the masked value and the entities masked in it. Text with nothing
sensitive comes back as the very same object after one prefilter search.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import get_args

from masking.detect import CREDIT_CARD, ENTITIES, find_entities
from masking.strategies import Strategy, apply

__all__ = [
    "DEFAULT_POLICY",
    "ENTITIES",
    "MaskResult",
    "MaskingPolicy",
    "Strategy",
    "mask_text",
]


def _default_strategies() -> Mapping[str, Strategy]:
    return {CREDIT_CARD: "partial"}


@dataclass(frozen=True, slots=True)
class MaskingPolicy:
    """Which strategy masks each entity: ``strategies[entity]``, else ``default``.

    ``hash_key`` is required as soon as any strategy is ``hash``; a policy that names an
    unknown entity or strategy is refused when it is built.
    """

    strategies: Mapping[str, Strategy] = field(default_factory=_default_strategies)
    default: Strategy = "redact"
    hash_key: bytes | None = None

    def __post_init__(self) -> None:
        # A private read-only copy: the caller's dict may change, the policy may not.
        object.__setattr__(self, "strategies", MappingProxyType(dict(self.strategies)))
        known = get_args(Strategy)
        for entity, strategy in self.strategies.items():
            if entity not in ENTITIES:
                raise ValueError(f"masking policy: unknown entity {entity!r}")
            if strategy not in known:
                raise ValueError(f"masking policy: unknown strategy {strategy!r} for {entity}")
        if self.default not in known:
            raise ValueError(f"masking policy: unknown default strategy {self.default!r}")
        uses_hash = self.default == "hash" or "hash" in self.strategies.values()
        if uses_hash and not self.hash_key:
            raise ValueError("masking policy: the hash strategy needs hash_key")

    def strategy_for(self, entity: str) -> Strategy:
        return self.strategies.get(entity, self.default)


DEFAULT_POLICY = MaskingPolicy()


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
    spans = find_entities(value, column)
    if not spans:
        return MaskResult(value, ())
    parts: list[str] = []
    pos = 0
    for span in spans:
        parts.append(value[pos : span.start])
        original = value[span.start : span.end]
        parts.append(
            apply(policy.strategy_for(span.entity), span.entity, original, policy.hash_key)
        )
        pos = span.end
    parts.append(value[pos:])
    return MaskResult("".join(parts), tuple(span.entity for span in spans))
