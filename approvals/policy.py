"""Policy: (the user's groups × a statement's class) → allow, review or deny, per resource.

Across several groups the most permissive action wins; a class no group mentions is
denied, so ``opaque`` and ``destructive`` are allowed only where a group says so
explicitly. A string of several statements gets the strictest action of its statements.

An agent acting for a human (a :class:`~identity.Principal` with an ``actor``) gets the
human's action, then less: ``deny`` for a class its delegation does not name, and never
more than the resource's cap for agents (``access.agents``, e.g. ``{destructive:
review}``), so an agent can be held where its human would not be.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from guard import StatementVerdict
from identity import Principal
from jitgate.config import STATEMENT_CLASSES, Action, Resource

_ACTION_RANK = {"deny": 0, "review": 1, "allow": 2}


def action_for(
    resource: Resource,
    groups: Iterable[str],
    statement_class: str,
    principal: Principal | None = None,
) -> Action:
    """The most permissive action any of ``groups`` has for ``statement_class`` on
    ``resource``; deny when none mentions it (and for a user in no group). For an agent
    (``principal.actor``), narrowed by its delegation and the resource's cap for agents."""
    best: Action = "deny"
    for group in groups:
        action = resource.access.get(group, {}).get(statement_class)
        if action is not None and _ACTION_RANK[action] > _ACTION_RANK[best]:
            best = action
    if principal is None or principal.actor is None:
        return best
    if not principal.may_use(resource.name) or (
        principal.classes is not None and statement_class not in principal.classes
    ):
        return "deny"
    cap = resource.agent_caps.get(statement_class)
    return best if cap is None else strictest_action((best, cap))


def reads_only(
    resource: Resource, groups: Iterable[str], principal: Principal | None = None
) -> bool:
    """Whether ``groups`` may do nothing on ``resource`` without review but read: such a
    session runs on the resource's reader credential when it has a writer apart."""
    groups = frozenset(groups)
    return all(
        action_for(resource, groups, statement_class, principal) != "allow"
        for statement_class in STATEMENT_CLASSES
        if statement_class != "read"
    )


def strictest_action(actions: Iterable[Action]) -> Action:
    return min(actions, key=_ACTION_RANK.__getitem__, default="deny")


def action_of(
    resource: Resource,
    groups: Iterable[str],
    verdicts: Sequence[StatementVerdict],
    principal: Principal | None = None,
) -> Action:
    """The action for a whole string of statements."""
    groups = frozenset(groups)
    return strictest_action(
        action_for(resource, groups, v.statement_class, principal) for v in verdicts
    )
