"""``/jit``: the slash command, from its text to the private reply.

``run RESOURCE SQL [-- reason]`` asks the core for one statement (the policy of the
caller's groups applies, as for psql): an allowed one has run and its masked result comes
back; one that needs review became a request whose card is in the resource's channel; a
denied one is refused with the reasons. The last `` -- `` in the text starts the reason,
so a trailing SQL comment is never mistaken for part of it. ``status ID`` shows a request to
its requester and its approvers only (anyone else is told there is no such request);
``pending`` lists what the caller could still approve; ``help`` and anything unknown
explain the usage. Results and requests are shown as the REST API shows them
(:func:`approvals.display.shown`): masked again at the edge, whatever path produced them.

Slack escapes ``&``, ``<`` and ``>`` in command text; exactly those three are undone before
anything reads it.
"""

from __future__ import annotations

import re

from approvals.decisions import awaiting
from approvals.display import shown, shown_outcome
from approvals.model import RequestView
from approvals.service import Approvals
from bot import messages as m
from bot.slack_identity import SlackDirectory
from bot.slack_notify import SlackNotifier
from jitgate.errors import DecisionRefused

_SLACK_ESCAPE = re.compile(r"&(amp|lt|gt);")
_UNESCAPED = {"amp": "&", "lt": "<", "gt": ">"}
_PENDING_LIMIT = 50


def unescape(text: str) -> str:
    """Slash-command text as typed: Slack's ``&amp;``, ``&lt;`` and ``&gt;`` undone in one
    pass, so ``&amp;lt;`` stays the ``&lt;`` that was typed."""
    return _SLACK_ESCAPE.sub(lambda match: _UNESCAPED[match.group(1)], text)


class JitCommand:
    def __init__(
        self, approvals: Approvals, directory: SlackDirectory, notifier: SlackNotifier
    ) -> None:
        self._approvals = approvals
        self._directory = directory
        self._notifier = notifier

    async def run(self, user: str, text: str) -> str:
        """The private reply to ``/jit TEXT`` typed by Slack user ``user``."""
        words = unescape(text).strip().split(None, 1)
        verb = words[0].lower() if words else "help"
        rest = words[1] if len(words) > 1 else ""
        if verb == "help":
            return m.help_text()
        if verb not in ("run", "status", "pending"):
            return m.bad_usage("the first word must be run, status, pending or help")
        person = await self._directory.person(user)
        if person.identity is None:
            return m.unknown_user(person.email)
        if verb == "run":
            return await self._run(person.identity, rest)
        if verb == "status":
            return await self._status(person.identity, rest)
        return await self._pending(person.identity)

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
                                              sql=sql, source="slack",
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
            return m.statement_held(asked.request.id, self._notifier.where(asked.request))
        assert asked.outcome is not None
        return m.read_result(resource, shown_outcome(self._approvals.config, resource,
                                                     asked.outcome))  # fmt: skip

    async def _status(self, identity: str, text: str) -> str:
        number = text.strip().removeprefix("#")
        if not re.fullmatch(r"[0-9]{1,18}", number):
            return m.bad_usage("`status` needs a request number, such as `/jit status 12`")
        view = await self._approvals.store.view(int(number))
        if view is None or not self._may_see(identity, view):
            return m.unknown_request(int(number))
        return m.status_text(shown(self._approvals.config, view))

    async def _pending(self, identity: str) -> str:
        return m.pending_text(await awaiting(self._approvals, identity, _PENDING_LIMIT))

    def _may_see(self, identity: str, view: RequestView) -> bool:
        groups = self._approvals.directory.groups_of(identity)
        return identity == view.requester or bool(groups & set(view.approver_groups))
