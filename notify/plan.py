"""What one request event shows in a chat, and the notifier that queues it.

:func:`plan` is the choreography every chat follows, as data: a request opened posts the
card in the resource's channel for that chat; any change updates the card in place; a
finished request also gets its result in the card's thread; a reminder goes to the
thread; the requester hears privately once the request will not move any more. Each step
has a key that makes it happen once however many gateways hear of the event (``card:ID``,
``update:ID``, ``reply:ID``, ``reminder:ID``, ``dm:ID:STATE``). Resources without a
channel in a chat get no card there, but their requesters still get their messages.

:class:`ChatNotifier` is the :class:`~approvals.model.Notifier` of one chat: it turns the
steps into outbox rows, with bodies its :class:`Renderer` writes. Everything shown passes
:func:`approvals.display.shown` first: masked again at the edge, as the REST API does,
whatever path produced the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from approvals.display import shown
from approvals.model import RequestView, State
from jitgate.config import Config, Resource
from mcp_gateway.settings import McpServer
from notify.outbox import Outbox

Event = Literal["opened", "changed", "finished", "reminder"]
StepKind = Literal["card", "update", "result", "reminder", "dm"]

# States a requester hears about: the request will not move any more.
TOLD = frozenset((State.REJECTED, State.EXPIRED, State.EXECUTED, State.FAILED))


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    key: str


def plan(event: Event, request: RequestView, *, has_channel: bool) -> list[Step]:
    """The steps ``event`` on ``request`` takes in a chat, in order; ``has_channel``: the
    resource names a channel in that chat."""
    rid = request.id
    steps: list[Step] = []
    if has_channel:
        if event == "opened":
            steps.append(Step("card", f"card:{rid}"))
        elif event == "reminder":
            steps.append(Step("reminder", f"reminder:{rid}"))
        else:
            steps.append(Step("update", f"update:{rid}"))
            if event == "finished":
                steps.append(Step("result", f"reply:{rid}"))
    if event in ("changed", "finished") and request.state in TOLD:
        steps.append(Step("dm", f"dm:{rid}:{request.state}"))
    return steps


class Renderer(Protocol):
    """A chat's message bodies for what is queued already rendered (cards and their updates
    are rendered when sent, from the request as it is then)."""

    def result(
        self, request: RequestView, session_url: str | None
    ) -> list[tuple[str, dict[str, Any]]]:
        """The threaded result: ``(kind, body)`` pairs, ``reply`` first, then e.g. a ``file``."""
        ...

    def reminder(self, request: RequestView) -> dict[str, Any]: ...

    def requester_message(self, request: RequestView) -> dict[str, Any]: ...


class ChatNotifier:
    """One chat as a :class:`~approvals.model.Notifier`: ``channel_of`` names a resource's
    channel in this chat, ``describe`` says it to people (``C0APPROVALS``)."""

    def __init__(self, name: str, config: Config, outbox: Outbox, renderer: Renderer,
                 channel_of: Callable[[Resource | McpServer], str | None],
                 describe: Callable[[str], str] = str) -> None:  # fmt: skip
        self.name = name
        self._config = config
        self._outbox = outbox
        self._renderer = renderer
        self._channel_of = channel_of
        self._describe = describe

    def channel(self, request: RequestView) -> str | None:
        resource = self._config.resources.get(request.resource) or self._config.mcp_servers.get(
            request.resource
        )
        return self._channel_of(resource) if resource is not None else None

    def where(self, request: RequestView) -> str | None:
        """Where the card goes (``C0APPROVALS``), if the resource has a channel here."""
        channel = self.channel(request)
        return None if channel is None else self._describe(channel)

    async def request_opened(self, request: RequestView) -> None:
        await self._run("opened", request)

    async def request_changed(self, request: RequestView) -> None:
        await self._run("changed", request)

    async def request_finished(self, request: RequestView) -> None:
        await self._run("finished", request)

    async def reminder(self, request: RequestView) -> None:
        await self._run("reminder", request)

    async def _run(self, event: Event, request: RequestView) -> None:
        channel = self.channel(request)
        outbox, rid = self._outbox, request.id
        for step in plan(event, request, has_channel=channel is not None):
            if step.kind == "card":
                await outbox.put(step.key, "card", request_id=rid, channel=channel)
            elif step.kind == "update":
                await outbox.rearm(rid)
            elif step.kind == "result":
                visible = shown(self._config, request)
                for kind, body in self._renderer.result(visible, self._session_url(request)):
                    await outbox.put(f"{kind}:{rid}", kind, request_id=rid, body=body)
            elif step.kind == "reminder":
                body = self._renderer.reminder(shown(self._config, request))
                await outbox.put(step.key, "reply", request_id=rid, body=body)
            else:
                body = self._renderer.requester_message(shown(self._config, request))
                await outbox.put(step.key, "dm", request_id=rid, recipient=request.requester,
                                 body=body)  # fmt: skip

    def _session_url(self, request: RequestView) -> str | None:
        ran_in = request.outcome.session_id if request.outcome is not None else None
        session = ran_in or request.session_id
        return f"{self._config.public_url}/sessions/{session}" if session else None
