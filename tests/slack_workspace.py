"""The Slack workspace behind :class:`tests.fakeslack.FakeSlack`: its members, the messages
the bot posted and the files it uploaded, and the Web API methods' answers over them.

No I/O and no locking here: the fake server calls :meth:`Workspace.answer` under its own
lock. Answers start from the recorded payloads in ``tests/fixtures/slack`` and keep Slack's
error codes (``user_not_found``, ``message_not_found``, ``channel_not_found``, ...).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Answer = dict[str, Any]
FIXTURES = Path(__file__).parent / "fixtures" / "slack"


def fixture(name: str) -> Answer:
    """A recorded Slack payload from ``tests/fixtures/slack/NAME.json`` (a fresh copy)."""
    data: Answer = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


@dataclass(frozen=True)
class SlackUser:
    """A member as ``users.info`` reports it; ``email`` None leaves it out, as for bots."""

    id: str
    email: str | None
    name: str
    is_bot: bool = False
    deleted: bool = False


def _error(code: str) -> Answer:
    return {"ok": False, "error": code}


class Workspace:
    """One workspace with the bot installed. ``url`` is where upload URLs point."""

    def __init__(self, users: Iterable[SlackUser], *, url: str, team_id: str, bot_user_id: str,
                 bot_id: str) -> None:  # fmt: skip
        self.users = {user.id: user for user in users}
        self.messages: dict[tuple[str, str], Answer] = {}
        self.url, self.team_id, self.bot_user_id, self.bot_id = url, team_id, bot_user_id, bot_id
        self._uploads: dict[str, Answer] = {}
        self._seq = itertools.count(1)
        self._methods: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "views.open": self._views_open,
            "conversations.open": self._conversations_open,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    def answer(self, method: str, args: dict[str, Any]) -> Answer:
        """Slack's answer to an authenticated call of ``method``."""
        handler = self._methods.get(method)
        return handler(args) if handler else _error("unknown_method")

    def uploaded(self, file_id: str, size: int) -> str:
        """Take an upload's bytes (only their size is kept); the upload URL's answer."""
        self._uploads.setdefault(file_id, {})["size"] = size
        return f"OK - {size}"

    @staticmethod
    def dm_channel(user_id: str) -> str:
        """The DM channel id ``conversations.open`` returns for ``user_id``."""
        return "D" + user_id[1:]

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._seq):06d}"

    def _auth_test(self, args: dict[str, Any]) -> Answer:
        return {
            "ok": True, "url": "https://example.slack.com/", "team": "Example", "user": "jitgate",
            "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }  # fmt: skip

    def _users_info(self, args: dict[str, Any]) -> Answer:
        user = self.users.get(args.get("user", ""))
        if user is None:
            return _error("user_not_found")
        answer = fixture("users_info")
        member, profile = answer["user"], answer["user"]["profile"]
        member.update(id=user.id, team_id=self.team_id, name=user.name, real_name=user.name,
                      deleted=user.deleted, is_bot=user.is_bot)  # fmt: skip
        profile.update(real_name=user.name, display_name=user.name, team=self.team_id)
        if user.email is None:
            del profile["email"]
        else:
            profile["email"] = user.email
        return answer

    def _users_lookup_by_email(self, args: dict[str, Any]) -> Answer:
        email = str(args.get("email", "")).lower()
        found = next((u for u in self.users.values() if (u.email or "").lower() == email), None)
        if found is None or found.deleted:
            return _error("users_not_found")
        return self._users_info({"user": found.id})

    def _post_message(self, args: dict[str, Any]) -> Answer:
        channel = args.get("channel")
        if not channel:
            return _error("channel_not_found")
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            return _error("no_text")
        answer, ts = fixture("chat_postMessage"), self._next_ts()
        answer.update(channel=channel, ts=ts)
        message = answer["message"]
        message.update(ts=ts, text=args.get("text", ""), blocks=args.get("blocks", []))
        message.update({key: args[key] for key in ("thread_ts", "attachments") if key in args})
        self.messages[(channel, ts)] = dict(message)
        return answer

    def _update(self, args: dict[str, Any]) -> Answer:
        key = (args.get("channel", ""), args.get("ts", ""))
        if key not in self.messages:
            return _error("message_not_found")
        message = self.messages[key]
        message.update(text=args.get("text", ""), blocks=args.get("blocks", []))
        return {"ok": True, "channel": key[0], "ts": key[1], "text": message["text"],
                "message": dict(message)}  # fmt: skip

    def _post_ephemeral(self, args: dict[str, Any]) -> Answer:
        if not args.get("channel") or not args.get("user"):
            return _error("invalid_arguments")
        return {"ok": True, "message_ts": self._next_ts()}

    def _views_open(self, args: dict[str, Any]) -> Answer:
        view = args.get("view")
        if not args.get("trigger_id") or not isinstance(view, dict):
            return _error("invalid_arguments")
        view_id = f"V{next(self._seq):08d}"
        opened = {**view, "id": view_id, "team_id": self.team_id, "root_view_id": view_id}
        return {"ok": True, "view": {**opened, "state": {"values": {}}}}

    def _conversations_open(self, args: dict[str, Any]) -> Answer:
        users = [user for user in str(args.get("users", "")).split(",") if user]
        if len(users) != 1 or users[0] not in self.users:
            return _error("user_not_found")
        return {"ok": True, "channel": {"id": self.dm_channel(users[0])}}

    def _upload_url(self, args: dict[str, Any]) -> Answer:
        if not args.get("filename") or not str(args.get("length", "")).isdigit():
            return _error("invalid_arguments")
        file_id = f"F{next(self._seq):08d}"
        self._uploads[file_id] = {"name": args["filename"]}
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, args: dict[str, Any]) -> Answer:
        files = args.get("files")
        if not isinstance(files, list) or not files:
            return _error("invalid_arguments")
        # Slack refuses to complete a file whose bytes never reached the upload URL.
        if any("size" not in self._uploads.get(f.get("id", ""), {}) for f in files):
            return _error("file_not_found")
        done = [{"id": f["id"], "title": f.get("title"), **self._uploads[f["id"]]} for f in files]
        return {"ok": True, "files": done}
