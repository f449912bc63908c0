"""A real gateway wired to the fake Bot Framework, and the moves the Teams tests repeat:
post an activity to ``/api/messages`` with a channel token, click a card's button by an
``adaptiveCard/action`` invoke, find a request's card."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
import uuid
from typing import Any

from jitgate.config import Config
from tests.fake_teams import FakeTeams
from tests.harness import GatewayThread, gateway_config
from tests.slack_gateway import wait_until

APP_ID = "00000000-0000-0000-0000-0000000a9900"
PASSWORD = "fake-app-password"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APPROVALS = "19:approvals0123456789@thread.tacv2"
SECURITY = "19:security0123456789@thread.tacv2"
ALICE_CHAT = "a:1AlicePersonalChat"
# Teams users: (MRI, Entra object id). Mallory is mapped by her UPN, and is in no group.
ALICE = ("29:1AliceMRI", "a11ce000-0000-4000-8000-0000000000a1")
BOB = ("29:1BobMRI", "b0b00000-0000-4000-8000-0000000000b0")
EVE = ("29:1EveMRI", "e5e00000-0000-4000-8000-0000000000e5")
MALLORY = ("29:1MalloryMRI", "3a110000-0000-4000-8000-00000000003a")
MEMBERS = {MALLORY[0]: {"id": MALLORY[0], "aadObjectId": MALLORY[1], "name": "Mallory",
                        "userPrincipalName": "mallory@example.com"}}  # fmt: skip


def teams_config(store_dsn: str, target_dsn: str, teams: FakeTeams, **more: Any) -> Config:
    users = {ALICE[1]: "alice@example.com", BOB[1]: "bob@example.com", EVE[1]: "eve@example.com"}
    config = gateway_config(store_dsn, target_dsn,
                            teams=teams.settings(tenant_id=TENANT, users=users),
                            alerts={"teams": SECURITY}, **more)  # fmt: skip
    resources = dict(config.resources)
    resources["prod"] = dataclasses.replace(resources["prod"], notify_teams=APPROVALS)
    return dataclasses.replace(config, resources=resources)


def post(gw: GatewayThread, activity: Any, token: str | None) -> tuple[int, Any]:
    """POST ``activity`` to ``/api/messages`` with ``token``; the status and JSON answer."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
    http = urllib.request.Request(f"http://127.0.0.1:{gw.http_port}/api/messages", data=data,
                                  headers=headers, method="POST")  # fmt: skip
    try:
        with urllib.request.urlopen(http, timeout=15) as answer:
            body = answer.read()
            return int(answer.status), json.loads(body) if body else None
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def install(gw: GatewayThread, teams: FakeTeams) -> None:
    """The app added to the approvals and security channels and to alice's personal scope."""
    for conversation in (APPROVALS, SECURITY):
        activity = teams.activity("conversation_update")
        activity["conversation"] = {**activity["conversation"], "id": conversation}
        assert post(gw, activity, teams.channel_token())[0] == 200
    assert post(gw, teams.activity("installation_update_personal"), teams.channel_token())[0] == 200


def sender(user: tuple[str, str]) -> dict[str, str]:
    return {"id": user[0], "aadObjectId": user[1], "name": user[0]}


def invoke(gw: GatewayThread, teams: FakeTeams, verb: str, request_id: int,
           user: tuple[str, str], **data: Any) -> dict[str, Any]:  # fmt: skip
    """The ``adaptiveCard/action`` activity of ``user``'s ``Action.Execute`` on the
    request's card, with an activity id of its own (as each click has in Teams)."""
    card_id = card_of(gw, request_id)
    activity = teams.activity("adaptive_card_action", replyToId=card_id, id=f"f:{uuid.uuid4()}")
    activity["from"] = sender(user)
    activity["conversation"] = {**activity["conversation"],
                                "id": f"{APPROVALS};messageid={card_id}"}  # fmt: skip
    activity["value"]["action"].update(verb=verb, data={"request_id": request_id, **data})
    return activity


def click(gw: GatewayThread, teams: FakeTeams, verb: str, request_id: int,
          user: tuple[str, str], **data: Any) -> dict[str, Any]:  # fmt: skip
    """An ``Action.Execute`` on the request's card by ``user``: the invoke response."""
    status, answer = post(gw, invoke(gw, teams, verb, request_id, user, **data),
                          teams.channel_token())  # fmt: skip
    assert status == 200, answer
    assert isinstance(answer, dict)
    return answer


def card_of(gw: GatewayThread, request_id: int) -> str:
    """The activity id of the request's card in Teams, once posted."""

    def find() -> str | None:
        sql = "SELECT ts FROM cards WHERE chat = 'teams' AND request_id = $1"
        return gw.call(gw.gateway.pool.fetchval(sql, request_id))  # type: ignore[no-any-return]

    return wait_until(find, what=f"the Teams card of request #{request_id}")


def card_json(activity: dict[str, Any]) -> dict[str, Any]:
    (attachment,) = activity["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    return attachment["content"]  # type: ignore[no-any-return]


def verbs(card: dict[str, Any]) -> list[str]:
    return [a["verb"] for a in card.get("actions", []) if a["type"] == "Action.Execute"]


def text_blocks(card: dict[str, Any]) -> list[str]:
    """Every string Teams may read as markdown (TextBlock text)."""
    return [b["text"] for b in card["body"] if b["type"] == "TextBlock"]


def runs(card: dict[str, Any]) -> str:
    """The plain text of every TextRun, joined."""
    return "".join(i["text"] for b in card["body"] if b["type"] == "RichTextBlock"
                   for i in b["inlines"])  # fmt: skip
