"""The engineer's side of the REST API (:mod:`jitgate.api`): ``jitgate request`` and
``jitgate requests``.

Results are printed on stdout (a masked table and a summary, or with ``--output json`` the
API's own JSON object); refusals, rejections, expiries and failures end with one line on
stderr. Exit status: 0 when the statement ran (or, without ``--wait``, the request is open),
1 when it was denied, rejected, expired, cancelled or failed or the gateway could not be
used, 2 for a usage problem. While ``--wait`` polls, a spinner turns on stderr if stderr is
a terminal; Ctrl-C stops the waiting, never the request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from jitgate import __version__, credentials
from jitgate.errors import AuthenticationError, PeerError, UsageError

CLI_AGENT = "jitgate-cli"
POLL_INTERVAL = 0.5
_SPIN = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class GatewayClient:
    """One gateway's REST API with one access token. Raises AuthenticationError for a
    refused token and PeerError (with the gateway's message) for anything else refused."""

    def __init__(self, url: str, token: str, session: aiohttp.ClientSession) -> None:
        self._url = url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {token}",
            "User-Agent": f"{CLI_AGENT}/{__version__}",
        }
        self._session = session

    async def ask(self, resource: str, sql: str, reason: str | None) -> dict[str, Any]:
        body = {"resource": resource, "sql": sql, "reason": reason}
        return await self._call("POST", "/api/requests", body)

    async def request(self, request_id: int) -> dict[str, Any]:
        return await self._call("GET", f"/api/requests/{request_id}")

    async def requests(self, *, pending: bool) -> list[dict[str, Any]]:
        found = await self._call("GET", "/api/requests?" + ("pending=1" if pending else "mine=1"))
        return list(found["requests"])

    async def whoami(self) -> dict[str, Any]:
        return await self._call("GET", "/api/whoami")

    async def logout(self) -> dict[str, Any]:
        return await self._call("POST", "/api/logout")

    async def grant_agent(self, delegation: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/api/agents", delegation)

    async def revoke_agent(self, name: str) -> dict[str, Any]:
        return await self._call("DELETE", "/api/agents/" + quote(name, safe=""))

    async def wait(self, request_id: int) -> dict[str, Any]:
        """Poll until the request is final (executed, failed, rejected, expired, cancelled)."""
        while True:
            current = await self.request(request_id)
            if current["final"]:
                return current
            await asyncio.sleep(POLL_INTERVAL)

    async def _call(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        try:
            async with self._session.request(
                method, self._url + path, json=body, headers=self._headers
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PeerError(f"cannot reach the gateway at {self._url}: {exc}") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PeerError(f"the gateway answered {status} without JSON") from exc
        if status == 401:
            raise AuthenticationError(f"the gateway refused the token: {data.get('error')}")
        if status >= 400:
            raise PeerError(str(data.get("error") or f"the gateway answered {status}"))
        if not isinstance(data, dict):
            raise PeerError("the gateway answered with something other than a JSON object")
        return data


@contextlib.asynccontextmanager
async def connect(args: argparse.Namespace) -> AsyncIterator[GatewayClient]:
    """A client of the gateway named by ``--url``, ``$JITGATE_URL`` or the stored sign-in
    (``jitgate login``), with the token of ``--token``, ``$JITGATE_TOKEN`` or the sign-in."""
    stored = credentials.load()
    url = args.url or os.environ.get("JITGATE_URL") or (stored.url if stored else None)
    token = args.token or os.environ.get("JITGATE_TOKEN") or (stored.token if stored else None)
    if not url:
        raise UsageError("no gateway URL: pass --url, set JITGATE_URL or run jitgate login")
    if not token:
        raise UsageError("no access token: run jitgate login, pass --token or set JITGATE_TOKEN")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        yield GatewayClient(url, token, session)


async def request_command(args: argparse.Namespace) -> int:
    async with connect(args) as client:
        answer = await client.ask(args.resource, args.sql, args.reason)
        if answer["action"] == "allow":
            outcome = answer["outcome"]
            return _finish(args, answer, outcome, outcome["summary"] if outcome["error"] else None)
        request = answer["request"]
        if not args.wait:
            _print(args, answer, lambda: describe_opened(request, answer["posted_to"]))
            return 0
        if args.output == "text":
            print(describe_opened(request, answer["posted_to"]), flush=True)
        try:
            async with spinner(f"waiting for approval of request #{request['id']}"):
                final = await client.wait(request["id"])
        except asyncio.CancelledError:
            stopped = f"stopped waiting; request #{request['id']} goes on: {request['url']}"
            print("\n" + stopped, file=sys.stderr)
            raise
    return _print_final(args, final)


async def requests_command(args: argparse.Namespace) -> int:
    async with connect(args) as client:
        found = await client.requests(pending=args.pending)
    _print(args, {"requests": found}, lambda: "\n".join(map(describe_line, found)) or "none")
    return 0


def _print_final(args: argparse.Namespace, request: dict[str, Any]) -> int:
    failure = None
    if request["state"] != "executed":
        said = request["state_reason"] or ""
        # "rejected by bob: …" already names the state; "not decided in time" does not.
        failure = f"request #{request['id']} " + (
            said if said.startswith(request["state"]) else f"{request['state']}: {said}"
        )
    return _finish(args, request, request["outcome"], failure)


def _finish(
    args: argparse.Namespace, data: object, outcome: dict[str, Any], failure: str | None
) -> int:
    """Print the result (the table, or ``data`` as JSON); a failure also ends with one line on
    stderr and exit status 1."""
    if args.output == "json":
        print(json.dumps(data))
    elif failure is None:
        print(format_outcome(outcome))
    if failure is None:
        return 0
    print(f"jitgate: {failure}", file=sys.stderr)
    return 1


def _print(args: argparse.Namespace, data: object, text: Callable[[], str]) -> None:
    print(json.dumps(data) if args.output == "json" else text())


def describe_opened(request: dict[str, Any], posted_to: list[str]) -> str:
    estimate = request["estimate"]
    rows = "" if estimate is None else f", about {estimate} row{'s' * (estimate != 1)}"
    where = "; ".join(posted_to) or "the web inbox"
    return (
        f"request #{request['id']} needs approval ({request['statement_class']} on"
        f" {request['resource']}{rows}): posted to {where}"
    )


def describe_line(request: dict[str, Any]) -> str:
    sql = " ".join(request["sql"].split())
    sql = sql if len(sql) <= 60 else sql[:59] + "…"
    return (
        f"#{request['id']:<6} {request['state']:<9} {request['resource']:<12}"
        f" {request['created_at'][:16].replace('T', ' ')}  {sql}"
    )


def format_outcome(outcome: dict[str, Any]) -> str:
    """A psql-like table of the masked preview, then the summary line."""
    lines: list[str] = []
    columns: list[str] = outcome["columns"]
    if columns:
        rows = [["" if v is None else v for v in row] for row in outcome["preview"]]
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
        for cells in [columns, *rows]:
            line = " | ".join(v.ljust(w) for v, w in zip(cells, widths, strict=False)).rstrip()
            lines.append(line)
            if cells is columns:
                lines.append("-+-".join("-" * w for w in widths))
        count = outcome["rows"] if outcome["rows"] is not None else len(rows)
        more = f", first {len(rows)} shown" if outcome["preview_truncated"] else ""
        lines.append(f"({count} row{'s' * (count != 1)}{more})")
    if outcome["masked"]:
        masked = ", ".join(f"{n} {entity}" for entity, n in sorted(outcome["masked"].items()))
        lines.append(f"masked: {masked}")
    lines.append(outcome["summary"])
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def spinner(text: str) -> AsyncIterator[None]:
    """Turn a spinner on stderr while the body runs, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield
        return

    async def spin() -> None:
        for frame in itertools.cycle(_SPIN):
            sys.stderr.write(f"\r{frame} {text}")
            sys.stderr.flush()
            await asyncio.sleep(0.1)

    task = asyncio.create_task(spin())
    try:
        yield
    finally:
        task.cancel()
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
