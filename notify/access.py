"""Who may act on a request's card and who may see it: the one answer every chat gives
before it shows buttons or opens a reason form. The core checks everything again when
the decision arrives (:func:`approvals.decisions.decide`), so this only spares people
buttons and forms that could only be refused.
"""

from __future__ import annotations

from typing import Literal

from approvals.model import RequestView, State, Verdict
from identity import Directory

Refusal = Literal["already_decided", "self_approval", "not_approver", "already_voted"]
VERBS: tuple[Verdict, ...] = ("approve", "reject")


def refusal(directory: Directory, identity: str, view: RequestView) -> Refusal | None:
    """Why ``identity`` may not decide ``view`` now, or None when they may."""
    if view.state != State.PENDING:
        return "already_decided"
    if identity == view.requester:
        return "self_approval"
    if not directory.groups_of(identity) & set(view.approver_groups):
        return "not_approver"
    if any(d.approver == identity for d in view.decisions):
        return "already_voted"
    return None


def verbs_for(directory: Directory, identity: str | None, view: RequestView) -> tuple[Verdict, ...]:
    """The buttons ``identity`` gets on ``view``'s card (none for an unknown person)."""
    if identity is None or refusal(directory, identity, view) is not None:
        return ()
    return VERBS


def may_see(directory: Directory, identity: str, view: RequestView) -> bool:
    """The requester and the request's approvers may read it in chat; nobody else learns
    that it exists."""
    groups = directory.groups_of(identity)
    return identity == view.requester or bool(groups & set(view.approver_groups))
