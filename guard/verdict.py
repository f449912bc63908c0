"""What the classifier answers: one :class:`StatementVerdict` per statement.

Classes in order of danger, the order :func:`strictest` and the merging of a statement's
findings use::

    destructive > opaque > privilege > ddl > write > read

``destructive`` tops the order because it names certain data loss; ``opaque`` (what the
gateway cannot see into) comes next. The order only picks one verdict out of several; which
action a class gets is the policy's business.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

StatementClass = Literal["read", "write", "ddl", "destructive", "privilege", "opaque"]

RANK: dict[StatementClass, int] = {
    "read": 0,
    "write": 1,
    "ddl": 2,
    "privilege": 3,
    "opaque": 4,
    "destructive": 5,
}

Finding = tuple[StatementClass, str]
"""One thing the walk noticed: the class it calls for and why, in words."""


class StatementVerdict(NamedTuple):
    """The class of one statement and the reasons for it (empty for a plain ``read``).
    Immutable; a named tuple because the relay builds one per statement.

    ``sql`` is the statement's own text: the whole input, stripped, when the input holds one
    statement, else this statement's slice of it. ``prepared_name`` is set for
    ``PREPARE name AS …`` so a session can remember what ``EXECUTE name`` will run;
    ``deallocated`` for ``DEALLOCATE name`` (the name) and for ``DEALLOCATE ALL`` and
    ``DISCARD ALL`` (:data:`ALL_PREPARED`), so it can forget what the server forgot."""

    statement_class: StatementClass
    reasons: tuple[str, ...]
    sql: str
    prepared_name: str | None = None
    deallocated: str | None = None


ALL_PREPARED = ""
"""``deallocated`` of a statement that drops every prepared statement of the session (no
SQL name is empty: PostgreSQL refuses a zero-length identifier)."""


def merge(findings: Iterable[Finding]) -> tuple[StatementClass, tuple[str, ...]]:
    """The strictest class among ``findings`` (``read`` when there are none) and every
    reason above ``read``, most dangerous first, each once."""
    ordered = sorted(findings, key=lambda f: -RANK[f[0]])
    if not ordered:
        return "read", ()
    reasons = dict.fromkeys(reason for cls, reason in ordered if cls != "read")
    return ordered[0][0], tuple(reasons)


def strictest(verdicts: Sequence[StatementVerdict]) -> StatementVerdict:
    """The most dangerous of ``verdicts`` (the first one on a tie); a ``read`` verdict of
    empty text when there are none."""
    if not verdicts:
        return StatementVerdict("read", (), "")
    return max(verdicts, key=lambda v: RANK[v.statement_class])
