"""Microsoft Teams: the Bot Framework endpoint ``POST /api/messages`` on the gateway's own
aiohttp application, over the chat-neutral core (:mod:`notify`).

Hosting. Authentication, parsing and every connector call go through one small interface,
:class:`~bot.teams_hosting.TeamsHosting`, implemented on the Microsoft 365 Agents SDK for
Python (:mod:`bot.teams_agents_sdk`: the SDK's JWT validator, ``Activity`` models and
connector client, the bot's token from Entra by MSAL) by default, and on botbuilder 4.17
with ``teams.hosting: botbuilder`` (:mod:`bot.teams_botbuilder`); nothing else here speaks
to the Bot Framework.

Incoming. Every request is authenticated as the Bot Framework does
(:mod:`bot.teams_auth`); anything not signed by the channel gets 401 and runs nothing, a
body that is not an activity gets 400, a store (or a connector asked who the sender is)
that cannot answer 503; never a 500. Each activity refreshes its conversation's reference
(:mod:`bot.teams_conversations`) and who sent it (:mod:`bot.teams_users`).

- A message to the bot (``run RESOURCE SQL [-- reason]``, ``status ID``, ``pending``,
  ``help``, with or without an @mention of the bot) is acknowledged at once and answered
  to the writer alone, in their personal chat with the app (:mod:`bot.teams_personal`),
  with the words ``/jit`` answers with in Slack; a repeated delivery acts once.
- An ``adaptiveCard/action`` invoke from a card's ``Action.Execute`` is answered in the
  invoke response, acted on once however often the activity is delivered (a repeat gets
  the first answer, :mod:`bot.teams_invokes`): ``approve`` records the clicker's approval
  (every rule checked again by the core) and answers the card as it now stands;
  ``reject`` first answers a card that asks for the reason, and with the reason records
  the rejection; ``refresh`` answers the card as the clicker may see it (buttons only for
  who may decide now). A refusal answers a message
  (``application/vnd.microsoft.activity.message``) that only the clicker sees.

Outgoing. Cards, their updates, threaded results, the requester's messages and alerts go
through the outbox (:mod:`notify.outbox`, chat ``teams``) to the connector
(:mod:`bot.teams_delivery`).
"""

from __future__ import annotations

import html
import json
import logging
import re
from functools import partial
from typing import Any

import aiohttp
from aiohttp import web

from approvals.display import shown
from approvals.model import RequestView
from approvals.service import Approvals
from approvals.store import STORE_ERRORS
from bot import messages as m
from bot import teams_cards as cards
from bot.teams_auth import tenant_of
from bot.teams_conversations import TeamsConversations, TeamsPeople, TeamsPerson
from bot.teams_delivery import TeamsDelivery
from bot.teams_hosting import ConnectorError, TeamsHosting, Unauthenticated, hosting_for
from bot.teams_invokes import TeamsInvokes
from bot.teams_personal import PersonalChats
from bot.teams_users import TeamsUsers
from jitgate.config import Config, TeamsSettings
from jitgate.errors import StoreUnavailable
from notify.access import refusal, verbs_for
from notify.alerts import ChatAlerts
from notify.commands import ChatCommand, Person, parse_request_id
from notify.deliveries import Deliveries
from notify.outbox import Outbox
from notify.plan import ChatNotifier

log = logging.getLogger("jitgate.teams")

CARD = "application/vnd.microsoft.card.adaptive"
MESSAGE = "application/vnd.microsoft.activity.message"
_MENTION = re.compile(r"<at>.*?</at>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_REPEAT_WINDOW = 3600.0
_EXPECTED = (ConnectorError, aiohttp.ClientError, OSError, TimeoutError)


class TeamsRenderer:
    def result(
        self, request: RequestView, session_url: str | None
    ) -> list[tuple[str, dict[str, Any]]]:
        return [("reply", cards.result_message(request, session_url))]

    def reminder(self, request: RequestView) -> dict[str, Any]:
        return cards.reminder_message(request)

    def requester_message(self, request: RequestView) -> dict[str, Any]:
        return cards.requester_message(request)


class _Known:
    """A person resolved once for the whole activity."""

    def __init__(self, person: TeamsPerson) -> None:
        self._person = person

    async def person(self, user: str) -> Person:
        return self._person


class TeamsAdapter:
    """Everything Teams in one gateway: hand :attr:`notifier` and :attr:`alerts` to the core,
    mount :meth:`routes`, and :meth:`start` / :meth:`stop` it with the gateway."""

    def __init__(self, config: Config, approvals: Approvals) -> None:
        assert config.teams is not None
        self._settings: TeamsSettings = config.teams
        self._config = config
        self._approvals = approvals
        self.connector: TeamsHosting = hosting_for(self._settings)
        self.conversations = TeamsConversations(approvals.pool)
        self._people = TeamsPeople(self._settings, approvals.directory, self.connector)
        self.users = TeamsUsers(approvals.pool)
        self._personal = PersonalChats(self.connector, self.conversations, self.users)
        delivery = TeamsDelivery(self.connector, self.conversations, self._personal, self._view,
                                 self.refresh_for)  # fmt: skip
        self.outbox = Outbox(approvals.pool, "teams", delivery)
        self._deliveries = Deliveries(approvals.pool)
        self._invokes = TeamsInvokes(approvals.pool)
        self.notifier = ChatNotifier(
            "teams", config, self.outbox, TeamsRenderer(), lambda r: r.notify_teams,
            lambda _: "Microsoft Teams",
        )  # fmt: skip
        self.alerts = ChatAlerts(config.alerts_teams, self.outbox) if config.alerts_teams else None

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/messages", self.handle)]

    async def start(self) -> None:
        self.outbox.start()

    async def stop(self) -> None:
        await self.outbox.stop()
        await self.connector.close()

    async def _view(self, request_id: int) -> RequestView | None:
        view = await self._approvals.store.view(request_id)
        return None if view is None else shown(self._config, view)

    async def refresh_for(self, view: RequestView) -> list[str]:
        """The Teams users (MRIs) whose card refreshes to their own view."""
        return await self.users.refresh_ids(self._approvals.directory, view)

    async def handle(self, request: web.Request) -> web.Response:
        """``POST /api/messages``."""
        try:
            body: object = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            body = None
        try:
            await self.connector.authenticate(request.headers.get("Authorization"),
                                              body if isinstance(body, dict) else {})  # fmt: skip
        except Unauthenticated as refused:
            log.warning("teams request refused", extra={"remote": request.remote,
                        "reason": str(refused)})  # fmt: skip
            return web.Response(status=401, text="unauthorized")
        activity = self.connector.parse(body)
        if activity is None:
            return web.Response(status=400, text="the body is not a Bot Framework activity")
        try:
            return await self._dispatch(activity)
        except (StoreUnavailable, *STORE_ERRORS, *_EXPECTED) as down:
            # The store, or the connector asked who the sender is, did not answer.
            log.error("teams activity refused: a service it needs did not answer",
                      extra={"error": f"{type(down).__name__}: {down}"})  # fmt: skip
            return web.Response(status=503, text="the gateway cannot act on this now")

    async def _dispatch(self, activity: dict[str, Any]) -> web.Response:
        kind = activity.get("type")
        personal = (activity.get("conversation") or {}).get("conversationType") == "personal"
        person: TeamsPerson | None = None
        if kind in ("message", "invoke") or personal:
            person = await self._people.resolve(activity)
        owner = person.identity if person is not None and personal else None
        await self.conversations.remember(activity, tenant_of(activity), owner)
        if person is not None and person.email is not None:
            object_id = (activity.get("from") or {}).get("aadObjectId")
            await self.users.seen([(person.user_id, object_id, person.email)])
        if kind == "conversationUpdate" and activity.get("membersAdded"):
            self._approvals.spawn(self._learn_roster(activity))
        if kind == "message" and person is not None:
            key = f"teams:{(activity.get('conversation') or {}).get('id')}:{activity.get('id')}"
            if await self._deliveries.take([(key, _REPEAT_WINDOW)]):
                self._approvals.spawn(self._answer(activity, person))
            return web.Response(status=200)
        if kind == "invoke" and activity.get("name") == "adaptiveCard/action" and person:
            key = f"{(activity.get('conversation') or {}).get('id')}:{activity.get('id')}"
            answer = await self._invokes.once(key, partial(self._invoke, activity, person))
            return web.json_response(answer)
        return web.Response(status=200)

    async def _learn_roster(self, activity: dict[str, Any]) -> None:
        """Record the MRIs of the members of a team or chat when the app or someone new
        was added to it."""
        team = ((activity.get("channelData") or {}).get("team") or {}).get("id")
        conversation = str(team or activity["conversation"]["id"]).split(";messageid=")[0]
        try:
            members = await self.connector.roster(str(activity["serviceUrl"]), conversation)
            known = [(str(m.get("id") or ""), m.get("aadObjectId"), email)
                     for m in members if (email := self._people.email_of(m))]  # fmt: skip
            await self.users.seen(known)
        except (*_EXPECTED, *STORE_ERRORS) as exc:
            log.warning("the Teams roster could not be read; its approvers refresh their"
                        " cards from their first click", extra={"conversation": conversation,
                        "error": f"{type(exc).__name__}: {exc}"})  # fmt: skip

    async def _answer(self, activity: dict[str, Any], person: TeamsPerson) -> None:
        text = html.unescape(_TAG.sub("", _MENTION.sub("", str(activity.get("text") or ""))))
        try:
            reply = await self._command(person).run(person.user_id, text)
        except Exception:
            log.exception("teams command failed")
            reply = m.try_again_later()
        try:
            await self._personal.answer(activity, person, cards.text_message(reply))
        except Exception:
            log.exception("teams reply could not be sent")

    def _command(self, person: TeamsPerson) -> ChatCommand:
        return ChatCommand(self._approvals, _Known(person), "teams", self.notifier.where)

    async def _invoke(self, activity: dict[str, Any], person: TeamsPerson) -> dict[str, Any]:
        value = activity.get("value")
        action = value.get("action") if isinstance(value, dict) else None
        data = action.get("data") if isinstance(action, dict) else None
        verb = action.get("verb") if isinstance(action, dict) else None
        request_id = parse_request_id(data.get("request_id") if isinstance(data, dict) else None)
        if request_id is None or verb not in ("approve", "reject", "refresh"):
            return _message("jitgate does not know that action.", 400)
        assert isinstance(data, dict)
        if person.identity is None:
            return _message(cards.teams_plain(m.unknown_user(person.email, "Teams")))
        try:
            text = await self._act(str(verb), request_id, person, data)
        except Exception:
            log.exception("teams card action failed")
            return _message(cards.teams_plain(m.try_again_later()))
        if isinstance(text, str):
            return _message(cards.teams_plain(text))
        return {"statusCode": 200, "type": CARD, "value": text}

    async def _act(self, verb: str, request_id: int, person: TeamsPerson,
                   data: dict[str, Any]) -> str | dict[str, Any]:  # fmt: skip
        """The refusal to show the clicker, or the card they see now."""
        assert person.identity is not None
        view = await self._view(request_id)
        if view is None:
            return m.unknown_request(request_id)
        if verb == "reject":
            reason = str(data.get(cards.REASON_INPUT) or "").strip()
            if not reason:
                refused = refusal(self._approvals.directory, person.identity, view)
                if refused == "already_decided":
                    return m.already_decided(request_id, view.state)
                if refused == "not_approver":
                    return m.not_an_approver(request_id, view.approver_groups)
                return cards.reason_card(view)
            text = await self._command(person).decide(person.user_id, request_id, "reject", reason)
        elif verb == "approve":
            text = await self._command(person).decide(person.user_id, request_id, "approve", None)
        else:
            text = None
        if text is not None:
            return text
        now = await self._view(request_id)
        assert now is not None
        buttons = bool(verbs_for(self._approvals.directory, person.identity, now))
        return cards.request_card(now, buttons=buttons, refresh_for=await self.refresh_for(now))


def _message(text: str, status: int = 200) -> dict[str, Any]:
    return {"statusCode": status, "type": MESSAGE, "value": text}
