"""What a masking policy says: which entities are looked for and how each one is replaced."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import get_args

from masking.detect import Span
from masking.entities import ALL_ENTITIES, CREDIT_CARD, DEFAULT_ENTITIES
from masking.strategies import Strategy, replacer

DEFAULT_STRATEGIES: Mapping[str, Strategy] = MappingProxyType({CREDIT_CARD: "partial"})


@dataclass(frozen=True, slots=True)
class MaskingPolicy:
    """Which strategy masks each entity: ``strategies[entity]``, else ``default``.

    ``entities`` are the entities looked for: :data:`~masking.entities.DEFAULT_ENTITIES`
    unless the policy says otherwise; the opt-in ones are added here. ``hash_key`` is
    required as soon as any strategy is ``hash``; a policy that names an unknown entity or
    strategy is refused when it is built (:class:`ValueError`).
    """

    strategies: Mapping[str, Strategy] = field(default_factory=lambda: DEFAULT_STRATEGIES)
    default: Strategy = "redact"
    hash_key: bytes | None = None
    entities: frozenset[str] = DEFAULT_ENTITIES
    _replacers: Mapping[str, Callable[[str], str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A private read-only copy: the caller's dict may change, the policy may not.
        object.__setattr__(self, "strategies", MappingProxyType(dict(self.strategies)))
        object.__setattr__(self, "entities", frozenset(self.entities))
        known = get_args(Strategy)
        unknown = sorted(self.entities - ALL_ENTITIES)
        if unknown:
            raise ValueError(f"masking policy: unknown entity {unknown[0]!r}")
        for entity, strategy in self.strategies.items():
            if entity not in ALL_ENTITIES:
                raise ValueError(f"masking policy: unknown entity {entity!r}")
            if strategy not in known:
                raise ValueError(f"masking policy: unknown strategy {strategy!r} for {entity}")
        if self.default not in known:
            raise ValueError(f"masking policy: unknown default strategy {self.default!r}")
        uses_hash = self.default == "hash" or "hash" in self.strategies.values()
        if uses_hash and not self.hash_key:
            raise ValueError("masking policy: the hash strategy needs hash_key")
        replacers = {e: replacer(self.strategy_for(e), e, self.hash_key) for e in ALL_ENTITIES}
        object.__setattr__(self, "_replacers", replacers)

    def strategy_for(self, entity: str) -> Strategy:
        return self.strategies.get(entity, self.default)

    def mask(self, text: str, spans: Iterable[Span]) -> str:
        """``text`` with each of ``spans`` (in text order, not overlapping) replaced by its
        entity's strategy."""
        replacers = self._replacers
        parts: list[str] = []
        pos = 0
        for start, end, entity in spans:
            parts += (text[pos:start], replacers[entity](text[start:end]))
            pos = end
        parts.append(text[pos:])
        return "".join(parts)


DEFAULT_POLICY = MaskingPolicy()
