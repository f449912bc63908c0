"""What people ask jitgate in a chat, the same in every chat: the commands (``run``,
``status``, ``pending``, ``help``; ``/jit`` in Slack, a message to the bot in Teams) and
decisions from a card's buttons, from the chat's user to the private reply.

``run RESOURCE SQL [-- reason]`` asks the core for one statement (the policy of the
caller's groups applies, as for psql): an allowed one has run and its masked result comes
back; one that needs review became a request whose card is in the resource's channel; a
denied one is refused with the reasons. The last `` -- `` in the text starts the reason,
so a trailing SQL comment is never mistaken for part of it. ``status ID`` shows a request to
its requester and its approvers only (anyone else is told there is no such request);
``pending`` lists what the caller could still approve; ``help`` and anything unknown
explain the usage. Results and requests are shown as the REST API shows them
(:func:`approvals.display.shown`): masked again at the edge, whatever path produced them.

A chat user acts only as the identity their chat's directory maps them to (:class:`People`);
every rule is checked by :meth:`Approvals.decide` or :meth:`Approvals.ask`. Replies are the
words of :mod:`bot.messages`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from approvals.decisions import awaiting
from approvals.display import shown, shown_outcome
from approvals.model import RequestView, Verdict
from approvals.service import Approvals
from bot import messages as m
from jitgate.errors import DecisionRefused
from notify.access import may_see

_PENDING_LIMIT = 50
_CHAT_NAMES = {"slack": "Slack", "teams": "Teams"}


class Person(Protocol):
    """A chat user as jitgate sees them: ``email`` when one maps, ``identity`` (the same
    email) only when it belongs to a jitgate group."""

    @property
    def email(self) -> str | None: ...

    @property
    def identity(self) -> str | None: ...


class People(Protocol):
    async def person(self, user: str) -> Person: ...


def parse_request_id(value: object) -> int | None:
    """Our own button values and form metadata are a request id in decimal, nothing else."""
    text = str(value or "")
    return int(text) if re.fullmatch(r"[0-9]{1,18}", text) else None


class ChatCommand:
    """``source``: the chat (``slack``, ``teams``); ``where``: where a held request's card
    went, in that chat's words."""

    def __init__(self, approvals: Approvals, people: People, source: str,
                 where: Callable[[RequestView], str | None]) -> None:  # fmt: skip
        self._approvals = approvals
        self._people = people
        self._source = source
        self._where = where
        self.chat = _CHAT_NAMES.get(source, source)

    async def run(self, user: str, text: str) -> str:
        """The private reply to the command ``text`` from chat user ``user``."""
        words = text.strip().split(None, 1)
        verb = words[0].lower() if words else "help"
        rest = words[1] if len(words) > 1 else ""
        if verb == "help":
            return m.help_text()
        if verb not in ("run", "status", "pending"):
            return m.bad_usage("the first word must be run, status, pending or help")
        person = await self._people.person(user)
        if person.identity is None:
            return m.unknown_user(person.email, self.chat)
        if verb == "run":
            return await self._run(person.identity, rest)
        if verb == "status":
            return await self._status(person.identity, rest)
        return await self._pending(person.identity)

    async def decide(self, user: str, request_id: int, verdict: Verdict,
                     reason: str | None) -> str | None:  # fmt: skip
        """Record chat user ``user``'s decision; the private reply when it is refused."""
        person = await self._people.person(user)
        if person.identity is None:
            return m.unknown_user(person.email, self.chat)
        try:
            await self._approvals.decide(request_id, person.identity, verdict,
                                         via=self._source, reason=reason)  # fmt: skip
        except DecisionRefused as refused:
            return await self.refusal(refused, request_id)
        return None

    async def refusal(self, refused: DecisionRefused, request_id: int) -> str:
        if refused.code == "self_approval":
            return m.self_approval_refused(request_id)
        if refused.code == "expired":
            return m.request_expired(request_id)
        view: RequestView | None = await self._approvals.store.view(request_id)
        if view is None:
            return m.unknown_request(request_id)
        if refused.code == "not_approver":
            return m.not_an_approver(request_id, view.approver_groups)
        if refused.code == "already_voted":
            return m.already_approved(view)
        return m.already_decided(request_id, view.state)

    async def _run(self, identity: str, text: str) -> str:
        words = text.split(None, 1)
        if len(words) < 2:
            return m.bad_usage("`run` needs a resource and then a statement")
        resource, statement = words
        sql, separator, reason = statement.rpartition(" -- ")
        if not separator:
            sql, reason = statement, ""
        if not sql.strip():
            return m.bad_usage("`run` needs a statement before ` -- `")
        try:
            asked = await self._approvals.ask(resource_name=resource, identity=identity,
                                              sql=sql, source=self._source,
                                              reason=reason.strip() or None)  # fmt: skip
        except DecisionRefused as refused:
            if refused.code in ("unknown_resource", "no_access"):
                return m.unknown_resource(resource)
            if refused.code != "denied":
                return m.request_refused(str(refused))
            return m.statement_denied(
                resource, refused.statement_class or "opaque", refused.reasons
            )
        if asked.request is not None:
            return m.statement_held(asked.request.id, self._where(asked.request))
        assert asked.outcome is not None
        return m.read_result(resource, shown_outcome(self._approvals.config, resource,
                                                     asked.outcome))  # fmt: skip

    async def _status(self, identity: str, text: str) -> str:
        number = text.strip().removeprefix("#")
        if not re.fullmatch(r"[0-9]{1,18}", number):
            return m.bad_usage("`status` needs a request number, such as `/jit status 12`")
        view = await self._approvals.store.view(int(number))
        if view is None or not may_see(self._approvals.directory, identity, view):
            return m.unknown_request(int(number))
        return m.status_text(shown(self._approvals.config, view))

    async def _pending(self, identity: str) -> str:
        return m.pending_text(await awaiting(self._approvals, identity, _PENDING_LIMIT))
