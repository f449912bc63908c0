"""Masking what a governed server answers, before it reaches the agent.

The answer is masked as the JSON document it is, with :func:`masking.jsonwalk.mask_json`:
every string in it — ``content[].text``, each value of ``structuredContent`` at any depth,
``contents[].text`` of a resource read — is searched, with the nearest object key as
context (``{"ssn": "123456789"}``), and only sensitive spans are replaced. Everything else
stays byte for byte, so ``structuredContent`` keeps its shape and a string stays a string;
only a number that is itself sensitive (a card number) becomes a masked string.
"""

from __future__ import annotations

from collections import Counter

from masking import MaskingPolicy
from masking.detect import scanner_for
from masking.jsonwalk import mask_json


def masked_answer(body: bytes, policy: MaskingPolicy | None) -> tuple[bytes, Counter[str]]:
    """``body`` (a JSON-RPC response, valid JSON) masked by ``policy`` (None: not masked),
    and how many values of each entity were masked."""
    if policy is None:
        return body, Counter()
    text = body.decode("utf-8", "surrogatepass")
    found: list[str] = []
    masked = mask_json(text, scanner_for(policy.entities), policy, frozenset(), found)
    if masked is None:
        return body, Counter()
    return masked.encode("utf-8", "surrogatepass"), Counter(found)


def masked_text(text: str, policy: MaskingPolicy | None) -> str:
    """A string masked the same way (for records and cards)."""
    if policy is None:
        policy = MaskingPolicy()
    found: list[str] = []
    masked = mask_json(text, scanner_for(policy.entities), policy, frozenset(), found)
    return text if masked is None else masked
