"""A local fake of the Slack Web API that records what it was sent and fails on command.

It serves ``http://127.0.0.1:PORT/api/METHOD`` from its own asyncio loop on a background
thread, so synchronous tests, asynchronous tests and a gateway in a subprocess reach it
alike: point ``slack.api_url`` at :attr:`FakeSlack.api_url`. It answers ``auth.test``,
``users.info``, ``users.lookupByEmail``, ``chat.postMessage``, ``chat.update``,
``chat.postEphemeral``, ``views.open``, ``conversations.open``,
``files.getUploadURLExternal``, the upload URL that hands out, and
``files.completeUploadExternal`` as Slack does (see
:mod:`tests.slack_workspace`); a call without the bot token gets ``not_authed`` or
``invalid_auth``. :meth:`FakeSlack.response_url` gives a ``response_url`` whose POSTs are
recorded too.

Every request becomes a :class:`Call`, in arrival order, recorded before it is answered::

    with FakeSlack([SlackUser("U034BOB", "bob@example.com", "bob")]) as slack:
        slack.fail("chat.postMessage", times=2, status=429, retry_after=1)
        ...  # run the gateway with slack.api_url and slack.token
        first, second, posted = slack.wait_for("chat.postMessage", count=3)

As a pytest fixture: ``with FakeSlack(...) as slack: yield slack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from aiohttp import web

from tests.slack_workspace import Answer, SlackUser, Workspace

__all__ = ["Call", "FakeSlack", "SlackUser"]

T = TypeVar("T")
# Query and form callers send these as JSON strings; recording them decoded keeps tests short.
_JSON_FIELDS = ("blocks", "attachments", "view", "files", "metadata")
_DEFAULT_ERRORS = {429: "ratelimited", 500: "fatal_error", 503: "service_unavailable"}


@dataclass(frozen=True)
class Call:
    """One request the fake received. ``method`` is the Web API method, ``"upload"`` for the
    upload URL or ``"response_url"``; ``args`` merges query and body (JSON-valued form
    fields decoded); ``status`` is the HTTP status the fake answered with."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def token(self) -> str | None:
        """The token the caller sent (``Authorization: Bearer`` or a ``token`` field)."""
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return token if scheme == "Bearer" else self.args.get("token")


@dataclass(frozen=True)
class _Failure:
    status: int
    error: str
    retry_after: int


def _parse(request: web.Request, body: bytes) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json" and body:
        args.update(json.loads(body))
    elif request.content_type == "application/x-www-form-urlencoded":
        args.update(parse_qsl(body.decode(), keep_blank_values=True))
    for key in _JSON_FIELDS:
        if isinstance(args.get(key), str):
            with contextlib.suppress(ValueError):
                args[key] = json.loads(args[key])
    return args


class FakeSlack:
    """The fake server; it listens from construction until :meth:`close` (or the end of a
    ``with`` block). Every method may be called from any thread."""

    def __init__(
        self,
        users: Iterable[SlackUser] = (),
        *,
        token: str = "xoxb-test-token",
        team_id: str = "T012AB3C4",
        bot_user_id: str = "U0JITGATE",
        bot_id: str = "B0JITGATE",
    ) -> None:
        self.token = token
        self._calls: list[Call] = []
        self._failures: defaultdict[str, deque[_Failure]] = defaultdict(deque)
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner = self._run(self._start())
        self.port: int = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api/"
        self.workspace = Workspace(users, url=self.url, team_id=team_id,
                                   bot_user_id=bot_user_id, bot_id=bot_id)  # fmt: skip

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{key}", self._response_url)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    def close(self) -> None:
        try:
            self._run(self._runner.cleanup())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __enter__(self) -> FakeSlack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # What tests set up.

    def add_user(self, user: SlackUser) -> None:
        with self._changed:
            self.workspace.users[user.id] = user

    def fail(
        self, method: str, *, times: int = 1, status: int = 200, error: str | None = None,
        retry_after: int = 1,
    ) -> None:  # fmt: skip
        """Answer the next ``times`` calls of ``method`` (or ``"upload"``, ``"response_url"``)
        with a failure: ``status=429`` (``ratelimited``, ``Retry-After: retry_after``), a 5xx,
        or ``{"ok": false, "error": error}`` with status 200. Failures queue up in order."""
        if status == 200 and error is None:
            raise ValueError("a failure with status 200 needs an error")
        code = error or _DEFAULT_ERRORS.get(status, "internal_error")
        with self._changed:
            self._failures[method].extend([_Failure(status, code, retry_after)] * times)

    def response_url(self, key: str = "r1") -> str:
        """A ``response_url`` for a slash command or interactivity payload."""
        return f"{self.url}/response/{key}"

    def reset(self) -> None:
        """Forget calls, queued failures and posted messages; members stay."""
        with self._changed:
            self._calls.clear()
            self._failures.clear()
            self.workspace.messages.clear()

    # What tests read.

    @property
    def calls(self) -> list[Call]:
        with self._changed:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def message(self, channel: str, ts: str) -> Answer:
        """A message the bot posted, as it reads now (after any ``chat.update``)."""
        with self._changed:
            return dict(self.workspace.messages[(channel, ts)])

    def dm_channel(self, user_id: str) -> str:
        """The DM channel id ``conversations.open`` returns for ``user_id``."""
        return self.workspace.dm_channel(user_id)

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Block until ``count`` calls of ``method`` arrived and return all of them so far. A
        test whose own loop runs the code under test waits in a thread:
        ``await asyncio.to_thread(slack.wait_for, "chat.update")``."""

        def of_method() -> list[Call]:
            return [call for call in self._calls if call.method == method]

        with self._changed:
            if self._changed.wait_for(lambda: len(of_method()) >= count, timeout):
                return of_method()
            seen = [call.method for call in self._calls]
        raise AssertionError(f"expected {count} call(s) of {method} in {timeout} s; got {seen}")

    # The server side, on the fake's own loop.

    def _answer(
        self, method: str, request: web.Request, body: bytes, args: dict[str, Any],
        answer: Callable[[], Answer | str],
    ) -> web.Response:  # fmt: skip
        """Record the call, then answer with the next queued failure of ``method`` or else
        with ``answer()`` (JSON, or plain text as the upload URL answers)."""
        with self._changed:
            queue = self._failures.get(method)
            failure = queue.popleft() if queue else None
            payload = answer() if failure is None else {"ok": False, "error": failure.error}
            status = 200 if failure is None else failure.status
            self._calls.append(Call(method, args, dict(request.headers), body, status))
            self._changed.notify_all()
        if isinstance(payload, str):
            return web.Response(text=payload)
        retry = {"Retry-After": str(failure.retry_after)} if failure and status == 429 else {}
        return web.json_response(payload, status=status, headers=retry)

    async def _api(self, request: web.Request) -> web.Response:
        method, body = request.match_info["method"], await request.read()
        args = _parse(request, body)

        def answer() -> Answer:
            token = Call(method, args, dict(request.headers), body, 200).token
            if not token:
                return {"ok": False, "error": "not_authed"}
            if token != self.token:
                return {"ok": False, "error": "invalid_auth"}
            return self.workspace.answer(method, args)

        return self._answer(method, request, body, args, answer)

    async def _upload(self, request: web.Request) -> web.Response:
        file_id, body = request.match_info["file_id"], await request.read()
        answer = functools.partial(self.workspace.uploaded, file_id, len(body))
        return self._answer("upload", request, body, {"file_id": file_id}, answer)

    async def _response_url(self, request: web.Request) -> web.Response:
        body = await request.read()
        args = {"key": request.match_info["key"], **_parse(request, body)}
        return self._answer("response_url", request, body, args, lambda: {"ok": True})
