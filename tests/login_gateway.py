"""A gateway that signs people in with :class:`tests.fakeidp.FakeIdp` from the terminal
(``oidc.cli_client_id``) and posts cards to :class:`tests.fakeslack.FakeSlack`, and the
real ``jitgate`` CLI run against it in a subprocess.

Nobody is in a group statically but bob (a DBA, the approver): IdP group ``jitgate-eng``
maps to ``engineers``, who may read and write ``prod`` at once; ``prod``'s ``access.agents``
caps agents' writes at ``review``.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from tests.fakeidp import FakeIdp
from tests.fakeslack import FakeSlack
from tests.harness import GatewayThread, gateway_config
from tests.oidc_gateway import RecordedAlerts, free_port
from tests.slack_gateway import APPROVALS, SECRET, SECURITY

CLI_CLIENT = "jitgate-cli"


def login_gateway(
    make_database: Callable[[str], str],
    target_dsn: str,
    idp: FakeIdp,
    slack: FakeSlack,
    store: str,
) -> tuple[GatewayThread, RecordedAlerts]:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    idp.redirect_uris.add(f"{public_url}/login/callback")
    config = gateway_config(
        make_database(store),
        target_dsn,
        public_url=public_url,
        http={"listen": f"127.0.0.1:{port}"},
        groups={"engineers": [], "dba": ["bob@example.com"]},
        oidc={
            "issuer": idp.issuer, "client_id": idp.client_id,
            "client_secret": idp.client_secret, "cli_client_id": CLI_CLIENT,
            "group_map": {"jitgate-eng": "engineers"}, "session_ttl": "1h", "token_ttl": "2h",
        },
        slack={"bot_token": slack.token, "signing_secret": SECRET, "api_url": slack.api_url},
        alerts={"slack": SECURITY},
        resources={
            "prod": {
                "type": "postgres", "url": target_dsn,
                "access": {
                    "engineers": {"read": "allow", "write": "allow"},
                    "dba": {"read": "allow", "write": "allow"},
                    "agents": {"write": "review"},
                },
                "approvers": ["dba"], "notify": {"slack": APPROVALS},
            },
        },
    )  # fmt: skip
    gateway = GatewayThread(config)
    alerts = RecordedAlerts()
    gateway.gateway.approvals.alerts.append(alerts)
    return gateway, alerts


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a person on their own machine: their home and config directory,
    no gateway token or URL of an admin's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JITGATE_", "PG"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), **extra)
    return env


async def jitgate(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await start(env, *args)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def start(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jitgate", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def line_matching(process: asyncio.subprocess.Process, pattern: str) -> re.Match[str]:
    """Read the process's stderr until a line matches ``pattern``."""
    assert process.stderr is not None
    seen = []
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        if not line:
            raise AssertionError(f"no line matched {pattern!r} in: {''.join(seen)}")
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
