"""The request state machine: the one transition table, and nothing else.

::

    PENDING ──approve──► APPROVED ──claim──► EXECUTING ──succeed──► EXECUTED
       │                    │                    └──────fail──────► FAILED
       ├──reject──► REJECTED │
       ├──expire──► EXPIRED  │
       └──cancel──► CANCELLED ◄──cancel──┘

Every move in the store is a compare-and-set on the state read here
(:mod:`approvals.store`), so two processes racing for the same move cannot both win.
"""

from __future__ import annotations

from typing import Literal

from approvals.model import State
from jitgate.errors import IllegalTransition

Event = Literal["approve", "reject", "expire", "cancel", "claim", "succeed", "fail"]

TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.PENDING, "approve"): State.APPROVED,
    (State.PENDING, "reject"): State.REJECTED,
    (State.PENDING, "expire"): State.EXPIRED,
    (State.PENDING, "cancel"): State.CANCELLED,
    # A client that gives up waiting inside its transaction cancels even an approved
    # request: it cannot be replayed outside that transaction.
    (State.APPROVED, "cancel"): State.CANCELLED,
    (State.APPROVED, "claim"): State.EXECUTING,
    (State.EXECUTING, "succeed"): State.EXECUTED,
    (State.EXECUTING, "fail"): State.FAILED,
}


def next_state(state: State, event: Event) -> State:
    """The state ``event`` leads to from ``state``; :class:`IllegalTransition` otherwise
    (a programming error, never a race: races show up as a lost compare-and-set)."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event) from None


def sources_of(event: Event) -> tuple[State, ...]:
    """Every state ``event`` may leave from."""
    return tuple(state for (state, e) in TRANSITIONS if e == event)
