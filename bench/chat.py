"""``python -m bench.chat``: a decision taken in chat to its result in the card's thread, in
Microsoft Teams and in Slack, with the fake vendors the tests use.

One ``jitgate serve`` has both chats, each pointed at its fake (:mod:`tests.fake_teams`:
the Bot Framework's OpenID metadata, JWKS and connector; :mod:`tests.fakeslack`: the Slack
Web API); the resource's cards go to a Teams channel and a Slack channel. Each round a
client (asyncpg, through the gateway) sends a small write that policy holds, both cards
are posted, and the approver clicks Approve in one chat, the chats taking turns:

- Teams: an ``adaptiveCard/action`` invoke (``Action.Execute``, verb ``approve``) POSTed to
  ``/api/messages`` with an RS256 channel token from the fake's published key;
- Slack: a ``block_actions`` click POSTed to ``/slack/events``, signed as Slack signs.

The clock runs from sending the click until that chat's fake has received the result as a
reply in the card's thread (Teams: an activity POSTed in reply to the card; Slack:
``chat.postMessage`` with the card's ``thread_ts``). The next round starts once every
message of the last one is out. The goal (DESIGN.md) is ≤ 300 ms at the median in each.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import aiohttp
import asyncpg

from bench import BenchError, run_alone
from bench.gateway import APPROVER, RESOURCE, USER, GatewayProcess
from bench.postgres import DATABASE_ERRORS, BenchServer
from tests.fake_teams import FakeTeams
from tests.fakeslack import FakeSlack, SlackUser
from tests.slack_requests import block_action

ROUNDS = 20
GOAL_MS = 300.0
CHATS = ("teams", "slack")
STORE_DATABASE = "jg_bench_chat_store"
TARGET_DATABASE = "jg_bench_chat"
_TABLE = "jg_bench_chat_counter"
_TIMEOUT = 30.0
_CARD = "application/vnd.microsoft.card.adaptive"
_APP_ID = "00000000-0000-0000-0000-00000000be9c"
_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
_TEAMS_CHANNEL = "19:benchapprovals@thread.tacv2"
_SLACK_CHANNEL = "C0BENCHAPPROVALS"
# (MRI, Entra object id) of the Teams users; Slack user ids.
_TEAMS_APPROVER = ("29:1BenchApproverMRI", "a9900000-0000-4000-8000-0000000000a9")
_TEAMS_USER = ("29:1BenchUserMRI", "b0000000-0000-4000-8000-0000000000be")
_SLACK_APPROVER, _SLACK_USER = "U0BENCHAPPROVER", "U0BENCHUSER"
_SECRETS = {
    "JITGATE_BENCH_TEAMS_PASSWORD": "bench-app-password",
    "JITGATE_BENCH_SLACK_TOKEN": "xoxb-bench-token",
    "JITGATE_BENCH_SLACK_SECRET": "bench-signing-secret-0123456789ab",
}


@dataclass(frozen=True, slots=True)
class ChatRound:
    """One held request: its id and where its card is in each chat (channel, message id)."""

    request_id: int
    cards: dict[str, tuple[str, str]]


async def chat_latency(server: BenchServer, rounds: int = ROUNDS) -> dict[str, list[float]]:
    """Milliseconds from each click to the result in the card's thread, by chat
    (``rounds`` clicks in each)."""
    with tempfile.TemporaryDirectory(prefix="jitgate-chat-") as workdir:
        return await _with_fakes(server, Path(workdir), rounds)


async def _with_fakes(server: BenchServer, workdir: Path, rounds: int) -> dict[str, list[float]]:
    await server.recreate_database(STORE_DATABASE)
    await server.recreate_database(TARGET_DATABASE)
    users = [SlackUser(_SLACK_APPROVER, APPROVER, "approver"), SlackUser(_SLACK_USER, USER, "user")]
    with (
        FakeTeams(_APP_ID, _SECRETS["JITGATE_BENCH_TEAMS_PASSWORD"]) as teams,
        FakeSlack(users, token=_SECRETS["JITGATE_BENCH_SLACK_TOKEN"]) as slack,
    ):
        chats = {
            "teams": {
                **teams.settings(tenant_id=_TENANT),
                "app_password": "${JITGATE_BENCH_TEAMS_PASSWORD}",
                "users": {_TEAMS_APPROVER[1]: APPROVER, _TEAMS_USER[1]: USER},
            },
            "slack": {"bot_token": "${JITGATE_BENCH_SLACK_TOKEN}", "api_url": slack.api_url,
                      "signing_secret": "${JITGATE_BENCH_SLACK_SECRET}"},
        }  # fmt: skip
        gateway = GatewayProcess(
            workdir, store_url=server.url(STORE_DATABASE), target_url=server.url(TARGET_DATABASE),
            more=chats, notify={"teams": _TEAMS_CHANNEL, "slack": _SLACK_CHANNEL},
            secrets=_SECRETS,
        )  # fmt: skip
        try:
            await gateway.start()
            return await _measure(server, gateway, teams, slack, rounds)
        except BenchError as exc:
            raise BenchError(f"{exc}\nchat gateway log:\n{gateway.log_tail()}") from exc
        finally:
            await gateway.stop()


async def _measure(server: BenchServer, gateway: GatewayProcess, teams: FakeTeams,
                   slack: FakeSlack, rounds: int) -> dict[str, list[float]]:  # fmt: skip
    target = await server.connect(TARGET_DATABASE)
    store = await server.connect(STORE_DATABASE)
    try:
        await target.execute(f"CREATE TABLE {_TABLE} (id int PRIMARY KEY, n int NOT NULL)")
        await target.execute(f"INSERT INTO {_TABLE} VALUES (1, 0)")
    except DATABASE_ERRORS as exc:
        raise BenchError(f"cannot prepare {_TABLE}: {exc}") from exc
    client = await asyncpg.connect(
        host="127.0.0.1", port=gateway.pg_port, user=USER, password=gateway.token,
        database=RESOURCE, ssl=False, timeout=30,
    )  # fmt: skip
    latencies: dict[str, list[float]] = {chat: [] for chat in CHATS}
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{gateway.http_port}"
            await _install(http, base, teams)
            for turn in range(rounds * len(CHATS)):
                chat = CHATS[turn % len(CHATS)]
                held = asyncio.create_task(
                    client.execute(f"UPDATE {_TABLE} SET n = n + 1 WHERE id = 1")
                )
                posted = await _cards(store, held)
                started = time.perf_counter()
                if chat == "teams":
                    await _click_teams(http, base, teams, posted)
                    await _wait(_replied_in_teams(teams, posted))
                else:
                    await _click_slack(http, base, slack, posted)
                    await _wait(_replied_in_slack(slack, posted))
                latencies[chat].append((time.perf_counter() - started) * 1000)
                status = await asyncio.wait_for(held, _TIMEOUT)
                if status != "UPDATE 1":
                    raise BenchError(f"the approved statement answered {status!r}")
                await _settled(store)
        count = await target.fetchval(f"SELECT n FROM {_TABLE} WHERE id = 1")
        if count != rounds * len(CHATS):
            raise BenchError(f"{rounds * len(CHATS)} approvals ran the statement {count} times")
    finally:
        await client.close(timeout=5)
        await target.close()
        await store.close()
    return latencies


async def _install(http: aiohttp.ClientSession, base: str, teams: FakeTeams) -> None:
    """The app added to the approvals channel and to the requester's personal scope, as
    Teams tells a bot: this records both conversations in the store."""
    added = teams.activity("conversation_update")
    added["conversation"] = {**added["conversation"], "id": _TEAMS_CHANNEL}
    personal = teams.activity("installation_update_personal")
    personal["from"] = {"id": _TEAMS_USER[0], "aadObjectId": _TEAMS_USER[1]}
    for activity in (added, personal):
        await _post_activity(http, base, teams, activity)


async def _post_activity(http: aiohttp.ClientSession, base: str, teams: FakeTeams,
                         activity: dict[str, Any]) -> Any:  # fmt: skip
    headers = {"Authorization": f"Bearer {teams.channel_token()}"}
    async with http.post(f"{base}/api/messages", json=activity, headers=headers) as answer:
        body = await answer.read()
        if answer.status != 200:
            raise BenchError(f"/api/messages answered {answer.status}: {body[:300]!r}")
        return await answer.json(content_type=None) if body else None


async def _cards(store: asyncpg.Connection, held: asyncio.Task[str]) -> ChatRound:
    """The request the held statement opened, once its card is posted in both chats."""
    deadline = time.monotonic() + _TIMEOUT
    while time.monotonic() < deadline:
        if held.done():
            raise BenchError(f"the statement was not held: {held.result()!r}")
        rows = await store.fetch(
            "SELECT c.request_id, c.chat, c.channel, c.ts FROM cards c"
            " JOIN requests r ON r.id = c.request_id WHERE r.state = 'pending'"
        )
        if len(rows) == len(CHATS):
            cards = {row["chat"]: (row["channel"], row["ts"]) for row in rows}
            return ChatRound(rows[0]["request_id"], cards)
        await asyncio.sleep(0.005)
    raise BenchError("the held statement's cards were not posted in both chats")


async def _click_teams(http: aiohttp.ClientSession, base: str, teams: FakeTeams,
                       posted: ChatRound) -> None:  # fmt: skip
    conversation, card = posted.cards["teams"]
    activity = teams.activity("adaptive_card_action", replyToId=card)
    activity["from"] = {"id": _TEAMS_APPROVER[0], "aadObjectId": _TEAMS_APPROVER[1]}
    activity["conversation"] = {**activity["conversation"],
                                "id": f"{conversation};messageid={card}"}  # fmt: skip
    activity["value"]["action"].update(verb="approve", data={"request_id": posted.request_id})
    answer = await _post_activity(http, base, teams, activity)
    if not isinstance(answer, dict) or answer.get("type") != _CARD:
        raise BenchError(f"the Teams approval was refused: {answer}")


async def _click_slack(http: aiohttp.ClientSession, base: str, slack: FakeSlack,
                       posted: ChatRound) -> None:  # fmt: skip
    channel, ts = posted.cards["slack"]
    click = block_action(_SECRETS["JITGATE_BENCH_SLACK_SECRET"], "approve", posted.request_id,
                         user_id=_SLACK_APPROVER, user_name="approver", channel_id=channel,
                         message_ts=ts, response_url=slack.response_url("bench"))  # fmt: skip
    async with http.post(f"{base}/slack/events", data=click.body, headers=click.headers) as answer:
        if answer.status != 200:
            raise BenchError(f"the Slack click answered {answer.status}: {await answer.text()}")


def _replied_in_teams(teams: FakeTeams, posted: ChatRound) -> Callable[[], None]:
    conversation, card = posted.cards["teams"]
    return _first_new(lambda n: teams.wait_for("reply", n, _TIMEOUT, conversation),
                      len(teams.calls_to("reply", conversation)),
                      lambda reply: reply.activity_id == card)  # fmt: skip


def _replied_in_slack(slack: FakeSlack, posted: ChatRound) -> Callable[[], None]:
    channel, ts = posted.cards["slack"]
    return _first_new(lambda n: slack.wait_for("chat.postMessage", n, _TIMEOUT),
                      len(slack.calls_to("chat.postMessage")),
                      lambda post: post.status == 200 and post.args.get("channel") == channel
                      and post.args.get("thread_ts") == ts)  # fmt: skip


def _first_new(calls: Callable[[int], list[Any]], seen: int,
               wanted: Callable[[Any], bool]) -> Callable[[], None]:  # fmt: skip
    """A wait, to run in a thread, until a call after the first ``seen`` is ``wanted``:
    ``calls(n)`` returns once the fake recorded ``n`` calls."""

    def wait() -> None:
        count = seen + 1
        while True:
            recorded = calls(count)
            if any(wanted(call) for call in recorded[seen:]):
                return
            count = len(recorded) + 1

    return wait


async def _wait(until: Callable[[], None]) -> None:
    """Block in a thread until the fake has what ``until`` waits for (its condition wakes
    at each call it records, so no polling delay is added)."""
    try:
        await asyncio.to_thread(until)
    except AssertionError as exc:
        raise BenchError(f"the result never reached the card's thread: {exc}") from exc


async def _settled(store: asyncpg.Connection) -> None:
    """Wait until every queued chat message has gone out, so rounds do not overlap."""
    deadline = time.monotonic() + _TIMEOUT
    while time.monotonic() < deadline:
        left = await store.fetchval(
            "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"
        )
        if left == 0:
            return
        await asyncio.sleep(0.01)
    raise BenchError("the chat outbox did not drain")


def chat_lines(latencies: dict[str, list[float]]) -> list[str]:
    """One line per chat and one verdict each, side by side."""
    lines = ["decision in chat to result in the card's thread (fake vendor APIs):"]
    names = {"teams": "Microsoft Teams (Action.Execute)", "slack": "Slack (block_actions)"}
    for chat in CHATS:
        values = latencies[chat]
        p90 = quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
        lines.append(
            f"  {names[chat]:<33} p50 {median(values):6.1f} ms  p90 {p90:6.1f} ms"
            f"  max {max(values):6.1f} ms  over {len(values)} approvals"
        )
    for chat in CHATS:
        p50 = median(latencies[chat])
        verdict = "PASS" if p50 <= GOAL_MS else "FAIL"
        lines.append(f"{verdict}  {chat} decision to threaded result <= {GOAL_MS:.0f} ms p50:"
                     f" {p50:.1f} ms")  # fmt: skip
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chat",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="approvals in each chat")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return run_alone("bench.chat", lambda server: chat_latency(server, args.rounds), chat_lines)


if __name__ == "__main__":
    sys.exit(main())
