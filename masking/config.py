"""Building a :class:`~masking.policy.MaskingPolicy` from the configuration file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import cast, get_args

from jitgate.errors import ConfigError
from masking.entities import ALL_ENTITIES, DEFAULT_ENTITIES
from masking.policy import DEFAULT_STRATEGIES, MaskingPolicy
from masking.strategies import Strategy

MIN_HASH_KEY_BYTES = 16
_KEYS = ("default", "strategies", "entities", "hash_key_env")
_STRATEGIES: tuple[str, ...] = get_args(Strategy)


def policy_from_mapping(raw: Mapping[str, object], key: str) -> MaskingPolicy:
    """The policy described by ``raw``, the mapping found at dotted path ``key``::

        default: redact              # redact | partial | hash; for entities not listed below
        strategies:                  # per entity; merged over the built-in CREDIT_CARD: partial
          EMAIL: hash
        entities:
          enable: [IP_ADDRESS]       # opt-in entities to add to the default set
          disable: [PHONE]           # entities not to look for
        hash_key_env: JITGATE_MASK_KEY   # environment variable holding the HMAC key

    Every key is optional; an empty mapping is the default policy. The hash key is read
    from the environment only (at least 16 bytes), and is required as soon as any strategy
    is ``hash``. A problem raises :class:`~jitgate.errors.ConfigError` naming the exact key,
    e.g. ``masking.strategies.EMAIL`` or ``masking.entities.enable[1]``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(key, "expected a mapping")
    for name in raw:
        if name not in _KEYS:
            raise ConfigError(f"{key}.{name}", f"unknown key; expected one of {', '.join(_KEYS)}")
    default = _strategy(raw.get("default", "redact"), f"{key}.default")
    strategies = {**DEFAULT_STRATEGIES, **_strategies(raw.get("strategies", {}), key)}
    entities = _entities(raw.get("entities", {}), f"{key}.entities")
    uses_hash = default == "hash" or "hash" in strategies.values()
    hash_key = _hash_key(raw.get("hash_key_env"), f"{key}.hash_key_env", required=uses_hash)
    return MaskingPolicy(strategies, default, hash_key, entities)


def _strategy(value: object, key: str) -> Strategy:
    if isinstance(value, str) and value in _STRATEGIES:
        return cast(Strategy, value)
    raise ConfigError(key, f"expected one of {', '.join(_STRATEGIES)}, not {value!r}")


def _entity(value: object, key: str) -> str:
    if not isinstance(value, str) or value not in ALL_ENTITIES:
        known = ", ".join(sorted(ALL_ENTITIES))
        raise ConfigError(key, f"unknown entity {value!r}; known: {known}")
    return value


def _strategies(raw: object, key: str) -> dict[str, Strategy]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key}.strategies", "expected a mapping of entity to strategy")
    strategies: dict[str, Strategy] = {}
    for entity, strategy in raw.items():
        entity_key = f"{key}.strategies.{entity}"
        strategies[_entity(entity, entity_key)] = _strategy(strategy, entity_key)
    return strategies


def _names(raw: Mapping[object, object], field: str, key: str) -> list[str]:
    value = raw.get(field, [])
    if not isinstance(value, list):
        raise ConfigError(f"{key}.{field}", "expected a list of entity names")
    return [_entity(name, f"{key}.{field}[{i}]") for i, name in enumerate(value)]


def _entities(raw: object, key: str) -> frozenset[str]:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, "expected a mapping with enable and/or disable")
    for name in raw:
        if name not in ("enable", "disable"):
            raise ConfigError(f"{key}.{name}", "unknown key; expected enable or disable")
    enable = _names(raw, "enable", key)
    disable = _names(raw, "disable", key)
    for i, name in enumerate(disable):
        if name in enable:
            raise ConfigError(f"{key}.disable[{i}]", f"{name} is also listed under enable")
    return (DEFAULT_ENTITIES | frozenset(enable)) - frozenset(disable)


def _hash_key(variable: object, key: str, *, required: bool) -> bytes | None:
    if variable is None:
        if required:
            raise ConfigError(key, "the hash strategy needs a key: name an environment variable")
        return None
    if not isinstance(variable, str) or not variable:
        raise ConfigError(key, "expected the name of an environment variable")
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(key, f"environment variable {variable} is not set")
    secret = value.encode()
    if len(secret) < MIN_HASH_KEY_BYTES:
        raise ConfigError(key, f"the key in {variable} is shorter than {MIN_HASH_KEY_BYTES} bytes")
    return secret
