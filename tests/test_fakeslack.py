"""The vendor fakes the Slack tests stand on: the fake Web API (driven by slack_sdk, as the
gateway drives it), its failure injection, and requests signed as Slack signs them (checked
against Slack's documented vector and by slack-bolt's own verification)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.messages import reject_modal
from tests.fakeslack import FakeSlack, SlackUser
from tests.slack_requests import (
    SlackRequest,
    block_action,
    signature,
    slash_command,
    view_submission,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
USERS = [
    SlackUser("U012ALICE", "alice@example.com", "alice"),
    SlackUser("U034BOB", "bob@example.com", "bob"),
    SlackUser("U056BOT", None, "deploybot", is_bot=True),
    SlackUser("U078GONE", "gone@example.com", "gone", deleted=True),
]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(USERS) as fake:
        yield fake


@pytest.fixture
async def client(slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    async with aiohttp.ClientSession() as session:
        yield AsyncWebClient(token=slack.token, base_url=slack.api_url, session=session)


async def test_identity_lookups(slack: FakeSlack, client: AsyncWebClient) -> None:
    me = await client.auth_test()
    assert (me["user_id"], me["team_id"], me["bot_id"]) == ("U0JITGATE", "T012AB3C4", "B0JITGATE")
    alice = (await client.users_info(user="U012ALICE"))["user"]
    assert alice["profile"]["email"] == "alice@example.com" and alice["is_bot"] is False
    bot = (await client.users_info(user="U056BOT"))["user"]
    assert bot["is_bot"] is True and "email" not in bot["profile"]
    assert (await client.users_info(user="U078GONE"))["user"]["deleted"] is True
    with pytest.raises(SlackApiError, match="user_not_found"):
        await client.users_info(user="U999NOBODY")
    slack.add_user(SlackUser("U999NOBODY", "new@example.com", "new"))
    assert (await client.users_info(user="U999NOBODY"))["user"]["name"] == "new"


async def test_cards_are_posted_updated_and_threaded(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    card: dict[str, Any] = {"text": "Request #12 needs approval", "blocks": [{"type": "divider"}]}
    posted = await client.chat_postMessage(channel="C0APPROVALS", **card)
    channel, ts = posted["channel"], posted["ts"]
    assert channel == "C0APPROVALS" and posted["message"]["blocks"] == card["blocks"]
    await client.chat_update(channel=channel, ts=ts, text="decided", blocks=[])
    assert slack.message(channel, ts)["text"] == "decided"
    reply = await client.chat_postMessage(channel=channel, thread_ts=ts, text="DELETE 1 in 3 ms")
    assert slack.message(channel, reply["ts"])["thread_ts"] == ts and reply["ts"] != ts
    with pytest.raises(SlackApiError, match="message_not_found"):
        await client.chat_update(channel=channel, ts="1.000001", text="x")
    with pytest.raises(SlackApiError, match="no_text"), pytest.warns(UserWarning, match="text"):
        await client.chat_postMessage(channel=channel)
    assert (await client.chat_postEphemeral(channel=channel, user="U034BOB", text="no"))["ok"]
    dm = await client.conversations_open(users="U012ALICE")
    assert dm["channel"]["id"] == slack.dm_channel("U012ALICE") == "D012ALICE"
    opened = await client.views_open(trigger_id="123.456.abc", view=reject_modal(12))
    assert opened["view"]["callback_id"] == "reject_reason" and opened["view"]["id"].startswith("V")

    methods = [call.method for call in slack.calls]
    assert methods[:4] == ["chat.postMessage", "chat.update", "chat.postMessage", "chat.update"]
    assert methods[-3:] == ["chat.postEphemeral", "conversations.open", "views.open"]
    assert all(call.token == slack.token for call in slack.calls)
    first = slack.calls_to("chat.postMessage")[0]
    assert first.headers["Authorization"] == f"Bearer {slack.token}"
    assert first.args["blocks"] == card["blocks"] and first.status == 200


async def test_files_upload_v2_goes_through_all_three_steps(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    done = await client.files_upload_v2(
        channel="C0APPROVALS", thread_ts="1.2", filename="result.csv", content="id\n1\n"
    )
    assert done["file"]["name"] == "result.csv" and done["file"]["size"] == 5
    get_url, upload, complete = slack.calls
    assert (get_url.method, upload.method, complete.method) == (
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    )
    assert (get_url.args["filename"], get_url.args["length"]) == ("result.csv", "5")
    assert upload.body == b"id\n1\n" and upload.token is None  # the URL itself authorises
    assert complete.args["files"][0]["id"] == upload.args["file_id"]
    assert complete.args["channel_id"] == "C0APPROVALS" and complete.args["thread_ts"] == "1.2"

    slack.fail("upload", status=500)
    with pytest.raises(SlackRequestError, match="status: 500"):
        await client.files_upload_v2(channel="C0APPROVALS", filename="x.csv", content="x")


async def test_response_url_posts_are_recorded(slack: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        webhook = AsyncWebhookClient(slack.response_url("cmd-7"), session=session)
        sent = await webhook.send(text="held: request #12", response_type="ephemeral")
    assert sent.status_code == 200
    (call,) = slack.calls_to("response_url")
    assert call.args == {"key": "cmd-7", "text": "held: request #12", "response_type": "ephemeral"}


async def test_calls_need_the_bot_token(slack: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        wrong = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url, session=session)
        with pytest.raises(SlackApiError, match="invalid_auth"):
            await wrong.chat_postMessage(channel="C1", text="x")
        async with session.post(slack.api_url + "chat.postMessage", data={"channel": "C1"}) as r:
            assert (await r.json())["error"] == "not_authed"
        form = {"token": slack.token, "channel": "C1", "blocks": json.dumps([{"type": "divider"}])}
        async with session.post(slack.api_url + "chat.postMessage", data=form) as r:
            assert (await r.json())["ok"] is True
    assert slack.calls[-1].args["blocks"] == [{"type": "divider"}]  # form JSON decoded
    assert slack.calls[-1].token == slack.token


async def test_injected_failures_answer_in_order(slack: FakeSlack) -> None:
    slack.fail("chat.postMessage", times=2, status=429, retry_after=3)
    slack.fail("chat.postMessage", status=503)
    slack.fail("chat.postMessage", error="channel_not_found")
    answers = []
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.post(
                slack.api_url + "chat.postMessage",
                json={"channel": "C1", "text": "x"},
                headers={"Authorization": f"Bearer {slack.token}"},
            ) as r:
                answers.append(
                    (r.status, r.headers.get("Retry-After"), (await r.json()).get("error"))
                )
    assert answers == [
        (429, "3", "ratelimited"),
        (429, "3", "ratelimited"),
        (503, None, "service_unavailable"),
        (200, None, "channel_not_found"),
        (200, None, None),
    ]
    assert [call.status for call in slack.calls] == [429, 429, 503, 200, 200]
    with pytest.raises(ValueError, match="needs an error"):
        slack.fail("chat.update")


async def test_slack_sdk_retries_a_rate_limited_call(slack: FakeSlack) -> None:
    slack.fail("chat.update", status=429, retry_after=0)
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(
            token=slack.token,
            base_url=slack.api_url,
            session=session,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
        )
        posted = await client.chat_postMessage(channel="C1", text="card")
        await client.chat_update(channel="C1", ts=posted["ts"], text="decided")
    assert [call.status for call in slack.calls_to("chat.update")] == [429, 200]


async def test_wait_for_sees_calls_made_later(slack: FakeSlack, client: AsyncWebClient) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C1", text="late")

    task = asyncio.create_task(later())
    (call,) = await asyncio.to_thread(slack.wait_for, "chat.postMessage")
    await task
    assert call.args["text"] == "late"
    with pytest.raises(AssertionError, match=r"expected 2 call\(s\) of chat.postMessage"):
        slack.wait_for("chat.postMessage", count=2, timeout=0.05)
    slack.reset()
    assert slack.calls == []


def test_signature_matches_slacks_documented_example() -> None:
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert signature(SECRET, "1531420618", body) == expected


def built() -> list[SlackRequest]:
    return [
        slash_command(SECRET, "run prod DELETE FROM carts WHERE id = 7 -- OPS-1"),
        block_action(SECRET, "approve", 12),
        view_submission(SECRET, 12, "no ticket"),
    ]


@pytest.mark.parametrize("signed", built(), ids=["command", "action", "view"])
def test_requests_verify_with_slack_sdk(signed: SlackRequest) -> None:
    stamp, sent = signed.headers["X-Slack-Request-Timestamp"], signed.headers["X-Slack-Signature"]
    assert SignatureVerifier(SECRET).is_valid(signed.body, stamp, sent)
    assert not SignatureVerifier("another-secret").is_valid(signed.body, stamp, sent)
    assert signed.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_requests_carry_slacks_fields() -> None:
    command, action, view = built()
    fields = {key: values[0] for key, values in parse_qs(command.body.decode()).items()}
    assert fields["command"] == "/jit" and fields["text"].startswith("run prod DELETE")
    assert {"token", "team_id", "channel_id", "user_id", "response_url", "trigger_id"} <= set(
        fields
    )
    payload = json.loads(parse_qs(action.body.decode())["payload"][0])
    clicked = payload["actions"][0]
    assert (clicked["action_id"], clicked["value"], clicked["text"]["text"]) == (
        "approve",
        "12",
        "Approve",
    )
    assert block_action(SECRET, "reject", 9).payload["actions"][0]["style"] == "danger"
    submitted = json.loads(parse_qs(view.body.decode())["payload"][0])["view"]
    assert submitted["private_metadata"] == "12"
    assert submitted["state"]["values"]["reject_reason"]["reason"]["value"] == "no ticket"


async def test_slack_bolt_accepts_and_parses_the_requests(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    app = AsyncApp(client=client, signing_secret=SECRET, process_before_response=True)
    seen: list[dict[str, Any]] = []

    async def record(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        seen.append(body)

    app.command("/jit")(record)
    app.action("approve")(record)
    app.view("reject_reason")(record)

    async def dispatch(signed: SlackRequest) -> int:
        response = await app.async_dispatch(
            AsyncBoltRequest(body=signed.body.decode(), headers={**signed.headers})
        )
        return response.status

    assert [await dispatch(signed) for signed in built()] == [200, 200, 200]
    assert seen[0]["text"].endswith("-- OPS-1") and seen[1]["actions"][0]["value"] == "12"
    assert seen[2]["view"]["state"]["values"]["reject_reason"]["reason"]["value"] == "no ticket"
    assert slack.calls_to("auth.test")  # bolt checked the bot token against the fake

    stale = slash_command(SECRET, "help", timestamp=1531420618)
    tampered = slash_command(SECRET, "status 1")
    forged = SlackRequest(tampered.body.replace(b"status", b"pending"), tampered.headers, {})
    assert [await dispatch(stale), await dispatch(forged)] == [401, 401]
    assert len(seen) == 3
