"""``jitgate login``, ``logout``, ``whoami``, ``connect`` and ``agent grant|revoke``: the
person's side of signing in and of handing access to agents.

``login`` signs in with the IdP (:mod:`jitgate.login`) and stores the gateway token it
gets (:mod:`jitgate.credentials`); the other commands use that token unless ``--token`` or
``$JITGATE_TOKEN`` names another, and the stored gateway unless ``--url`` or
``$JITGATE_URL`` does. ``agent grant`` prints only the agent's token (``--output json``:
the whole answer). Exit status as in :mod:`jitgate.client`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from jitgate import credentials
from jitgate.client import CLI_AGENT, connect
from jitgate.errors import AuthenticationError, PeerError, UsageError
from jitgate.login import exchange_at_gateway, fetch_json, id_token_from_idp

_TIMEOUT = aiohttp.ClientTimeout(total=900)


async def login_command(args: argparse.Namespace) -> int:
    stored = credentials.load()
    url = args.url or os.environ.get("JITGATE_URL") or (stored.url if stored else None)
    if not url:
        raise UsageError("no gateway URL: pass --url or set JITGATE_URL")
    url = url.rstrip("/")
    async with aiohttp.ClientSession(
        timeout=_TIMEOUT, headers={"User-Agent": f"{CLI_AGENT}/login"}
    ) as http:
        status, info = await fetch_json(http, "GET", url + "/api/login")
        if status != 200:
            raise PeerError(f"the gateway at {url} has no IdP sign-in (oidc is not configured)")
        id_token = await id_token_from_idp(http, info, args.flow, not args.no_browser)
        issued = await exchange_at_gateway(http, url, id_token)
    expires = datetime.now(UTC) + timedelta(seconds=int(issued.get("expires_in", 0)))
    saved = credentials.Credentials(
        url=url,
        token=issued["access_token"],
        email=issued["subject"],
        expires_at=expires.isoformat(timespec="seconds"),
        postgres_host=info["postgres"]["host"],
        postgres_port=int(info["postgres"]["port"]),
    )
    path = credentials.save(saved)
    _print(
        args,
        {"email": saved.email, "expires_at": saved.expires_at, "credentials": str(path)},
        lambda: (
            f"signed in as {saved.email} until {saved.expires_at} (token in {path})\n"
            f'psql: eval "$(jitgate connect RESOURCE --env)" && psql'
        ),
    )
    return 0


async def logout_command(args: argparse.Namespace) -> int:
    stored = credentials.load()
    revoked = 0
    if stored is not None or args.token or os.environ.get("JITGATE_TOKEN"):
        try:
            async with connect(args) as client:
                revoked = int((await client.logout())["revoked"])
        except AuthenticationError:
            revoked = 0  # already revoked or expired: nothing left to end at the gateway
    if stored is not None:
        if _has_pgpass():
            credentials.write_pgpass(stored, None)
        credentials.forget()
    _print(args, {"revoked": revoked, "signed_out": stored is not None}, lambda: "signed out")
    return 0


async def whoami_command(args: argparse.Namespace) -> int:
    async with connect(args) as client:
        me = await client.whoami()
    stored = credentials.load()

    def text() -> str:
        who = me["email"] + (f" via agent {me['agent']}" if me["agent"] else "")
        lines = [who, f"groups: {', '.join(me['groups']) or 'none'}"]
        if me["resources"] is not None:
            lines.append(f"resources: {', '.join(me['resources'])}")
        if me["classes"] is not None:
            lines.append(f"statement classes: {', '.join(me['classes'])}")
        if stored is not None and not (args.token or os.environ.get("JITGATE_TOKEN")):
            lines.append(f"signed in to {stored.url} until {stored.expires_at}")
        return "\n".join(lines)

    _print(args, me, text)
    return 0


async def connect_command(args: argparse.Namespace) -> int:
    stored = credentials.load()
    if stored is None:
        raise UsageError("not signed in: run jitgate login first")
    if args.env:
        print(credentials.env_lines(stored, args.resource))
        return 0
    if args.pgpass:
        path = credentials.write_pgpass(stored, stored.token)
        print(f"password line for {stored.email} written to {path}", file=sys.stderr)
    print(credentials.connection_uri(stored, args.resource))
    return 0


async def agent_grant_command(args: argparse.Namespace) -> int:
    delegation: dict[str, Any] = {"name": args.name, "ttl": args.ttl}
    if args.resource:
        delegation["resources"] = _names(args.resource)
    if args.statement_class:
        delegation["classes"] = _names(args.statement_class)
    async with connect(args) as client:
        granted = await client.grant_agent(delegation)
    _print(args, granted, lambda: str(granted["token"]))
    return 0


async def agent_revoke_command(args: argparse.Namespace) -> int:
    async with connect(args) as client:
        answer = await client.revoke_agent(args.name)
    cancelled = ", ".join(f"#{n}" for n in answer["cancelled"])
    _print(
        args,
        answer,
        lambda: (
            f"revoked {answer['revoked']} token(s) of agent {args.name}"
            + (f"; cancelled {cancelled}" if cancelled else "")
        ),
    )
    return 0


def _names(values: list[str]) -> list[str]:
    """``--class read,write --class ddl`` → ``["read", "write", "ddl"]``."""
    return [n.strip() for value in values for n in value.split(",") if n.strip()]


def _has_pgpass() -> bool:
    path = os.environ.get("PGPASSFILE") or os.path.expanduser("~/.pgpass")
    return os.path.exists(path)


def _print(args: argparse.Namespace, data: object, text: Any) -> None:
    print(json.dumps(data) if args.output == "json" else text())
